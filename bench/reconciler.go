package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/local"
)

// Reconciler benchmarks: the whole CLI (bin/berth as a subprocess) against
// the real engine, each in a data root of its own. Docker Compose v2 on
// these machines, 10 services: up from scratch 5.3 s, no-op up 125 ms, one
// env value changed 905 ms (stop signal SIGKILL).
func init() {
	for _, b := range []struct {
		name, target string
		run          func(context.Context, *Env) (Result, error)
	}{
		{"reconciler/apply-10-scratch", "< 500 ms p50", func(ctx context.Context, env *Env) (Result, error) {
			return benchApplyScratch(ctx, env, 10, 500*time.Millisecond)
		}},
		{"reconciler/apply-10-noop", "< 30 ms p50", func(ctx context.Context, env *Env) (Result, error) {
			return benchNoop(ctx, env, 10, "apply", 30*time.Millisecond)
		}},
		{"reconciler/plan-10", "< 20 ms p50", func(ctx context.Context, env *Env) (Result, error) {
			return benchNoop(ctx, env, 10, "plan", 20*time.Millisecond)
		}},
		{"reconciler/apply-10-env-change", "< 150 ms p50", benchEnvChange},
		{"reconciler/apply-100-scratch", "< 4 s p50", func(ctx context.Context, env *Env) (Result, error) {
			return benchApplyScratch(ctx, env, 100, 4*time.Second)
		}},
		{"reconciler/apply-100-noop", "< 100 ms p50", func(ctx context.Context, env *Env) (Result, error) {
			return benchNoop(ctx, env, 100, "apply", 100*time.Millisecond)
		}},
		{"reconciler/watch-edit-to-running", "< 300 ms p50", benchWatchEdit},
		{"reconciler/watch-killed-restarted", "< 500 ms p50", benchWatchRestart},
	} {
		register(Bench{Name: b.name, Target: b.target, Root: true, Run: b.run})
	}
}

const benchImage = "bench/busybox:1"

// benchProject is one data root with busybox imported and a manifest
// directory.
type benchProject struct {
	env  *Env
	root string // data root
	dir  string // manifests, named "bench" (the project)
}

func newBenchProject(ctx context.Context, env *Env) (*benchProject, error) {
	tmp, err := os.MkdirTemp("", "berth-bench-rec-")
	if err != nil {
		return nil, err
	}
	p := &benchProject{env: env, root: filepath.Join(tmp, "root"), dir: filepath.Join(tmp, "bench")}
	rootfs := filepath.Join(tmp, "rootfs", "bin")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox-static (.ci/deps installs it): %w", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "busybox"), bb, 0o755); err != nil {
		return nil, err
	}
	for _, l := range []string{"sh", "sleep", "true"} {
		_ = os.Symlink("busybox", filepath.Join(rootfs, l))
	}
	if _, err := p.berth(ctx, "image", "import", filepath.Join(tmp, "rootfs"), benchImage); err != nil {
		return nil, err
	}
	return p, nil
}

// close destroys the project and removes the data root, once the
// monitors' short-lived cleanup processes, which open the data root, are
// gone.
func (p *benchProject) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, _ = p.berth(ctx, "destroy", "--volumes", p.dir)
	_ = waitFor(ctx, 10*time.Second, func() bool { return !usesPath(p.root) })
	os.RemoveAll(filepath.Dir(p.root))
}

// usesPath reports whether a process names path on its command line.
func usesPath(path string) bool {
	procs, _ := os.ReadDir("/proc")
	for _, pr := range procs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", pr.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(path)) {
			return true
		}
	}
	return false
}

