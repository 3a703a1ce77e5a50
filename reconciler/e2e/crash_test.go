package e2e

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestApplyKilled kills berth apply with SIGKILL at random moments, 20
// times; each following apply must converge, and after a destroy nothing
// is left.
func TestApplyKilled(t *testing.T) {
	h := newHost(t)
	dir := filepath.Join(t.TempDir(), "crash")
	os.MkdirAll(dir, 0o755)
	var b strings.Builder
	b.WriteString(watchNet)
	for i := range 6 {
		b.WriteString("---\n")
		c := watchCtr("c"+strconv.Itoa(i), "0")
		if i > 0 {
			c += "  dependsOn: [c" + strconv.Itoa(i-1) + "]\n"
		}
		b.WriteString(c)
	}
	base := b.String()
	write := func(gen int) {
		// Alternate between two specs so that every round replaces
		// containers, not just creates them.
		body := strings.ReplaceAll(base, `MODE: "0"`, `MODE: "`+strconv.Itoa(gen%2)+`"`)
		if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 20 {
		write(round)
		cmd := exec.Command(berthBin, "--data-root", h.root, "--config", "", "apply", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		h.record()
		out := h.mustBerth("apply", "--lock-timeout", "30s", dir)
		if code, plan := h.exitCode("plan", "--detailed-exitcode", dir); code != 0 {
			t.Fatalf("round %d: not converged after apply (exit %d):\n%s\nplan:\n%s", round, code, out, plan)
		}
	}
	h.mustBerth("destroy", "--volumes", dir)
	h.assertClean()
}
