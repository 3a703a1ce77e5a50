package shim

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// Healthcheck defaults, Docker's.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	healthLogSize         = 5
	healthOutputMax       = 4096
)

// startHealth runs the container's healthcheck every interval until the
// returned function is called.
func (m *monitor) startHealth(proc state.Process, started time.Time) (stop func()) {
	hc := m.spec.Health
	if hc == nil || len(hc.Test) == 0 {
		return func() {}
	}
	interval := hc.Interval
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p := m.probe(proc, hc, done)
			select {
			case <-done:
				return
			default:
			}
			m.recordProbe(p, started, hc)
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// probe runs the healthcheck command once in the container.
func (m *monitor) probe(proc state.Process, hc *engine.Healthcheck, done <-chan struct{}) engine.HealthProbe {
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	p := engine.HealthProbe{Start: time.Now().UTC(), ExitCode: -1}
	fail := func(msg string) engine.HealthProbe {
		p.End, p.Output = time.Now().UTC(), msg
		return p
	}
	devnull, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return fail(err.Error())
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err.Error())
	}
	defer r.Close()
	ip := m.spec.Init.Proc
	cfg := &ExecConfig{Proc: Process{Args: hc.Test, Env: ip.Env, User: ip.User, Cwd: ip.Cwd, Caps: ip.Caps, NoNewPrivs: ip.NoNewPrivs}}
	cgfd := -1
	if m.spec.CgroupV2 && len(m.spec.Cgroup) == 1 {
		if cg, err := os.Open(m.spec.Cgroup[0]); err == nil {
			defer cg.Close()
			cgfd = int(cg.Fd())
		}
	} else {
		cfg.Cgroup = m.spec.Cgroup
	}
	ep, err := StartExec(m.self, proc, cfg, [3]*os.File{devnull, w, w}, cgfd)
	w.Close()
	if err != nil {
		if ep != nil && ep.Pid > 0 {
			<-m.reaper.wait(ep.Pid)
		}
		return fail(err.Error())
	}
	out := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, healthOutputMax))
		_, _ = io.Copy(io.Discard, r)
		out <- b
	}()
	exitc := m.reaper.wait(ep.Pid)
	var ws syscall.WaitStatus
	select {
	case ws = <-exitc:
	case <-time.After(timeout):
		_ = syscall.Kill(ep.Pid, syscall.SIGKILL)
		<-exitc
		r.Close()
		<-out
		return fail(fmt.Sprintf("Health check exceeded timeout (%s)", timeout))
	case <-done:
		_ = syscall.Kill(ep.Pid, syscall.SIGKILL)
		<-exitc
		return fail("container stopped")
	}
	p.End = time.Now().UTC()
	p.ExitCode = ExitCode(ws)
	select {
	case b := <-out:
		p.Output = string(b)
	case <-time.After(time.Second): // a background child holds the pipe
		r.Close()
		p.Output = string(<-out)
	}
	return p
}

func (m *monitor) recordProbe(p engine.HealthProbe, started time.Time, hc *engine.Healthcheck) {
	retries := hc.Retries
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	m.mu.Lock()
	h := m.st.Health
	if h == nil {
		h = &engine.Health{Status: "starting"}
		m.st.Health = h
	}
	h.Log = append(h.Log, p)
	if len(h.Log) > healthLogSize {
		h.Log = append(h.Log[:0], h.Log[len(h.Log)-healthLogSize:]...)
	}
	prev := h.Status
	switch {
	case p.ExitCode == 0:
		h.FailingStreak = 0
		h.Status = "healthy"
	case h.Status == "starting" && p.Start.Sub(started) < hc.StartPeriod:
		// Failures during the start period do not count.
	default:
		h.FailingStreak++
		if h.FailingStreak >= retries {
			h.Status = "unhealthy"
		}
	}
	status, streak := h.Status, h.FailingStreak
	m.mu.Unlock()
	m.saveState()
	if status != prev {
		m.publish("health_status", map[string]string{"health": status, "failingStreak": strconv.Itoa(streak)})
	}
}
