package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/events"
	"berth.dev/berth/engine/reexec"
	"berth.dev/berth/engine/state"
)

// StartReport is what a monitor tells the engine once the container's first
// start succeeded or failed.
type StartReport struct {
	Init  state.Process `json:"init"`
	Error *InitError    `json:"error,omitempty"`
}

// Restart back-off, as Docker's restart manager: 100 ms doubling up to a
// minute, back to 100 ms once a run lasted 10 s.
const (
	backoffMin   = 100 * time.Millisecond
	backoffMax   = time.Minute
	backoffReset = 10 * time.Second
)

// recordView is the part of the engine's container record a monitor reads.
type recordView struct {
	Spec   *Spec `json:"spec"`
	Config struct {
		Restart    engine.RestartPolicy `json:"restart"`
		AutoRemove bool                 `json:"autoRemove"`
	} `json:"config"`
	ManuallyStopped bool `json:"manuallyStopped"`
	// Releasing: the command that stops the container releases what it
	// held once this monitor is gone; no cleanup process is needed.
	Releasing bool `json:"releasing"`
	Removing  bool `json:"removing"`
}

type monitor struct {
	dir     string
	self    string
	spec    *Spec
	rec     recordView
	reaper  *reaper
	log     *logWriter
	ln      *os.File // the attach listener (non-blocking)
	wake    chan os.Signal
	devnull *os.File
	// report is the control socket, until the first start's report.
	report *os.File

	saveMu sync.Mutex // serializes state.json writes

	mu      sync.Mutex
	st      State
	clients map[*client]bool
	stdin   *os.File // the container's stdin: pipe write end or pty master
	pty     *os.File
}

type client struct {
	conn  *os.File // a non-blocking unix socket
	hello AttachHello
	wmu   sync.Mutex
}

func monitorMain() {
	// The init's parent-death signal is tied to the thread that forks it:
	// the main thread, which lives as long as the monitor.
	runtime.LockOSThread()
	if err := runMonitor(); err != nil {
		fmt.Fprintf(os.Stderr, "%s berth-monitor: %v\n", time.Now().Format(time.RFC3339Nano), err)
		os.Exit(1)
	}
	os.Exit(0)
}

func (m *monitor) readRecord() error {
	data, err := os.ReadFile(path.Join(m.dir, RecordFile))
	if err != nil {
		return err
	}
	var rec recordView
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("read record: %w", err)
	}
	if rec.Spec == nil {
		return errors.New("read record: no runtime spec")
	}
	m.rec = rec
	if m.spec == nil {
		m.spec = rec.Spec
	}
	return nil
}

func runMonitor() error {
	var st syscall.Stat_t
	if err := syscall.Fstat(monitorControlFD, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		os.Stderr.WriteString("berth-monitor: not started by berth\n")
		os.Exit(2)
	}
	m := &monitor{self: "/proc/self/exe", clients: map[*client]bool{}}
	_ = prctl(prSetChildSubreaper, 1, 0, 0, 0)
	m.reaper = newReaper()
	var err error
	if m.devnull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
		return err
	}
	defer m.devnull.Close()
	// The init starts first, while the engine prepares the container: its
	// clone flags do not depend on the spec, and it waits for its
	// configuration. A failure here is retried at the start proper.
	pre, _ := m.forkInit()

	// A monitor outlives terminals and the command that started it. The
	// signals are caught, not ignored: an ignored disposition would be
	// inherited through exec by the container's processes (the init above
	// was started before: it resets what it finds ignored itself).
	sink := make(chan os.Signal, 4)
	signal.Notify(sink, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGQUIT)
	go func() {
		for range sink {
		}
	}()
	m.wake = make(chan os.Signal, 1)
	signal.Notify(m.wake, syscall.SIGUSR1)
	dir, ln, logf, ok := awaitGo()
	if !ok {
		// The engine gave up before anything of the container was set up.
		if pre != nil {
			pre.kill()
		}
		return nil
	}
	m.dir = dir
	// From here on, diagnostics go to the container's monitor.log.
	_ = syscall.Dup3(int(logf.Fd()), 2, 0)
	logf.Close()
	m.report = os.NewFile(monitorControlFD, "control")
	fail := func(err error) error {
		if pre != nil {
			pre.kill()
		}
		syscall.Close(ln)
		m.sendReport(StartReport{Error: asInitError(err)})
		return err
	}
	if err := m.readRecord(); err != nil {
		return fail(err)
	}
	self, err := state.ProcessOf(os.Getpid())
	if err != nil {
		return fail(err)
	}
	m.st = State{Status: engine.StatusCreated, Monitor: self}
	if m.log, err = openLog(path.Join(dir, LogFile), m.spec.Log.MaxSize, m.spec.Log.MaxFiles); err != nil {
		return fail(err)
	}
	defer m.log.close()
	m.acceptPending(ln)
	go m.acceptLoop()

	var (
		first   = true
		delay   time.Duration
		restart = 0
	)
	for {
		res := m.run(pre, first)
		pre = nil
		if res.startErr != nil && first {
			m.finish(res, engine.StatusCreated)
			return nil
		}
		first = false
		if res.ranFor >= backoffReset {
			delay = 0
		}
		if !m.shouldRestart(res.exitCode, restart) {
			m.finish(res, engine.StatusExited)
			return nil
		}
		switch {
		case delay == 0:
			delay = backoffMin
		case delay < backoffMax:
			delay *= 2
		}
		delay = min(delay, backoffMax)
		m.mu.Lock()
		m.st.Status = engine.StatusRestarting
		m.setExit(res)
		m.mu.Unlock()
		m.saveState()
		m.publishExit(res)
		m.exitClients(res, true)
		if !m.backoff(delay) {
			m.finish(res, engine.StatusExited)
			return nil
		}
		restart++
		m.mu.Lock()
		m.st.RestartCount = restart
		m.mu.Unlock()
	}
}

