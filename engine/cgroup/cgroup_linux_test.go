package cgroup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

const busybox = "/bin/busybox"

// TestMain makes the test binary the reaper of the orphans its tests leave
// (children of killed shells), and reaps them at the end: pid 1 of a test
// machine may not, and zombies would be left behind.
func TestMain(m *testing.M) {
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	code := m.Run()
	reapOrphans(2 * time.Second)
	os.Exit(code)
}

// reapOrphans waits for every remaining child, for up to timeout.
func reapOrphans(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR || pid > 0:
			continue
		case err != nil: // ECHILD: none left
			return
		case time.Now().After(deadline):
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hybridUnified is where a hybrid host mounts its controller-less cgroup2
// hierarchy. The v2 implementation runs there for real (processes, clone
// into, freeze, cgroup.kill, removal), without limits.
const hybridUnified = "/sys/fs/cgroup/unified"

// impl is one implementation under test.
type impl struct {
	name string
	v2   bool
	// mount is the cgroup2 mount point (v2 only).
	mount string
	// limits: the memory, cpu and pids controllers are there.
	limits  bool
	require func(t *testing.T)
	new     func(p string, r engine.Resources) (Cgroup, error)
	load    func(p string) (Cgroup, error)
	list    func(prefix string) ([]string, error)
}

func impls() []impl {
	return []impl{
		{
			name: "v1", limits: true,
			require: func(t *testing.T) {
				enginetest.RequireFeature(t, "cgroup1")
				for _, c := range []string{"memory", "cpu", "pids"} {
					enginetest.RequireFeature(t, c)
				}
			},
			new: New, load: Load, list: List,
		},
		{
			name: "v2", v2: true, mount: unifiedMountpoint, limits: true,
			require: func(t *testing.T) {
				enginetest.RequireFeature(t, "cgroup2")
				for _, c := range []string{"memory", "cpu", "pids"} {
					enginetest.RequireFeature(t, c)
				}
			},
			new: New, load: Load, list: List,
		},
		{
			name: "v2-hybrid-unified", v2: true, mount: hybridUnified, limits: false,
			require: func(t *testing.T) {
				enginetest.RequireRoot(t)
				if HostMode() != Hybrid {
					t.Skip("no controller-less unified hierarchy beside v1 ones on this host")
				}
			},
			new: func(p string, r engine.Resources) (Cgroup, error) {
				if err := checkPath(p); err != nil {
					return nil, err
				}
				l, err := limitsOf(r)
				if err != nil {
					return nil, err
				}
				return newV2(hybridUnified, p, l)
			},
			load: func(p string) (Cgroup, error) { return loadV2(hybridUnified, p) },
			list: func(prefix string) ([]string, error) {
				return listDirs([]string{filepath.Join(hybridUnified, prefix)}, prefix)
			},
		},
	}
}

// eachImpl runs body for every implementation the host has, in parallel.
func eachImpl(t *testing.T, body func(t *testing.T, im impl)) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			im.require(t)
			t.Parallel()
			body(t, im)
		})
	}
}

func needLimits(t *testing.T, im impl) {
	t.Helper()
	if !im.limits {
		t.Skipf("%s has no memory, cpu and pids controllers", im.name)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// testPath returns a unique container cgroup path for t.
func testPath(t *testing.T) string {
	name := unsafeChars.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return PathFor("test-" + name + "-" + randHex(4))
}

// newCgroup creates a cgroup that is killed and deleted when the test ends,
// whatever happened.
func newCgroup(t *testing.T, im impl, p string, r engine.Resources) Cgroup {
	t.Helper()
	cg, err := im.new(p, r)
	if err != nil {
		t.Fatalf("New(%s, %+v): %v", p, r, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 20*time.Second)
		defer cancel()
		if err := cg.KillAll(ctx); err != nil && !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("cleanup: KillAll %s: %v", p, err)
		}
		if err := cg.Delete(); err != nil {
			t.Errorf("cleanup: Delete %s: %v", p, err)
		}
	})
	return cg
}

// proc is a test process started blocked: it runs script once released.
type proc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *os.File // a file, not a pipe: background children inherit it
	waitErr error
	done    chan struct{}
}

// startBlocked starts busybox sh, waiting on stdin before it runs script,
// as the runtime starts a container init on v1: start, Add, release.
func startBlocked(t *testing.T, script string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(busybox, "sh", "-c", "read _ || exit 99\n"+script)
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stderr.Close() })
	p.stderr = stderr
	p.cmd.Stderr = stderr
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		p.stdin.Close()
		p.wait()
	})
	return p
}

