package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

// Exit is how an attached container's process ended.
type Exit struct {
	Code      int
	OOMKilled bool
	// Restarting says the restart policy starts the process again.
	Restarting bool
}

// Run creates and starts a container as one transaction, as berth run does:
// until the process runs, the container is marked pending, and if this
// process dies before then the next berth command removes every trace of it
// (a crashed berth run -d leaves a running container or nothing).
//
// With attach nil, Run returns once the process runs. With attach, the
// streams are connected before the process starts, and the returned wait
// function relays them until the process exits, then removes an AutoRemove
// container; it is nil if the start failed.
func (r *Runtime) Run(ctx context.Context, cfg engine.ContainerConfig, attach *engine.Streams) (engine.Container, func(context.Context) (Exit, error), error) {
	// The monitor starts up while the container is made: checks that fail
	// fast come first, so that a refused run does not pay for it.
	if err := r.validate(&cfg); err != nil {
		return engine.Container{}, nil, err
	}
	id := newID()
	mon := r.startMonitor(r.cdir(id))
	l, err := r.create(ctx, cfg, true, id)
	if err != nil {
		if mon != nil {
			mon.Close()
		}
		return engine.Container{}, nil, err
	}
	defer l.release()
	marker := filepath.Join(r.dir, pendingPrefix+l.id)
	var hello *shim.AttachHello
	if attach != nil {
		h := helloFor(*attach, true)
		hello = &h
	}
	conn, err := r.start(ctx, l, hello, mon)
	if err != nil {
		c := r.container(ctx, l.dir, l.rec)
		if cfg.AutoRemove {
			_ = r.removeLocked(ctx, l)
		} else {
			_ = os.Remove(marker) // a created container with its error, as Docker leaves it
		}
		return c, nil, err
	}
	if !cfg.AutoRemove {
		_ = os.Remove(marker)
	}
	c := r.container(ctx, l.dir, l.rec)
	if attach == nil {
		return c, nil, nil
	}
	id, name := l.id, l.rec.Name
	wait := func(ctx context.Context) (Exit, error) {
		ef, err := relay(ctx, conn, *attach)
		if errors.Is(err, errNoExit) {
			// The monitor died or the process ended between our connect and
			// its first read: the record tells.
			code, werr := r.Wait(ctx, id, engine.WaitNotRunning)
			if werr != nil {
				return Exit{Code: -1}, werr
			}
			ef, err = shim.ExitFrame{ExitCode: code}, nil
		}
		if err != nil {
			return Exit{Code: -1}, err
		}
		ex := Exit{Code: ef.ExitCode, OOMKilled: ef.OOMKilled, Restarting: ef.Restarting}
		if cfg.AutoRemove {
			if err := r.Remove(ctx, id, engine.RemoveContainerOptions{}); err != nil && !errors.Is(err, engine.ErrNotFound) {
				return ex, fmt.Errorf("remove %s: %w", name, err)
			}
		}
		return ex, nil
	}
	return c, wait, nil
}

// StartAttach starts a created or exited container with streams connected
// before its process runs (berth start -a) and returns a function that
// relays them until the process exits.
func (r *Runtime) StartAttach(ctx context.Context, ref string, s engine.Streams) (func(context.Context) (Exit, error), error) {
	l, err := r.lock(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer l.release()
	if err := transition(l.rec.Name, r.observe(l.dir, l.rec).Status, opStart); err != nil {
		return nil, err
	}
	hello := helloFor(s, false)
	conn, err := r.start(ctx, l, &hello, r.startMonitor(l.dir))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (Exit, error) {
		ef, err := relay(ctx, conn, s)
		return Exit{Code: ef.ExitCode, OOMKilled: ef.OOMKilled, Restarting: ef.Restarting}, err
	}, nil
}
