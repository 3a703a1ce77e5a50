package container

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// DefaultStopTimeout is how long Stop waits after the stop signal before it
// sends SIGKILL, as Docker's.
const DefaultStopTimeout = 10 * time.Second

// Stop sends the stop signal, waits up to timeout, then SIGKILL. Stopping a
// stopped container does nothing.
func (r *Runtime) Stop(ctx context.Context, ref string, timeout *time.Duration) error {
	l, err := r.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer l.release()
	if err := r.stop(ctx, l, timeout, true); err != nil || !l.rec.Releasing {
		return err
	}
	// The monitor left what the container held to us (see
	// record.Releasing): releasing it here spares a cleanup process.
	return r.finalizeLocked(ctx, l)
}

// stop ends a locked container's process and waits for its monitor to have
// recorded the end. Only running or restarting containers are touched. The
// caller releases what the container held (a restart keeps it, a removal
// releases it all): its monitor does not (record.Releasing).
func (r *Runtime) stop(ctx context.Context, l *locked, timeout *time.Duration, graceful bool) error {
	o := r.observe(l.dir, l.rec)
	if o.Status != engine.StatusRunning && o.Status != engine.StatusRestarting && !o.settling {
		return nil
	}
	l.rec.ManuallyStopped, l.rec.Releasing = true, true
	if err := r.writeRuntimeRecord(l.dir, l.rec); err != nil {
		return fmt.Errorf("stop %s: %w", l.rec.Name, err)
	}
	if o.Status == engine.StatusRestarting || !o.Running {
		// Wake the monitor from its back-off: it re-reads the record.
		if o.monitorAlive {
			_ = signalProcess(o.raw.Monitor, syscall.SIGUSR1)
		}
		return r.waitGone(ctx, o.raw.Monitor, 0)
	}
	if graceful {
		wait := DefaultStopTimeout
		if l.rec.Config.StopTimeout > 0 {
			wait = l.rec.Config.StopTimeout
		}
		if timeout != nil {
			wait = *timeout
		}
		sig := r.stopSignal(l.rec)
		if wait > 0 {
			if err := signalProcess(o.raw.Init, sig); err != nil && !errors.Is(err, errGone) {
				return fmt.Errorf("stop %s: %w", l.rec.Name, err)
			}
			r.publish(l.rec, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
			if err := r.waitGone(ctx, o.raw.Init, wait); err == nil {
				return r.waitGone(ctx, o.raw.Monitor, 0)
			} else if ctx.Err() != nil {
				return fmt.Errorf("stop %s: %w", l.rec.Name, err)
			}
		}
	}
	if err := signalProcess(o.raw.Init, syscall.SIGKILL); err != nil && !errors.Is(err, errGone) {
		return fmt.Errorf("stop %s: %w", l.rec.Name, err)
	}
	if err := r.waitGone(ctx, o.raw.Monitor, 0); err != nil {
		return fmt.Errorf("stop %s: %w", l.rec.Name, err)
	}
	return nil
}

func (r *Runtime) stopSignal(rec *record) syscall.Signal {
	for _, s := range []string{rec.Config.StopSignal, rec.Image.StopSignal} {
		if s == "" {
			continue
		}
		if sig, err := parseSignal(s); err == nil {
			return sig
		}
	}
	return syscall.SIGTERM
}

// Kill sends a signal to the container's process.
func (r *Runtime) Kill(ctx context.Context, ref string, signal string) error {
	sig := syscall.SIGKILL
	if signal != "" {
		var err error
		if sig, err = parseSignal(signal); err != nil {
			return fmt.Errorf("kill %s: %w", ref, err)
		}
	}
	l, err := r.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer l.release()
	o := r.observe(l.dir, l.rec)
	if err := transition(l.rec.Name, o.Status, opKill); err != nil {
		return err
	}
	// A container killed with a terminating signal stays down, as Docker's
	// (HasBeenManuallyStopped); other signals (HUP to reload...) do not
	// change the restart policy's view.
	terminating := sig == syscall.SIGKILL || sig == r.stopSignal(l.rec) || sig == syscall.SIGTERM || sig == syscall.SIGINT
	if terminating || o.Status == engine.StatusRestarting {
		l.rec.ManuallyStopped = true
		if err := r.writeRuntimeRecord(l.dir, l.rec); err != nil {
			return fmt.Errorf("kill %s: %w", l.rec.Name, err)
		}
	}
	if o.Status == engine.StatusRestarting || !o.Running {
		_ = signalProcess(o.raw.Monitor, syscall.SIGUSR1)
		return nil
	}
	if err := signalProcess(o.raw.Init, sig); err != nil {
		if errors.Is(err, errGone) {
			return fmt.Errorf("kill %s: %w", l.rec.Name, engine.ErrNotRunning)
		}
		return fmt.Errorf("kill %s: %w", l.rec.Name, err)
	}
	r.publish(l.rec, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// Restart stops then starts a container.
func (r *Runtime) Restart(ctx context.Context, ref string, timeout *time.Duration) error {
	l, err := r.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer l.release()
	if err := transition(l.rec.Name, r.observe(l.dir, l.rec).Status, opRestart); err != nil {
		return err
	}
	// The new monitor starts up while the old process stops.
	mon := r.startMonitor(l.dir)
	if err := r.stop(ctx, l, timeout, true); err != nil {
		if mon != nil {
			mon.Close()
		}
		return err
	}
	if _, err := r.start(ctx, l, nil, mon); err != nil {
		return err
	}
	r.publish(l.rec, "restart", nil)
	return nil
}

var errGone = errors.New("process is gone")

// signalProcess signals p through a pidfd, after checking that the pid
// still names p: a reused pid is never signalled.
func signalProcess(p state.Process, sig syscall.Signal) error {
	if p.Pid <= 0 {
		return errGone
	}
	fd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return errGone
	}
	defer unix.Close(fd)
	if !p.Alive() {
		return errGone
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if err == unix.ESRCH {
			return errGone
		}
		return fmt.Errorf("signal %d: %w", p.Pid, err)
	}
	return nil
}

// waitGone waits until p has exited, at most timeout (0: until ctx ends).
func (r *Runtime) waitGone(ctx context.Context, p state.Process, timeout time.Duration) error {
	if p.Pid <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return nil // already gone
	}
	defer unix.Close(fd)
	if !p.Alive() {
		return nil
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		// A pidfd polls readable when its process exits; poll in slices so
		// that ctx is honoured.
		slice := 50
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return context.DeadlineExceeded
			}
			slice = min(slice, int(left/time.Millisecond)+1)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, slice)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("wait for process %d: %w", p.Pid, err)
		}
		if n > 0 || !p.Alive() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
	}
}

// parseSignal accepts "SIGTERM", "TERM", "term" or a number.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q: %w", s, engine.ErrInvalid)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: %w", s, engine.ErrInvalid)
}
