package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
	"berth.dev/berth/reconciler/plan"
	"berth.dev/berth/spec"
)

// WatchOptions tune Watch.
type WatchOptions struct {
	Target
	PruneVolumes bool
	AllowEmpty   bool
	// Resync is the period of the full re-check that catches drift no event
	// reports (default 30 s, jittered by ±10 %).
	Resync time.Duration
	// Debounce is how long the manifest tree must be quiet before it is
	// re-read (default 50 ms; at most 20 times that after the first
	// change), so that an editor's save or a git checkout is one reload.
	Debounce time.Duration
	// Workers reconcile distinct resources concurrently (default 4).
	Workers int
	// LockTimeout: watch holds the project lock while it runs.
	LockTimeout time.Duration
	// MaxBackoff caps the per-resource retry delay (default 5 min; the
	// first retry is after 1 s).
	MaxBackoff time.Duration
}

// Watch keeps the project converged until ctx ends: it reconciles every
// resource, then again whenever the manifests change (fsnotify, debounced),
// whenever the engine reports something about one of the project's objects
// (an exit, a health change, a removal), and on a jittered resync. It
// holds the project lock while it runs, so apply and watch never fight;
// containers keep running after it returns.
//
// A manifest set that does not load is reported (each error with
// file:line:col) and the last good one is kept: nothing is torn down.
func (r *Reconciler) Watch(ctx context.Context, opts WatchOptions) error {
	dir, project, err := opts.Target.resolve(true)
	if err != nil {
		return err
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	lock, err := r.lockProjectAs(ctx, project, "watch", opts.LockTimeout, nil)
	if err != nil {
		return err
	}
	defer lock.Release()

	w := &watcher{
		r: r, opts: opts, dir: dir, project: project,
		log:      r.log.With("project", project),
		q:        newQueue(time.Second, opts.MaxBackoff),
		hashes:   map[plan.Key]string{},
		stalled:  map[plan.Key]string{},
		waiting:  map[plan.Key]plan.Key{},
		resolver: &cachedResolver{inner: r.e.Images(), ttl: 10 * time.Second},
	}
	w.status, _ = r.readStatus(project)
	w.status.Dir = dir
	if p, err := state.ProcessOf(os.Getpid()); err == nil {
		w.status.Watcher = &p
	}
	w.persist()

	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer fsw.Close()
	if err := w.addTree(fsw, dir); err != nil {
		return err
	}
	w.log.Info("watching", "dir", dir)
	w.reload(ctx)
	w.enqueueAll(ctx)

	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(func() { w.work(ctx) })
	}
	bg, stopBG := context.WithCancel(ctx)
	var bgw sync.WaitGroup
	bgw.Go(func() { w.watchFiles(bg, fsw) })
	bgw.Go(func() { w.watchEvents(bg) })
	bgw.Go(func() { w.resync(bg) })

	<-ctx.Done()
	stopBG()
	w.q.ShutDown()
	bgw.Wait()
	wg.Wait()
	w.mu.Lock()
	w.status.Watcher = nil
	for i := range w.status.Resources {
		w.status.Resources[i].Remove(ConditionReconciling)
	}
	w.mu.Unlock()
	w.persist()
	w.log.Info("stopped watching; containers keep running")
	return nil
}

type watcher struct {
	r            *Reconciler
	opts         WatchOptions
	dir, project string
	log          *slog.Logger
	q            *queue
	resolver     *cachedResolver

	mu        sync.Mutex
	set       *spec.Set             // the last good manifests (nil: none yet)
	hashes    map[plan.Key]string   // their spec hashes
	stalled   map[plan.Key]string   // key -> the spec hash it stalled on
	waiting   map[plan.Key]plan.Key // key -> the container it waits for
	status    *ProjectStatus        // kept up to date, persisted when it changes
	persisted *ProjectStatus        // what is on disk
	persistMu sync.Mutex
}

// ----------------------------------------------------------------- files

