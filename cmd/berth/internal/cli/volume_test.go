package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/engine"
)

func TestVolumeCreateListInspect(t *testing.T) {
	root := t.TempDir()
	if out := mustBerth(t, root, "volume", "create", "--label", "tier=db", "--label", "env=prod", "pgdata"); out != "pgdata\n" {
		t.Errorf("create printed %q", out)
	}
	mustBerth(t, root, "volume", "create", "cache")
	anon := strings.TrimSpace(mustBerth(t, root, "volume", "create"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(anon) {
		t.Errorf("anonymous volume name %q", anon)
	}
	mustBerth(t, root, "volume", "rm", anon)
	// Creating again is not an error and keeps the volume as it was.
	mustBerth(t, root, "volume", "create", "--label", "other=x", "pgdata")

	want := "DRIVER   VOLUME NAME\n" +
		"local    cache\n" +
		"local    pgdata\n"
	if diff := cmp.Diff(want, mustBerth(t, root, "volume", "ls")); diff != "" {
		t.Errorf("volume ls (-want +got):\n%s", diff)
	}

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"volume", "ls", "-q"}, "cache\npgdata\n"},
		{[]string{"volume", "ls", "-q", "--filter", "label=tier"}, "pgdata\n"},
		{[]string{"volume", "ls", "-q", "-f", "label=tier=db", "-f", "label=env=prod"}, "pgdata\n"},
		{[]string{"volume", "ls", "-q", "-f", "label=tier=web"}, ""},
		{[]string{"volume", "ls", "-q", "-f", "name=ach"}, "cache\n"},
		{[]string{"volume", "ls", "-q", "-f", "name=ach", "-f", "name=pg"}, "cache\npgdata\n"},
		{[]string{"volume", "ls", "-q", "-f", "dangling=true", "-f", "name=cache"}, "cache\n"},
		{[]string{"volume", "list", "-q", "-f", "dangling=false"}, ""},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, mustBerth(t, root, tc.args...)); diff != "" {
			t.Errorf("berth %s (-want +got):\n%s", strings.Join(tc.args, " "), diff)
		}
	}

	var listed []engine.Volume
	if err := json.Unmarshal([]byte(mustBerth(t, root, "-o", "json", "volume", "ls", "-f", "name=pg")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Name != "pgdata" || listed[0].Config.Labels["tier"] != "db" || listed[0].Config.Labels["other"] != "" {
		t.Errorf("volume ls -o json = %+v", listed)
	}

	var inspected []engine.Volume
	if err := json.Unmarshal([]byte(mustBerth(t, root, "volume", "inspect", "pgdata", "cache")), &inspected); err != nil {
		t.Fatal(err)
	}
	if len(inspected) != 2 || inspected[0].Name != "pgdata" || inspected[1].Name != "cache" || inspected[0].Mountpoint == "" {
		t.Errorf("volume inspect = %+v", inspected)
	}

	code, out, errOut := berthCLI(t, root, "", "volume", "inspect", "cache", "nope")
	if code != 1 || !strings.Contains(errOut, "nope") || !strings.Contains(errOut, "not found") {
		t.Errorf("inspect of a missing volume: exit %d, stderr %q", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &inspected); err != nil || len(inspected) != 1 {
		t.Errorf("inspect printed %q for the volume found (%v)", out, err)
	}
}

func TestVolumeCreateErrors(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "bad/name"}, "volume name"},
		{[]string{"volume", "create", "--driver", "nfs", "x"}, "not supported"},
		{[]string{"volume", "create", "--label", "=v", "x"}, "--label"},
		{[]string{"volume", "ls", "--filter", "color=red"}, "unknown filter"},
		{[]string{"volume", "ls", "--filter", "dangling=maybe"}, "true or false"},
		{[]string{"volume", "ls", "--filter", "label"}, "KEY=VALUE"},
		{[]string{"volume", "inspect"}, "requires at least 1 arg"},
	}
	for _, tc := range tests {
		code, _, errOut := berthCLI(t, root, "", tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("berth %s: exit %d, stderr %q; want 1 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

func TestVolumeRemove(t *testing.T) {
	root := t.TempDir()
	mustBerth(t, root, "volume", "create", "a")
	mustBerth(t, root, "volume", "create", "b")
	if out := mustBerth(t, root, "volume", "rm", "a"); out != "a\n" {
		t.Errorf("rm printed %q", out)
	}
	code, out, errOut := berthCLI(t, root, "", "volume", "rm", "a", "b")
	if code != 1 || out != "b\n" || !strings.Contains(errOut, "volume a: not found") {
		t.Errorf("rm of a missing and an existing volume: exit %d, out %q, err %q", code, out, errOut)
	}
	mustBerth(t, root, "volume", "create", "c")
	if out := mustBerth(t, root, "volume", "rm", "-f", "a", "c"); out != "c\n" {
		t.Errorf("rm -f printed %q", out)
	}
	mustBerth(t, root, "volume", "create", "d")
	var removed []string
	if err := json.Unmarshal([]byte(mustBerth(t, root, "-o", "json", "volume", "remove", "d")), &removed); err != nil || !cmp.Equal(removed, []string{"d"}) {
		t.Errorf("rm -o json = %v, %v", removed, err)
	}
	if out := mustBerth(t, root, "volume", "ls", "-q"); out != "" {
		t.Errorf("volumes left: %q", out)
	}
}

func TestVolumePrune(t *testing.T) {
	root := t.TempDir()
	mustBerth(t, root, "volume", "create", "a")
	mustBerth(t, root, "volume", "create", "b")

	// Declined: nothing happens.
	code, out, _ := berthCLI(t, root, "n\n", "volume", "prune")
	if code != 0 || !strings.Contains(out, "Are you sure") {
		t.Errorf("declined prune: exit %d, out %q", code, out)
	}
	if out := mustBerth(t, root, "volume", "ls", "-q"); out != "a\nb\n" {
		t.Errorf("declined prune removed volumes: left %q", out)
	}

	code, out, errOut := berthCLI(t, root, "y\n", "volume", "prune")
	want := "WARNING! This will remove all local volumes not used by at least one container.\n" +
		"Are you sure you want to continue? [y/N] Deleted Volumes:\na\nb\n\nTotal reclaimed space: 0B\n"
	if code != 0 {
		t.Fatalf("prune: exit %d: %s", code, errOut)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("prune (-want +got):\n%s", diff)
	}

	mustBerth(t, root, "volume", "create", "c")
	var rep engine.PruneReport
	if err := json.Unmarshal([]byte(mustBerth(t, root, "-o", "json", "volume", "prune", "-f")), &rep); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(engine.PruneReport{Deleted: []string{"c"}}, rep); diff != "" {
		t.Errorf("prune -f -o json (-want +got):\n%s", diff)
	}
	if out := mustBerth(t, root, "volume", "prune", "-f"); out != "Total reclaimed space: 0B\n" {
		t.Errorf("prune of nothing printed %q", out)
	}
}

func TestFormatVolumeSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 1500: "1.5kB", 123456: "123.5kB", 5e9: "5GB"} {
		if got := formatVolumeSize(n); got != want {
			t.Errorf("formatVolumeSize(%d) = %q, want %q", n, got, want)
		}
	}
}
