package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

const watchNet = `apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: net}
`

// spareNet is a network no container uses: the engine lets it be removed.
const spareNet = `apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: spare}
`

func watchCtr(name, mode string) string {
	return `apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: ` + name + `}
spec:
  image: ` + testImage + `
  command: [/bin/busybox, sleep, "100000"]
  env: {MODE: "` + mode + `"}
  networks: [net]
  restart: always
  stopSignal: SIGKILL
`
}

// TestWatch runs berth watch against the real engine: an edit converges, a
// syntax error keeps what runs and is reported with file:line, a container
// and a network removed out of band come back.
func TestWatch(t *testing.T) {
	h := newHost(t)
	dir := filepath.Join(t.TempDir(), "watched")
	os.MkdirAll(dir, 0o755)
	write := func(name, body string) {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("net.yaml", watchNet+"---\n"+spareNet)
	write("a.yaml", watchCtr("a", "one"))
	write("b.yaml", watchCtr("b", "one"))

	logs := &enginetest.SyncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	cmd := exec.CommandContext(ctx, berthBin, "--data-root", h.root, "--config", "", "watch", "--resync", "2s", dir)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("watch log:\n%s", logs.String())
		}
	})
	e := h.engine()
	running := func(name string) (engine.Container, bool) {
		c, err := e.Containers().Inspect(t.Context(), "watched-"+name)
		return c, err == nil && c.State.Running
	}
	eventually(t, time.Minute, "first convergence", func() bool {
		_, a := running("a")
		_, b := running("b")
		return a && b
	})
	h.record()

	t.Run("an edit converges", func(t *testing.T) {
		old, _ := running("a")
		write("a.yaml", watchCtr("a", "two"))
		eventually(t, 30*time.Second, "a replaced", func() bool {
			c, ok := running("a")
			return ok && c.ID != old.ID && strings.Contains(strings.Join(c.Config.Env, " "), "MODE=two")
		})
		h.record()
	})

	t.Run("a syntax error keeps the old state", func(t *testing.T) {
		before, _ := running("a")
		write("a.yaml", "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: a\n")
		eventually(t, 10*time.Second, "error reported", func() bool {
			return strings.Contains(logs.String(), "a.yaml") && strings.Contains(logs.String(), "line=")
		})
		time.Sleep(300 * time.Millisecond)
		if after, ok := running("a"); !ok || after.ID != before.ID {
			t.Fatal("a changed while its manifest was broken")
		}
		write("a.yaml", watchCtr("a", "two"))
	})

	t.Run("a container removed out of band comes back", func(t *testing.T) {
		if out, err := h.berth("rm", "-f", "watched-b"); err != nil {
			t.Fatalf("rm: %v\n%s", err, out)
		}
		eventually(t, 30*time.Second, "b back", func() bool { _, ok := running("b"); return ok })
		h.record()
	})

	t.Run("a network removed out of band comes back", func(t *testing.T) {
		// The engine refuses to remove a network a container uses (even a
		// stopped one), so what can go out of band is a network nothing
		// uses at the moment. (The fake engine's tests cover a network lost
		// under running containers: they are re-attached.)
		n, err := e.Networks().Inspect(t.Context(), "watched-spare")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := h.berth("network", "rm", "watched-spare"); err != nil {
			t.Fatalf("network rm: %v\n%s", err, out)
		}
		eventually(t, 30*time.Second, "network back", func() bool {
			nn, err := e.Networks().Inspect(t.Context(), "watched-spare")
			return err == nil && nn.ID != n.ID
		})
		h.record()
	})

	stop()
	if !strings.Contains(logs.String(), "stopped watching") {
		t.Errorf("watch did not stop cleanly:\n%s", logs.String())
	}
	// Containers keep running after watch stops.
	if _, ok := running("a"); !ok {
		t.Error("a stopped with the watcher")
	}
	h.mustBerth("destroy", "--volumes", dir)
	h.assertClean()
}
