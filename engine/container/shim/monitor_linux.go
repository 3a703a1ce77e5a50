package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/events"
	"berth.dev/berth/engine/reexec"
	"berth.dev/berth/engine/state"
)

// Descriptors a monitor inherits from the engine that starts it.
const (
	monitorReportFD = 3 // pipe: the outcome of the first start (StartReport)
	monitorListenFD = 4 // listening unix socket for attach clients
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
	Removing        bool `json:"removing"`
}

type monitor struct {
	dir    string
	self   string
	spec   *Spec
	rec    recordView
	reaper *reaper
	log    *logWriter
	ln     *os.File // the attach listener (non-blocking)
	wake   chan os.Signal

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
	// A small heap: a monitor lives as long as its container. The limit is
	// soft; the collector works harder as the heap nears it.
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(5 << 20)
	if len(os.Args) < 2 {
		os.Stderr.WriteString("berth-monitor: not started by berth\n")
		os.Exit(2)
	}
	if err := runMonitor(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "%s berth-monitor: %v\n", time.Now().Format(time.RFC3339Nano), err)
		os.Exit(1)
	}
	os.Exit(0)
}

func (m *monitor) readRecord() error {
	data, err := os.ReadFile(filepath.Join(m.dir, RecordFile))
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

func runMonitor(dir string) error {
	m := &monitor{dir: dir, self: "/proc/self/exe", clients: map[*client]bool{}}
	report := os.NewFile(monitorReportFD, "report")
	_ = prctl(prSetChildSubreaper, 1, 0, 0, 0)
	// A monitor outlives terminals and the command that started it. The
	// signals are caught, not ignored: an ignored disposition would be
	// inherited through exec by the container's processes.
	sink := make(chan os.Signal, 4)
	signal.Notify(sink, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGQUIT)
	go func() {
		for range sink {
		}
	}()
	m.wake = make(chan os.Signal, 1)
	signal.Notify(m.wake, syscall.SIGUSR1)
	m.reaper = newReaper()

	fail := func(err error) error {
		ie, ok := err.(*InitError)
		if !ok {
			ie = &InitError{Op: "start", Msg: err.Error()}
		}
		_ = json.NewEncoder(report).Encode(StartReport{Error: ie})
		report.Close()
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
	if m.log, err = openLog(filepath.Join(dir, LogFile), m.spec.Log.MaxSize, m.spec.Log.MaxFiles); err != nil {
		return fail(err)
	}
	defer m.log.close()
	m.acceptPending()
	m.ln = os.NewFile(monitorListenFD, "attach") // non-blocking since acceptPending
	go m.acceptLoop()

	var (
		first   = true
		delay   time.Duration
		restart = 0
	)
	for {
		res := m.run(report, first)
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
	if res.startErr == nil {
		m.publishExit(res)
	}
	owner := m.exitClients(res, false)
	if m.ln != nil {
		m.ln.Close()
	}
	if m.spec.Cleanup != "" && (m.spec.Detach || (m.rec.Config.AutoRemove && !owner)) {
		m.runCleanup()
	}
}

func (m *monitor) runCleanup() {
	devnull, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer devnull.Close()
	fd := devnull.Fd()
	_, err = syscall.ForkExec(m.self, []string{m.spec.Cleanup, m.spec.Root, m.spec.ID}, &syscall.ProcAttr{
		Env:   []string{reexec.EnvGuard + "=1"},
		Files: []uintptr{fd, fd, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
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
	if err := writeState(filepath.Join(m.dir, StateFile), &st); err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor: %v\n", err)
	}
}

// writeState replaces the state file atomically (temp file, rename) but,
// unlike the engine's records, without fsync: it describes processes, which
// a crash of the host ends anyway (and which readers re-check against the
// kernel and the boot ID). Skipping the two syncs keeps them off every
// start's and exit's critical path.
func writeState(path string, st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// run starts the container's process once and waits for it to end.
func (m *monitor) run(report *os.File, first bool) (res runResult) {
	spec := m.spec
	startFail := func(err error) runResult {
		if first {
			ie, ok := err.(*InitError)
			if !ok {
				ie = &InitError{Op: "start", Msg: err.Error()}
			}
			_ = json.NewEncoder(report).Encode(StartReport{Error: ie})
			report.Close()
			code := ie.ExitCode()
			return runResult{startErr: err, exitCode: code}
		}
		fmt.Fprintf(os.Stderr, "%s berth-monitor: restart: %v\n", time.Now().Format(time.RFC3339Nano), err)
		return runResult{startErr: err, exitCode: 128}
	}
	oomBefore := oomKills(spec.Cgroup)
	devnull, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return startFail(err)
	}
	defer devnull.Close()
	stdio := [3]*os.File{devnull, devnull, devnull}
	var outR, errR, inW *os.File
	var childEnds []*os.File
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
		childEnds = nil
	}
	defer closeChildEnds()
	tty := spec.Init.Proc.Tty
	if !tty {
		var outW, errW *os.File
		if outR, outW, err = os.Pipe(); err != nil {
			return startFail(err)
		}
		if errR, errW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
			return startFail(err)
		}
		// Big pipes: a container that floods its output keeps running while
		// the monitor writes a batch to the log.
		_, _ = fcntl(int(outW.Fd()), fSetPipeSz, 1<<20)
		_, _ = fcntl(int(errW.Fd()), fSetPipeSz, 1<<20)
		stdio[1], stdio[2] = outW, errW
		childEnds = append(childEnds, outW, errW)
		if spec.Stdin {
			var inR *os.File
			if inR, inW, err = os.Pipe(); err != nil {
				outR.Close()
				errR.Close()
				return startFail(err)
			}
			stdio[0] = inR
			childEnds = append(childEnds, inR)
		}
	}
	parent, child, err := socketPair()
	if err != nil {
		return startFail(err)
	}
	defer parent.Close()
	childEnds = append(childEnds, child)

	flags := uintptr(syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC)
	if spec.Init.NewNet {
		flags |= syscall.CLONE_NEWNET
	}
	sys := &syscall.SysProcAttr{Cloneflags: flags, Setsid: true, Pdeathsig: syscall.SIGKILL}
	if spec.CgroupV2 && len(spec.Cgroup) == 1 {
		cg, err := os.Open(spec.Cgroup[0])
		if err != nil {
			return startFail(fmt.Errorf("open cgroup: %w", err))
		}
		defer cg.Close()
		sys.UseCgroupFD, sys.CgroupFD = true, int(cg.Fd())
	}
	files := []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd(), child.Fd()}
	started := time.Now()
	pid, err := syscall.ForkExec(m.self, []string{RoleInit}, &syscall.ProcAttr{
		Env:   []string{reexec.EnvGuard + "=1", EnvInitPipe + "=3"},
		Files: files,
		Sys:   sys,
	})
	closeChildEnds()
	if err != nil {
		if outR != nil {
			outR.Close()
			errR.Close()
		}
		if inW != nil {
			inW.Close()
		}
		return startFail(fmt.Errorf("start container init: %w", err))
	}
	exitc := m.reaper.wait(pid)
	var wg sync.WaitGroup
	if outR != nil {
		wg.Add(2)
		go m.copyStream(outR, FrameStdout, "stdout", &wg)
		go m.copyStream(errR, FrameStderr, "stderr", &wg)
	}
	kill := func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exitc
		wg.Wait()
		if inW != nil {
			inW.Close()
		}
	}
	// On v1 the init waits for its configuration, so it is in the cgroup
	// before it does anything.
	if !spec.CgroupV2 {
		if err := joinCgroup(spec.Cgroup, pid); err != nil {
			kill()
			return startFail(err)
		}
	}
	if err := sendJSON(int(parent.Fd()), &spec.Init); err != nil {
		kill()
		return startFail(fmt.Errorf("send init config: %w", err))
	}
	cres, err := readChild(parent)
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
	m.publish("start", nil)
	if first {
		_ = json.NewEncoder(report).Encode(StartReport{Init: proc})
		report.Close()
	}
	if first {
		// Shed what only start-up needed: now, and once the first
		// exchanges with the engine (attach, state reads) are over.
		trimText()
		time.AfterFunc(2*time.Second, func() {
			debug.FreeOSMemory()
			trimText()
		})
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
