package cgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
)

// v1 is a cgroup on a v1 or hybrid host: one directory of the same path in
// each v1 hierarchy (memory, cpu, cpuacct, pids, freezer, ...), driven by
// containerd's cgroup1 package.
type v1 struct {
	path string
	cg   cgroup1.Cgroup
	// dirs is the cgroup's directory in each hierarchy; roots the
	// hierarchies' mount points.
	dirs  map[cgroup1.Name]string
	subs  map[cgroup1.Name]cgroup1.Subsystem
	roots []string
	memsw bool // swap accounting: memory.memsw.* exists
}

var _ Cgroup = (*v1)(nil)

// pather and updater are what containerd's subsystems that live in a
// directory, and that take limits, implement.
type (
	pather interface {
		Path(string) string
	}
	updater interface {
		Update(path string, r *specs.LinuxResources) error
	}
)

// v1Subsystems are the hierarchies a container joins: containerd's default
// set (every mounted v1 hierarchy, the named systemd one included, so that
// systemd stopping the caller's session scope does not kill containers)
// except cpuset. berth sets no cpusets, and creating a cpuset cgroup makes
// the kernel rebuild its scheduling domains, which costs milliseconds per
// container start.
//
// They are found once per process (containerd's Default parses mountinfo and
// stats every hierarchy: as long as creating the cgroup); the subsystems are
// stateless, and hosts do not mount or unmount v1 hierarchies under running
// containers.
func v1Subsystems() ([]cgroup1.Subsystem, error) { return v1SubsystemsOnce() }

var v1SubsystemsOnce = sync.OnceValues(func() ([]cgroup1.Subsystem, error) {
	all, err := cgroup1.Default()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(s cgroup1.Subsystem) bool { return s.Name() == cgroup1.Cpuset }), nil
})

func newV1(p string, l limits) (*v1, error) {
	subsystems, err := v1Subsystems()
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", p, err)
	}
	existed := false
	for _, s := range subsystems {
		if ps, ok := s.(pather); ok {
			if _, err := os.Lstat(ps.Path(p)); err == nil {
				existed = true
				break
			}
		}
	}
	var c *v1
	err = retryCreate(func() error {
		cg, err := cgroup1.New(cgroup1.StaticPath(p), &specs.LinuxResources{},
			cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) { return subsystems, nil }))
		if err != nil {
			return err
		}
		c = wrapV1(p, cg)
		return nil
	})
	if err != nil {
		if !existed {
			removeV1(subsystems, p)
		}
		return nil, fmt.Errorf("create cgroup %s: %w", p, err)
	}
	if !existed || c.allowsAllDevices() {
		// Only while nothing restricts it, on creation (or after a crash
		// right after it): rewriting the rules of a running container would
		// deny it every device for a moment.
		if err := c.setDevices(defaultDevices()); err != nil {
			_ = c.Delete()
			return nil, fail(c.path, "set device rules", err)
		}
	}
	// A new cgroup starts with the kernel's defaults, which are berth's
	// "no limit": nothing to write then.
	if !existed && l == defaultLimits() {
		return c, nil
	}
	if err := c.set(l); err != nil {
		if !existed {
			_ = c.Delete()
		}
		return nil, err
	}
	return c, nil
}

// setDevices writes device rules as containerd's devices controller does,
// one rule per write, through one descriptor per file rather than an open
// per rule: a container start writes a dozen.
func (c *v1) setDevices(rules []specs.LinuxDeviceCgroup) error {
	dir, ok := c.dirs[cgroup1.Devices]
	if !ok {
		return fmt.Errorf("devices: %w", engine.ErrUnsupported)
	}
	files := map[bool]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, d := range rules {
		f := files[d.Allow]
		if f == nil {
			name := "devices.deny"
			if d.Allow {
				name = "devices.allow"
			}
			var err error
			if f, err = os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0); err != nil {
				return err
			}
			files[d.Allow] = f
		}
		if _, err := f.WriteString(deviceRule(d)); err != nil {
			return err
		}
	}
	return nil
}

// deviceRule formats a rule as the devices controller reads it: "c 1:3 rwm",
// with * for a wildcard.
func deviceRule(d specs.LinuxDeviceCgroup) string {
	typ := d.Type
	if typ == "" {
		typ = "a"
	}
	num := func(v *int64) string {
		if v == nil || *v < 0 {
			return "*"
		}
		return strconv.FormatInt(*v, 10)
	}
	return typ + " " + num(d.Major) + ":" + num(d.Minor) + " " + d.Access
}

// allowsAllDevices reports whether the devices cgroup still has the rule a
// new cgroup inherits from the root, "a *:* rwm".
func (c *v1) allowsAllDevices() bool {
	dir, ok := c.dirs[cgroup1.Devices]
	if !ok {
		return false
	}
	data, err := os.ReadFile(filepath.Join(dir, "devices.list"))
	return err == nil && slices.Contains(strings.Split(string(data), "\n"), "a *:* rwm")
}

