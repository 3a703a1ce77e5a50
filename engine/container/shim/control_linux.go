package shim

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"berth.dev/berth/engine/reexec"
)

// A monitor is started before its container is ready to start, so that its
// start-up (that of a Go program: tens of milliseconds here, most of them
// page faults) overlaps the engine's preparation of the container rather
// than following it; the monitor likewise forks the container's init as soon
// as it runs, blocked until it gets its configuration. The engine and the
// monitor talk over a SOCK_SEQPACKET pair (the monitor's descriptor 3):
//
//	engine  -> monitor  "go" with the container's directory, the attach
//	                    listener and the monitor's log file: the container is
//	                    recorded, with its Spec
//	monitor -> engine   the StartReport of the first start
//
// A monitor whose engine closes the socket without "go" (the preparation
// failed, or the engine was killed) kills its init and exits: nothing of the
// container was set up yet.

// monitorControlFD is the monitor's end of the control socket.
const monitorControlFD = 3

// monitorEnv is a monitor's environment: the re-exec guard and the settings
// of a small, long-lived Go process. One P is plenty for a process that
// mostly waits. GOGC=50 keeps the heap small without the collector running
// during start-up (its first cycle comes at 2 MB); the roles cannot tune the
// runtime themselves: runtime/debug initializes too late (see doc.go).
var monitorEnv = []string{reexec.EnvGuard + "=1", "GOMAXPROCS=1", "GOGC=50"}

// Monitor is a monitor process as the engine that started it sees it.
type Monitor struct {
	Pid int
	ctl *os.File // the engine's end of the control socket
}

// StartMonitor starts a monitor from self, the sealed berth binary, detached
// in its own session. dir, the container's directory if already known (it
// need not exist yet), only labels the process. The monitor waits for
// Release; the caller reaps it.
func StartMonitor(self, dir string) (*Monitor, error) {
	parent, child, err := socketPair()
	if err != nil {
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	defer child.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	defer devnull.Close()
	dn := devnull.Fd()
	argv := []string{RoleMonitor}
	if dir != "" {
		argv = append(argv, dir)
	}
	pid, err := syscall.ForkExec(self, argv, &syscall.ProcAttr{
		Env:   monitorEnv,
		Files: []uintptr{dn, dn, dn, child.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	return &Monitor{Pid: pid, ctl: parent}, nil
}

// Release tells the monitor that the container in dir is recorded with its
// Spec, and hands it the attach listener and the file its own diagnostics go
// to.
func (m *Monitor) Release(dir string, listener, log *os.File) error {
	if err := sendJSON(int(m.ctl.Fd()), syncMsg{Type: "go", Dir: dir}, int(listener.Fd()), int(log.Fd())); err != nil {
		return fmt.Errorf("release monitor: %w", err)
	}
	return nil
}

// Report waits for the outcome of the container's first start. ok is false
// when the monitor ended without one.
func (m *Monitor) Report() (rep StartReport, ok bool, err error) {
	fds, ok, err := recvJSON(int(m.ctl.Fd()), &rep)
	for _, fd := range fds {
		syscall.Close(fd)
	}
	return rep, ok, err
}

// Close closes the engine's end of the control socket. A monitor that was
// not released exits, killing the init it forked.
func (m *Monitor) Close() { m.ctl.Close() }

// awaitGo waits for the engine's "go" on the control socket and returns
// the container's directory, and the attach listener's descriptor and the
// log file that come with it; ok is false when the engine went away instead.
func awaitGo() (dir string, listener int, log *os.File, ok bool) {
	var msg syncMsg
	fds, ok, err := recvJSON(monitorControlFD, &msg)
	if err != nil || !ok || msg.Type != "go" || msg.Dir == "" || len(fds) != 2 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return "", -1, nil, false
	}
	return msg.Dir, fds[0], os.NewFile(uintptr(fds[1]), "monitor.log"), true
}

// A berth command that is about to start a container starts its monitor
// while it initializes (StartEarlyMonitor, from an init function that runs
// right after this package's): by the time the command has parsed its
// flags, opened the engine and prepared the container, the monitor has
// started up and forked the init, and a process start-up (tens of
// milliseconds on a paravirtualized machine) is off the critical path. The
// engine takes it with TakeEarlyMonitor; one that nobody takes ends with the
// command, which closes its control socket.
var early struct {
	sync.Mutex
	mon *Monitor
}

// StartEarlyMonitor starts a monitor for the container the running command
// will start. Failures are silent: the engine starts one the usual way.
func StartEarlyMonitor() {
	self, err := Seal()
	if err != nil {
		return
	}
	mon, err := StartMonitor(self, "")
	if err != nil {
		return
	}
	early.Lock()
	early.mon = mon
	early.Unlock()
}

// TakeEarlyMonitor returns the monitor StartEarlyMonitor started, once; nil
// if there is none.
func TakeEarlyMonitor() *Monitor {
	early.Lock()
	defer early.Unlock()
	mon := early.mon
	early.mon = nil
	return mon
}
