package container_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/local"
	"berth.dev/berth/engine/reexec"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// env is a local engine on a fresh data root with the busybox image.
type env struct {
	t    *testing.T
	e    *local.Engine
	rt   *container.Runtime
	root string
	mu   sync.Mutex
	ids  []string
}

const busybox = "busybox:test"

func newEnv(t *testing.T) *env {
	t.Helper()
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "overlay")
	root := t.TempDir()
	e, err := local.Open(t.Context(), local.Config{DataRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	v := &env{t: t, e: e, rt: e.Containers().(*container.Runtime), root: root}
	t.Cleanup(v.cleanup)
	enginetest.ImportBusybox(t, t.Context(), e, busybox)
	return v
}

// cleanup removes every container and checks that nothing is left on the
// host: no process, mount or cgroup of this data root.
func (v *env) cleanup() {
	t := v.t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, _ := v.rt.List(ctx, engine.ListContainersOptions{All: true})
	if t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(v.root, "containers", "*", "monitor.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, data)
		}
	}
	for _, c := range cs {
		if err := v.rt.Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true}); err != nil {
			t.Errorf("cleanup: remove %s: %v", c.Name, err)
		}
	}
	v.e.Close()
	// The monitors of AutoRemove containers may still be on their way out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaks := v.leaks()
		if len(leaks) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left on the host:\n%s", strings.Join(leaks, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v *env) leaks() []string {
	var out []string
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, v.root) {
				out = append(out, "mount: "+line)
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, []byte(v.root)) {
			out = append(out, "process: "+p+": "+strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	v.mu.Lock()
	ids := append([]string(nil), v.ids...)
	v.mu.Unlock()
	for _, id := range ids {
		if m, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id); len(m) > 0 {
			out = append(out, "cgroup: "+strings.Join(m, " "))
		}
	}
	return out
}

func (v *env) track(id string) {
	v.mu.Lock()
	v.ids = append(v.ids, id)
	v.mu.Unlock()
}

func (v *env) config(cmd ...string) engine.ContainerConfig {
	return engine.ContainerConfig{Name: uniqueName(v.t), Image: busybox, Cmd: cmd}
}

// run runs cfg in the foreground and returns its output and exit status.
func (v *env) run(cfg engine.ContainerConfig) (string, container.Exit, error) {
	v.t.Helper()
	var out enginetest.SyncBuffer
	c, wait, err := v.rt.Run(v.t.Context(), cfg, &engine.Streams{Stdout: &out, Stderr: &out})
	if c.ID != "" {
		v.track(c.ID)
	}
	if err != nil {
		return "", container.Exit{Code: -1}, err
	}
	ex, err := wait(v.t.Context())
	return out.String(), ex, err
}

// start runs cfg detached.
func (v *env) start(cfg engine.ContainerConfig) engine.Container {
	v.t.Helper()
	c, _, err := v.rt.Run(v.t.Context(), cfg, nil)
	if c.ID != "" {
		v.track(c.ID)
	}
	if err != nil {
		v.t.Fatalf("run %v: %v", cfg.Cmd, err)
	}
	return c
}

// exec runs cmd in a running container and returns its output.
func (v *env) exec(id string, cmd ...string) (string, int) {
	v.t.Helper()
	var out enginetest.SyncBuffer
	code, err := v.rt.Exec(v.t.Context(), id, engine.ExecConfig{Cmd: cmd}, engine.Streams{Stdout: &out, Stderr: &out})
	if err != nil {
		v.t.Fatalf("exec %v: %v", cmd, err)
	}
	return out.String(), code
}

func (v *env) inspect(id string) engine.Container {
	v.t.Helper()
	c, err := v.rt.Inspect(v.t.Context(), id)
	if err != nil {
		v.t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func uniqueName(t *testing.T) string {
	var b [3]byte
	f, _ := os.Open("/dev/urandom")
	f.Read(b[:])
	f.Close()
	n := strings.NewReplacer("/", "-", " ", "-", "#", "").Replace(t.Name())
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return strings.TrimLeft(n, "-_.") + "-" + strings.ToLower(strings.TrimRight(hexs(b[:]), "="))
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// lines returns the lines of s.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