// backoff sleeps before a restart; it returns false when the container was
// stopped or removed meanwhile (the engine wakes us with SIGUSR1).
func (m *monitor) backoff(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return m.readRecord() == nil && !m.rec.ManuallyStopped && !m.rec.Removing
		case <-m.wake:
			if m.readRecord() != nil || m.rec.ManuallyStopped || m.rec.Removing {
				return false
			}
		}
	}
}

func (m *monitor) shouldRestart(code, count int) bool {
	if err := m.readRecord(); err != nil || m.rec.ManuallyStopped || m.rec.Removing {
		return false
	}
	p := m.rec.Config.Restart
	switch p.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return code != 0 && (p.MaximumRetryCount <= 0 || count < p.MaximumRetryCount)
	}
	return false
}

type runResult struct {
	startErr error
	exitCode int
	oom      bool
	ranFor   time.Duration
}

func (m *monitor) setExit(res runResult) {
	m.st.FinishedAt = time.Now().UTC()
	m.st.ExitCode = res.exitCode
	m.st.OOMKilled = res.oom
	m.st.Init = state.Process{}
	m.st.Error = ""
	if res.startErr != nil {
		m.st.Error = res.startErr.Error()
	}
}

// finish records the final exit and releases what the running container
// held.
func (m *monitor) finish(res runResult, status engine.Status) {
	m.mu.Lock()
	m.st.Status = status
	m.setExit(res)
	m.mu.Unlock()
	m.saveState()
	if removeCgroup(m.spec.Cgroup) == nil && m.spec.CgroupMarker != "" {
		_ = os.Remove(m.spec.CgroupMarker)
	}
	// The exit goes out once the state and the cgroup are settled: a
	// client that acts on it (berth run --rm removes the container) finds
	// nothing left to wait for but this process's exit.
	owner := m.exitClients(res, false)
	if res.startErr == nil {
		m.publishExit(res)
	}
	if m.ln != nil {
		m.ln.Close()
	}
	// An owner removes an AutoRemove container itself, which detaches its
	// networks too; had it died first, the next berth command's gc does.
	autoRemove := m.rec.Config.AutoRemove
	if m.spec.Cleanup != "" && !(autoRemove && owner) && (m.spec.Detach || autoRemove) && !m.rec.Releasing {
		m.runCleanup()
	}
}

// sendReport tells the engine how the first start went and closes the
// control socket.
func (m *monitor) sendReport(rep StartReport) {
	if m.report == nil {
		return
	}
	_ = sendJSON(int(m.report.Fd()), &rep)
	m.report.Close()
	m.report = nil
}

func asInitError(err error) *InitError {
	ie, ok := err.(*InitError)
	if !ok {
		ie = &InitError{Op: "start", Msg: err.Error()}
	}
	return ie
}

