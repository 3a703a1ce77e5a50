package container

import (
	"context"
	"fmt"
	"maps"

	"berth.dev/berth/engine"
)

// Update changes the restart policy, limits or labels in place. New limits
// apply to the running process at once and to every later start.
func (r *Runtime) Update(ctx context.Context, ref string, u engine.ContainerUpdate) error {
	l, err := r.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer l.release()
	o := r.observe(l.dir, l.rec)
	if err := transition(l.rec.Name, o.Status, opUpdate); err != nil {
		return err
	}
	cfg := l.rec.Config
	if u.Restart != nil {
		cfg.Restart = *u.Restart
	}
	if u.Resources != nil {
		cfg.Resources = *u.Resources
	}
	if u.Labels != nil {
		cfg.Labels = maps.Clone(u.Labels)
	}
	check := cfg
	check.Mounts = nil // validated at create; a bind source may have gone since
	if err := r.validate(&check); err != nil {
		return fmt.Errorf("update %s: %w", l.rec.Name, err)
	}
	if u.Resources != nil && r.cgroups != nil && (o.Status == engine.StatusRunning || o.Status == engine.StatusRestarting) {
		cg, err := r.cgroups.Load(cgroupPath(l.id))
		if err != nil {
			return fmt.Errorf("update %s: %w", l.rec.Name, err)
		}
		if err := cg.Update(cfg.Resources); err != nil {
			return fmt.Errorf("update %s: %w", l.rec.Name, err)
		}
	}
	l.rec.Config = cfg
	if l.rec.Spec != nil {
		l.rec.Spec.Labels = cfg.Labels
	}
	if err := r.writeRecord(l.dir, l.rec); err != nil {
		return fmt.Errorf("update %s: %w", l.rec.Name, err)
	}
	r.publish(l.rec, "update", nil)
	return nil
}
