package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"berth.dev/berth/engine"
	"berth.dev/berth/reconciler/plan"
)

// Op is what an apply does to one resource at a moment.
type Op string

// Operations, as progress events name them.
const (
	OpDestroy Op = "destroy"
	OpCreate  Op = "create"
	OpUpdate  Op = "update"
	OpStart   Op = "start"
	OpPull    Op = "pull"
	OpWait    Op = "wait" // for a dependency's condition, or for --wait
	OpConvert Op = "convert"
)

// Phase is where an operation is.
type Phase string

// Phases of an operation.
const (
	PhaseStarted Phase = "started"
	PhaseDone    Phase = "done"
	PhaseFailed  Phase = "failed"
	PhaseBlocked Phase = "blocked" // not attempted: something it needs failed
	PhaseWaiting Phase = "waiting" // still waiting (Message says for what)
)

// Event reports an apply's progress, one operation on one resource.
type Event struct {
	Time    time.Time     `json:"time"`
	Key     plan.Key      `json:"key"`
	Op      Op            `json:"op"`
	Phase   Phase         `json:"phase"`
	ID      string        `json:"id,omitempty"`
	Elapsed time.Duration `json:"elapsed,omitempty"`
	Message string        `json:"message,omitempty"`
	// On is the dependency a wait is for (empty for --wait's readiness).
	On  plan.Key `json:"on,omitzero"`
	Err error    `json:"-"`
}

// executor carries out a plan's changes.
type executor struct {
	e        engine.Engine
	project  string
	log      *slog.Logger
	parallel int
	// block says dependency conditions are waited for (apply); otherwise a
	// condition not met yet is a WaitingError (watch).
	block      bool
	depTimeout time.Duration
	progress   func(Event)
	progressMu sync.Mutex
	wake       *lazyWaker // nil: polling alone
	settle     func()     // waited for before the first change (WithSettle)
}

func (x *executor) emit(ev Event) {
	if x.progress == nil {
		return
	}
	ev.Time = time.Now()
	x.progressMu.Lock()
	defer x.progressMu.Unlock()
	x.progress(ev)
}

// step is one half of a change: the destroy half of a delete or replace,
// or the make half of a create, update or replace.
type step struct {
	ch      *plan.Change
	destroy bool
	deps    []*step
	done    chan struct{}
	err     error
}

func (s *step) addr() string { return s.ch.Key.String() }

// buildSteps turns changes into steps and the order between them.
func buildSteps(chs []*plan.Change) []*step {
	var steps []*step
	destroyOf := map[*plan.Change]*step{}
	makeOf := map[plan.Key]*step{}
	destroys := map[plan.Kind][]*step{}
	var containerDestroys []*step
	for _, c := range chs {
		if c.Action == plan.Delete || c.Action == plan.Replace {
			s := &step{ch: c, destroy: true, done: make(chan struct{})}
			destroyOf[c] = s
			destroys[c.Kind] = append(destroys[c.Kind], s)
			if c.Kind == plan.KindContainer {
				containerDestroys = append(containerDestroys, s)
			}
			steps = append(steps, s)
		}
		if c.Action == plan.Create || c.Action == plan.Replace || c.Action == plan.Update {
			s := &step{ch: c, done: make(chan struct{})}
			makeOf[c.Key] = s
			steps = append(steps, s)
		}
	}
	for _, s := range steps {
		c := s.ch
		if s.destroy {
			switch c.Kind {
			case plan.KindNetwork, plan.KindVolume:
				// Removed after every container destroyed that held it.
				for _, cd := range containerDestroys {
					for _, u := range cd.ch.ObservedUses {
						if u == c.Key {
							s.deps = append(s.deps, cd)
						}
					}
				}
			case plan.KindContainer:
				// Dependents are removed before what they depend on.
				for _, cd := range containerDestroys {
					for _, dep := range cd.ch.ObservedDependsOn {
						if dep == c.Name && cd != s {
							s.deps = append(s.deps, cd)
						}
					}
				}
			}
			continue
		}
		if d, ok := destroyOf[c]; ok {
			s.deps = append(s.deps, d)
		}
		// New objects of a kind are made after the old ones of that kind
		// are gone: names, ports and subnets are freed first.
		for _, d := range destroys[c.Kind] {
			if d.ch != c {
				s.deps = append(s.deps, d)
			}
		}
		if c.Kind == plan.KindContainer {
			for _, u := range c.Uses {
				if m, ok := makeOf[u]; ok {
					s.deps = append(s.deps, m)
				}
			}
			if c.Container != nil {
				for _, dep := range c.Container.DependsOn {
					if m, ok := makeOf[plan.Key{Kind: plan.KindContainer, Name: dep.Name}]; ok && m != s {
						s.deps = append(s.deps, m)
					}
				}
			}
		}
	}
	return steps
}

