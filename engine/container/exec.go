package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

// Exec runs a process in a running container's namespaces and cgroup and
// returns its exit code. The process is a child of the caller: it is
// started by the sealed berth binary (role berth-exec) from a thread that
// joined the container's pid, network, uts, ipc and cgroup namespaces; the
// exec init joins the mount namespace and cgroup itself, then applies the
// container's capabilities, user and no_new_privs before it executes cmd.
func (r *Runtime) Exec(ctx context.Context, ref string, cfg engine.ExecConfig, s engine.Streams) (int, error) {
	if len(cfg.Cmd) == 0 {
		return -1, fmt.Errorf("exec: no command: %w", engine.ErrInvalid)
	}
	id, err := r.resolve(ref)
	if err != nil {
		return -1, err
	}
	dir := r.cdir(id)
	rec, err := r.readRecord(dir)
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", ref, engine.ErrNotFound)
	}
	o := r.observe(dir, rec)
	if err := transition(rec.Name, o.Status, opExec); err != nil {
		return -1, err
	}
	if rec.Spec == nil {
		return -1, fmt.Errorf("exec %s: no runtime spec: %w", rec.Name, engine.ErrIllegalState)
	}
	ip := rec.Spec.Init.Proc
	proc := shim.Process{
		Args:       cfg.Cmd,
		Env:        containerEnv(ip.Env, cfg.Env, rec.Hostname, s.Tty),
		User:       ip.User,
		Cwd:        ip.Cwd,
		Caps:       ip.Caps,
		NoNewPrivs: true,
		Tty:        s.Tty,
	}
	if cfg.User != "" {
		proc.User = cfg.User
	}
	if cfg.WorkingDir != "" {
		proc.Cwd = cfg.WorkingDir
	}
	if cfg.Privileged {
		avail, err := availableCaps()
		if err != nil {
			return -1, err
		}
		proc.Caps, _ = shim.Caps([]string{"ALL"}, nil, avail)
		proc.NoNewPrivs = false
	}
	ec := &shim.ExecConfig{Proc: proc}
	cgfd := -1
	if spec := rec.Spec; spec.CgroupV2 && len(spec.Cgroup) == 1 {
		cg, err := os.Open(spec.Cgroup[0])
		if err != nil {
			return -1, fmt.Errorf("exec %s: %w", rec.Name, err)
		}
		defer cg.Close()
		cgfd = int(cg.Fd())
	} else {
		ec.Cgroup = spec.Cgroup
	}
	self, err := r.sealed()
	if err != nil {
		return -1, err
	}

	st, err := newStdio(s)
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", rec.Name, err)
	}
	defer st.close()
	p, err := shim.StartExec(self, o.raw.Init, ec, st.child, cgfd)
	st.closeChild()
	var process *os.Process
	if p != nil && p.Pid > 0 {
		process, _ = os.FindProcess(p.Pid)
	}
	if err != nil {
		if process != nil {
			_, _ = process.Wait()
		}
		var ie *shim.InitError
		if errors.As(err, &ie) {
			return ie.ExitCode(), fmt.Errorf("exec %s: %w", rec.Name, initFailure(ie))
		}
		return -1, fmt.Errorf("exec %s: %w", rec.Name, err)
	}
	if p.Pty != nil {
		defer p.Pty.Close()
		st.relayPty(ctx, p.Pty, s)
	} else {
		st.relay()
	}
	stopKill := context.AfterFunc(ctx, func() { _ = process.Signal(syscall.SIGKILL) })
	defer stopKill()
	ps, err := process.Wait()
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", rec.Name, err)
	}
	st.drain(time.Second)
	if ctx.Err() != nil {
		return -1, context.Cause(ctx)
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	return shim.ExitCode(ws), nil
}

// stdio connects an exec'd process's standard streams to engine.Streams:
// pipes copied by goroutines, or nothing but /dev/null with a tty (the pty
// carries everything).
type stdio struct {
	child     [3]*os.File // the process's stdio
	childEnds []*os.File  // pipe ends of the child, closed once it started
	parents   []*os.File
	copies    sync.WaitGroup
	s         engine.Streams
	stdinW    *os.File
	outR      *os.File
	errR      *os.File
}

func newStdio(s engine.Streams) (*stdio, error) {
	st := &stdio{s: s}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st.parents = append(st.parents, devnull)
	st.child = [3]*os.File{devnull, devnull, devnull}
	if s.Tty {
		return st, nil
	}
	if s.Stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			st.close()
			return nil, err
		}
		st.child[0], st.stdinW = r, w
		st.childEnds = append(st.childEnds, r)
	}
	if s.Stdout != nil {
		r, w, err := os.Pipe()
		if err != nil {
			st.close()
			return nil, err
		}
		st.child[1], st.outR = w, r
		st.childEnds = append(st.childEnds, w)
	}
	if s.Stderr != nil {
		r, w, err := os.Pipe()
		if err != nil {
			st.close()
			return nil, err
		}
		st.child[2], st.errR = w, r
		st.childEnds = append(st.childEnds, w)
	}
	return st, nil
}

// closeChild closes this process's copies of the child's pipe ends, so that
// the pipes end with the child.
func (st *stdio) closeChild() {
	for _, f := range st.childEnds {
		f.Close()
	}
	st.childEnds = nil
}

func (st *stdio) relay() {
	if st.stdinW != nil {
		go func() {
			_, _ = io.Copy(st.stdinW, st.s.Stdin)
			st.stdinW.Close()
		}()
	}
	for _, c := range []struct {
		r *os.File
		w io.Writer
	}{{st.outR, st.s.Stdout}, {st.errR, st.s.Stderr}} {
		if c.r == nil {
			continue
		}
		st.copies.Add(1)
		go func() {
			defer st.copies.Done()
			_, _ = io.Copy(c.w, c.r)
		}()
	}
}

func (st *stdio) relayPty(ctx context.Context, pty *os.File, s engine.Streams) {
	if s.Stdin != nil {
		go func() { _, _ = io.Copy(pty, s.Stdin) }()
	}
	if s.Resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ws, ok := <-s.Resize:
					if !ok {
						return
					}
					_ = unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
				}
			}
		}()
	}
	if s.Stdout != nil {
		st.copies.Add(1)
		go func() {
			defer st.copies.Done()
			_, _ = io.Copy(s.Stdout, pty) // ends with EIO when the last holder of the slave exits
		}()
	}
}

// drain waits for the output copies to finish, at most d after the process
// exited (a background child may hold the pipes open).
func (st *stdio) drain(d time.Duration) {
	done := make(chan struct{})
	go func() { st.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		if st.outR != nil {
			st.outR.Close()
		}
		if st.errR != nil {
			st.errR.Close()
		}
	}
}

func (st *stdio) close() {
	st.closeChild()
	for _, f := range st.parents {
		f.Close()
	}
	for _, f := range []*os.File{st.stdinW, st.outR, st.errR} {
		if f != nil {
			f.Close()
		}
	}
}