func (p *proc) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "\n"); err != nil {
		t.Fatalf("release: %v", err)
	}
	p.stdin.Close()
}

// wait reaps the process (once) and returns its wait status.
func (p *proc) wait() syscall.WaitStatus {
	select {
	case <-p.done:
	default:
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// cgroupOf returns the cgroup paths of pid by hierarchy ("" for v2).
func cgroupOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out
}

func requireMember(t *testing.T, im impl, pid int, p string) {
	t.Helper()
	got := cgroupOf(t, pid)
	keys := []string{"memory", "cpu", "pids", "freezer", "cpuacct"}
	if im.v2 {
		keys = []string{""}
	}
	for _, k := range keys {
		if got[k] != p {
			t.Errorf("process %d in %q hierarchy: %q, want %q (all: %v)", pid, k, got[k], p, got)
		}
	}
}

// file is the path of a cgroup interface file; ctrl names the v1 hierarchy.
func file(im impl, p, ctrl, name string) string {
	if im.v2 {
		return filepath.Join(im.mount, p, name)
	}
	return filepath.Join("/sys/fs/cgroup", ctrl, p, name)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// dirsOf lists where p lives (or would live) in every hierarchy of im.
func dirsOf(im impl, p string) []string {
	if im.v2 {
		return []string{filepath.Join(im.mount, p)}
	}
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.Name() != "unified" && e.Name() != "cpuset" { // cpuset: not joined
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name(), p))
		}
	}
	return out
}

func TestHostMode(t *testing.T) {
	m := HostMode()
	if got, want := m == Unified, enginetest.HasFeature("cgroup2"); got != want {
		t.Errorf("HostMode() = %v, cgroup2 feature = %v", m, want)
	}
	if m == Unavailable {
		t.Errorf("HostMode() = %v on a Linux test host", m)
	}
}

func TestLimits(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		needLimits(t, im)
		memsw := exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		const unlimitedV1 = "9223372036854771712"
		type want map[string]string // "ctrl/file" -> value
		steps := []struct {
			name   string
			r      engine.Resources
			v1, v2 want
		}{
			{
				name: "create",
				r:    engine.Resources{MemoryBytes: 64 << 20, NanoCPUs: 5e8, CPUShares: 512, PidsLimit: 50},
				v1: want{"memory/memory.limit_in_bytes": "67108864", "memory/memory.memsw.limit_in_bytes": "67108864",
					"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.shares": "512", "pids/pids.max": "50"},
				v2: want{"memory/memory.max": "67108864", "memory/memory.swap.max": "0",
					"cpu/cpu.max": "50000 100000", "cpu/cpu.weight": strconv.FormatUint(cgroup2.ConvertCPUSharesToCgroupV2Value(512), 10),
					"pids/pids.max": "50"},
			},
			{
				name: "raise",
				r:    engine.Resources{MemoryBytes: 256 << 20, NanoCPUs: 1.5e9, CPUShares: 2048, PidsLimit: 500},
				v1: want{"memory/memory.limit_in_bytes": "268435456", "memory/memory.memsw.limit_in_bytes": "268435456",
					"cpu/cpu.cfs_quota_us": "150000", "cpu/cpu.shares": "2048", "pids/pids.max": "500"},
				v2: want{"memory/memory.max": "268435456", "cpu/cpu.max": "150000 100000", "pids/pids.max": "500"},
			},
			{
				name: "lower",
				r:    engine.Resources{MemoryBytes: 32 << 20, NanoCPUs: 1e7, PidsLimit: 5},
				v1: want{"memory/memory.limit_in_bytes": "33554432", "memory/memory.memsw.limit_in_bytes": "33554432",
					"cpu/cpu.cfs_quota_us": "1000", "cpu/cpu.shares": "1024", "pids/pids.max": "5"},
				v2: want{"memory/memory.max": "33554432", "cpu/cpu.max": "1000 100000", "cpu/cpu.weight": "100", "pids/pids.max": "5"},
			},
			{
				name: "unlimit",
				r:    engine.Resources{},
				v1: want{"memory/memory.limit_in_bytes": unlimitedV1, "memory/memory.memsw.limit_in_bytes": unlimitedV1,
					"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.shares": "1024", "pids/pids.max": "max"},
				v2: want{"memory/memory.max": "max", "memory/memory.swap.max": "max",
					"cpu/cpu.max": "max 100000", "cpu/cpu.weight": "100", "pids/pids.max": "max"},
			},
		}
		p := testPath(t)
		cg := newCgroup(t, im, p, steps[0].r)
		check := func(step string, w want) {
			t.Helper()
			for key, value := range w {
				ctrl, name, _ := strings.Cut(key, "/")
				switch {
				case !im.v2 && strings.Contains(name, "memsw") && !memsw:
					continue
				case im.v2 && strings.Contains(name, "swap") && !exists(file(im, p, ctrl, name)):
					continue
				}
				if got := readFile(t, file(im, p, ctrl, name)); got != value {
					t.Errorf("%s: %s = %q, want %q", step, key, got, value)
				}
			}
		}
		for i, step := range steps {
			if i > 0 {
				if err := cg.Update(step.r); err != nil {
					t.Fatalf("%s: Update(%+v): %v", step.name, step.r, err)
				}
			}
			if im.v2 {
				check(step.name, step.v2)
			} else {
				check(step.name, step.v1)
			}
		}

		// New on an existing cgroup opens it and applies its limits.
		again, err := im.new(p, steps[0].r)
		if err != nil {
			t.Fatalf("New again: %v", err)
		}
		if again.Path() != p {
			t.Errorf("Path() = %q, want %q", again.Path(), p)
		}
		if im.v2 {
			check("new again", steps[0].v2)
		} else {
			check("new again", steps[0].v1)
		}
		if err := cg.Update(engine.Resources{NanoCPUs: -1}); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("Update(negative cpus) = %v, want ErrInvalid", err)
		}
	})
}

