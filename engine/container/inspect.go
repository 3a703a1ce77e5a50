package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

// observed is a container's state as re-checked against the kernel.
type observed struct {
	engine.ContainerState
	raw          shim.State
	monitorAlive bool
	// settling: the process exited and its monitor has not recorded it yet.
	settling bool
}

// observe combines the monitor's last word with the kernel's: a recorded
// process counts only while its pid, start time and boot ID still match.
func (r *Runtime) observe(dir string, rec *record) observed {
	// A process that just exited is recorded by its monitor within
	// milliseconds: give it that long rather than report a half-known state.
	for i := 0; ; i++ {
		o := r.observeOnce(dir, rec)
		if !o.settling || i == 40 {
			return o
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *Runtime) observeOnce(dir string, rec *record) observed {
	st := r.readState(dir)
	o := observed{raw: st}
	o.Status = st.Status
	if o.Status == "" {
		o.Status = engine.StatusCreated
	}
	o.ExitCode = st.ExitCode
	o.Error = st.Error
	o.OOMKilled = st.OOMKilled
	o.StartedAt = st.StartedAt
	o.FinishedAt = st.FinishedAt
	o.RestartCount = st.RestartCount
	o.Health = st.Health
	o.monitorAlive = st.Monitor.Alive()
	switch o.Status {
	case engine.StatusRunning:
		initAlive := st.Init.Alive()
		switch {
		case initAlive:
			o.Running, o.Pid = true, st.Init.Pid
		case o.monitorAlive:
			// Exited a moment ago; its monitor is recording it.
			o.Status, o.settling = engine.StatusExited, true
		default:
			o.Status = engine.StatusDead
		}
	case engine.StatusRestarting:
		if !o.monitorAlive {
			o.Status = engine.StatusDead
		}
	}
	if o.Status != engine.StatusRunning {
		o.Health = nil
		if st.Health != nil && o.Status != engine.StatusDead {
			h := *st.Health
			o.Health = &h
		}
	}
	if rec != nil && rec.Removing {
		o.Status = engine.StatusRemoving
		o.Running = false
	}
	return o
}

// container is the engine's view of a container. Network endpoints are read
// only for Inspect (withEndpoints): List stays free of calls into the
// network manager, which asks the runtime for its users under its own lock.
func (r *Runtime) container(ctx context.Context, dir string, rec *record) engine.Container {
	return r.view(ctx, dir, rec, false)
}

func (r *Runtime) view(ctx context.Context, dir string, rec *record, withEndpoints bool) engine.Container {
	o := r.observe(dir, rec)
	c := engine.Container{
		ID:      rec.ID,
		Name:    rec.Name,
		Created: rec.Created,
		ImageID: rec.ImageID,
		Config:  rec.Config,
		State:   o.ContainerState,
		Command: rec.Command,
		LogPath: filepath.Join(dir, shim.LogFile),
	}
	if c.State.Running {
		c.Ports = rec.Ports
	}
	if withEndpoints && r.networks != nil && networkMode(rec.Config) == engine.NetworkModeBridge {
		if eps, err := r.networks.Endpoints(ctx, rec.ID); err == nil {
			c.Endpoints = eps
		}
	}
	return c
}

// Inspect returns one container by ID, ID prefix or name.
func (r *Runtime) Inspect(ctx context.Context, ref string) (engine.Container, error) {
	id, err := r.resolve(ref)
	if err != nil {
		return engine.Container{}, err
	}
	dir := r.cdir(id)
	rec, err := r.readRecord(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return engine.Container{}, fmt.Errorf("container %s: %w", ref, engine.ErrNotFound)
		}
		return engine.Container{}, fmt.Errorf("inspect %s: %w", ref, err)
	}
	return r.view(ctx, dir, rec, true), nil
}

// List returns containers, running ones only unless opts.All, newest first.
func (r *Runtime) List(ctx context.Context, opts engine.ListContainersOptions) ([]engine.Container, error) {
	ids, err := r.ids()
	if err != nil {
		return nil, err
	}
	out := make([]engine.Container, 0, len(ids))
	for _, id := range ids {
		dir := r.cdir(id)
		rec, err := r.readRecord(dir)
		if err != nil {
			continue // removed meanwhile
		}
		if !engine.MatchLabels(rec.Config.Labels, opts.Labels) {
			continue
		}
		c := r.container(ctx, dir, rec)
		if !opts.All && !c.State.Running {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Users returns what containers use, for the stores' in-use checks: image
// IDs, volume names and network references, each to the IDs of the
// containers using them. It reads only the records.
func (r *Runtime) Users(ctx context.Context) (images, volumes, networks map[string][]string, err error) {
	ids, err := r.ids()
	if err != nil {
		return nil, nil, nil, err
	}
	images, volumes, networks = map[string][]string{}, map[string][]string{}, map[string][]string{}
	for _, id := range ids {
		rec, err := r.readRecord(r.cdir(id))
		if err != nil {
			continue
		}
		images[rec.ImageID] = append(images[rec.ImageID], id)
		for _, m := range rec.Config.Mounts {
			if m.Type == engine.MountVolume {
				volumes[m.Source] = append(volumes[m.Source], id)
			}
		}
		for _, n := range rec.Config.Networks {
			networks[n.Network] = append(networks[n.Network], id)
		}
	}
	return images, volumes, networks, nil
}
