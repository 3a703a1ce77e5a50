package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
)

func (m *Manager) netnsDir() string        { return filepath.Join(m.run, "netns") }
func (m *Manager) nsPath(id string) string { return filepath.Join(m.netnsDir(), id) }

// Sandbox makes the persistent network namespace of a container, with only lo
// (up) in it, at <run>/netns/<id>, and returns its path. It is idempotent.
// Mode "none" is exactly this; bridge mode attaches to it later.
func (m *Manager) Sandbox(ctx context.Context, containerID string) (string, error) {
	if err := validID(containerID); err != nil {
		return "", err
	}
	p := m.nsPath(containerID)
	if isNetns(p) {
		return p, nil
	}
	if err := os.MkdirAll(m.netnsDir(), 0o711); err != nil {
		return "", fmt.Errorf("sandbox %s: %w", containerID, err)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return "", fmt.Errorf("sandbox %s: %w", containerID, err)
	}
	f.Close()
	start := time.Now()
	if err := newNetns(p); err != nil {
		_ = unix.Unmount(p, unix.MNT_DETACH)
		_ = os.Remove(p)
		return "", fmt.Errorf("sandbox %s: %w", containerID, err)
	}
	m.opts.log.Debug("sandbox created", "container", containerID, "elapsed", time.Since(start))
	return p, nil
}

// RemoveSandbox unmounts and removes a container's namespace file. It is
// idempotent. The namespace itself goes when its last user does.
func (m *Manager) RemoveSandbox(ctx context.Context, containerID string) error {
	if err := validID(containerID); err != nil {
		return err
	}
	return removeNetns(m.nsPath(containerID))
}

func removeNetns(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// newNetns creates a network namespace, brings its lo up and bind-mounts it
// on path (an existing file).
func newNetns(path string) error {
	return onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind netns: %w", err)
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		// lo is always index 1 in a new namespace.
		lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up: %w", err)
		}
		return nil
	})
}

// handleIn opens a netlink handle inside the namespace nsfd refers to. The
// socket keeps its namespace after its thread has left it.
func handleIn(nsfd int) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := onThread(func() error {
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns: %w", err)
		}
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		return nil
	})
	return h, err
}

// onThread runs fn, which may change the network namespace of its thread, on
// a locked thread of its own, and moves the thread back to the host's
// namespace afterwards. The thread is never unlocked: the runtime ends it
// with the goroutine rather than hand it to other goroutines. Moving it back
// still matters, because the main thread cannot end and is parked instead:
// parked in a container's namespace it would keep that namespace, and its
// veths, alive for as long as this process runs.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer unix.Close(orig)
		err = fn()
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil && err == nil {
			err = fmt.Errorf("back to the host namespace: %w", serr)
		}
		errc <- err
	}()
	return <-errc
}

// isNetns reports whether p is a mounted network namespace.
func isNetns(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// validID rejects container IDs that could escape a directory.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 128 {
		return fmt.Errorf("container ID %q: %w", id, engine.ErrInvalid)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("container ID %q: %w", id, engine.ErrInvalid)
		}
	}
	return nil
}
