package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

// buildBerth builds the berth binary for tests that run it as a user does.
func buildBerth(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	return bin
}

// TestKillDuringRunDetached kills berth run -d at moments spread over its
// whole course: each run must leave a recorded running container or nothing
// at all (no stray container record, mount, cgroup or process).
func TestKillDuringRunDetached(t *testing.T) {
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "overlay")
	bin := buildBerth(t)
	root := t.TempDir()
	berth := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--data-root", root}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("berth %v: %w: %s", args, err, errb.String())
		}
		return out.String(), err
	}
	tarball := filepath.Join(t.TempDir(), "busybox.tar")
	data, err := enginetest.BusyboxTar()
	if err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(tarball, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := berth("image", "import", "--change", `CMD ["sh"]`, tarball, "busybox:crash"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out, _ := berth("ps", "-aq", "--no-trunc")
		for _, id := range strings.Fields(out) {
			_, _ = berth("rm", "-f", id)
		}
		// berth run joins the default network, made on first use.
		_, _ = berth("network", "rm", "--force", "bridge")
		// Monitors and their short-lived cleanup helpers finish just after.
		deadline := time.Now().Add(10 * time.Second)
		for {
			leaks := hostLeaks(root, nil)
			if len(leaks) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("left on the host after removing everything:\n%s", strings.Join(leaks, "\n"))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	// How long a whole run takes here, to spread the kills over it.
	start := time.Now()
	if _, err := berth("run", "-d", "--network", "none", "--name", "crash-probe", "busybox:crash", "sleep", "3600"); err != nil {
		t.Fatal(err)
	}
	whole := time.Since(start)
	const runs = 16
	for i := 0; i < runs; i++ {
		cmd := exec.Command(bin, "--data-root", root, "run", "-d", "--network", "none", "--name", fmt.Sprintf("crash-%d", i), "busybox:crash", "sleep", "3600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Spread over a little more than a whole run, so that both outcomes occur.
		delay := time.Duration(1.3 * float64(whole) * (float64(i)/runs + rand.Float64()/runs))
		time.Sleep(delay)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	// The next command collects what the killed ones left.
	out, err := berth("-o", "json", "ps", "-a")
	if err != nil {
		t.Fatal(err)
	}
	var cs []engine.Container
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("ps: %v\n%s", err, out)
	}
	live := map[string]bool{}
	for _, c := range cs {
		if c.State.Status != engine.StatusRunning {
			t.Errorf("container %s is %s: a killed berth run -d must leave a running container or nothing", c.Name, c.State.Status)
		}
		live[c.ID] = true
	}
	t.Logf("%d of %d killed runs left a running container (a whole run takes %s)", len(cs)-1, runs, whole)
	if leaks := hostLeaks(root, live); len(leaks) > 0 {
		t.Errorf("left on the host:\n%s", strings.Join(leaks, "\n"))
	}
}

// hostLeaks lists what the data root has on the host beyond the containers
// in live: container directories, mounts, cgroups, processes.
func hostLeaks(root string, live map[string]bool) []string {
	var out []string
	isLive := func(s string) bool {
		for id := range live {
			if strings.Contains(s, id) {
				return true
			}
		}
		return false
	}
	entries, _ := os.ReadDir(filepath.Join(root, "containers"))
	for _, e := range entries {
		if e.Name() != ".names" && !live[e.Name()] {
			out = append(out, "container directory: "+e.Name())
		}
	}
	markers, _ := os.ReadDir(filepath.Join(root, "run", "cgroups"))
	for _, m := range markers {
		if !live[m.Name()] {
			out = append(out, "cgroup marker: "+m.Name())
		}
		if !live[m.Name()] {
			if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + m.Name()); len(dirs) > 0 {
				out = append(out, "cgroup: "+strings.Join(dirs, " "))
			}
		}
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, root) && !isLive(line) {
				out = append(out, "mount: "+line)
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, []byte(root)) && !isLive(string(data)) && !bytes.Contains(data, []byte("ps")) {
			out = append(out, "process: "+strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	return out
}