// run executes the changes of p selected by only (all when nil), in
// parallel as far as their order allows, and returns every failure in one
// *multierror.Error. A selected change that needs an unselected pending one
// returns a WaitingError.
func (x *executor) run(ctx context.Context, p *plan.Plan, only func(plan.Key) bool) error {
	var chs []*plan.Change
	for i := range p.Changes {
		if p.Changes[i].Action != plan.NoOp {
			chs = append(chs, &p.Changes[i])
		}
	}
	if len(chs) == 0 {
		return nil
	}
	if x.settle != nil {
		x.settle()
	}
	steps := buildSteps(chs)
	parallel := x.parallel
	if parallel <= 0 {
		parallel = 8
	}
	sem := make(chan struct{}, parallel)
	var g multierror.Group
	for _, s := range steps {
		selected := only == nil || only(s.ch.Key)
		g.Go(func() error {
			defer close(s.done)
			if !selected {
				s.err = errNotSelected
				return nil
			}
			for _, d := range s.deps {
				select {
				case <-d.done:
				case <-ctx.Done():
					s.err = context.Cause(ctx)
					return &ChangeError{Key: s.ch.Key, Op: s.op(), Err: s.err}
				}
				if errors.Is(d.err, errNotSelected) {
					s.err = &WaitingError{Reason: fmt.Sprintf("%s waits for %s", s.addr(), d.addr()), After: 500 * time.Millisecond, On: d.ch.Key}
					return s.err
				}
				if d.err != nil {
					s.err = &BlockedError{On: d.addr(), Self: d.ch == s.ch}
					x.emit(Event{Key: s.ch.Key, Op: s.op(), Phase: PhaseBlocked, Message: s.err.Error()})
					return &ChangeError{Key: s.ch.Key, Op: s.op(), Err: s.err}
				}
			}
			s.err = x.do(ctx, s, sem)
			if s.err != nil {
				if _, waiting := IsWaiting(s.err); waiting {
					return s.err
				}
				return &ChangeError{Key: s.ch.Key, Op: s.op(), Err: s.err}
			}
			return nil
		})
	}
	merr := g.Wait()
	if merr == nil || len(merr.Errors) == 0 {
		return nil
	}
	sort.SliceStable(merr.Errors, func(i, j int) bool {
		// Failures first, then what they blocked.
		bi, bj := isBlocked(merr.Errors[i]), isBlocked(merr.Errors[j])
		if bi != bj {
			return !bi
		}
		return merr.Errors[i].Error() < merr.Errors[j].Error()
	})
	merr.ErrorFormat = applyErrorFormat
	return merr
}

var errNotSelected = errors.New("not selected")

func isBlocked(err error) bool {
	var b *BlockedError
	return errors.As(err, &b)
}

func applyErrorFormat(errs []error) string {
	if len(errs) == 1 {
		return errs[0].Error()
	}
	blocked := 0
	for _, err := range errs {
		if isBlocked(err) {
			blocked++
		}
	}
	var b strings.Builder
	switch failed := len(errs) - blocked; {
	case blocked == 0:
		fmt.Fprintf(&b, "%d changes failed:", failed)
	case failed == 1:
		fmt.Fprintf(&b, "1 change failed, %d not attempted:", blocked)
	default:
		fmt.Fprintf(&b, "%d changes failed, %d not attempted:", failed, blocked)
	}
	for _, err := range errs {
		b.WriteString("\n  ")
		b.WriteString(strings.ReplaceAll(err.Error(), "\n", "\n    "))
	}
	return b.String()
}

func (s *step) op() Op {
	switch {
	case s.destroy:
		return OpDestroy
	case s.ch.Kind == plan.KindImage:
		return OpPull
	case s.ch.Action == plan.Update:
		if s.ch.Start && len(updatableFields(s.ch)) == 0 {
			return OpStart
		}
		return OpUpdate
	}
	return OpCreate
}