func (m *monitor) runCleanup() {
	fd := m.devnull.Fd()
	_, err := syscall.ForkExec(m.self, []string{m.spec.Cleanup, m.spec.Root, m.spec.ID}, &syscall.ProcAttr{
		Env:   []string{reexec.EnvGuard + "=1"},
		Files: []uintptr{fd, fd, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	m.reaper.started()
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor: cleanup: %v\n", err)
	}
}

func (m *monitor) publish(action string, attrs map[string]string) {
	if attrs == nil {
		attrs = map[string]string{}
	}
	for k, v := range m.spec.Labels {
		if _, ok := attrs[k]; !ok {
			attrs[k] = v
		}
	}
	attrs["name"] = m.spec.Name
	_ = events.Publish(m.spec.Root, engine.Event{Type: "container", Action: action, ID: m.spec.ID, Name: m.spec.Name, Attrs: attrs})
}

func (m *monitor) publishExit(res runResult) {
	if res.oom {
		m.publish("oom", nil)
	}
	m.publish("die", map[string]string{"exitCode": strconv.Itoa(res.exitCode)})
}

// saveState writes a snapshot of the state atomically.
func (m *monitor) saveState() {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	st := m.st
	if st.Health != nil {
		h := *st.Health
		h.Log = append([]engine.HealthProbe(nil), h.Log...)
		st.Health = &h
	}
	m.mu.Unlock()
	if err := writeState(path.Join(m.dir, StateFile), &st); err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor: %v\n", err)
	}
}

// writeState replaces the state file atomically (temp file, rename) but,
// unlike the engine's records, without fsync: it describes processes, which
// a crash of the host ends anyway (and which readers re-check against the
// kernel and the boot ID). Skipping the two syncs keeps them off every
// start's and exit's critical path.
func writeState(file string, st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// initProc is a container init that waits for its configuration.
type initProc struct {
	pid   int
	sock  *os.File // the monitor's end of the init's sync socket
	exitc <-chan syscall.WaitStatus
}

// forkInit starts a container init in new pid, mount, uts and ipc
// namespaces, with /dev/null for stdio; it waits for its configuration (and
// its real stdio) on its sync socket, so it can be started before the spec
// is known. Its parent-death signal is tied to this thread, the monitor's
// locked main thread.
func (m *monitor) forkInit() (*initProc, error) {
	parent, child, err := socketPair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	dn := m.devnull.Fd()
	flags := uintptr(syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC)
	pid, err := syscall.ForkExec(m.self, []string{RoleInit}, &syscall.ProcAttr{
		Env:   initEnv,
		Files: []uintptr{dn, dn, dn, child.Fd()},
		Sys:   &syscall.SysProcAttr{Cloneflags: flags, Setsid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container init: %w", err)
	}
	return &initProc{pid: pid, sock: parent, exitc: m.reaper.wait(pid)}, nil
}

// kill ends an init that has not been configured.
func (p *initProc) kill() {
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	<-p.exitc
	p.sock.Close()
}

// run starts the container's process once and waits for it to end. pre is
// an init forked in advance, if any.
func (m *monitor) run(pre *initProc, first bool) (res runResult) {
	spec := m.spec
	startFail := func(err error) runResult {
		if first {
			ie := asInitError(err)
			m.sendReport(StartReport{Error: ie})
			return runResult{startErr: err, exitCode: ie.ExitCode()}
		}
		fmt.Fprintf(os.Stderr, "%s berth-monitor: restart: %v\n", time.Now().Format(time.RFC3339Nano), err)
		return runResult{startErr: err, exitCode: 128}
	}
	ip := pre
	if ip == nil {
		var err error
		if ip, err = m.forkInit(); err != nil {
			return startFail(err)
		}
	}
	defer ip.sock.Close()
	pid, exitc := ip.pid, ip.exitc
	oomBefore := oomKills(spec.Cgroup)
	var outR, errR, inW *os.File
	var stdio []int // descriptors for the init: see initFDs
	var childEnds []*os.File
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
		childEnds = nil
	}
	defer closeChildEnds()
	pipeFail := func(err error) runResult {
		for _, f := range []*os.File{outR, errR, inW} {
			if f != nil {
				f.Close()
			}
		}
		ip.kill()
		return startFail(err)
	}
	if !spec.Init.Proc.Tty {
		var outW, errW *os.File
		var err error
		if outR, outW, err = os.Pipe(); err != nil {
			return pipeFail(err)
		}
		childEnds = append(childEnds, outW)
		if errR, errW, err = os.Pipe(); err != nil {
			return pipeFail(err)
		}
		childEnds = append(childEnds, errW)
		// Big pipes: a container that floods its output keeps running while
		// the monitor writes a batch to the log.
		_, _ = fcntl(int(outW.Fd()), fSetPipeSz, 1<<20)
		_, _ = fcntl(int(errW.Fd()), fSetPipeSz, 1<<20)
		in := m.devnull
		if spec.Stdin {
			var inR *os.File
			if inR, inW, err = os.Pipe(); err != nil {
				return pipeFail(err)
			}
			childEnds = append(childEnds, inR)
			in = inR
		}
		stdio = []int{int(in.Fd()), int(outW.Fd()), int(errW.Fd())}
	}
	kill := func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exitc
		if inW != nil {
			inW.Close()
		}
	}
	if spec.Init.NetNS != "" {
		ns, err := os.Open(spec.Init.NetNS)
		if err != nil {
			return pipeFail(fmt.Errorf("open network namespace: %w", err))
		}
		childEnds = append(childEnds, ns)
		stdio = append(stdio, int(ns.Fd()))
	}
	// The init is in the cgroup before it does anything: it waits for its
	// configuration.
	if err := joinCgroup(spec.Cgroup, pid); err != nil {
		closeChildEnds()
		kill()
		if outR != nil {
			outR.Close()
			errR.Close()
		}
		return startFail(err)
	}
	started := time.Now()
	err := sendJSON(int(ip.sock.Fd()), &spec.Init, stdio...)
	closeChildEnds()
	var wg sync.WaitGroup
	if outR != nil {
		wg.Add(2)
		go m.copyStream(outR, FrameStdout, "stdout", &wg)
		go m.copyStream(errR, FrameStderr, "stderr", &wg)
	}
	kill = func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exitc
		wg.Wait()
		if inW != nil {
			inW.Close()
		}
	}
	if err != nil {
		kill()
		return startFail(fmt.Errorf("send init config: %w", err))
	}
	cres, err := readChild(ip.sock)
	if err != nil {
		kill()
		return startFail(err)
	}
	proc, err := state.ProcessOf(pid)
	if err != nil {
		// It already exited: record the run all the same.
		proc = state.Process{Pid: pid}
	}
	m.mu.Lock()
	if cres.Pty != nil {
		m.pty, m.stdin = cres.Pty, cres.Pty
		wg.Add(1)
		go m.copyStream(cres.Pty, FrameStdout, "stdout", &wg)
	} else {
		m.stdin = inW
	}
	m.st.Status = engine.StatusRunning
	m.st.Init = proc
	m.st.StartedAt = started.UTC()
	m.st.Error = ""
	m.st.OOMKilled = false
	m.st.ExitCode = 0
	m.st.Populated = cres.Populated
	if spec.Health != nil {
		m.st.Health = &engine.Health{Status: "starting"}
	}
	m.mu.Unlock()
	m.saveState()
	if first {
		m.sendReport(StartReport{Init: proc})
	}
	m.publish("start", nil)
	if first {
		// Shed what only start-up needed, once the first exchanges with
		// the engine (attach, state reads) are over: not at once, which
		// would cost the start of every container (a few milliseconds of
		// CPU on these machines) and fault the exit path of a short one
		// back in.
		time.AfterFunc(time.Second, trimText)
	}
	stopHealth := m.startHealth(proc, started)
	ws := <-exitc
	ended := time.Now()
	stopHealth()
	// The output ends when the last process of the pid namespace is gone,
	// which follows the init's exit closely.
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
		if outR != nil {
			outR.Close()
			errR.Close()
		}
		<-drained
	}
	m.mu.Lock()
	if m.stdin != nil {
		m.stdin.Close()
	}
	m.stdin, m.pty = nil, nil
	m.mu.Unlock()
	return runResult{
		exitCode: ExitCode(ws),
		oom:      oomKills(spec.Cgroup) > oomBefore,
		ranFor:   ended.Sub(started),
	}
}

// copyStream logs one output stream and relays it to attach clients.
func (m *monitor) copyStream(r *os.File, frame byte, stream string, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 128<<10)
	sp := newLineSplitter(stream)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m.log.write(sp.feed(buf[:n], time.Now()))
			m.broadcast(frame, buf[:n])
		}
		if err != nil {
			break
		}
	}
	m.log.write(sp.flush(time.Now()))
	if !m.spec.Init.Proc.Tty {
		r.Close() // a pty master is closed by run, with the stdin it also is
	}
}