// removeV1 removes what a failed New created of p, in every hierarchy.
func removeV1(subsystems []cgroup1.Subsystem, p string) {
	for _, s := range subsystems {
		if ps, ok := s.(pather); ok {
			_ = unix.Rmdir(ps.Path(p))
			removeParents(ps.Path("/"), p)
		}
	}
}

func loadV1(p string) (*v1, error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(p), cgroup1.WithHierarchy(v1Subsystems))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, fmt.Errorf("cgroup %s: %w", p, engine.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", p, err)
	}
	return wrapV1(p, cg), nil
}

func wrapV1(p string, cg cgroup1.Cgroup) *v1 {
	c := &v1{path: p, cg: cg, dirs: map[cgroup1.Name]string{}, subs: map[cgroup1.Name]cgroup1.Subsystem{}}
	for _, s := range cg.Subsystems() {
		ps, ok := s.(pather)
		if !ok {
			continue
		}
		c.subs[s.Name()] = s
		c.dirs[s.Name()] = ps.Path(p)
		// Co-mounted controllers (cpu,cpuacct) share a hierarchy through a
		// symlink: it is visited twice, which is harmless.
		c.roots = append(c.roots, ps.Path("/"))
	}
	if dir, ok := c.dirs[cgroup1.Memory]; ok {
		_, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
		c.memsw = err == nil
	}
	return c
}

func listV1(prefix string) ([]string, error) {
	subsystems, err := v1Subsystems()
	if err != nil {
		return nil, fmt.Errorf("list cgroups %s: %w", prefix, err)
	}
	var dirs []string
	for _, s := range subsystems {
		if ps, ok := s.(pather); ok {
			dirs = append(dirs, ps.Path(prefix))
		}
	}
	return listDirs(dirs, prefix)
}

func (c *v1) Path() string { return c.path }

func (c *v1) Dirs() ([]string, bool) {
	dirs := make([]string, 0, len(c.dirs))
	for _, d := range c.dirs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return slices.Compact(dirs), false
}

// Add writes pid to cgroup.procs in every hierarchy. On v1 the runtime
// starts the container's init blocked on a pipe, Adds it, then releases it,
// so this is on the start path: a handful of small writes, no reads.
func (c *v1) Add(pid int) error {
	if err := c.cg.AddProc(uint64(pid)); err != nil {
		return fail(c.path, "add process "+strconv.Itoa(pid), err)
	}
	return nil
}

func (c *v1) OpenFD() (*os.File, error) {
	return nil, fmt.Errorf("cgroup %s: clone into a v1 cgroup: %w", c.path, engine.ErrUnsupported)
}

func (c *v1) Update(r engine.Resources) error {
	l, err := limitsOf(r)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c.path, err)
	}
	return c.set(l)
}

func (c *v1) set(l limits) error {
	if dir, ok := c.dirs[cgroup1.Memory]; ok {
		if err := c.setMemory(dir, l.memory); err != nil {
			return fail(c.path, "set memory limit", err)
		}
	} else if l.memory > 0 {
		return unsupported(c.path, "memory")
	}
	if _, ok := c.dirs[cgroup1.Cpu]; ok {
		period, quota, shares := uint64(cpuPeriod), l.quota, l.shares
		err := c.update(cgroup1.Cpu, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Period: &period, Quota: &quota}})
		if err != nil {
			return fail(c.path, "set cpu limits", err)
		}
	} else if l.quota > 0 || l.shares != defaultShares {
		return unsupported(c.path, "cpu")
	}
	if dir, ok := c.dirs[cgroup1.Pids]; ok {
		// containerd's pids controller cannot write "max", which removing a
		// limit needs; the file is a single value.
		v := "max"
		if l.pids > 0 {
			v = strconv.FormatInt(l.pids, 10)
		}
		if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(v), 0); err != nil {
			return fail(c.path, "set pids limit", err)
		}
	} else if l.pids > 0 {
		return unsupported(c.path, "pids")
	}
	return nil
}

// setMemory sets memory.limit_in_bytes and, with swap accounting, the same
// value as memory.memsw.limit_in_bytes: the limit is a hard one, no swap on
// top (Resources has no swap setting). Swappiness is left alone: writing it
// is refused in some environments and the limit does not need it.
func (c *v1) setMemory(dir string, limit int64) error {
	update := func(m specs.LinuxMemory) error {
		return c.update(cgroup1.Memory, &specs.LinuxResources{Memory: &m})
	}
	if !c.memsw {
		return update(specs.LinuxMemory{Limit: &limit})
	}
	cur, err := readInt(filepath.Join(dir, "memory.limit_in_bytes"))
	if err != nil {
		return err
	}
	// The kernel keeps limit <= memsw at every step: raise memsw first,
	// lower it last. -1 is "unlimited".
	if limit < 0 || limit > cur {
		if err := update(specs.LinuxMemory{Swap: &limit}); err != nil {
			return err
		}
		return update(specs.LinuxMemory{Limit: &limit})
	}
	if err := update(specs.LinuxMemory{Limit: &limit}); err != nil {
		return err
	}
	return update(specs.LinuxMemory{Swap: &limit})
}