// addTree watches dir and its subdirectories (hidden ones, like .git, are
// skipped, as the loader skips them). Directories are watched, not files:
// an editor's atomic save replaces the file, which would end a file watch.
func (w *watcher) addTree(fsw *fsnotify.Watcher, root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	if !fi.IsDir() {
		return fsw.Add(filepath.Dir(root))
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			return nil // gone meanwhile
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if err := fsw.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}

func hiddenPath(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return false
	}
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") && part != "." && part != ".." {
			return true
		}
	}
	return false
}

// watchFiles debounces file events into reloads.
func (w *watcher) watchFiles(ctx context.Context, fsw *fsnotify.Watcher) {
	var quiet, deadline *time.Timer
	var fire <-chan time.Time
	var hard <-chan time.Time
	stop := func() {
		if quiet != nil {
			quiet.Stop()
		}
		if deadline != nil {
			deadline.Stop()
		}
		quiet, deadline, fire, hard = nil, nil, nil, nil
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-fsw.Errors:
			if !ok {
				return
			}
			// An overflow loses events: re-read everything.
			w.log.Warn("file watch error; re-reading the manifests", "err", err)
			if quiet == nil {
				quiet = time.NewTimer(w.opts.Debounce)
				fire = quiet.C
			}
		case ev, ok := <-fsw.Events:
			if !ok {
				return
			}
			if hiddenPath(w.dir, ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := w.addTree(fsw, ev.Name); err != nil {
						w.log.Warn("cannot watch new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			if quiet == nil {
				quiet = time.NewTimer(w.opts.Debounce)
				fire = quiet.C
				deadline = time.NewTimer(20 * w.opts.Debounce)
				hard = deadline.C
			} else {
				quiet.Reset(w.opts.Debounce)
			}
		case <-fire:
			stop()
			w.reload(ctx)
		case <-hard:
			stop()
			w.reload(ctx)
		}
	}
}

// reload reads the manifests and enqueues the resources whose spec changed,
// appeared or left. On an error the last good manifests stay in force.
func (w *watcher) reload(ctx context.Context) {
	set, err := Load(w.dir)
	if err == nil && set.Len() == 0 && !w.opts.AllowEmpty {
		if obs, oerr := Observe(ctx, w.r.e, w.project); oerr == nil && owned(obs) > 0 {
			err = fmt.Errorf("no resources in the manifests at %s: refusing to delete the %d objects project %s owns (berth destroy removes them): %w",
				w.dir, owned(obs), w.project, ErrRefused)
		}
	}
	if err != nil {
		for _, fe := range spec.FieldErrors(err) {
			w.log.Error("invalid manifest; keeping the last good state", "file", fe.File, "line", fe.Line, "col", fe.Column, "field", fe.Field, "msg", fe.Msg)
		}
		if len(spec.FieldErrors(err)) == 0 {
			w.log.Error("cannot use the manifests; keeping the last good state", "err", err)
		}
		w.mu.Lock()
		w.status.Error = err.Error()
		w.mu.Unlock()
		w.persist()
		return
	}
	hashes := map[plan.Key]string{}
	for _, r := range set.Resources() {
		hashes[plan.Key{Kind: plan.Kind(r.Kind), Name: r.Name()}] = spec.Hash(r)
	}
	w.mu.Lock()
	var changed []plan.Key
	for k, h := range hashes {
		if w.hashes[k] != h {
			changed = append(changed, k)
			delete(w.stalled, k)
		}
	}
	for k := range w.hashes {
		if _, ok := hashes[k]; !ok {
			changed = append(changed, k)
			delete(w.stalled, k)
		}
	}
	first := w.set == nil
	w.set, w.hashes = set, hashes
	hadError := w.status.Error != ""
	w.status.Error = ""
	w.mu.Unlock()
	if hadError {
		w.persist()
	}
	if len(changed) > 0 && !first {
		w.log.Info("manifests changed", "resources", len(changed))
	}
	// Image resources are resolved afresh.
	w.resolver.flush()
	// What depends on a changed resource and must follow (the containers
	// of a replaced network) is reached through WaitingErrors: a change
	// that needs another resource's change enqueues that one.
	for _, k := range changed {
		w.q.Add(k)
	}
}

// ---------------------------------------------------------------- triggers

// enqueueAll adds every desired and owned resource that is not stalled.
func (w *watcher) enqueueAll(ctx context.Context) {
	keys := map[plan.Key]bool{}
	w.mu.Lock()
	for k := range w.hashes {
		keys[k] = true
	}
	w.mu.Unlock()
	if obs, err := Observe(ctx, w.r.e, w.project); err == nil {
		for k := range observedHashes(obs) {
			keys[k] = true
		}
		for _, c := range obs.Containers {
			if k, ok := ownedKey(c.Config.Labels); ok {
				keys[k] = true
			}
		}
	}
	for k := range keys {
		if !w.isStalled(k) {
			w.q.Add(k)
		}
	}
}

func ownedKey(l map[string]string) (plan.Key, bool) {
	k, n := l[engine.LabelKind], l[engine.LabelName]
	return plan.Key{Kind: plan.Kind(k), Name: n}, k != "" && n != ""
}

func (w *watcher) isStalled(k plan.Key) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.stalled[k]
	return ok && h == w.hashes[k]
}