// berth runs bin/berth on the project's data root and returns how long it
// took.
func (p *benchProject) berth(ctx context.Context, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, p.env.Berth, append([]string{"--data-root", p.root, "--config", ""}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("berth %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return d, nil
}

// write writes n sleeping containers on one network; env V of container 0
// is v. The stop signal is SIGKILL, as in the Compose figures.
func (p *benchProject) write(n int, v string, restart string) error {
	var b strings.Builder
	b.WriteString(`apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: net}
---
apiVersion: berth.dev/v1alpha1
kind: Image
metadata: {name: busybox}
spec: {ref: "` + benchImage + `", pullPolicy: never}
`)
	for i := range n {
		val := "0"
		if i == 0 {
			val = v
		}
		fmt.Fprintf(&b, `---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: c%03d}
spec:
  image: %s
  command: [/bin/busybox, sleep, "100000"]
  env: {INDEX: "%d", V: "%s"}
  networks: [net]
  restart: %s
  stopSignal: SIGKILL
`, i, benchImage, i, val, restart)
	}
	tmp := filepath.Join(p.dir, ".app.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(p.dir, "app.yaml")) // an editor's atomic save
}

func benchApplyScratch(ctx context.Context, env *Env, n int, target time.Duration) (Result, error) {
	p, err := newBenchProject(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	if err := p.write(n, "0", "always"); err != nil {
		return Result{}, err
	}
	runs := 5
	if n >= 100 {
		runs = 3
	}
	var times Durations
	for range runs {
		d, err := p.berth(ctx, "apply", p.dir)
		if err != nil {
			return Result{}, err
		}
		times = append(times, d)
		if _, err := p.berth(ctx, "destroy", p.dir); err != nil {
			return Result{}, err
		}
	}
	p50 := times.Percentile(50)
	return Result{Value: ms(p50) + " p50", Pass: p50 < target,
		Notes: fmt.Sprintf("%s; %d containers + 1 network; Compose v2 (10 services): 5.3 s", times.Summary(), n)}, nil
}

func benchNoop(ctx context.Context, env *Env, n int, verb string, target time.Duration) (Result, error) {
	p, err := newBenchProject(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	if err := p.write(n, "0", "always"); err != nil {
		return Result{}, err
	}
	if _, err := p.berth(ctx, "apply", p.dir); err != nil {
		return Result{}, err
	}
	var times Durations
	for i := range 23 {
		args := []string{verb, p.dir}
		if verb == "plan" {
			args = []string{"plan", "--detailed-exitcode", p.dir}
		}
		d, err := p.berth(ctx, args...)
		if err != nil {
			return Result{}, fmt.Errorf("run %d: %w", i, err) // exit 2 would mean "changes": not a no-op
		}
		if i >= 3 {
			times = append(times, d)
		}
	}
	p50 := times.Percentile(50)
	note := "Compose v2 no-op up (10 services): 125 ms"
	return Result{Value: ms(p50) + " p50", Pass: p50 < target, Notes: fmt.Sprintf("%s; %d containers; %s", times.Summary(), n, note)}, nil
}

func benchEnvChange(ctx context.Context, env *Env) (Result, error) {
	p, err := newBenchProject(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	if err := p.write(10, "0", "always"); err != nil {
		return Result{}, err
	}
	if _, err := p.berth(ctx, "apply", p.dir); err != nil {
		return Result{}, err
	}
	var times Durations
	for i := range 12 {
		if err := p.write(10, fmt.Sprint(i+1), "always"); err != nil {
			return Result{}, err
		}
		d, err := p.berth(ctx, "apply", p.dir)
		if err != nil {
			return Result{}, err
		}
		if i >= 2 {
			times = append(times, d)
		}
	}
	p50 := times.Percentile(50)
	return Result{Value: ms(p50) + " p50", Pass: p50 < 150*time.Millisecond,
		Notes: times.Summary() + "; one of 10 containers replaced (SIGKILL); Compose v2: 905 ms"}, nil
}

// startWatch runs `berth watch` on the project in the background and opens
// the engine in-process to observe it.
func (p *benchProject) startWatch(ctx context.Context) (*local.Engine, func(), error) {
	cmd := exec.CommandContext(ctx, p.env.Berth, "--data-root", p.root, "--config", "", "watch", "--log-level", "warn", p.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	e, err := local.Open(ctx, local.Config{DataRoot: p.root})
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		e.Close()
	}
	return e, stop, nil
}

func benchWatchEdit(ctx context.Context, env *Env) (Result, error) {
	p, err := newBenchProject(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	if err := p.write(3, "0", "always"); err != nil {
		return Result{}, err
	}
	e, stop, err := p.startWatch(ctx)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	running := func(name string) (engine.Container, bool) {
		c, err := e.Containers().Inspect(ctx, name)
		return c, err == nil && c.State.Running
	}
	if err := waitFor(ctx, time.Minute, func() bool {
		_, a := running("bench-c000")
		_, c := running("bench-c002")
		return a && c
	}); err != nil {
		return Result{}, fmt.Errorf("first convergence: %w", err)
	}
	var times Durations
	for i := range 11 {
		old, _ := running("bench-c000")
		want := fmt.Sprintf("V=%d", i+1)
		start := time.Now()
		if err := p.write(3, fmt.Sprint(i+1), "always"); err != nil {
			return Result{}, err
		}
		err := waitFor(ctx, 30*time.Second, func() bool {
			c, ok := running("bench-c000")
			return ok && c.ID != old.ID && strings.Contains(strings.Join(c.Config.Env, " "), want)
		})
		if err != nil {
			return Result{}, fmt.Errorf("edit %d not applied: %w", i, err)
		}
		if i >= 1 {
			times = append(times, time.Since(start))
		}
		time.Sleep(200 * time.Millisecond)
	}
	p50 := times.Percentile(50)
	return Result{Value: ms(p50) + " p50", Pass: p50 < 300*time.Millisecond,
		Notes: times.Summary() + "; saved edit (atomic rename) to the replacement running, berth watch, debounce 50 ms"}, nil
}

func benchWatchRestart(ctx context.Context, env *Env) (Result, error) {
	p, err := newBenchProject(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	const n = 10
	if err := p.write(n, "0", "always"); err != nil {
		return Result{}, err
	}
	e, stop, err := p.startWatch(ctx)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	name := func(i int) string { return fmt.Sprintf("bench-c%03d", i) }
	if err := waitFor(ctx, time.Minute, func() bool {
		for i := range n {
			c, err := e.Containers().Inspect(ctx, name(i))
			if err != nil || !c.State.Running || c.State.Pid <= 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return Result{}, fmt.Errorf("first convergence: %w", err)
	}
	// Each container is killed once: the restart back-off starts at its
	// first step for every one.
	var times Durations
	for i := range n {
		c, err := e.Containers().Inspect(ctx, name(i))
		if err != nil || c.State.Pid <= 0 {
			return Result{}, fmt.Errorf("inspect %s: %v (pid %d)", name(i), err, c.State.Pid)
		}
		start := time.Now()
		if err := syscall.Kill(c.State.Pid, syscall.SIGKILL); err != nil {
			return Result{}, err
		}
		err = waitFor(ctx, 30*time.Second, func() bool {
			n, err := e.Containers().Inspect(ctx, name(i))
			return err == nil && n.State.Running && n.State.Pid != c.State.Pid && n.ID == c.ID
		})
		if err != nil {
			return Result{}, fmt.Errorf("%s not restarted: %w", name(i), err)
		}
		times = append(times, time.Since(start))
	}
	p50 := times.Percentile(50)
	return Result{Value: ms(p50) + " p50", Pass: p50 < 500*time.Millisecond,
		Notes: times.Summary() + "; kill -9 of the process to running again (restart always, same container), under berth watch"}, nil
}
