package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRegistry runs `berth registry serve` on a free loopback port and
// returns its address.
func startRegistry(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, berthBin, "--data-root", t.TempDir(), "--config", "", "registry", "serve",
		"--addr", "127.0.0.1:0", "--root", t.TempDir(), "--access-log", "")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if _, a, ok := strings.Cut(s.Text(), "listening on "); ok {
				addr <- strings.Fields(a)[0]
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("registry did not start")
		return ""
	}
}

// TestPullPolicies: images come from berth's registry on 127.0.0.1; a tag
// that moves is pulled again under pullPolicy always and the container
// replaced.
func TestPullPolicies(t *testing.T) {
	h := newHost(t)
	pub := newHost(t) // a second data root that publishes images
	addr := startRegistry(t)
	ref := addr + "/e2e/bb:1"
	pub.mustBerth("tag", testImage, ref)
	pub.mustBerth("push", ref)

	dir := filepath.Join(t.TempDir(), "pulls")
	os.MkdirAll(dir, 0o755)
	manifest := `apiVersion: berth.dev/v1alpha1
kind: Image
metadata: {name: bb}
spec: {ref: "` + ref + `", pullPolicy: always}
---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: x}
spec:
  image: ` + ref + `
  command: [/bin/busybox, sleep, "100000"]
  stopSignal: SIGKILL
`
	os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(manifest), 0o644)
	out := h.mustBerth("plan", dir)
	if !strings.Contains(out, "+ image \"bb\"") {
		t.Errorf("plan does not pull:\n%s", out)
	}
	h.mustBerth("apply", "--wait", dir)
	if code, out := h.exitCode("plan", "--detailed-exitcode", dir); code != 0 {
		t.Fatalf("not converged:\n%s", out)
	}

	// The tag moves: a new image pushed under it.
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	bb, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755)
	os.WriteFile(filepath.Join(rootfs, "VERSION"), []byte("2\n"), 0o644)
	pub.mustBerth("image", "import", rootfs, ref)
	pub.mustBerth("push", ref)

	doc := h.planJSON(dir)
	var got []string
	for _, c := range doc["changes"].([]any) {
		c := c.(map[string]any)
		if c["action"] != "no-op" {
			got = append(got, c["action"].(string)+" "+c["address"].(string))
		}
	}
	if strings.Join(got, ", ") != "update image/bb, replace container/x" {
		t.Fatalf("plan after the tag moved: %v", got)
	}
	h.mustBerth("apply", "--wait", dir)
	if code, out := h.exitCode("plan", "--detailed-exitcode", dir); code != 0 {
		t.Fatalf("not converged after the tag moved:\n%s", out)
	}
	h.mustBerth("destroy", dir)
	h.assertClean()
}
