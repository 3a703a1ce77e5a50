package container_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container"
	"berth.dev/berth/engine/container/shim"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/image"
)

// TestUnreleasedMonitorExits starts a monitor the way a berth command does
// before it knows its container, then gives up on it: the monitor and the
// init it forked at once must both go.
func TestUnreleasedMonitorExits(t *testing.T) {
	v := newEnv(t)
	self, err := shim.Seal()
	if err != nil {
		t.Fatal(err)
	}
	mon, err := shim.StartMonitor(self, filepath.Join(v.root, "containers", "never-released"))
	if err != nil {
		t.Fatal(err)
	}
	// The init it forks is its only child.
	var initPid int
	waitFor(t, 10*time.Second, "the monitor to fork the init", func() bool {
		data, _ := os.ReadFile("/proc/" + strconv.Itoa(mon.Pid) + "/task/" + strconv.Itoa(mon.Pid) + "/children")
		initPid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return initPid > 0
	})
	mon.Close()
	exited := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(mon.Pid, &ws, 0, nil)
		exited <- ws
	}()
	select {
	case ws := <-exited:
		if !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("monitor ended with %v, want exit status 0", ws)
		}
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(mon.Pid, syscall.SIGKILL)
		t.Fatal("monitor still runs 10 s after its engine went away")
	}
	waitFor(t, 5*time.Second, "the init to go", func() bool {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(initPid) + "/cmdline")
		return errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(string(data), shim.RoleInit)
	})
}

// TestEarlyMonitor runs a container with the monitor a berth command
// starts while it initializes.
func TestEarlyMonitor(t *testing.T) {
	v := newEnv(t)
	shim.StartEarlyMonitor()
	out, ex, err := v.run(v.config("echo", "early"))
	if err != nil || ex.Code != 0 || out != "early\n" {
		t.Fatalf("run = %q, %+v, %v", out, ex, err)
	}
	if mon := shim.TakeEarlyMonitor(); mon != nil {
		mon.Close()
		t.Error("the early monitor was not used")
	}
}

// TestAutoRemoveOverlayIsVolatile checks that only a container whose layer
// goes with it skips the syncs of its overlay.
func TestAutoRemoveOverlayIsVolatile(t *testing.T) {
	v := newEnv(t)
	for _, autoRemove := range []bool{true, false} {
		cfg := v.config("grep", "^overlay / ", "/proc/mounts")
		cfg.AutoRemove = autoRemove
		out, ex, err := v.run(cfg)
		if err != nil || ex.Code != 0 {
			t.Fatalf("run = %q, %+v, %v", out, ex, err)
		}
		if got := strings.Contains(out, "volatile"); got != autoRemove {
			t.Errorf("AutoRemove %v: rootfs mount %q: volatile %v", autoRemove, strings.TrimSpace(out), got)
		}
	}
}

// storeImages adapts the image store to the runtime, as engine/local does.
type storeImages struct{ s *image.Store }

func (i storeImages) Rootfs(ctx context.Context, ref string) (container.Rootfs, error) {
	info, err := i.s.Rootfs(ctx, ref)
	if err != nil {
		return container.Rootfs{}, err
	}
	return container.Rootfs{ImageID: info.ImageID, Config: info.Config, Lowers: info.Lowers}, nil
}

// TestWithoutNetworkManager runs a container on a runtime with no network
// manager: its init makes a network namespace of its own, with lo only.
func TestWithoutNetworkManager(t *testing.T) {
	v := newEnv(t)
	s, ok := v.e.Images().(*image.Store)
	if !ok {
		t.Skip("the engine's image store is not an *image.Store")
	}
	rt, err := container.New(t.Context(), v.root, container.WithImages(storeImages{s}))
	if err != nil {
		t.Fatal(err)
	}
	var out enginetest.SyncBuffer
	cfg := v.config("ls", "/sys/class/net")
	cfg.AutoRemove = true
	c, wait, err := rt.Run(t.Context(), cfg, &engine.Streams{Stdout: &out, Stderr: &out})
	if c.ID != "" {
		v.track(c.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	ex, err := wait(t.Context())
	if err != nil || ex.Code != 0 || out.String() != "lo\n" {
		t.Fatalf("run = %q, %+v, %v", out.String(), ex, err)
	}
}
