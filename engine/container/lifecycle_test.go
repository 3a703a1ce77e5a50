package container_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

func TestMemoryLimitOOMKills(t *testing.T) {
	enginetest.RequireFeature(t, "memory")
	v := newEnv(t)
	cfg := v.config("sh", "-c", "tail /dev/zero")
	cfg.Resources.MemoryBytes = 16 << 20
	c := v.start(cfg)
	code, err := v.rt.Wait(t.Context(), c.ID, engine.WaitNotRunning)
	if err != nil {
		t.Fatal(err)
	}
	st := v.inspect(c.ID).State
	if !st.OOMKilled || code != 137 {
		t.Errorf("exit %d, state %+v; want OOMKilled and 137", code, st)
	}
}

func TestPidsLimit(t *testing.T) {
	enginetest.RequireFeature(t, "pids")
	v := newEnv(t)
	cfg := v.config("sh", "-c", "i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done; sleep 1; echo running=$(ls /proc | grep -c '^[0-9]')")
	cfg.Resources.PidsLimit = 10
	cfg.AutoRemove = true
	out, _, err := v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "can't fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Errorf("no fork failure under a pids limit of 10:\n%s", out)
	}
	for _, l := range lines(out) {
		if n, ok := strings.CutPrefix(l, "running="); ok && len(n) > 0 {
			if len(n) > 2 || n > "10" && len(n) == 2 {
				t.Errorf("%s processes under a pids limit of 10", n)
			}
		}
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	v := newEnv(t)
	// sleep as pid 1 has no SIGTERM handler: the kernel ignores the signal,
	// so only SIGKILL ends it.
	c := v.start(v.config("sleep", "3600"))
	grace := 500 * time.Millisecond
	start := time.Now()
	if err := v.rt.Stop(t.Context(), c.ID, &grace); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st := v.inspect(c.ID).State
	if st.Status != engine.StatusExited || st.ExitCode != 137 {
		t.Errorf("state after stop: %+v", st)
	}
	if took < grace || took > grace+3*time.Second {
		t.Errorf("stop took %s with a grace period of %s", took, grace)
	}
	// A process that handles SIGTERM stops at once.
	c2 := v.start(v.config("sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; while :; do sleep 0.1; done"))
	// Until the trap is set, the kernel drops SIGTERM to a pid 1 that has no
	// handler (as with any runtime).
	waitFor(t, 5*time.Second, "the trap", func() bool {
		out, _ := v.exec(c2.ID, "sh", "-c", "test -e /tmp/ready && echo yes")
		return out == "yes\n"
	})
	start = time.Now()
	if err := v.rt.Stop(t.Context(), c2.ID, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("graceful stop took %s", took)
	}
	if st := v.inspect(c2.ID).State; st.ExitCode != 0 {
		t.Errorf("graceful stop: %+v", st)
	}
	// Stopping a stopped container is not an error.
	if err := v.rt.Stop(t.Context(), c2.ID, nil); err != nil {
		t.Errorf("stop of a stopped container: %v", err)
	}
}

func TestRestartAlwaysAfterKill(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sleep", "3600")
	cfg.Restart = engine.RestartPolicy{Name: "always"}
	c := v.start(cfg)
	var pids []int
	var gaps []time.Duration
	pid := v.inspect(c.ID).State.Pid
	for i := 0; i < 3; i++ {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		waitFor(t, 10*time.Second, "the restart", func() bool {
			st := v.inspect(c.ID).State
			return st.Running && st.Pid != pid
		})
		gaps = append(gaps, time.Since(killed))
		pid = v.inspect(c.ID).State.Pid
		pids = append(pids, pid)
	}
	st := v.inspect(c.ID).State
	if st.RestartCount != 3 {
		t.Errorf("restart count %d, want 3", st.RestartCount)
	}
	// Back-off doubles from 100 ms: 100, 200, 400.
	if gaps[0] < 90*time.Millisecond || gaps[2] < 350*time.Millisecond || gaps[2] < gaps[0] {
		t.Errorf("restart delays %v do not back off", gaps)
	}
	// Stop ends the loop for good.
	if err := v.rt.Stop(t.Context(), c.ID, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if st := v.inspect(c.ID).State; st.Running || st.Status != engine.StatusExited {
		t.Errorf("after stop: %+v", st)
	}
}

func TestRestartOnFailure(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", "echo run; exit 2")
	cfg.Restart = engine.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}
	c := v.start(cfg)
	waitFor(t, 10*time.Second, "the retries to end", func() bool {
		st := v.inspect(c.ID).State
		return st.Status == engine.StatusExited
	})
	st := v.inspect(c.ID).State
	if st.RestartCount != 2 || st.ExitCode != 2 {
		t.Errorf("state %+v, want 2 restarts and exit code 2", st)
	}
	var runs int
	err := v.rt.Logs(t.Context(), c.ID, engine.LogOptions{Tail: -1}, func(e engine.LogEntry) error {
		if string(e.Line) == "run\n" {
			runs++
		}
		return nil
	})
	if err != nil || runs != 3 {
		t.Errorf("logs show %d runs (%v), want 3: logs survive restarts", runs, err)
	}
}

func TestLifecycleErrors(t *testing.T) {
	v := newEnv(t)
	c := v.start(v.config("sleep", "3600"))
	ctx := t.Context()
	if err := v.rt.Start(ctx, c.ID); !errors.Is(err, engine.ErrRunning) {
		t.Errorf("start of a running container: %v", err)
	}
	if err := v.rt.Remove(ctx, c.ID, engine.RemoveContainerOptions{}); !errors.Is(err, engine.ErrRunning) {
		t.Errorf("remove of a running container: %v", err)
	}
	if _, err := v.rt.Create(ctx, engine.ContainerConfig{Name: c.Name, Image: busybox}); !errors.Is(err, engine.ErrExists) {
		t.Errorf("create with a taken name: %v", err)
	}
	if err := v.rt.Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.rt.Inspect(ctx, c.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect of a removed container: %v", err)
	}
	c2, err := v.rt.Create(ctx, v.config("true"))
	if err != nil {
		t.Fatal(err)
	}
	v.track(c2.ID)
	if _, err := v.rt.Exec(ctx, c2.ID, engine.ExecConfig{Cmd: []string{"true"}}, engine.Streams{}); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("exec in a created container: %v", err)
	}
	if err := v.rt.Kill(ctx, c2.ID, "KILL"); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("kill of a created container: %v", err)
	}
	if got := v.inspect(c2.Name).State.Status; got != engine.StatusCreated {
		t.Errorf("status %s, want created", got)
	}
}
