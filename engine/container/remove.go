package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"berth.dev/berth/engine"
)

// Remove deletes a container, its read-write layer, cgroup and network
// sandbox. A running one needs opts.Force.
func (r *Runtime) Remove(ctx context.Context, ref string, opts engine.RemoveContainerOptions) error {
	l, err := r.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer l.release()
	o := r.observe(l.dir, l.rec)
	if o.Status == engine.StatusRunning || o.Status == engine.StatusRestarting {
		if !opts.Force {
			return fmt.Errorf("remove container %s: stop it first or force the removal: %w", l.rec.Name, engine.ErrRunning)
		}
		if err := r.stop(ctx, l, nil, false); err != nil {
			return err
		}
	} else if err := transition(l.rec.Name, o.Status, opRemove); err != nil {
		return err
	}
	// A monitor that just recorded the exit may still be finishing.
	if o.monitorAlive {
		if err := r.waitGone(ctx, o.raw.Monitor, 5*time.Second); err != nil && ctx.Err() != nil {
			return fmt.Errorf("remove container %s: %w", l.rec.Name, err)
		}
	}
	return r.removeLocked(ctx, l)
}

// removeLocked takes a stopped container out of sight by renaming its
// directory, then releases what it held. A crash midway leaves a
// .removing- directory that gc finishes.
func (r *Runtime) removeLocked(ctx context.Context, l *locked) error {
	gone := filepath.Join(r.dir, removingPrefix+l.id)
	l.rec.Removing = true
	if err := os.Rename(l.dir, gone); err != nil {
		return fmt.Errorf("remove container %s: %w", l.rec.Name, err)
	}
	l.dir = gone
	// The record on disk is left as it was: a monitor still in its restart
	// back-off finds its container by the old path, which the rename just
	// took away (it stops), and gc finishes a .removing- directory whatever
	// its record says.
	return r.finishRemove(ctx, l.id, gone, l.rec)
}

// finishRemove releases a removed container's resources and deletes its
// directory dir.
func (r *Runtime) finishRemove(ctx context.Context, id, dir string, rec *record) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if r.networks != nil {
		if rec == nil || networkMode(rec.Config) == engine.NetworkModeBridge {
			if err := r.networks.Detach(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
		if err := r.networks.RemoveSandbox(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.removeCgroup(ctx, id); err != nil {
		errs = append(errs, err)
	}
	if rec != nil {
		r.releaseName(rec.Name, id)
	}
	_ = os.Remove(filepath.Join(r.dir, pendingPrefix+id))
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if rec != nil {
		r.publish(rec, "destroy", nil)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove container %s: %w", shortID(id), err)
	}
	return nil
}

// removeCgroup kills what is left in a container's cgroup and deletes it.
func (r *Runtime) removeCgroup(ctx context.Context, id string) error {
	if r.cgroups == nil {
		return nil
	}
	// The monitor removes the cgroup, then its marker, when the container
	// stops for good: no marker, nothing to do.
	if _, err := os.Stat(r.cgroupMarker(id)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	cg, err := r.cgroups.Load(cgroupPath(id))
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			_ = os.Remove(r.cgroupMarker(id))
			return nil
		}
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The monitor may delete the cgroup between Load and here (its
	// container exited meanwhile): gone is what was wanted.
	err = cg.KillAll(kctx)
	if err == nil {
		err = cg.Delete()
	}
	if err != nil && !errors.Is(err, engine.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	_ = os.Remove(r.cgroupMarker(id))
	return nil
}

// Finalize releases what a container that stopped for good still holds:
// its network attachment, and the whole container when it is AutoRemove.
// Monitors run it, through the cleanup role, after their container's last
// exit; it does nothing to a container that runs again meanwhile.
func (r *Runtime) Finalize(ctx context.Context, id string) error {
	l, err := r.lock(ctx, id)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		return err
	}
	defer l.release()
	return r.finalizeLocked(ctx, l)
}

func (r *Runtime) finalizeLocked(ctx context.Context, l *locked) error {
	o := r.observe(l.dir, l.rec)
	if o.Status == engine.StatusRunning || o.Status == engine.StatusRestarting {
		return nil
	}
	if o.monitorAlive {
		if err := r.waitGone(ctx, o.raw.Monitor, 5*time.Second); err != nil {
			return fmt.Errorf("finalize %s: %w", l.rec.Name, err)
		}
	}
	if l.rec.Config.AutoRemove {
		return r.removeLocked(ctx, l)
	}
	if r.networks != nil && networkMode(l.rec.Config) == engine.NetworkModeBridge {
		if err := r.networks.Detach(ctx, l.id); err != nil {
			return fmt.Errorf("finalize %s: %w", l.rec.Name, err)
		}
	}
	return nil
}