// update applies r to one controller: containerd's Cgroup.Update visits
// every hierarchy for each value.
func (c *v1) update(name cgroup1.Name, r *specs.LinuxResources) error {
	u, ok := c.subs[name].(updater)
	if !ok {
		return fmt.Errorf("%s: %w", name, engine.ErrUnsupported)
	}
	return u.Update(c.path, r)
}

func (c *v1) Stats() (Stats, error) {
	if !c.exists() {
		return Stats{}, notFound(c.path, fs.ErrNotExist)
	}
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return Stats{}, fail(c.path, "stats", err)
	}
	var s Stats
	if mem := m.Memory; mem != nil && mem.Usage != nil {
		s.MemoryUsage = workingSet(mem.Usage.Usage, mem.TotalInactiveFile)
		s.MemoryLimit = limitValue(mem.Usage.Limit)
	}
	if m.MemoryOomControl != nil {
		s.OOMKills = m.MemoryOomControl.OomKill
	}
	if m.CPU != nil && m.CPU.Usage != nil {
		s.CPUUsage = m.CPU.Usage.Total
	}
	if m.Pids != nil {
		s.Pids = int64(m.Pids.Current)
		s.PidsLimit = limitValue(m.Pids.Limit)
	}
	return s, nil
}

// OOMKilled reads the oom_kill counter of memory.oom_control (Linux 4.13+).
func (c *v1) OOMKilled() (bool, error) {
	dir, ok := c.dirs[cgroup1.Memory]
	if !ok {
		return false, nil
	}
	n, _, err := readKV(filepath.Join(dir, "memory.oom_control"), "oom_kill")
	if err != nil {
		return false, fail(c.path, "read oom_control", err)
	}
	return n > 0, nil
}

// Procs returns the union over every hierarchy: a process moved out of one
// hierarchy by someone else still counts.
func (c *v1) Procs() ([]int, error) {
	var all []int
	found := false
	for _, dir := range c.dirs {
		pids, err := readProcs(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fail(c.path, "list processes", err)
		}
		found = true
		all = append(all, pids...)
	}
	if !found {
		return nil, notFound(c.path, fs.ErrNotExist)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

func (c *v1) Kill(sig syscall.Signal) error { return killFrozen(c, sig) }

// freeze stops every task of the cgroup so that none forks while it is
// being signalled. A task that does not freeze within freezeTimeout (one in
// an uninterruptible sleep) does not block a kill: the cgroup is thawed and
// the signal is sent anyway; KillAll's next round catches what forked.
func (c *v1) freeze() (thaw func() error, err error) {
	noop := func() error { return nil }
	dir, ok := c.dirs[cgroup1.Freezer]
	if !ok {
		return noop, nil
	}
	state := filepath.Join(dir, "freezer.state")
	thaw = func() error { return os.WriteFile(state, []byte("THAWED"), 0) }
	frozen, err := poll(freezeTimeout, func() (bool, error) {
		if err := os.WriteFile(state, []byte("FROZEN"), 0); err != nil {
			return false, err
		}
		cur, err := os.ReadFile(state)
		return bytes.Equal(bytes.TrimSpace(cur), []byte("FROZEN")), err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return noop, nil // gone from the freezer hierarchy; Procs tells the rest
	}
	if err != nil || !frozen {
		_ = thaw()
		return noop, err
	}
	return thaw, nil
}

func (c *v1) KillAll(ctx context.Context) error {
	return killAndWait(ctx, c.path, signalRounds(c))
}

func (c *v1) Delete() error {
	pids, err := c.Procs()
	switch {
	case errors.Is(err, engine.ErrNotFound):
	case err != nil:
		return err
	case len(pids) > 0:
		return fmt.Errorf("delete cgroup %s: %d processes left: %w", c.path, len(pids), engine.ErrInUse)
	}
	// Not containerd's Delete: it walks every file of every hierarchy for
	// processes again, which costs more than the removal.
	for _, dir := range c.dirs {
		if err := removeTree(dir); err != nil {
			return fmt.Errorf("delete cgroup %s: %w", c.path, err)
		}
	}
	for _, root := range c.roots {
		removeParents(root, c.path)
	}
	return nil
}

func (c *v1) exists() bool {
	for _, dir := range c.dirs {
		if _, err := os.Lstat(dir); err == nil {
			return true
		}
	}
	return false
}

func readInt(file string) (int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
}
