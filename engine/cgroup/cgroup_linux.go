package cgroup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
)

// unifiedMountpoint is where a unified (v2 only) host mounts cgroup2.
const unifiedMountpoint = "/sys/fs/cgroup"

// HostMode reports how this host mounts cgroups. It is probed once.
func HostMode() Mode {
	switch cgroups.Mode() {
	case cgroups.Legacy:
		return Legacy
	case cgroups.Hybrid:
		return Hybrid
	case cgroups.Unified:
		return Unified
	}
	return Unavailable
}

// New creates the cgroup at p ("/berth/<id>") with the limits of r, or opens
// it and applies r when it exists, so that retrying a create is safe.
func New(p string, r engine.Resources) (Cgroup, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	l, err := limitsOf(r)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	switch HostMode() {
	case Legacy, Hybrid:
		return newV1(p, l)
	case Unified:
		return newV2(unifiedMountpoint, p, l)
	}
	return nil, fmt.Errorf("cgroup %s: no cgroup filesystem: %w", p, engine.ErrUnsupported)
}

// Load opens the existing cgroup at p; engine.ErrNotFound if there is none.
func Load(p string) (Cgroup, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	switch HostMode() {
	case Legacy, Hybrid:
		return loadV1(p)
	case Unified:
		return loadV2(unifiedMountpoint, p)
	}
	return nil, fmt.Errorf("cgroup %s: no cgroup filesystem: %w", p, engine.ErrUnsupported)
}

// List returns the paths of the cgroups directly below prefix (in any v1
// hierarchy, or in the unified one), sorted: List(Root) finds every
// container cgroup, so that the runtime can remove those no container owns
// after a crash. A missing prefix has no children.
func List(prefix string) ([]string, error) {
	if err := checkPath(prefix); err != nil {
		return nil, err
	}
	switch HostMode() {
	case Legacy, Hybrid:
		return listV1(prefix)
	case Unified:
		return listDirs([]string{filepath.Join(unifiedMountpoint, prefix)}, prefix)
	}
	return nil, nil
}

// listDirs returns prefix/name for every directory name found in dirs.
func listDirs(dirs []string, prefix string) ([]string, error) {
	var out []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list cgroups %s: %w", prefix, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				out = append(out, path.Join(prefix, e.Name()))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// removeParents removes the parents of p in the hierarchy mounted at mount,
// innermost first, up to the top-level one, while they are empty: the
// /berth parent goes with its last container. A sibling created meanwhile
// keeps them (rmdir fails with EBUSY), and New retries when it loses that
// race.
func removeParents(mount, p string) {
	for parent := path.Dir(p); parent != "/"; parent = path.Dir(parent) {
		if err := unix.Rmdir(filepath.Join(mount, parent)); err != nil && err != unix.ENOENT {
			return
		}
	}
}

// retryCreate runs create again while it loses races with a Delete of a
// sibling, which may remove the shared parent between the mkdir of the
// parent and that of the child (ENOENT), or while create reads the parent's
// files (ENODEV: the files of a removed cgroup).
func retryCreate(create func() error) error {
	var err error
	for range 10 {
		err = create()
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
			return err
		}
	}
	return err
}

// readKV returns the value of key in a flat-keyed cgroup file ("key value"
// per line, as memory.oom_control, memory.events, cgroup.events).
func readKV(file, key string) (uint64, bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false, err
	}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		k, v, ok := bytes.Cut(s.Bytes(), []byte{' '})
		if !ok || string(k) != key {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %s: %w", file, key, err)
		}
		return n, true, nil
	}
	return 0, false, nil
}

// signalAll sends sig to pids, ignoring processes that are gone already.
func signalAll(pids []int, sig unix.Signal) error {
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			return fmt.Errorf("signal %d: %w", pid, err)
		}
	}
	return nil
}

