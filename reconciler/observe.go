package reconciler

import (
	"context"
	"fmt"
	"sync"

	"berth.dev/berth/engine"
	"berth.dev/berth/reconciler/plan"
)

// Observe reads what the engine has for project: its containers (in every
// state), networks and volumes, found by the project label, and every local
// image. The four lists are read concurrently. The engine re-checks its
// records against the kernel on every call; nothing here is cached.
func Observe(ctx context.Context, e engine.Engine, project string) (*plan.Observed, error) {
	return observe(ctx, e, project, &plan.Observed{}, func(plan.Kind) bool { return true })
}

// reobserve is Observe after changes were made: the kinds for which
// changed is true are read again, the others are taken from old (the
// project lock is held: nothing else of berth's changed them).
func reobserve(ctx context.Context, e engine.Engine, project string, old *plan.Observed, changed func(plan.Kind) bool) (*plan.Observed, error) {
	o := plan.Observed{Containers: old.Containers, Networks: old.Networks, Volumes: old.Volumes, Images: old.Images}
	return observe(ctx, e, project, &o, changed)
}

// observe reads into o the kinds for which read is true.
func observe(ctx context.Context, e engine.Engine, project string, o *plan.Observed, read func(plan.Kind) bool) (*plan.Observed, error) {
	sel := map[string]string{engine.LabelProject: project}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	if read(plan.KindContainer) {
		wg.Go(func() {
			var err error
			o.Containers, err = e.Containers().List(ctx, engine.ListContainersOptions{All: true, Labels: sel})
			if err != nil {
				errs[0] = fmt.Errorf("list containers: %w", err)
			}
		})
	}
	if read(plan.KindNetwork) {
		wg.Go(func() {
			var err error
			o.Networks, err = e.Networks().List(ctx, engine.ListOptions{Labels: sel})
			if err != nil {
				errs[1] = fmt.Errorf("list networks: %w", err)
			}
		})
	}
	if read(plan.KindVolume) {
		wg.Go(func() {
			var err error
			o.Volumes, err = e.Volumes().List(ctx, engine.ListOptions{Labels: sel})
			if err != nil {
				errs[2] = fmt.Errorf("list volumes: %w", err)
			}
		})
	}
	if read(plan.KindImage) {
		wg.Go(func() {
			var err error
			o.Images, err = e.Images().List(ctx)
			if err != nil {
				errs[3] = fmt.Errorf("list images: %w", err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("observe project %s: %w", project, err)
		}
	}
	return o, nil
}

// observedHashes maps each owned object's key to its spec-hash label.
func observedHashes(o *plan.Observed) map[plan.Key]string {
	m := map[plan.Key]string{}
	add := func(l map[string]string) {
		k, n, h := l[engine.LabelKind], l[engine.LabelName], l[engine.LabelSpecHash]
		if k != "" && n != "" && h != "" {
			m[plan.Key{Kind: plan.Kind(k), Name: n}] = h
		}
	}
	for _, c := range o.Containers {
		add(c.Config.Labels)
	}
	for _, n := range o.Networks {
		add(n.Config.Labels)
	}
	for _, v := range o.Volumes {
		add(v.Config.Labels)
	}
	return m
}

// owned counts the project's objects in o.
func owned(o *plan.Observed) int {
	return len(o.Containers) + len(o.Networks) + len(o.Volumes)
}
