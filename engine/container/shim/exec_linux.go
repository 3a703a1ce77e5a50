package shim

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"berth.dev/berth/engine/state"
)

// execMain is the exec init: started in the container's pid, network, uts,
// ipc and cgroup namespaces by StartExec, it joins the container's cgroup
// and mount namespace, then executes the command like the container init.
func execMain() {
	runtime.LockOSThread()
	sock, err := strconv.Atoi(os.Getenv(EnvInitPipe))
	if err != nil || sock < 3 {
		os.Stderr.WriteString("berth-exec: not started by berth\n")
		os.Exit(1)
	}
	pidfd := sock + 1
	var cfg ExecConfig
	if _, ok, err := recvJSON(sock, &cfg); err != nil || !ok {
		os.Exit(1)
	}
	ie := runExec(&cfg, sock, pidfd)
	_ = sendJSON(sock, syncMsg{Type: "error", Error: ie})
	os.Exit(ie.ExitCode())
}

func runExec(c *ExecConfig, sock, pidfd int) *InitError {
	if err := joinCgroup(c.Cgroup, os.Getpid()); err != nil {
		return initErr("join cgroup", "", err)
	}
	// setns into a mount namespace needs a private fs_struct: Go's threads
	// share one.
	if err := syscall.Unshare(syscall.CLONE_FS); err != nil {
		return initErr("unshare", "CLONE_FS", err)
	}
	if err := setns(pidfd, syscall.CLONE_NEWNS); err != nil {
		return initErr("join mount namespace", "", err)
	}
	syscall.Close(pidfd)
	if c.Proc.Tty {
		master, slave, _, err := openPty(atFDCWD, "/dev/ptmx")
		if err != nil {
			return initErr("allocate tty", "", err)
		}
		err = sendJSON(sock, syncMsg{Type: "pty"}, master)
		syscall.Close(master)
		if err != nil {
			return initErr("send tty", "", err)
		}
		if err := useTerminal(slave); err != nil {
			return initErr("tty", "", err)
		}
	}
	return execProcess(&c.Proc, sock, nil)
}

// ExecProcess is a process started in a running container.
type ExecProcess struct {
	Pid int
	Pty *os.File // the pty master when the process has a terminal
}

// StartExec starts cfg's process in the namespaces and cgroup of the running
// container whose init is target. self is the (sealed) berth binary; stdio
// are the process's standard streams (ignored with a tty). cgroupFD, when
// >= 0, is a cgroup v2 directory to start the process in. The caller reaps
// the process.
func StartExec(self string, target state.Process, cfg *ExecConfig, stdio [3]*os.File, cgroupFD int) (*ExecProcess, error) {
	pidfd, err := pidfdOpen(target.Pid)
	if err != nil {
		return nil, fmt.Errorf("exec: container process %d: %w", target.Pid, err)
	}
	defer syscall.Close(pidfd)
	// The pidfd names the process for good; checking identity after opening
	// it closes the pid-reuse window.
	if !target.Alive() {
		return nil, fmt.Errorf("exec: container process %d: %w", target.Pid, os.ErrProcessDone)
	}
	parent, child, err := socketPair()
	if err != nil {
		return nil, err
	}
	defer parent.Close()

	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// This thread joins the container's namespaces to fork the exec init
		// into them; it is never unlocked, so the runtime discards it when the
		// goroutine ends instead of reusing a thread in foreign namespaces.
		runtime.LockOSThread()
		const flags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWCGROUP
		if err := setns(pidfd, flags); err != nil {
			done <- result{err: fmt.Errorf("exec: join namespaces: %w", err)}
			return
		}
		files := make([]uintptr, 5)
		for i, f := range stdio {
			if f == nil {
				files[i] = ^uintptr(0)
			} else {
				files[i] = f.Fd()
			}
		}
		files[3], files[4] = child.Fd(), uintptr(pidfd)
		sys := &syscall.SysProcAttr{Setsid: true}
		if cgroupFD >= 0 {
			sys.UseCgroupFD, sys.CgroupFD = true, cgroupFD
		}
		pid, err := syscall.ForkExec(self, []string{RoleExec}, &syscall.ProcAttr{
			Env:   initEnv,
			Files: files,
			Sys:   sys,
		})
		done <- result{pid, err}
	}()
	r := <-done
	child.Close()
	if r.err != nil {
		return nil, fmt.Errorf("exec: start: %w", r.err)
	}
	if err := sendJSON(int(parent.Fd()), cfg); err != nil {
		_ = syscall.Kill(r.pid, syscall.SIGKILL)
		return &ExecProcess{Pid: r.pid}, fmt.Errorf("exec: send config: %w", err)
	}
	res, err := readChild(parent)
	p := &ExecProcess{Pid: r.pid, Pty: res.Pty}
	if err != nil {
		var ie *InitError
		if !errors.As(err, &ie) {
			_ = syscall.Kill(r.pid, syscall.SIGKILL)
		}
		return p, err
	}
	return p, nil
}

// ExitCode turns a wait status into a shell-style exit code.
func ExitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}
