package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
)

// v2 is a cgroup in a unified (cgroup2) hierarchy, driven by containerd's
// cgroup2 package.
type v2 struct {
	path  string // "/berth/<id>"
	mount string // the hierarchy's mount point
	dir   string // mount + path
	m     *cgroup2.Manager
}

var _ Cgroup = (*v2)(nil)

// newV2 creates the cgroup at p in the cgroup2 hierarchy mounted at mount.
// It enables the controllers the hierarchy offers (cgroup.controllers of its
// root); a limit whose controller is missing is engine.ErrUnsupported, never
// silently dropped.
func newV2(mount, p string, l limits) (*v2, error) {
	c := &v2{path: p, mount: mount, dir: filepath.Join(mount, p)}
	_, err := os.Lstat(c.dir)
	existed := err == nil
	data, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", p, err)
	}
	avail := strings.Fields(string(data))
	enable := &cgroup2.Resources{}
	if slices.Contains(avail, "memory") {
		enable.Memory = &cgroup2.Memory{}
	}
	if slices.Contains(avail, "cpu") {
		enable.CPU = &cgroup2.CPU{}
	}
	if slices.Contains(avail, "pids") {
		enable.Pids = &cgroup2.Pids{}
	}
	// Empty resources only enable controllers in the ancestors'
	// cgroup.subtree_control; set writes the values. The device filter (an
	// eBPF program) is attached on creation only: replacing it under a
	// running container would leave a moment with none.
	if !existed {
		enable.Devices = defaultDevices()
	}
	err = retryCreate(func() error {
		m, err := cgroup2.NewManager(mount, p, enable)
		c.m = m
		return err
	})
	if err != nil {
		if !existed {
			_ = unix.Rmdir(c.dir)
			removeParents(mount, p)
		}
		return nil, fmt.Errorf("create cgroup %s: %w", p, err)
	}
	if err := c.set(l); err != nil {
		if !existed {
			_ = c.Delete()
		}
		return nil, err
	}
	return c, nil
}

func loadV2(mount, p string) (*v2, error) {
	c := &v2{path: p, mount: mount, dir: filepath.Join(mount, p)}
	if _, err := os.Lstat(c.dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", p, engine.ErrNotFound)
		}
		return nil, fmt.Errorf("load cgroup %s: %w", p, err)
	}
	m, err := cgroup2.Load(p, cgroup2.WithMountpoint(mount))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", p, err)
	}
	c.m = m
	return c, nil
}

func (c *v2) Path() string { return c.path }

func (c *v2) Dirs() ([]string, bool) { return []string{c.dir}, true }

func (c *v2) Add(pid int) error {
	if err := c.m.AddProc(uint64(pid)); err != nil {
		return fail(c.path, "add process "+strconv.Itoa(pid), err)
	}
	return nil
}

// OpenFD opens the directory O_PATH, which is all clone3 needs.
func (c *v2) OpenFD() (*os.File, error) {
	fd, err := unix.Open(c.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fail(c.path, "open", &fs.PathError{Op: "open", Path: c.dir, Err: err})
	}
	return os.NewFile(uintptr(fd), c.dir), nil
}

func (c *v2) Update(r engine.Resources) error {
	l, err := limitsOf(r)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c.path, err)
	}
	return c.set(l)
}

// set writes every limit, "max" included, so that an update removes what a
// zero field no longer asks for. The memory limit is a hard one: swap is
// off (memory.swap.max 0) while it is set, as with memsw on v1.
func (c *v2) set(l limits) error {
	r := &cgroup2.Resources{}
	if c.has("memory.max") {
		// The kernel takes any value at or above its page-counter maximum as
		// "max"; containerd's Memory only carries integers.
		limit, swap := l.memory, int64(0)
		if limit < 0 {
			limit, swap = math.MaxInt64, math.MaxInt64
		}
		r.Memory = &cgroup2.Memory{Max: &limit}
		if c.has("memory.swap.max") {
			r.Memory.Swap = &swap
		}
	} else if l.memory > 0 {
		return unsupported(c.path, "memory")
	}
	if c.has("cpu.max") {
		weight := uint64(defaultWeight)
		if l.shares != defaultShares {
			weight = cgroup2.ConvertCPUSharesToCgroupV2Value(l.shares)
		}
		period := uint64(cpuPeriod)
		var quota *int64
		if l.quota > 0 {
			quota = &l.quota
		}
		r.CPU = &cgroup2.CPU{Weight: &weight, Max: cgroup2.NewCPUMax(quota, &period)}
	} else if l.quota > 0 || l.shares != defaultShares {
		return unsupported(c.path, "cpu")
	}
	if c.has("pids.max") {
		r.Pids = &cgroup2.Pids{Max: l.pids} // -1 is written as "max"
	} else if l.pids > 0 {
		return unsupported(c.path, "pids")
	}
	if err := c.m.Update(r); err != nil {
		return fail(c.path, "set limits", err)
	}
	return nil
}