func TestAddProcsKillAllDelete(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		p := testPath(t)
		cg := newCgroup(t, im, p, engine.Resources{})
		pr := startBlocked(t, "exec "+busybox+" sleep 60")
		if err := cg.Add(pr.cmd.Process.Pid); err != nil {
			t.Fatalf("Add: %v", err)
		}
		requireMember(t, im, pr.cmd.Process.Pid, p)
		pr.release(t)

		loaded, err := im.load(p)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		procs, err := loaded.Procs()
		if err != nil {
			t.Fatalf("Procs: %v", err)
		}
		if diff := cmp.Diff([]int{pr.cmd.Process.Pid}, procs); diff != "" {
			t.Errorf("Procs (-want +got):\n%s", diff)
		}
		if err := cg.Delete(); !errors.Is(err, engine.ErrInUse) {
			t.Errorf("Delete with a process = %v, want ErrInUse", err)
		}
		if err := cg.Add(-1); err == nil {
			t.Errorf("Add(-1) succeeded")
		}

		// The killed process stays a zombie (nobody reaps it yet): that must
		// not keep the cgroup busy.
		if err := loaded.KillAll(t.Context()); err != nil {
			t.Fatalf("KillAll: %v", err)
		}
		if procs, err := cg.Procs(); err != nil || len(procs) != 0 {
			t.Errorf("Procs after KillAll = %v, %v; want none", procs, err)
		}
		if err := cg.Delete(); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if ws := pr.wait(); ws.Signal() != syscall.SIGKILL {
			t.Errorf("process ended with %v, want SIGKILL", ws)
		}
		for _, dir := range dirsOf(im, p) {
			if exists(dir) {
				t.Errorf("%s left after Delete", dir)
			}
		}
		if err := cg.Delete(); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if err := loaded.Delete(); err != nil {
			t.Errorf("Delete through another handle: %v", err)
		}
		if _, err := im.load(p); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("Load after Delete = %v, want ErrNotFound", err)
		}
		if _, err := cg.Procs(); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("Procs after Delete = %v, want ErrNotFound", err)
		}
		if _, err := cg.Stats(); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("Stats after Delete = %v, want ErrNotFound", err)
		}
	})
}