// killAndWait calls round(0), round(1)... until one reports the cgroup
// empty, backing off between rounds, until ctx ends (or DefaultKillTimeout
// passes when ctx has no deadline). Each round kills what it finds.
func killAndWait(ctx context.Context, p string, round func(n int) (empty bool, err error)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultKillTimeout)
		defer cancel()
	}
	wait := 200 * time.Microsecond
	for n := 0; ; n++ {
		done, err := round(n)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cgroup %s: processes left after kill: %w", p, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// signalRounds is KillAll's round for a cgroup without cgroup.kill. The
// first round sends SIGKILL to every process without freezing: a container
// is usually one process tree that dies with it, and freezing costs
// milliseconds. A later round that finds a process it did not signal yet
// (one forked past the first) kills with the cgroup frozen, so no process
// can fork past it; so does every fourth round, in case a new process
// reused a signalled pid.
func signalRounds(c Cgroup) func(n int) (bool, error) {
	signalled := map[int]bool{}
	return func(n int) (bool, error) {
		pids, err := c.Procs()
		if err != nil || len(pids) == 0 {
			return len(pids) == 0, err
		}
		fresh := false
		for _, pid := range pids {
			fresh = fresh || !signalled[pid]
			signalled[pid] = true
		}
		switch {
		case n == 0:
			if err := signalAll(pids, unix.SIGKILL); err != nil {
				return false, fail(c.Path(), "kill", err)
			}
		case fresh || n%4 == 0:
			return false, c.Kill(unix.SIGKILL)
		}
		return false, nil
	}
}

// removeTree removes the cgroup directory dir, its descendants first. The
// kernel refuses (EBUSY) while a task is still leaving; that is retried
// for a moment. A missing dir is not an error.
func removeTree(dir string) error {
	// Most cgroups have no children: try the removal first.
	switch err := unix.Rmdir(dir); err {
	case nil, unix.ENOENT:
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	var rmErr error
	_, err = poll(time.Second, func() (bool, error) {
		rmErr = unix.Rmdir(dir)
		switch rmErr {
		case nil, unix.ENOENT:
			return true, nil
		case unix.EBUSY:
			return false, nil
		}
		return false, rmErr
	})
	if err == nil && rmErr != nil && rmErr != unix.ENOENT {
		err = rmErr
	}
	if err != nil {
		return &fs.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	return nil
}

// defaultDevices is the device access of a container, Docker's (with runc's
// additions): mknod of any device, so that images with device nodes
// unpack, but read and write only of the pseudo-devices a container's /dev
// holds. Without it, CAP_MKNOD (in the default capability set) would let a
// container create and open the host's disks.
func defaultDevices() []specs.LinuxDeviceCgroup {
	// Every field is set: containerd's eBPF filter (v2) reads Major and
	// Minor without nil checks; -1 is the wildcard in both versions.
	dev := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: access}
	}
	const wild = -1
	deny := dev("a", wild, wild, "rwm")
	deny.Allow = false
	return []specs.LinuxDeviceCgroup{
		deny, // everything, then allow:
		dev("c", wild, wild, "m"),
		dev("b", wild, wild, "m"),
		dev("c", 1, 3, "rwm"),      // null
		dev("c", 1, 5, "rwm"),      // zero
		dev("c", 1, 7, "rwm"),      // full
		dev("c", 1, 8, "rwm"),      // random
		dev("c", 1, 9, "rwm"),      // urandom
		dev("c", 5, 0, "rwm"),      // tty
		dev("c", 5, 1, "rwm"),      // console
		dev("c", 5, 2, "rwm"),      // ptmx
		dev("c", 136, wild, "rwm"), // pts/*
	}
}

// freezer is a cgroup that can stop its tasks: freeze returns the function
// that thaws it.
type freezer interface {
	Cgroup
	freeze() (thaw func() error, err error)
}

// killFrozen sends sig to every process of c with c frozen meanwhile.
func killFrozen(c freezer, sig syscall.Signal) (err error) {
	thaw, err := c.freeze()
	if err != nil {
		return fail(c.Path(), "freeze", err)
	}
	defer func() {
		if terr := thaw(); terr != nil && err == nil && !errors.Is(terr, fs.ErrNotExist) {
			err = fail(c.Path(), "thaw", terr)
		}
	}()
	pids, err := c.Procs()
	if err != nil {
		return err
	}
	if err := signalAll(pids, sig); err != nil {
		return fail(c.Path(), "kill", err)
	}
	return nil
}

// fail wraps err with the cgroup and what was done; a cgroup that is gone
// is engine.ErrNotFound.
func fail(p, op string, err error) error {
	if errors.Is(err, cgroup1.ErrCgroupDeleted) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cgroup %s: %s: %w: %w", p, op, engine.ErrNotFound, err)
	}
	return fmt.Errorf("cgroup %s: %s: %w", p, op, err)
}

func unsupported(p, controller string) error {
	return fmt.Errorf("cgroup %s: %s limit: no %s controller: %w", p, controller, controller, engine.ErrUnsupported)
}

// notFound turns the "cgroup is gone" errors of the filesystem and of
// containerd/cgroups into engine.ErrNotFound.
func notFound(p string, err error) error {
	return fmt.Errorf("cgroup %s: %w: %w", p, engine.ErrNotFound, err)
}

// poll re-checks cond every few milliseconds until it holds or timeout
// passes; it reports whether cond held.
func poll(timeout time.Duration, cond func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Microsecond
	for {
		ok, err := cond()
		if err != nil || ok {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(wait)
		wait = min(2*wait, 10*time.Millisecond)
	}
}

// freezeTimeout bounds how long a kill waits for the freezer.
const freezeTimeout = time.Second

// readProcs lists the processes of the cgroup at dir and of its
// descendants (a container may create sub-cgroups).
func readProcs(dir string) ([]int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range bytes.Fields(data) {
		pid, err := strconv.Atoi(string(f))
		if err != nil {
			return nil, fmt.Errorf("%s/cgroup.procs: %w", dir, err)
		}
		pids = append(pids, pid)
	}
	// A cgroup directory's link count is 2 plus its child cgroups: most
	// have none, and a stat is cheaper than listing the directory.
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if st.Nlink <= 2 {
		return pids, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub, err := readProcs(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		pids = append(pids, sub...)
	}
	return pids, nil
}

// workingSet is usage minus the inactive file cache the kernel reclaims
// first, as docker stats and the kubelet compute it.
func workingSet(usage, inactiveFile uint64) int64 {
	if inactiveFile > usage {
		return 0
	}
	return int64(usage - inactiveFile)
}

// limitValue maps the kernel's "unlimited" (v1: a page-aligned MaxInt64;
// v2: "max", read as MaxUint64) to 0.
func limitValue(v uint64) int64 {
	if v >= 1<<62 {
		return 0
	}
	return int64(v)
}
