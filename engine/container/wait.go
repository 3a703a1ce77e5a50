package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/events"
)

// Wait blocks until the condition holds and returns the exit code. Exits are
// seen through the monitors' events as they happen, and through a slow poll
// of the state in case an event was lost.
func (r *Runtime) Wait(ctx context.Context, ref string, cond engine.WaitCondition) (int, error) {
	if cond == "" {
		cond = engine.WaitNotRunning
	}
	switch cond {
	case engine.WaitNotRunning, engine.WaitNextExit, engine.WaitRemoved:
	default:
		return -1, fmt.Errorf("wait condition %q: %w", cond, engine.ErrInvalid)
	}
	id, err := r.resolve(ref)
	if err != nil {
		return -1, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, err := events.Subscribe(ctx, r.root)
	if err != nil {
		return -1, err
	}
	dir := r.cdir(id)
	// Baseline for next-exit: the exit recorded now does not count.
	var lastExit time.Time
	lastCode := 0
	if rec, err := r.readRecord(dir); err == nil {
		o := r.observe(dir, rec)
		lastExit, lastCode = o.FinishedAt, o.ExitCode
	}
	check := func() (int, bool, error) {
		rec, err := r.readRecord(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if cond == engine.WaitRemoved {
					return lastCode, true, nil
				}
				return -1, false, fmt.Errorf("container %s: %w", ref, engine.ErrNotFound)
			}
			return -1, false, err
		}
		o := r.observe(dir, rec)
		lastCode = o.ExitCode
		switch cond {
		case engine.WaitNotRunning:
			return o.ExitCode, !o.Running && !o.settling && o.Status != engine.StatusRunning, nil
		case engine.WaitNextExit:
			return o.ExitCode, o.FinishedAt.After(lastExit) && !o.Running && !o.settling, nil
		}
		return o.ExitCode, false, nil
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		code, ok, err := check()
		if err != nil || ok {
			return code, err
		}
		select {
		case <-ctx.Done():
			return -1, context.Cause(ctx)
		case <-tick.C:
		case ev, open := <-evs:
			if !open {
				evs = nil
			}
			_ = ev
		}
	}
}