func TestOpenFD(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		p := testPath(t)
		cg := newCgroup(t, im, p, engine.Resources{})
		f, err := cg.OpenFD()
		if !im.v2 {
			if !errors.Is(err, engine.ErrUnsupported) {
				t.Fatalf("OpenFD on v1 = %v, want ErrUnsupported", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("OpenFD: %v", err)
		}
		cmd := exec.Command(busybox, "sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
		err = cmd.Start()
		f.Close()
		if err != nil {
			t.Fatalf("start with CLONE_INTO_CGROUP: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		requireMember(t, im, cmd.Process.Pid, p)
		procs, err := cg.Procs()
		if err != nil || !slices.Contains(procs, cmd.Process.Pid) {
			t.Errorf("Procs = %v, %v; want %d in it", procs, err, cmd.Process.Pid)
		}
	})
}

func TestKillSignal(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		p := testPath(t)
		cg := newCgroup(t, im, p, engine.Resources{})
		var procs []*proc
		for range 2 {
			pr := startBlocked(t, "exec "+busybox+" sleep 60")
			if err := cg.Add(pr.cmd.Process.Pid); err != nil {
				t.Fatalf("Add: %v", err)
			}
			pr.release(t)
			procs = append(procs, pr)
		}
		// Released processes must have exec'd sleep before the signal, or
		// the shell's own disposition would decide.
		for _, pr := range procs {
			waitSleeping(t, pr)
		}
		if err := cg.Kill(syscall.SIGTERM); err != nil {
			t.Fatalf("Kill(SIGTERM): %v", err)
		}
		for _, pr := range procs {
			if ws := pr.wait(); ws.Signal() != syscall.SIGTERM {
				t.Errorf("process ended with %v, want SIGTERM", ws)
			}
		}
		// Kill thaws what it froze.
		if im.v2 {
			if got := readFile(t, file(im, p, "", "cgroup.freeze")); got != "0" {
				t.Errorf("cgroup.freeze = %s after Kill, want 0", got)
			}
		} else if got := readFile(t, file(im, p, "freezer", "freezer.state")); got != "THAWED" {
			t.Errorf("freezer.state = %s after Kill, want THAWED", got)
		}
	})
}

func TestKillAllTree(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		p := testPath(t)
		cg := newCgroup(t, im, p, engine.Resources{})
		// A shell with children and grandchildren, still forking.
		pr := startBlocked(t, `
for i in 1 2 3 4; do `+busybox+` sleep 60 & done
( while :; do `+busybox+` sleep 60 & sleep 0.01; done ) &
wait`)
		if err := cg.Add(pr.cmd.Process.Pid); err != nil {
			t.Fatalf("Add: %v", err)
		}
		pr.release(t)
		waitFor(t, "the tree to grow", func() bool {
			procs, _ := cg.Procs()
			return len(procs) >= 8
		})
		if err := cg.KillAll(t.Context()); err != nil {
			t.Fatalf("KillAll: %v", err)
		}
		if procs, err := cg.Procs(); err != nil || len(procs) != 0 {
			t.Fatalf("Procs after KillAll = %v, %v", procs, err)
		}
		if err := cg.Delete(); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	})
}

func TestParentRemovedAndList(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		top := "/berth-test-" + randHex(6)
		a, b := top+"/a", top+"/b"
		cgA := newCgroup(t, im, a, engine.Resources{})
		cgB := newCgroup(t, im, b, engine.Resources{})
		got, err := im.list(top)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if diff := cmp.Diff([]string{a, b}, got); diff != "" {
			t.Errorf("List(%s) (-want +got):\n%s", top, diff)
		}
		if got, err := im.list(top + "/none"); err != nil || len(got) != 0 {
			t.Errorf("List(missing) = %v, %v; want nothing", got, err)
		}
		if err := cgA.Delete(); err != nil {
			t.Fatal(err)
		}
		for _, dir := range dirsOf(im, top) {
			if !exists(dir) {
				t.Errorf("%s removed while %s is in it", dir, b)
			}
		}
		if err := cgB.Delete(); err != nil {
			t.Fatal(err)
		}
		for _, dir := range dirsOf(im, top) {
			if exists(dir) {
				t.Errorf("%s left after its last child was deleted", dir)
			}
		}
		if got, err := im.list(top); err != nil || len(got) != 0 {
			t.Errorf("List after Delete = %v, %v; want nothing", got, err)
		}
	})
}

