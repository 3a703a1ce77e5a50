package cli

import (
	"bytes"
	"strings"
	"testing"
)

// berthCLI runs berth with a private data root and returns exit code,
// stdout and stderr.
func berthCLI(t *testing.T, root, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"--data-root", root, "--config", ""}, args...)
	code := Run(t.Context(), all, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustBerth runs berth and fails the test unless it exits 0.
func mustBerth(t *testing.T, root string, args ...string) string {
	t.Helper()
	code, out, errOut := berthCLI(t, root, "", args...)
	if code != 0 {
		t.Fatalf("berth %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestVerbNames checks that each verb is registered under the name it
// answers to: Run builds only the verb its arguments name.
func TestVerbNames(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range verbs {
		cmd := v.new(&Options{})
		if cmd.Name() != v.name {
			t.Errorf("verb registered as %q is named %q", v.name, cmd.Name())
		}
		if len(cmd.Aliases) > 0 {
			t.Errorf("verb %s has aliases %v: Run would not find it by them", v.name, cmd.Aliases)
		}
		if seen[v.name] {
			t.Errorf("verb %s registered twice", v.name)
		}
		seen[v.name] = true
	}
}

func TestVerbOf(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"plan dir", "plan"},
		{"--data-root /r -o json --config= plan -out f", "plan"},
		{"--log-level debug --insecure-registries r:5000 apply", "apply"},
		{"-o json version", "version"},
		{"--output=json image ls", "image"},
		{"", ""},
		{"help plan", ""},
		{"completion bash", ""},
		{"__complete plan ''", ""},
		{"plna", ""},
		{"-- plan", ""},
	} {
		if got := verbOf(strings.Fields(tc.args)); got != tc.want {
			t.Errorf("verbOf(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestHelpListsEveryVerb checks that help, which builds the whole tree,
// still lists every verb, and that a verb's own help works alone.
func TestHelpListsEveryVerb(t *testing.T) {
	code, out, errOut := berthCLI(t, t.TempDir(), "", "help")
	if code != 0 {
		t.Fatalf("help: exit %d: %s", code, errOut)
	}
	for _, v := range verbs {
		if !strings.Contains(out, "\n  "+v.name+" ") {
			t.Errorf("help does not list %s:\n%s", v.name, out)
		}
	}
	code, out, errOut = berthCLI(t, t.TempDir(), "", "plan", "--help")
	if code != 0 || !strings.Contains(out, "--detailed-exitcode") || !strings.Contains(out, "--data-root") {
		t.Errorf("plan --help: exit %d:\n%s%s", code, out, errOut)
	}
	code, _, errOut = berthCLI(t, t.TempDir(), "", "plna")
	if code != 1 || !strings.Contains(errOut, "Did you mean this?") {
		t.Errorf("unknown verb: exit %d: %s", code, errOut)
	}
}
