package container

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// gc collects what killed berth commands left behind. It runs when a
// Runtime is opened, that is in every berth command, so it must stay cheap:
// one readdir of the containers directory and one List of the /berth cgroup,
// and work only for leftovers, which are rare.
func (r *Runtime) gc(ctx context.Context) {
	f, err := os.Open(r.dir)
	if err != nil {
		return
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return
	}
	removed := false
	present := map[string]bool{}
	for _, n := range names {
		switch {
		case engine.ValidID(n):
			present[n] = true
		case strings.HasPrefix(n, tmpPrefix):
			// A create that never finished.
			present[strings.TrimPrefix(n, tmpPrefix)] = true
			if r.gcDir(filepath.Join(r.dir, n), func() {}, true) {
				removed = true
			}
		case strings.HasPrefix(n, removingPrefix):
			id := strings.TrimPrefix(n, removingPrefix)
			present[id] = true
			dir := filepath.Join(r.dir, n)
			if r.gcDir(dir, func() {
				rec, _ := r.readRecord(dir)
				_ = r.finishRemove(ctx, id, dir, rec)
			}, false) {
				removed = true
			}
		}
	}
	for _, n := range names {
		if id, ok := strings.CutPrefix(n, pendingPrefix); ok {
			if r.gcPending(ctx, id) {
				removed = true
			}
		}
	}
	if r.cgroups != nil {
		if f, err := os.Open(filepath.Join(r.root, "run", cgroupsDir)); err == nil {
			ids, _ := f.Readdirnames(-1)
			f.Close()
			for _, id := range ids {
				if present[id] && !r.cgroupOrphan(id) {
					continue
				}
				if r.removeCgroup(ctx, id) == nil {
					removed = true
				}
			}
		}
	}
	if removed && r.networks != nil {
		live := func(id string) bool {
			_, err := os.Stat(r.cdir(id))
			return err == nil
		}
		_ = r.networks.GC(ctx, live)
	}
}

// gcDir runs fn on a leftover directory when no live process holds its lock,
// then removes the directory. The lock file is never created here: the
// directory may be in the middle of its owner's RemoveAll. A .tmp- directory
// (creating) with no lock file is a create that died between mkdir and
// taking its lock, or one doing so right now: only an old one is removed. A
// .removing- one lost its lock file to the final RemoveAll of its remover,
// which had released everything else before: what is left is removed at
// once (alongside the remover if it still runs: both tolerate the other).
func (r *Runtime) gcDir(dir string, fn func(), creating bool) bool {
	lk, ok, err := state.TryAcquireExisting(filepath.Join(dir, lockFile))
	if errors.Is(err, fs.ErrNotExist) {
		if !creating {
			return os.RemoveAll(dir) == nil
		}
		if fi, serr := os.Stat(dir); serr == nil && time.Since(fi.ModTime()) > time.Minute {
			return os.RemoveAll(dir) == nil
		}
		return false
	}
	if err != nil || !ok {
		return false
	}
	defer lk.Release()
	fn()
	return os.RemoveAll(dir) == nil
}

// gcPending settles a berth run that its command did not see through: a
// process that started makes it an ordinary container, one that never did
// (or an AutoRemove one that has ended) is removed.
func (r *Runtime) gcPending(ctx context.Context, id string) bool {
	marker := filepath.Join(r.dir, pendingPrefix+id)
	dir := r.cdir(id)
	if _, err := os.Stat(dir); err != nil {
		if _, err := os.Stat(filepath.Join(r.dir, tmpPrefix+id)); err != nil {
			_ = os.Remove(marker)
		}
		return false
	}
	lk, ok, err := state.TryAcquireExisting(filepath.Join(dir, lockFile))
	if err != nil || !ok {
		return false
	}
	l := &locked{id: id, dir: dir, lock: lk}
	defer l.release()
	rec, err := r.readRecord(dir)
	if err != nil {
		_ = os.Remove(marker)
		return false
	}
	l.rec = rec
	o := r.observe(dir, rec)
	started := !o.raw.StartedAt.IsZero()
	if o.monitorAlive {
		if started && !rec.Config.AutoRemove {
			_ = os.Remove(marker) // it runs: an ordinary container now
		}
		return false // its monitor is starting it, running it or finishing
	}
	ended := o.Status == engine.StatusExited || o.Status == engine.StatusDead || o.Status == engine.StatusCreated
	switch {
	case !started:
		// berth run died before the process ran: undo the whole run.
	case rec.Config.AutoRemove && ended:
	case rec.Config.AutoRemove:
		return false
	default:
		_ = os.Remove(marker) // it ran: an ordinary container now
		return false
	}
	return r.removeLocked(ctx, l) == nil
}

// cgroupOrphan reports whether a container's cgroup outlived its monitor.
func (r *Runtime) cgroupOrphan(id string) bool {
	dir := r.cdir(id)
	// A live monitor owns its cgroup, which needs no lock to see: that is
	// every running container, checked in every berth command.
	if r.readState(dir).Monitor.Alive() {
		return false
	}
	lk, ok, err := state.TryAcquireExisting(filepath.Join(dir, lockFile))
	if err != nil || !ok {
		return false
	}
	defer lk.Release()
	st := r.readState(dir)
	return !st.Monitor.Alive() && (st.StartedAt.IsZero() || !st.Init.Alive())
}