// do performs one step: dependency conditions are awaited without holding
// a parallelism slot; engine calls hold one.
func (x *executor) do(ctx context.Context, s *step, sem chan struct{}) error {
	c := s.ch
	if !s.destroy && c.Kind == plan.KindContainer && c.Container != nil && (c.Action != plan.Update || c.Start) {
		for _, dep := range c.Container.DependsOn {
			if err := x.awaitDependency(ctx, c.Key, dep); err != nil {
				return err
			}
		}
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-sem }()
	start := time.Now()
	op := s.op()
	x.emit(Event{Key: c.Key, Op: op, Phase: PhaseStarted, ID: c.ID})
	var id string
	var err error
	if s.destroy {
		err = x.destroy(ctx, c)
		id = c.ID
	} else {
		id, err = x.make(ctx, c)
	}
	if err != nil {
		x.emit(Event{Key: c.Key, Op: op, Phase: PhaseFailed, ID: id, Elapsed: time.Since(start), Err: err, Message: err.Error()})
		x.log.Debug("change failed", "resource", c.Key.String(), "op", op, "err", err)
		return err
	}
	x.emit(Event{Key: c.Key, Op: op, Phase: PhaseDone, ID: id, Elapsed: time.Since(start)})
	x.log.Debug("change applied", "resource", c.Key.String(), "op", op, "elapsed", time.Since(start))
	return nil
}

func (x *executor) destroy(ctx context.Context, c *plan.Change) error {
	switch c.Kind {
	case plan.KindContainer:
		if err := x.e.Containers().Stop(ctx, c.ID, nil); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("stop: %w", err)
		}
		err := x.e.Containers().Remove(ctx, c.ID, engine.RemoveContainerOptions{})
		if errors.Is(err, engine.ErrRunning) {
			// Started again between stop and remove (by someone else).
			err = x.e.Containers().Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true})
		}
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			// Level-based: if the container is gone, the removal happened,
			// whatever it reported about cleaning up after itself (the
			// engine's garbage collection finishes that).
			if _, ierr := x.e.Containers().Inspect(ctx, c.ID); !errors.Is(ierr, engine.ErrNotFound) {
				return fmt.Errorf("remove: %w", err)
			}
			x.log.Debug("container removed with an error", "resource", c.Key.String(), "err", err)
		}
	case plan.KindNetwork:
		if err := x.e.Networks().Remove(ctx, c.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			if errors.Is(err, engine.ErrInUse) {
				return fmt.Errorf("%w (a container berth does not manage for project %s is attached to it)", err, x.project)
			}
			return err
		}
	case plan.KindVolume:
		if err := x.e.Volumes().Remove(ctx, c.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return err
		}
	case plan.KindImage:
		// Images are shared and never deleted by berth's reconciler.
	}
	return nil
}

// make creates, updates or starts the desired object and returns its ID.
func (x *executor) make(ctx context.Context, c *plan.Change) (string, error) {
	switch c.Kind {
	case plan.KindNetwork:
		n, err := x.e.Networks().Create(ctx, c.Network.Config)
		if errors.Is(err, engine.ErrExists) {
			if have, ierr := x.e.Networks().Inspect(ctx, c.Network.Config.Name); ierr == nil && have.Config.Labels[engine.LabelProject] == x.project {
				return have.ID, nil
			}
			return "", Terminal(fmt.Errorf("network name %s is taken by a network project %s does not own: remove or rename it: %w", c.Network.Config.Name, x.project, err))
		}
		if err != nil {
			return "", err
		}
		return n.ID, nil
	case plan.KindVolume:
		v, err := x.e.Volumes().Create(ctx, c.Volume.Config)
		if err != nil {
			return "", err
		}
		if v.Config.Labels[engine.LabelProject] != x.project {
			return v.Name, Terminal(fmt.Errorf("volume %s exists and is not project %s's (it has no project label): remove it, or rename the volume in the manifests", v.Name, x.project))
		}
		return v.Name, nil
	case plan.KindImage:
		return x.pull(ctx, c.Image)
	case plan.KindContainer:
		return x.makeContainer(ctx, c)
	}
	return "", fmt.Errorf("unknown kind %q", c.Kind)
}

