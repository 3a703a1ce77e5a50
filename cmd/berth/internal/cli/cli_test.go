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