// watchEvents turns the engine's events about the project's objects into
// reconciles of those objects, and of what waits for them.
func (w *watcher) watchEvents(ctx context.Context) {
	for ctx.Err() == nil {
		events, err := w.r.e.Events(ctx)
		if err != nil {
			if errors.Is(err, engine.ErrUnsupported) {
				w.log.Warn("the engine has no event stream; relying on resync", "err", err)
				return
			}
			w.log.Debug("event stream", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		for ev := range events {
			if ev.Attrs[engine.LabelProject] != w.project {
				continue
			}
			switch ev.Action {
			case "create", "exec_create", "exec_start", "exec_die", "attach", "resize", "pull", "tag", "untag":
				continue
			}
			key, ok := ownedKey(ev.Attrs)
			if !ok {
				continue
			}
			w.log.Debug("engine event", "resource", key.String(), "action", ev.Action)
			if !w.isStalled(key) {
				w.q.Add(key)
			}
			w.mu.Lock()
			for waiter, on := range w.waiting {
				if on == key {
					w.q.Add(waiter)
				}
			}
			w.mu.Unlock()
		}
	}
}

// resync re-checks everything periodically, with ±10 % jitter so that
// watchers of many projects do not tick together.
func (w *watcher) resync(ctx context.Context) {
	for {
		d := time.Duration(float64(w.opts.Resync) * (0.9 + 0.2*rand.Float64()))
		if !sleep(ctx, d) {
			return
		}
		w.log.Debug("resync")
		w.enqueueAll(ctx)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// --------------------------------------------------------------- reconcile

func (w *watcher) work(ctx context.Context) {
	for {
		key, ok := w.q.Get()
		if !ok {
			return
		}
		w.handle(ctx, key)
		w.q.Done(key)
	}
}

// handle reconciles one key and decides when it comes back, as
// controller-runtime's reconcileHandler does.
func (w *watcher) handle(ctx context.Context, key plan.Key) {
	if w.isStalled(key) {
		return // added before it stalled; waits for its manifest to change
	}
	start := time.Now()
	changed, others, err := w.reconcileSafely(ctx, key)
	if ctx.Err() != nil {
		return
	}
	log := w.log.With("resource", key.String())
	now := time.Now()
	w.mu.Lock()
	delete(w.waiting, key)
	rs := w.status.Resource(key)
	hash := w.hashes[key]
	switch wait, waiting := IsWaiting(err); {
	case err == nil:
		w.mu.Unlock()
		w.q.Forget(key)
		if changed {
			log.Info("reconciled", "elapsed", time.Since(start).Round(time.Millisecond))
			w.q.Add(key) // verify, and record how it runs
			// What was waiting on this change can proceed now.
			for _, k := range others {
				if !w.isStalled(k) {
					w.q.Add(k)
				}
			}
		}
		return
	case waiting:
		if wait.On.Name != "" {
			w.waiting[key] = wait.On
			if _, stalled := w.stalled[wait.On]; !stalled {
				w.q.Add(wait.On) // its change comes first: make sure it runs
			}
		}
		rs.Set(Condition{Type: ConditionReady, Status: False, Reason: "DependencyNotReady", Message: wait.Reason, ObservedHash: hash}, now)
		w.mu.Unlock()
		log.Info("waiting", "reason", wait.Reason)
		w.q.AddAfter(key, wait.After)
	case IsTerminal(err):
		w.stalled[key] = hash
		rs.Remove(ConditionReconciling)
		recordFailure(rs, err.Error(), true, hash, now)
		w.mu.Unlock()
		w.q.Forget(key)
		log.Error("stalled until its manifest changes", "err", err)
	default:
		rs.Remove(ConditionReconciling)
		recordFailure(rs, err.Error(), false, hash, now)
		w.mu.Unlock()
		d := w.q.Backoff(key)
		log.Error("reconcile failed", "err", err, "retry_in", d)
	}
	w.persist()
}

func (w *watcher) reconcileSafely(ctx context.Context, key plan.Key) (changed bool, others []plan.Key, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic reconciling %s: %v\n%s", key, p, debug.Stack())
		}
	}()
	return w.reconcile(ctx, key)
}

// reconcile converges one resource: it observes the project, converts the
// last good manifests and diffs them, exactly as plan does, and carries out
// the changes of key only. It is level-based: it never asks what triggered
// it. others are the keys with pending changes besides key.
func (w *watcher) reconcile(ctx context.Context, key plan.Key) (changed bool, others []plan.Key, err error) {
	w.mu.Lock()
	set := w.set
	w.mu.Unlock()
	if set == nil {
		return false, nil, nil // no good manifests yet: touch nothing
	}
	obs, err := Observe(ctx, w.r.e, w.project)
	if err != nil {
		return false, nil, err
	}
	obs.Applied = w.appliedKeys()
	desired, err := w.convert(ctx, set, obs, key)
	if err != nil {
		return false, nil, err
	}
	p := plan.Diff(desired, obs, plan.Options{PruneVolumes: w.opts.PruneVolumes})
	var pending []plan.Change
	for _, c := range p.Changes {
		if c.Key != key {
			if c.Action != plan.NoOp {
				others = append(others, c.Key)
			}
			continue
		}
		if c.Action == plan.NoOp {
			w.recordObserved(c, obs)
			continue
		}
		pending = append(pending, c)
	}
	if len(pending) == 0 {
		return false, nil, nil
	}
	for _, c := range pending {
		w.log.Info("applying", "resource", key.String(), "action", c.Action.String(), "drift", string(c.Drift), "reasons", c.Reasons)
	}
	w.mu.Lock()
	rs := w.status.Resource(key)
	rs.Set(Condition{Type: ConditionReconciling, Status: True, Reason: "Progressing", Message: pending[0].Action.String(), ObservedHash: w.hashes[key]}, time.Now())
	w.mu.Unlock()
	x := w.r.executor(w.project, false, 0, nil)
	if err := x.run(ctx, p, func(k plan.Key) bool { return k == key }); err != nil {
		return false, nil, unwrapSingle(err)
	}
	w.mu.Lock()
	rs = w.status.Resource(key)
	rs.Remove(ConditionReconciling)
	rs.Remove(ConditionStalled)
	rs.Failures = 0
	for _, c := range pending {
		if c.Action == plan.Delete {
			w.status.Resources = deleteResource(w.status.Resources, key)
		}
	}
	w.mu.Unlock()
	return true, others, nil
}

// convert builds the desired state; a failure to convert another resource
// (its registry is down) does not stop this one, but this one's does.
func (w *watcher) convert(ctx context.Context, set *spec.Set, obs *plan.Observed, key plan.Key) (*plan.Desired, error) {
	d, err := Convert(ctx, set, w.project, obs.Images, w.resolver, observedHashes(obs))
	if err == nil {
		return d, nil
	}
	for _, e := range unwrapJoined(err) {
		var ce *ChangeError
		if errors.As(e, &ce) && ce.Key == key {
			return nil, e
		}
	}
	// Another resource failed to convert: acting on a partial desired state
	// could delete it, so this reconcile only proceeds for what a partial
	// state cannot hurt — it waits instead.
	return nil, &WaitingError{Reason: "other resources cannot be converted: " + firstLine(err.Error()), After: 5 * time.Second}
}

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// unwrapSingle returns the only error of a one-error multierror, so that a
// WaitingError or a terminal error is seen as such.
func unwrapSingle(err error) error {
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		if errs := m.WrappedErrors(); len(errs) == 1 {
			return errs[0]
		}
	}
	return err
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func deleteResource(rs []ResourceStatus, key plan.Key) []ResourceStatus {
	out := rs[:0]
	for _, r := range rs {
		if r.Key() != key {
			out = append(out, r)
		}
	}
	return out
}

func (w *watcher) appliedKeys() []plan.Key {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status.applied()
}

// recordObserved sets a converged resource's conditions from what runs.
func (w *watcher) recordObserved(c plan.Change, obs *plan.Observed) {
	w.mu.Lock()
	rs := w.status.Resource(c.Key)
	rs.ID = c.ID
	rs.Remove(ConditionReconciling)
	rs.Remove(ConditionStalled)
	rs.Failures = 0
	rs.Set(observedCondition(c, obs), time.Now())
	w.mu.Unlock()
	w.persist()
}

// persist writes the status when it changed (conditions, not times).
func (w *watcher) persist() {
	w.persistMu.Lock()
	defer w.persistMu.Unlock()
	w.mu.Lock()
	snap := cloneStatus(w.status)
	w.mu.Unlock()
	if w.persisted != nil && sameStatus(snap, w.persisted) {
		return
	}
	if err := w.r.writeStatus(snap, nil); err != nil {
		w.log.Warn("cannot write status", "err", err)
		return
	}
	w.persisted = snap
}

func cloneStatus(ps *ProjectStatus) *ProjectStatus {
	c := *ps
	c.Resources = make([]ResourceStatus, len(ps.Resources))
	for i, r := range ps.Resources {
		r.Conditions = append([]Condition(nil), r.Conditions...)
		c.Resources[i] = r
	}
	if ps.Watcher != nil {
		wp := *ps.Watcher
		c.Watcher = &wp
	}
	return &c
}

// cachedResolver remembers remote digests briefly, so that reconciling many
// containers of one `always` image asks its registry once.
type cachedResolver struct {
	inner ImageResolver
	ttl   time.Duration
	mu    sync.Mutex
	m     map[string]resolved
}

type resolved struct {
	digest string
	err    error
	at     time.Time
}

func (c *cachedResolver) Resolve(ctx context.Context, ref string, p *engine.Platform) (string, error) {
	k := ref
	if p != nil {
		k += "|" + p.String()
	}
	c.mu.Lock()
	if r, ok := c.m[k]; ok && time.Since(r.at) < c.ttl {
		c.mu.Unlock()
		return r.digest, r.err
	}
	c.mu.Unlock()
	d, err := c.inner.Resolve(ctx, ref, p)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]resolved{}
	}
	c.m[k] = resolved{d, err, time.Now()}
	c.mu.Unlock()
	return d, err
}

func (c *cachedResolver) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