// TestConcurrentSiblings: creates racing with the removal of the shared
// parent by a sibling's Delete must all succeed.
func TestConcurrentSiblings(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		top := "/berth-test-" + randHex(6)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 4 {
			wg.Go(func() {
				for i := range 10 {
					p := fmt.Sprintf("%s/g%d-%d", top, g, i)
					cg, err := im.new(p, engine.Resources{})
					if err != nil {
						errs <- err
						return
					}
					if err := cg.Delete(); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, dir := range dirsOf(im, top) {
			if exists(dir) {
				t.Errorf("%s left", dir)
				_ = os.Remove(dir)
			}
		}
	})
}

func TestOOMKill(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		needLimits(t, im)
		cg := newCgroup(t, im, testPath(t), engine.Resources{MemoryBytes: 32 << 20})
		pr := startBlocked(t, "x=0123456789abcdef; while :; do x=$x$x; done")
		if err := cg.Add(pr.cmd.Process.Pid); err != nil {
			t.Fatalf("Add: %v", err)
		}
		if oom, err := cg.OOMKilled(); err != nil || oom {
			t.Fatalf("OOMKilled before = %v, %v", oom, err)
		}
		pr.release(t)
		done := make(chan syscall.WaitStatus, 1)
		go func() { done <- pr.wait() }()
		select {
		case ws := <-done:
			if ws.Signal() != syscall.SIGKILL {
				t.Errorf("memory hog ended with %v, want SIGKILL", ws)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("memory hog still runs after 30s")
		}
		oom, err := cg.OOMKilled()
		if err != nil || !oom {
			t.Errorf("OOMKilled = %v, %v; want true", oom, err)
		}
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.OOMKills < 1 || st.MemoryLimit != 32<<20 {
			t.Errorf("Stats = %+v, want OOMKills >= 1 and MemoryLimit 32 MiB", st)
		}
	})
}

func TestPidsLimit(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		needLimits(t, im)
		const limit = 8
		p := testPath(t)
		cg := newCgroup(t, im, p, engine.Resources{PidsLimit: limit})
		// Forks until the kernel refuses; ash gives up at the first failure.
		pr := startBlocked(t, `i=0; while [ $i -lt 50 ]; do `+busybox+` sleep 60 & i=$((i+1)); done; wait`)
		if err := cg.Add(pr.cmd.Process.Pid); err != nil {
			t.Fatalf("Add: %v", err)
		}
		pr.release(t)
		ws := pr.wait()
		if ws.ExitStatus() == 0 {
			t.Errorf("fork loop exited 0 under a pids limit of %d", limit)
		}
		if stderr, _ := os.ReadFile(pr.stderr.Name()); !bytes.Contains(stderr, []byte("fork")) {
			t.Errorf("stderr = %q, want a fork failure", stderr)
		}
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.PidsLimit != limit || st.Pids > limit || st.Pids < limit-2 {
			t.Errorf("Stats = %+v, want PidsLimit %d and Pids at the limit", st, limit)
		}
		if n, _, err := readKV(file(im, p, "pids", "pids.events"), "max"); err != nil || n == 0 {
			t.Errorf("pids.events max = %d, %v; want > 0", n, err)
		}
		procs, err := cg.Procs()
		if err != nil || len(procs) > limit {
			t.Errorf("Procs = %v, %v; want at most %d", procs, err, limit)
		}
	})
}

func TestStats(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		r := engine.Resources{MemoryBytes: 64 << 20, PidsLimit: 20}
		if !im.limits {
			r = engine.Resources{}
		}
		cg := newCgroup(t, im, testPath(t), r)
		st, err := cg.Stats()
		if err != nil {
			t.Fatalf("Stats of an empty cgroup: %v", err)
		}
		if st.Pids != 0 || st.OOMKills != 0 {
			t.Errorf("empty cgroup Stats = %+v", st)
		}
		if !im.limits {
			return
		}
		pr := startBlocked(t, `i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; x=$(`+busybox+` head -c 4000000 /dev/zero | `+busybox+` tr '\0' a); exec `+busybox+` sleep 60`)
		if err := cg.Add(pr.cmd.Process.Pid); err != nil {
			t.Fatalf("Add: %v", err)
		}
		pr.release(t)
		waitSleeping(t, pr)
		st, err = cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.CPUUsage < uint64(time.Millisecond) || st.MemoryUsage <= 0 || st.MemoryLimit != 64<<20 || st.Pids != 1 || st.PidsLimit != 20 {
			t.Errorf("Stats = %+v, want cpu >= 1ms, memory > 0 of 64 MiB, 1 of 20 pids", st)
		}
		if err := cg.Update(engine.Resources{}); err != nil {
			t.Fatal(err)
		}
		if st, err := cg.Stats(); err != nil || st.MemoryLimit != 0 || st.PidsLimit != 0 {
			t.Errorf("Stats after removing limits = %+v, %v; want limits 0", st, err)
		}
	})
}