// pull fetches exactly the planned digest, then points the tag at it, so
// that a later ifNotPresent finds it by tag.
func (x *executor) pull(ctx context.Context, im *plan.Image) (string, error) {
	if im.Digest == "" {
		return "", Terminal(fmt.Errorf("image %s is local only and not present", im.Ref))
	}
	got, err := x.e.Images().Pull(ctx, im.Pin, engine.PullOptions{Platform: im.Platform})
	if err != nil {
		return "", err
	}
	if p, err := parseImageRef(im.Ref); err == nil && p.tag != "" {
		if err := x.e.Images().Tag(ctx, im.Pin, im.Ref); err != nil {
			return got.ID, fmt.Errorf("tag %s: %w", im.Ref, err)
		}
	}
	return got.ID, nil
}

// updatableFields are the changed fields Containers.Update applies.
func updatableFields(c *plan.Change) []plan.Field {
	var fs []plan.Field
	for _, f := range c.Fields {
		if f.Path != "state" && !f.ForcesReplace {
			fs = append(fs, f)
		}
	}
	return fs
}

func (x *executor) makeContainer(ctx context.Context, c *plan.Change) (string, error) {
	cfg := c.Container.Config
	cs := x.e.Containers()
	if c.Action == plan.Update {
		if len(updatableFields(c)) > 0 {
			u := engine.ContainerUpdate{Restart: &cfg.Restart, Resources: &cfg.Resources, Labels: cfg.Labels}
			if err := cs.Update(ctx, c.ID, u); err != nil {
				return c.ID, fmt.Errorf("update: %w", err)
			}
		}
		if c.Start {
			if err := cs.Start(ctx, c.ID); err != nil && !errors.Is(err, engine.ErrRunning) {
				return c.ID, fmt.Errorf("start: %w", err)
			}
		}
		return c.ID, nil
	}
	ct, err := cs.Create(ctx, cfg)
	if errors.Is(err, engine.ErrExists) {
		have, ierr := cs.Inspect(ctx, cfg.Name)
		if ierr != nil || have.Config.Labels[engine.LabelProject] != x.project {
			return "", Terminal(fmt.Errorf("container name %s is taken by a container project %s does not own: remove or rename it: %w", cfg.Name, x.project, err))
		}
		// Ours, made since the plan was computed (another apply raced this
		// one's observation): it is replaced on the next reconcile.
		return have.ID, fmt.Errorf("container %s appeared since the plan was made: %w", cfg.Name, err)
	}
	if err != nil {
		if errors.Is(err, engine.ErrInvalid) {
			return "", Terminal(err)
		}
		return "", err
	}
	if err := cs.Start(ctx, ct.ID); err != nil && !errors.Is(err, engine.ErrRunning) {
		return ct.ID, fmt.Errorf("start: %w", err)
	}
	return ct.ID, nil
}

// ---------------------------------------------------------------- waiting

// awaitDependency waits until the container dep names reaches its
// condition. When the executor does not block it returns a WaitingError.
func (x *executor) awaitDependency(ctx context.Context, key plan.Key, dep plan.Dependency) error {
	name := objectName(x.project, dep.Name)
	depKey := plan.Key{Kind: plan.KindContainer, Name: dep.Name}
	var cancel context.CancelFunc = func() {}
	if x.block && x.depTimeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, x.depTimeout,
			fmt.Errorf("%s did not become %s within %s", depKey, dep.Condition, x.depTimeout))
	}
	defer cancel()
	announced := false
	start := time.Now()
	return x.poll(ctx, func() (bool, error) {
		ct, err := x.e.Containers().Inspect(ctx, name)
		var met bool
		var why string
		if errors.Is(err, engine.ErrNotFound) {
			why = depKey.String() + " does not exist yet"
		} else if err != nil {
			return false, err
		} else {
			met, why, err = conditionMet(ct, dep.Condition)
			if err != nil {
				return false, fmt.Errorf("dependency %s: %w", depKey, err)
			}
		}
		if met {
			if announced {
				x.emit(Event{Key: key, Op: OpWait, Phase: PhaseDone, Elapsed: time.Since(start), On: depKey, Message: depKey.String() + " is " + dep.Condition})
			}
			return true, nil
		}
		if !x.block {
			return false, &WaitingError{Reason: fmt.Sprintf("waiting for %s to be %s: %s", depKey, dep.Condition, why), After: time.Second, On: depKey}
		}
		if !announced {
			announced = true
			x.emit(Event{Key: key, Op: OpWait, Phase: PhaseWaiting, On: depKey, Message: fmt.Sprintf("waiting for %s to be %s", depKey, dep.Condition)})
		}
		return false, nil
	})
}