func (c *v2) Stats() (Stats, error) {
	if _, err := os.Lstat(c.dir); err != nil {
		return Stats{}, fail(c.path, "stats", err)
	}
	m, err := c.m.StatFiltered(cgroup2.StatPids | cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents)
	if err != nil {
		return Stats{}, fail(c.path, "stats", err)
	}
	var s Stats
	if mem := m.Memory; mem != nil {
		s.MemoryUsage = workingSet(mem.Usage, mem.InactiveFile)
		s.MemoryLimit = limitValue(mem.UsageLimit)
	}
	if m.MemoryEvents != nil {
		s.OOMKills = m.MemoryEvents.OomKill
	}
	if m.CPU != nil {
		s.CPUUsage = m.CPU.UsageUsec * 1000
	}
	if m.Pids != nil {
		s.Pids = int64(m.Pids.Current)
		s.PidsLimit = limitValue(m.Pids.Limit)
	}
	return s, nil
}

// OOMKilled reads the oom_kill counter of memory.events.
func (c *v2) OOMKilled() (bool, error) {
	n, _, err := readKV(filepath.Join(c.dir, "memory.events"), "oom_kill")
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(c.dir); serr == nil {
			return false, nil // no memory controller: no memory limit to hit
		}
	}
	if err != nil {
		return false, fail(c.path, "read memory.events", err)
	}
	return n > 0, nil
}

func (c *v2) Procs() ([]int, error) {
	pids, err := readProcs(c.dir)
	if err != nil {
		return nil, fail(c.path, "list processes", err)
	}
	slices.Sort(pids)
	return pids, nil
}

func (c *v2) Kill(sig syscall.Signal) error { return killFrozen(c, sig) }

// freeze is v1's freeze with cgroup.freeze and the "frozen" key of
// cgroup.events (Linux 5.2+).
func (c *v2) freeze() (thaw func() error, err error) {
	noop := func() error { return nil }
	file := filepath.Join(c.dir, "cgroup.freeze")
	if !c.has("cgroup.freeze") {
		return noop, nil
	}
	thaw = func() error { return os.WriteFile(file, []byte("0"), 0) }
	if err := os.WriteFile(file, []byte("1"), 0); err != nil {
		return noop, err
	}
	frozen, err := poll(freezeTimeout, func() (bool, error) {
		n, _, err := readKV(filepath.Join(c.dir, "cgroup.events"), "frozen")
		return n == 1, err
	})
	if err != nil || !frozen {
		_ = thaw()
		return noop, err
	}
	return thaw, nil
}

// KillAll writes cgroup.kill (Linux 5.14+), which kills every process,
// forks in flight included, in one step; older kernels freeze and signal.
func (c *v2) KillAll(ctx context.Context) error {
	if !c.has("cgroup.kill") {
		return killAndWait(ctx, c.path, signalRounds(c))
	}
	return killAndWait(ctx, c.path, func(int) (bool, error) {
		if empty, err := c.empty(); err != nil || empty {
			return empty, err
		}
		if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0); err != nil {
			return false, fail(c.path, "kill", err)
		}
		return false, nil
	})
}

// empty reads the "populated" key of cgroup.events, which covers
// descendants.
func (c *v2) empty() (bool, error) {
	n, ok, err := readKV(filepath.Join(c.dir, "cgroup.events"), "populated")
	if err != nil {
		return false, fail(c.path, "read cgroup.events", err)
	}
	return ok && n == 0, nil
}

func (c *v2) Delete() error {
	if _, err := os.Lstat(c.dir); errors.Is(err, fs.ErrNotExist) {
		removeParents(c.mount, c.path)
		return nil
	}
	pids, err := c.Procs()
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("delete cgroup %s: %d processes left: %w", c.path, len(pids), engine.ErrInUse)
	}
	if err := removeTree(c.dir); err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	removeParents(c.mount, c.path)
	return nil
}

// has reports whether the cgroup has the interface file name, which tells
// whether its controller is enabled here.
func (c *v2) has(name string) bool {
	_, err := os.Lstat(filepath.Join(c.dir, name))
	return err == nil
}
