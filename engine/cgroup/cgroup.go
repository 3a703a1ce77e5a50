package cgroup

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"berth.dev/berth/engine"
)

// Root is the parent of every cgroup berth creates. A container's cgroup is
// PathFor(id) = "/berth/<id>", in every v1 hierarchy or in the unified one.
const Root = "/berth"

// PathFor returns the cgroup path of the container id.
func PathFor(id string) string { return Root + "/" + id }

// Mode is how the host mounts cgroups.
type Mode int

// Host modes, as containerd/cgroups classifies them.
const (
	// Unavailable: no cgroup filesystem is mounted at /sys/fs/cgroup.
	Unavailable Mode = iota
	// Legacy: cgroup v1 hierarchies only.
	Legacy
	// Hybrid: the controllers are in v1 hierarchies, and a unified (v2)
	// hierarchy without controllers is mounted at /sys/fs/cgroup/unified.
	// berth treats it as Legacy.
	Hybrid
	// Unified: cgroup v2 only, at /sys/fs/cgroup.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "v1"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "v2"
	default:
		return "unavailable"
	}
}

// Cgroup is one container's cgroup. Methods are safe for concurrent use.
type Cgroup interface {
	// Path returns the cgroup path, "/berth/<id>".
	Path() string
	// Add moves the process pid (all its threads) into the cgroup: into every
	// hierarchy on v1, into the unified one on v2.
	Add(pid int) error
	// Dirs returns the cgroup's directories: one per v1 hierarchy, sorted,
	// or the unified one, with v2 set. A process joins the cgroup by writing
	// its pid to cgroup.procs in each (what Add does).
	Dirs() (dirs []string, v2 bool)
	// OpenFD opens the cgroup directory for clone(2) with CLONE_INTO_CGROUP
	// (SysProcAttr.UseCgroupFD and CgroupFD), so that a child starts inside
	// the cgroup. The caller closes the file once the child is started. It
	// fails with engine.ErrUnsupported on v1, where the kernel has no such
	// flag: start the child blocked, Add it, then release it.
	OpenFD() (*os.File, error)
	// Update changes the limits in place; zero fields of r remove the limit.
	Update(r engine.Resources) error
	// Stats reads usage and limits now.
	Stats() (Stats, error)
	// OOMKilled reports whether the kernel's OOM killer has killed a process
	// of the cgroup. Read it before Delete: the counter goes with the cgroup.
	OOMKilled() (bool, error)
	// Procs lists the processes in the cgroup and its descendants.
	Procs() ([]int, error)
	// Kill sends sig to every process in the cgroup, with the cgroup frozen
	// meanwhile so that no process forks past it. It does not wait.
	Kill(sig syscall.Signal) error
	// KillAll kills every process in the cgroup and waits until it is empty,
	// until ctx ends or, when ctx has no deadline, for DefaultKillTimeout.
	KillAll(ctx context.Context) error
	// Delete removes the cgroup, then its parents left empty (the /berth
	// parent goes with the last container). The cgroup must have no process
	// (engine.ErrInUse otherwise); deleting a deleted cgroup is not an error.
	Delete() error
}

// DefaultKillTimeout bounds KillAll when its ctx has no deadline.
const DefaultKillTimeout = 10 * time.Second

// Stats are a point-in-time reading of a cgroup.
type Stats struct {
	// MemoryUsage is the working set in bytes: usage minus inactive file
	// cache, the figure docker stats and the kubelet report.
	MemoryUsage int64
	// MemoryLimit in bytes; 0 = unlimited.
	MemoryLimit int64
	// CPUUsage is the CPU time consumed, in nanoseconds.
	CPUUsage uint64
	// Pids is the number of tasks (pids.current).
	Pids int64
	// PidsLimit is pids.max; 0 = unlimited.
	PidsLimit int64
	// OOMKills counts processes the OOM killer killed in the cgroup.
	OOMKills uint64
}

// CPU bandwidth: CFS quotas are expressed per period of 100 ms, as Docker
// does; the kernel refuses quotas below 1 ms.
const (
	cpuPeriod   = 100000 // µs
	minCPUQuota = 1000   // µs
	// defaultShares and defaultWeight are the kernel's defaults, written when
	// CPUShares is 0 so that an update can reset a previous value.
	defaultShares = 1024
	defaultWeight = 100
)

// limits are engine.Resources validated and turned into cgroup values, with
// "unlimited" explicit so that an update removes a previous limit.
type limits struct {
	memory int64 // bytes; -1 = unlimited
	quota  int64 // µs per cpuPeriod; -1 = unlimited
	shares uint64
	pids   int64 // -1 = unlimited
}

// defaultLimits are limits with nothing limited: a new cgroup's.
func defaultLimits() limits { return limits{memory: -1, quota: -1, shares: defaultShares, pids: -1} }

func limitsOf(r engine.Resources) (limits, error) {
	l := defaultLimits()
	switch {
	case r.MemoryBytes < 0:
		return l, fmt.Errorf("memory limit %d: %w", r.MemoryBytes, engine.ErrInvalid)
	case r.NanoCPUs < 0:
		return l, fmt.Errorf("cpus %d: %w", r.NanoCPUs, engine.ErrInvalid)
	case r.CPUShares < 0:
		return l, fmt.Errorf("cpu shares %d: %w", r.CPUShares, engine.ErrInvalid)
	}
	if r.MemoryBytes > 0 {
		l.memory = r.MemoryBytes
	}
	if r.NanoCPUs > 0 {
		l.quota = r.NanoCPUs * cpuPeriod / 1e9
		if l.quota < minCPUQuota {
			return l, fmt.Errorf("cpus %.3f: the minimum is 0.01: %w", float64(r.NanoCPUs)/1e9, engine.ErrInvalid)
		}
	}
	if r.CPUShares > 0 {
		l.shares = uint64(r.CPUShares)
	}
	// Docker takes a negative pids limit as "unlimited", as 0.
	if r.PidsLimit > 0 {
		l.pids = r.PidsLimit
	}
	return l, nil
}

// checkPath accepts clean absolute cgroup paths below the root cgroup.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("cgroup path %q: must be absolute, clean and not the root: %w", p, engine.ErrInvalid)
	}
	return nil
}