// conditionMet says whether ct satisfies a dependsOn condition; err says it
// never will without a change (it exited with an error, it is dead).
func conditionMet(ct engine.Container, cond string) (bool, string, error) {
	st := ct.State
	switch st.Status {
	case engine.StatusDead:
		return false, "", errors.New("is dead")
	case engine.StatusRemoving:
		return false, "being removed", nil
	}
	switch cond {
	case plan.ConditionCompleted:
		switch st.Status {
		case engine.StatusExited:
			if st.ExitCode == 0 {
				return true, "", nil
			}
			return false, "", fmt.Errorf("exited with code %d", st.ExitCode)
		case engine.StatusCreated:
			return false, "not started", nil
		}
		return false, "still running", nil
	case plan.ConditionHealthy:
		if ct.Config.Healthcheck != nil {
			if st.Status != engine.StatusRunning {
				return false, "not running (" + string(st.Status) + ")", nil
			}
			if st.Health == nil || st.Health.Status == "starting" || st.Health.Status == "" {
				return false, "health is starting", nil
			}
			if st.Health.Status == "unhealthy" {
				return false, "unhealthy", nil
			}
			return true, "", nil
		}
		fallthrough
	default: // started
		switch st.Status {
		case engine.StatusRunning, engine.StatusRestarting:
			return true, "", nil
		case engine.StatusExited:
			if !st.StartedAt.IsZero() {
				return true, "", nil // it started, and has already finished
			}
		}
		return false, "not started", nil
	}
}

// poll calls check until it reports done or an error, waking on engine
// events and at least every 500 ms.
func (x *executor) poll(ctx context.Context, check func() (bool, error)) error {
	interval := 10 * time.Millisecond
	for {
		var wake <-chan struct{}
		if w := x.wake.get(); w != nil {
			wake = w.changed()
		}
		done, err := check()
		if done || err != nil {
			return err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-wake:
			t.Stop()
		case <-t.C:
		}
		if interval < 500*time.Millisecond {
			interval *= 2
		}
	}
}

// lazyWaker subscribes to the engine's events on the first wait, not
// before: while anyone subscribes, every engine event (each container's
// create, start, network attach...) is marshalled and sent to the
// subscriber, which an apply without dependsOn or --wait never reads.
type lazyWaker struct {
	ctx  context.Context
	e    engine.Engine
	once sync.Once
	w    *waker
}

func newLazyWaker(ctx context.Context, e engine.Engine) *lazyWaker {
	return &lazyWaker{ctx: ctx, e: e}
}

// get returns the waker, subscribing on the first call; nil when there is
// none (no lazy waker, or an engine without events).
func (l *lazyWaker) get() *waker {
	if l == nil {
		return nil
	}
	l.once.Do(func() { l.w = newWaker(l.ctx, l.e) })
	return l.w
}

// waker broadcasts "something happened" from the engine's event stream.
type waker struct {
	mu sync.Mutex
	ch chan struct{}
}

func newWaker(ctx context.Context, e engine.Engine) *waker {
	w := &waker{ch: make(chan struct{})}
	events, err := e.Events(ctx)
	if err != nil {
		return nil // the engine has no event stream: polling alone
	}
	go func() {
		for range events {
			w.mu.Lock()
			close(w.ch)
			w.ch = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *waker) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// ready says whether a container is where --wait wants it: running and
// healthy (when it has a healthcheck), or completed.
func ready(ct engine.Container) (bool, string, error) {
	st := ct.State
	switch st.Status {
	case engine.StatusRunning:
		if ct.Config.Healthcheck != nil {
			if st.Health != nil && st.Health.Status == "healthy" {
				return true, "healthy", nil
			}
			if st.Health != nil && st.Health.Status == "unhealthy" {
				return false, "unhealthy", nil
			}
			return false, "health is starting", nil
		}
		return true, "running", nil
	case engine.StatusExited:
		switch ct.Config.Restart.Name {
		case "always", "unless-stopped":
			return false, "", fmt.Errorf("exited with code %d (stopped)", st.ExitCode)
		}
		if st.ExitCode == 0 {
			return true, "completed", nil
		}
		return false, "", fmt.Errorf("exited with code %d", st.ExitCode)
	case engine.StatusDead:
		return false, "", errors.New("is dead")
	}
	return false, string(st.Status), nil
}
