package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/reconciler/plan"
	"berth.dev/berth/spec"
)

// Reconciler converges the engine's objects to manifests.
//
//	r := reconciler.New(eng, reconciler.WithDataRoot("/var/lib/berth"))
//	res, err := r.Plan(ctx, reconciler.PlanOptions{Target: reconciler.Target{Dir: "manifests"}})
//	if err != nil {
//		return err
//	}
//	render.Human(os.Stdout, res.Plan, render.Options{})
//	_, err = r.Apply(ctx, reconciler.ApplyOptions{PlanOptions: opts, Wait: true})
type Reconciler struct {
	e        engine.Engine
	dataRoot string
	log      *slog.Logger
	parallel int
	settle   func()
}

// Option configures a Reconciler.
type Option func(*Reconciler)

// WithDataRoot sets where project locks and status live (the engine's data
// root: <root>/projects/<project>/).
func WithDataRoot(dir string) Option { return func(r *Reconciler) { r.dataRoot = dir } }

// WithLogger sets the logger for debug diagnostics and watch's structured
// lines.
func WithLogger(l *slog.Logger) Option { return func(r *Reconciler) { r.log = l } }

// WithParallelism bounds how many changes run at once (default 8).
func WithParallelism(n int) Option { return func(r *Reconciler) { r.parallel = n } }

// WithSettle sets what to wait for before making any change (and not before
// reading): the engine's collection of leftovers, which may run while the
// reconciler observes (local.Engine.WaitGC).
func WithSettle(fn func()) Option { return func(r *Reconciler) { r.settle = fn } }