func TestUnsupportedLimit(t *testing.T) {
	for _, im := range impls() {
		if im.limits {
			continue
		}
		t.Run(im.name, func(t *testing.T) {
			im.require(t)
			p := testPath(t)
			for _, r := range []engine.Resources{{MemoryBytes: 64 << 20}, {NanoCPUs: 1e9}, {CPUShares: 100}, {PidsLimit: 5}} {
				if _, err := im.new(p, r); !errors.Is(err, engine.ErrUnsupported) {
					t.Errorf("New(%+v) without controllers = %v, want ErrUnsupported", r, err)
				}
				for _, dir := range dirsOf(im, p) {
					if exists(dir) {
						t.Errorf("%s left after a failed New", dir)
					}
				}
			}
		})
	}
}

func TestListRoot(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		p := testPath(t)
		newCgroup(t, im, p, engine.Resources{})
		got, err := im.list(Root)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(got, p) {
			t.Errorf("List(%s) = %v, want %s in it", Root, got, p)
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSleeping waits until pr's shell has exec'd "busybox sleep".
func waitSleeping(t *testing.T, pr *proc) {
	t.Helper()
	waitFor(t, "exec of sleep", func() bool {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pr.cmd.Process.Pid))
		return bytes.HasPrefix(cmdline, []byte(busybox+"\x00sleep\x00"))
	})
}

// BenchmarkNewAddDelete measures what a container start and removal cost
// in cgroup work: New, Add of a blocked child, KillAll, Delete.
func BenchmarkNewAddDelete(b *testing.B) {
	enginetest.RequireRoot(b)
	if HostMode() == Unavailable {
		b.Skip("no cgroups")
	}
	for b.Loop() {
		p := PathFor("bench-" + randHex(8))
		cg, err := New(p, engine.Resources{MemoryBytes: 64 << 20, PidsLimit: 100})
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(busybox, "sleep", "60")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if err := cg.Add(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		if err := cg.KillAll(b.Context()); err != nil {
			b.Fatal(err)
		}
		_ = cmd.Wait()
		if err := cg.Delete(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdd measures Add alone, the step between start and release of
// a container's init on v1.
func BenchmarkAdd(b *testing.B) {
	enginetest.RequireRoot(b)
	if HostMode() == Unavailable {
		b.Skip("no cgroups")
	}
	p := PathFor("bench-" + randHex(8))
	cg, err := New(p, engine.Resources{})
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(busybox, "sleep", "60")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = cg.Delete()
	})
	for b.Loop() {
		if err := cg.Add(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeviceRules: a container may create any device node but open only
// the pseudo-devices of its /dev, as in Docker.
func TestDeviceRules(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		p := testPath(t)
		cg := newCgroup(t, im, p, engine.Resources{})
		if !im.v2 {
			list := readFile(t, file(im, p, "devices", "devices.list"))
			for _, want := range []string{"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:9 rwm", "c 136:* rwm"} {
				if !slices.Contains(strings.Split(list, "\n"), want) {
					t.Errorf("devices.list lacks %q:\n%s", want, list)
				}
			}
			if strings.Contains(list, "a *:* rwm") {
				t.Errorf("devices.list allows everything:\n%s", list)
			}
		}
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		// kmsg is c 1:11, a host device a container must not open.
		// (A failed redirection of ":" would end the shell: open in a child.)
		pr := startBlocked(t, fmt.Sprintf(`exec >%[1]s 2>&1
%[2]s head -c 0 /dev/null && echo null-ok
%[2]s head -c 0 /dev/kmsg && echo kmsg-ok
%[2]s mknod %[3]s/kmsg c 1 11 && echo mknod-ok
%[2]s head -c 0 %[3]s/kmsg && echo node-ok
exit 0`, out, busybox, dir))
		if err := cg.Add(pr.cmd.Process.Pid); err != nil {
			t.Fatalf("Add: %v", err)
		}
		pr.release(t)
		if ws := pr.wait(); ws.ExitStatus() != 0 {
			t.Fatalf("script: %v", ws)
		}
		got := readFile(t, out)
		for _, want := range []string{"null-ok", "mknod-ok"} {
			if !strings.Contains(got, want) {
				t.Errorf("output lacks %s:\n%s", want, got)
			}
		}
		for _, bad := range []string{"kmsg-ok", "node-ok"} {
			if strings.Contains(got, bad) {
				t.Errorf("a container opened /dev/kmsg (%s):\n%s", bad, got)
			}
		}
	})
}