// New returns a Reconciler on engine e.
func New(e engine.Engine, opts ...Option) *Reconciler {
	r := &Reconciler{e: e, dataRoot: "/var/lib/berth", parallel: 8}
	for _, o := range opts {
		o(r)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

// Target names a project's manifests.
type Target struct {
	// Dir is the manifest directory (or one manifest file).
	Dir string
	// Project overrides the project name, which is otherwise Dir's base
	// name made a DNS label.
	Project string
}

func (t Target) resolve(needDir bool) (dir, project string, err error) {
	if t.Dir == "" {
		t.Dir = "."
	}
	dir, err = filepath.Abs(t.Dir)
	if err != nil {
		return "", "", err
	}
	project = t.Project
	if project == "" {
		project, err = ProjectName(dir)
		if err != nil {
			return "", "", err
		}
	} else if !ValidProject(project) {
		return "", "", Terminal(fmt.Errorf("project name %q: use lower case letters, digits and '-' (at most 63), e.g. %q", project, SanitizeProject(project)))
	}
	if needDir {
		if _, err := os.Stat(dir); err != nil {
			return "", "", fmt.Errorf("manifests %s: %w: %w", t.Dir, err, ErrRefused)
		}
	}
	return dir, project, nil
}

// PlanOptions say what to plan.
type PlanOptions struct {
	Target
	// PruneVolumes deletes owned volumes that left the manifests (and
	// re-creates volumes whose manifest changed).
	PruneVolumes bool
	// AllowEmpty lets a manifest set with no resources delete what the
	// project owns.
	AllowEmpty bool
	// Destroy plans the removal of everything the project owns, reading no
	// manifests.
	Destroy bool
}

// PlanResult is a plan and what it was computed from.
type PlanResult struct {
	Project  string
	Dir      string
	Options  PlanOptions
	Plan     *plan.Plan
	Desired  *plan.Desired
	Observed *plan.Observed
	// Files are the manifest files read.
	Files []string

	fpOnce           sync.Once
	desiredFP, obsFP string
	previous         *ProjectStatus
}

// DesiredFingerprint digests the desired state (plan.FingerprintDesired).
func (p *PlanResult) DesiredFingerprint() string { p.fingerprints(); return p.desiredFP }

// ObservedFingerprint digests the observed state (plan.FingerprintObserved).
func (p *PlanResult) ObservedFingerprint() string { p.fingerprints(); return p.obsFP }

func (p *PlanResult) fingerprints() {
	p.fpOnce.Do(func() {
		p.desiredFP = plan.FingerprintDesired(p.Desired)
		p.obsFP = plan.FingerprintObserved(p.Desired, p.Observed)
	})
}

// Load reads and validates the manifests of dir. Every problem is reported
// at once, with file:line:col; such errors are terminal.
func Load(dir string) (*spec.Set, error) {
	set, err := spec.Load(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("manifests %s: %w: %w", dir, err, ErrRefused)
		}
		return nil, Terminal(err)
	}
	return set, nil
}

// Plan observes the project, converts its manifests and diffs the two. It
// changes nothing and writes nothing.
func (r *Reconciler) Plan(ctx context.Context, opts PlanOptions) (*PlanResult, error) {
	dir, project, err := opts.Target.resolve(!opts.Destroy)
	if err != nil {
		return nil, err
	}
	var set *spec.Set
	if !opts.Destroy {
		set, err = Load(dir)
		if err != nil {
			return nil, err
		}
	}
	return r.planSet(ctx, set, dir, project, opts)
}

// planSet is Plan once the manifests are loaded (nil for a destroy).
func (r *Reconciler) planSet(ctx context.Context, set *spec.Set, dir, project string, opts PlanOptions) (*PlanResult, error) {
	obs, err := Observe(ctx, r.e, project)
	if err != nil {
		return nil, err
	}
	prev, _ := r.readStatus(project) // only words drift; a bad file is no reason to stop
	obs.Applied = prev.applied()
	res := &PlanResult{Project: project, Dir: dir, Options: opts, Observed: obs, previous: prev}
	if opts.Destroy {
		res.Dir = ""
		res.Desired = &plan.Desired{Project: project}
	} else {
		res.Files = set.Files()
		if set.Len() == 0 && owned(obs) > 0 && !opts.AllowEmpty {
			return nil, fmt.Errorf("no resources in the manifests at %s (%d files read): refusing to delete the %d objects project %s owns; "+
				"run `berth destroy` to remove them, or apply with --allow-empty: %w", dir, len(res.Files), owned(obs), project, ErrRefused)
		}
		res.Desired, err = Convert(ctx, set, project, obs.Images, r.e.Images(), observedHashes(obs))
		if err != nil {
			return nil, err
		}
	}
	res.Plan = plan.Diff(res.Desired, obs, plan.Options{PruneVolumes: opts.PruneVolumes})
	return res, nil
}

// ApplyOptions say what to apply and how.
type ApplyOptions struct {
	PlanOptions
	// Wait waits, after the changes, until every desired container is
	// running and healthy (when it has a healthcheck) or has completed.
	Wait bool
	// Timeout bounds each dependsOn wait and the Wait (default 5 minutes).
	Timeout time.Duration
	// LockTimeout is how long to wait for another apply of the project to
	// finish (0: fail at once).
	LockTimeout time.Duration
	// Progress receives an event per operation; calls are serialized.
	Progress func(Event)
	// OnLockWait is called when the lock is busy and Apply starts waiting.
	OnLockWait func(holder string)
}

// ApplyResult is what Apply did.
type ApplyResult struct {
	*PlanResult
	Elapsed time.Duration
}

const defaultTimeout = 5 * time.Minute

// Apply converges the project: lock, plan, execute, record status, and
// with Wait, wait for the containers. Failures of independent changes do
// not stop the others; all are returned in one error.
func (r *Reconciler) Apply(ctx context.Context, opts ApplyOptions) (*ApplyResult, error) {
	start := time.Now()
	dir, project, err := opts.Target.resolve(!opts.Destroy)
	if err != nil {
		return nil, err
	}
	var set *spec.Set
	if !opts.Destroy {
		// Read the manifests before taking the lock: a syntax error
		// should not wait for another apply.
		if set, err = Load(dir); err != nil {
			return nil, err
		}
	}
	lock, err := r.lockProject(ctx, project, opts.LockTimeout, opts.OnLockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	planStart := time.Now()
	res, err := r.planSet(ctx, set, dir, project, opts.PlanOptions)
	if err != nil {
		return nil, err
	}
	r.log.Debug("planned", "project", project, "elapsed", time.Since(planStart), "changes", len(res.Plan.Pending()))
	err = r.execute(ctx, res, opts)
	return &ApplyResult{PlanResult: res, Elapsed: time.Since(start)}, err
}

// ApplyPlanFile applies a saved plan exactly, after checking that neither
// the manifests nor the host changed since it was made.
func (r *Reconciler) ApplyPlanFile(ctx context.Context, pf *PlanFile, opts ApplyOptions) (*ApplyResult, error) {
	start := time.Now()
	popts := PlanOptions{
		Target:       Target{Dir: pf.Dir, Project: pf.Project},
		PruneVolumes: pf.PruneVolumes, AllowEmpty: pf.AllowEmpty, Destroy: pf.Destroy,
	}
	var set *spec.Set
	if !pf.Destroy {
		var err error
		if set, err = Load(pf.Dir); err != nil {
			return nil, fmt.Errorf("saved plan: %w", err)
		}
	}
	lock, err := r.lockProject(ctx, pf.Project, opts.LockTimeout, opts.OnLockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	now, err := r.planSet(ctx, set, pf.Dir, pf.Project, popts)
	if err != nil {
		return nil, err
	}
	if now.DesiredFingerprint() != pf.DesiredFingerprint {
		return nil, fmt.Errorf("the manifests in %s (or what their image tags resolve to) changed since the plan was made: %w; run berth plan again", pf.Dir, ErrStale)
	}
	if now.ObservedFingerprint() != pf.ObservedFingerprint {
		return nil, fmt.Errorf("project %s changed on this host since the plan was made: %w; run berth plan again", pf.Project, ErrStale)
	}
	now.Plan = pf.Plan // exactly what was reviewed
	opts.PlanOptions = popts
	err = r.execute(ctx, now, opts)
	return &ApplyResult{PlanResult: now, Elapsed: time.Since(start)}, err
}

// Destroy removes everything the project owns (volumes only with
// PruneVolumes). It reads no manifests.
func (r *Reconciler) Destroy(ctx context.Context, opts ApplyOptions) (*ApplyResult, error) {
	opts.Destroy = true
	opts.Wait = false
	return r.Apply(ctx, opts)
}

// execute runs a plan's changes under the lock, records status, and waits.
func (r *Reconciler) execute(ctx context.Context, res *PlanResult, opts ApplyOptions) error {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	x := r.executor(res.Project, true, timeout, opts.Progress)
	var err error
	if res.Plan.HasChanges() {
		wctx, cancel := context.WithCancel(ctx)
		x.wake = newLazyWaker(wctx, r.e)
		err = x.run(ctx, res.Plan, nil)
		cancel()
	}
	start := time.Now()
	if serr := r.recordApply(ctx, res, err); serr != nil && err == nil {
		err = serr
	}
	r.log.Debug("status recorded", "project", res.Project, "elapsed", time.Since(start))
	if err == nil && opts.Wait {
		err = r.waitReady(ctx, x, res.Desired, timeout)
	}
	return err
}

func (r *Reconciler) executor(project string, block bool, timeout time.Duration, progress func(Event)) *executor {
	return &executor{e: r.e, project: project, log: r.log, parallel: r.parallel, block: block, depTimeout: timeout, progress: progress, settle: r.settle}
}

// recordApply updates the persisted status after an apply: each resource's
// Ready condition from a fresh observation (cheap: four list calls), and
// failures from err.
func (r *Reconciler) recordApply(ctx context.Context, res *PlanResult, applyErr error) error {
	if !res.Plan.HasChanges() && res.previous != nil && len(res.previous.Resources) > 0 && res.previous.Dir == res.Dir {
		return nil // nothing changed; the status on disk stands
	}
	obs := res.Observed
	p := res.Plan
	if res.Plan.HasChanges() {
		// Only the kinds that had changes are read again.
		changed := map[plan.Kind]bool{}
		for _, ch := range res.Plan.Pending() {
			changed[ch.Kind] = true
		}
		o, err := reobserve(ctx, r.e, res.Project, res.Observed, func(k plan.Kind) bool { return changed[k] })
		if err != nil {
			return err
		}
		obs = o
		// Re-diff to learn the new IDs and what is still pending.
		p = plan.Diff(res.Desired, obs, plan.Options{PruneVolumes: res.Options.PruneVolumes})
	}
	ps := r.statusFrom(res.Project, res.Dir, p, obs, res.previous)
	for key, f := range failures(applyErr) {
		var hash string
		if ch, ok := p.Get(key); ok {
			hash = desiredHash(ch)
		}
		recordFailure(ps.Resource(key), f.text, f.terminal, hash, time.Now())
	}
	if res.Options.Destroy && applyErr == nil {
		err := os.Remove(r.statusPath(res.Project))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return r.writeStatus(ps, res.previous)
}

// statusFrom builds a project's status from a plan and an observation,
// keeping from prev the transition times, failure counts, and Stalled
// conditions that are still about the desired spec.
func (r *Reconciler) statusFrom(project, dir string, p *plan.Plan, obs *plan.Observed, prev *ProjectStatus) *ProjectStatus {
	ps := &ProjectStatus{Project: project, Dir: dir}
	now := time.Now()
	for _, ch := range p.Changes {
		if ch.Action == plan.Delete {
			continue
		}
		rs := ps.Resource(ch.Key)
		if prev != nil {
			for _, old := range prev.Resources {
				if old.Key() == ch.Key {
					rs.Conditions = append(rs.Conditions, old.Conditions...)
					rs.Failures = old.Failures
				}
			}
		}
		rs.ID = ch.ID
		rs.Remove(ConditionReconciling)
		if ch.Action == plan.NoOp {
			rs.Set(observedCondition(ch, obs), now)
			rs.Remove(ConditionStalled)
			rs.Failures = 0
			continue
		}
		stalled, isStalled := rs.Get(ConditionStalled)
		if isStalled && stalled.ObservedHash == desiredHash(ch) {
			continue // still failing for this very spec: keep its Ready too
		}
		rs.Remove(ConditionStalled)
		rs.Set(pendingCondition(ch), now)
	}
	ps.sort()
	return ps
}

// recordFailure marks a resource as failed: Stalled when a person must act.
func recordFailure(rs *ResourceStatus, msg string, terminal bool, hash string, now time.Time) {
	rs.Failures++
	reason := "ReconciliationFailed"
	if terminal {
		reason = "Stalled"
		rs.Set(Condition{Type: ConditionStalled, Status: True, Reason: "NeedsAttention", Message: msg, ObservedHash: hash}, now)
	}
	rs.Set(Condition{Type: ConditionReady, Status: False, Reason: reason, Message: msg, ObservedHash: hash}, now)
}

// Status reports each resource of the project: the manifests and the host
// as they are now, with the failures and Stalled conditions that the last
// apply or the watcher recorded.
func (r *Reconciler) Status(ctx context.Context, t Target) (*ProjectStatus, error) {
	dir, project, err := t.resolve(false)
	if err != nil {
		return nil, err
	}
	prev, _ := r.readStatus(project)
	obs, err := Observe(ctx, r.e, project)
	if err != nil {
		return nil, err
	}
	obs.Applied = prev.applied()
	var desired *plan.Desired
	set, lerr := Load(dir)
	if lerr == nil {
		desired, lerr = Convert(ctx, set, project, obs.Images, r.e.Images(), observedHashes(obs))
	}
	if lerr != nil {
		// Still show what runs, as a plan with nothing desired would list it.
		desired = &plan.Desired{Project: project}
	}
	p := plan.Diff(desired, obs, plan.Options{})
	ps := r.statusFrom(project, dir, p, obs, prev)
	ps.UpdatedAt = time.Now().UTC()
	if lerr != nil {
		ps.Error = lerr.Error()
		for _, ch := range p.Changes {
			if ch.Action == plan.Delete && ch.Kind != plan.KindImage {
				rs := ps.Resource(ch.Key)
				rs.ID = ch.ID
				seen := observedCondition(ch, obs)
				rs.Set(Condition{Type: ConditionReady, Status: Unknown, Reason: "ManifestsUnreadable",
					Message: strings.ToLower(seen.Reason) + "; the manifests cannot be read, berth keeps what runs"}, time.Now())
			}
		}
	} else {
		for _, ch := range p.Changes {
			if ch.Action == plan.Delete {
				rs := ps.Resource(ch.Key)
				rs.ID = ch.ID
				rs.Set(pendingCondition(ch), time.Now())
			}
		}
	}
	if prev.Watcher != nil && prev.Watcher.Alive() {
		ps.Watcher = prev.Watcher
		for _, old := range prev.Resources {
			if c, ok := old.Get(ConditionReconciling); ok && c.Status == True {
				ps.Resource(old.Key()).Set(c, c.LastTransitionTime)
			}
		}
	}
	ps.sort()
	return ps, nil
}

type failure struct {
	text     string
	terminal bool
}

// failures maps the resources of an apply error's ChangeErrors to their
// messages.
func failures(err error) map[plan.Key]failure {
	out := map[plan.Key]failure{}
	if err == nil {
		return out
	}
	errs := []error{err}
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		errs = m.WrappedErrors()
	} else if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *ChangeError
		if errors.As(e, &ce) {
			out[ce.Key] = failure{text: ce.Err.Error(), terminal: IsTerminal(ce.Err)}
		}
	}
	return out
}

// waitReady waits until every desired container is ready (see ready).
func (r *Reconciler) waitReady(ctx context.Context, x *executor, d *plan.Desired, timeout time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("containers not ready within %s (--timeout)", timeout))
	defer cancel()
	x.wake = newLazyWaker(ctx, r.e)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, c := range d.Containers {
		key := plan.Key{Kind: plan.KindContainer, Name: c.Name}
		wg.Go(func() {
			start := time.Now()
			announced := false
			var last string
			err := x.poll(ctx, func() (bool, error) {
				ct, err := r.e.Containers().Inspect(ctx, c.Config.Name)
				if err != nil {
					return false, err
				}
				ok, why, err := ready(ct)
				last = why
				if err != nil || ok {
					return ok, err
				}
				if !announced {
					announced = true
					x.emit(Event{Key: key, Op: OpWait, Phase: PhaseWaiting, Message: "waiting until ready: " + why})
				}
				return false, nil
			})
			if err != nil {
				if last != "" && ctx.Err() != nil {
					err = fmt.Errorf("%w (last: %s)", err, last)
				}
				x.emit(Event{Key: key, Op: OpWait, Phase: PhaseFailed, Err: err, Message: err.Error(), Elapsed: time.Since(start)})
				mu.Lock()
				errs = append(errs, &ChangeError{Key: key, Op: OpWait, Err: err})
				mu.Unlock()
				return
			}
			x.emit(Event{Key: key, Op: OpWait, Phase: PhaseDone, Message: last, Elapsed: time.Since(start)})
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
