package enginetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/engine"
)

type fakeContainers Fake

var _ engine.Containers = (*fakeContainers)(nil)

type fakeContainer struct {
	c          engine.Container
	manualStop bool          // stopped or killed through the API: the restart policy stays out
	backoff    time.Duration // next restart delay
	exits      int           // number of exits so far, for next-exit waits
	removed    bool
	changed    chan struct{} // closed and replaced on every state change
	exitTimer  *time.Timer
	restart    *time.Timer
	health     *time.Timer
	logs       []engine.LogEntry
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

var nextPid = 10000

func (c *fakeContainer) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func cloneContainer(c *engine.Container) engine.Container {
	out := *c
	out.Config = cloneConfig(c.Config)
	out.Command = slices.Clone(c.Command)
	out.Endpoints = slices.Clone(c.Endpoints)
	out.Ports = nil
	if c.State.Running {
		out.Ports = slices.Clone(c.Ports)
	}
	if c.State.Health != nil {
		h := *c.State.Health
		h.Log = slices.Clone(h.Log)
		out.State.Health = &h
	}
	return out
}

func cloneConfig(c engine.ContainerConfig) engine.ContainerConfig {
	out := c
	out.Entrypoint = slices.Clone(c.Entrypoint)
	out.Cmd = slices.Clone(c.Cmd)
	out.Env = slices.Clone(c.Env)
	out.Labels = maps.Clone(c.Labels)
	out.Mounts = slices.Clone(c.Mounts)
	out.Networks = slices.Clone(c.Networks)
	for i := range out.Networks {
		out.Networks[i].Aliases = slices.Clone(c.Networks[i].Aliases)
	}
	out.Ports = slices.Clone(c.Ports)
	out.CapAdd = slices.Clone(c.CapAdd)
	out.CapDrop = slices.Clone(c.CapDrop)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		out.Healthcheck = &h
	}
	return out
}

// lookupContainerLocked finds a container by ID, unique ID prefix or name.
func (f *Fake) lookupContainerLocked(id string) (*fakeContainer, error) {
	if c, ok := f.containers[id]; ok {
		return c, nil
	}
	for _, c := range f.containers {
		if c.c.Name == id {
			return c, nil
		}
	}
	var found *fakeContainer
	if id != "" && isHex(id) {
		for cid, c := range f.containers {
			if strings.HasPrefix(cid, id) {
				if found != nil {
					return nil, fmt.Errorf("container %s: ambiguous ID prefix: %w", id, engine.ErrInvalid)
				}
				found = c
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("container %s: %w", id, engine.ErrNotFound)
	}
	return found, nil
}

func running(c *fakeContainer) bool {
	return c.c.State.Status == engine.StatusRunning || c.c.State.Status == engine.StatusRestarting
}

// portConflictLocked reports a host port another running container holds.
func (f *Fake) portConflictLocked(self string, ports []engine.PortBinding) error {
	for _, p := range ports {
		if p.HostPort == 0 {
			continue // one is chosen at start
		}
		for _, o := range f.containers {
			if o.c.ID == self || !running(o) {
				continue
			}
			for _, q := range o.c.Ports { // as bound at its start
				proto := func(s string) string {
					if s == "" {
						return "tcp"
					}
					return s
				}
				if q.HostPort == p.HostPort && proto(q.Protocol) == proto(p.Protocol) &&
					(q.HostIP == "" || p.HostIP == "" || q.HostIP == p.HostIP) {
					return fmt.Errorf("port %d/%s is taken by container %s: %w", p.HostPort, proto(p.Protocol), o.c.Name, engine.ErrConflict)
				}
			}
		}
	}
	return nil
}

// bindPortsLocked binds the container's published ports as it starts: a
// host port given as 0 gets a free one from the kernel's default ephemeral
// range, as the real engine (and Docker) choose.
func (f *Fake) bindPortsLocked(c *fakeContainer) {
	ports := slices.Clone(c.c.Config.Ports)
	for i := range ports {
		if ports[i].HostPort != 0 {
			continue
		}
		for hp := 32768; hp <= 60999; hp++ {
			p := ports[i]
			p.HostPort = uint16(hp)
			if f.portConflictLocked(c.c.ID, []engine.PortBinding{p}) != nil ||
				slices.ContainsFunc(ports, func(q engine.PortBinding) bool { return q.HostPort == p.HostPort && q.Protocol == p.Protocol }) {
				continue
			}
			ports[i] = p
			break
		}
	}
	c.c.Ports = ports
}

func validRestart(r engine.RestartPolicy) bool {
	switch r.Name {
	case "", "no", "always", "unless-stopped":
		return r.MaximumRetryCount == 0
	case "on-failure":
		return r.MaximumRetryCount >= 0
	}
	return false
}

// Create records a container.
func (fc *fakeContainers) Create(ctx context.Context, cfg engine.ContainerConfig) (engine.Container, error) {
	f := (*Fake)(fc)
	if err := ctx.Err(); err != nil {
		return engine.Container{}, err
	}
	cfg = cloneConfig(cfg)
	if cfg.Name == "" {
		cfg.Name = "fake_" + randomID()[:12]
	}
	if !nameRE.MatchString(cfg.Name) {
		return engine.Container{}, fmt.Errorf("create %s: invalid name: %w", cfg.Name, engine.ErrInvalid)
	}
	if !validRestart(cfg.Restart) {
		return engine.Container{}, fmt.Errorf("create %s: restart policy %q: %w", cfg.Name, cfg.Restart.Name, engine.ErrInvalid)
	}
	if cfg.AutoRemove && cfg.Restart.Name != "" && cfg.Restart.Name != "no" {
		return engine.Container{}, fmt.Errorf("create %s: auto-remove and a restart policy exclude each other: %w", cfg.Name, engine.ErrInvalid)
	}
	switch cfg.NetworkMode {
	case "", engine.NetworkModeBridge:
	case engine.NetworkModeNone, engine.NetworkModeHost:
		if len(cfg.Networks) > 0 {
			return engine.Container{}, fmt.Errorf("create %s: network mode %s with networks: %w", cfg.Name, cfg.NetworkMode, engine.ErrInvalid)
		}
	default:
		return engine.Container{}, fmt.Errorf("create %s: network mode %q: %w", cfg.Name, cfg.NetworkMode, engine.ErrInvalid)
	}
	if len(cfg.Ports) > 0 && len(cfg.Networks) == 0 {
		return engine.Container{}, fmt.Errorf("create %s: published ports need a network: %w", cfg.Name, engine.ErrInvalid)
	}
	for _, m := range cfg.Mounts {
		if !filepath.IsAbs(m.Target) {
			return engine.Container{}, fmt.Errorf("create %s: mount target %q is not absolute: %w", cfg.Name, m.Target, engine.ErrInvalid)
		}
		switch m.Type {
		case engine.MountBind:
			if !filepath.IsAbs(m.Source) {
				return engine.Container{}, fmt.Errorf("create %s: bind source %q is not absolute: %w", cfg.Name, m.Source, engine.ErrInvalid)
			}
			if _, err := os.Stat(m.Source); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return engine.Container{}, fmt.Errorf("create %s: bind source %s: %w", cfg.Name, m.Source, engine.ErrNotFound)
				}
				return engine.Container{}, fmt.Errorf("create %s: bind source: %w", cfg.Name, err)
			}
		case engine.MountVolume:
			if !nameRE.MatchString(m.Source) {
				return engine.Container{}, fmt.Errorf("create %s: volume name %q: %w", cfg.Name, m.Source, engine.ErrInvalid)
			}
		case engine.MountTmpfs:
		default:
			return engine.Container{}, fmt.Errorf("create %s: mount type %q: %w", cfg.Name, m.Type, engine.ErrInvalid)
		}
	}
	if cfg.StopSignal != "" {
		if _, ok := signalNumber(cfg.StopSignal); !ok {
			return engine.Container{}, fmt.Errorf("create %s: stop signal %q: %w", cfg.Name, cfg.StopSignal, engine.ErrInvalid)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.c.Name == cfg.Name {
			return engine.Container{}, fmt.Errorf("create %s: name in use by %s: %w", cfg.Name, c.c.ID[:12], engine.ErrExists)
		}
	}
	im, err := f.lookupImageLocked(cfg.Image)
	if err != nil {
		return engine.Container{}, fmt.Errorf("create %s: %w", cfg.Name, err)
	}
	for _, n := range cfg.Networks {
		if _, err := f.lookupNetworkLocked(n.Network); err != nil {
			return engine.Container{}, fmt.Errorf("create %s: %w", cfg.Name, err)
		}
	}
	if err := f.portConflictLocked("", cfg.Ports); err != nil {
		return engine.Container{}, fmt.Errorf("create %s: %w", cfg.Name, err)
	}
	for _, m := range cfg.Mounts {
		if m.Type == engine.MountVolume {
			if _, ok := f.volumes[m.Source]; !ok {
				f.createVolumeLocked(engine.VolumeConfig{Name: m.Source, Driver: "local"})
			}
		}
	}
	ep, cmd := cfg.Entrypoint, cfg.Cmd
	if ep == nil {
		ep = im.img.Config.Entrypoint
		if cmd == nil {
			cmd = im.img.Config.Cmd
		}
	}
	c := &fakeContainer{
		c: engine.Container{
			ID:      randomID(),
			Name:    cfg.Name,
			Created: time.Now(),
			ImageID: im.img.ID,
			Config:  cfg,
			State:   engine.ContainerState{Status: engine.StatusCreated},
			Command: append(slices.Clone(ep), cmd...),
		},
		changed: make(chan struct{}),
	}
	f.containers[c.c.ID] = c
	f.publishLocked("container", "create", c.c.ID, c.c.Name, c.c.Config.Labels)
	return cloneContainer(&c.c), nil
}

// Start starts a created or exited container.
func (fc *fakeContainers) Start(ctx context.Context, id string) error {
	f := (*Fake)(fc)
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	switch c.c.State.Status {
	case engine.StatusRunning:
		return fmt.Errorf("start %s: %w", c.c.Name, engine.ErrRunning)
	case engine.StatusRemoving:
		return fmt.Errorf("start %s: being removed: %w", c.c.Name, engine.ErrIllegalState)
	case engine.StatusRestarting:
		// Starting a container waiting out its restart back-off starts it now.
		f.stopTimerLocked(c.restart)
		c.restart = nil
	}
	for _, n := range c.c.Config.Networks {
		if _, err := f.lookupNetworkLocked(n.Network); err != nil {
			return fmt.Errorf("start %s: %w", c.c.Name, err)
		}
	}
	if err := f.portConflictLocked(c.c.ID, c.c.Config.Ports); err != nil {
		return fmt.Errorf("start %s: %w", c.c.Name, err)
	}
	c.manualStop = false
	c.backoff = 0
	f.runLocked(c)
	return nil
}

// runLocked starts the container's process per the command model.
func (f *Fake) runLocked(c *fakeContainer) {
	nextPid++
	st := &c.c.State
	st.Status, st.Running, st.Pid = engine.StatusRunning, true, nextPid
	st.StartedAt, st.Error, st.ExitCode, st.OOMKilled = time.Now(), "", 0, false
	f.bindPortsLocked(c)
	f.attachLocked(c)
	o := model(c.c.Command, true)
	for _, line := range o.stdout {
		c.logs = append(c.logs, engine.LogEntry{Time: time.Now(), Stream: "stdout", Line: []byte(line + "\n")})
	}
	if h := c.c.Config.Healthcheck; h != nil && len(h.Test) > 0 && h.Test[0] != "NONE" {
		st.Health = &engine.Health{Status: "starting"}
		f.scheduleProbeLocked(c)
	} else {
		st.Health = nil
	}
	if !o.forever {
		code := o.code
		c.exitTimer = f.afterLocked(o.after, func() { f.exitLocked(c, code, false) })
	}
	c.notifyLocked()
	f.publishLocked("container", "start", c.c.ID, c.c.Name, c.c.Config.Labels)
}

func (f *Fake) scheduleProbeLocked(c *fakeContainer) {
	h := c.c.Config.Healthcheck
	interval := h.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	c.health = f.afterLocked(interval, func() {
		if c.c.State.Status != engine.StatusRunning || c.c.State.Health == nil {
			return
		}
		start := time.Now()
		o := model(h.Test, false)
		code := o.code
		if o.forever {
			code = -1 // timed out
		}
		hs := c.c.State.Health
		hs.Log = append(hs.Log, engine.HealthProbe{Start: start, End: time.Now(), ExitCode: code, Output: strings.Join(o.stdout, "\n")})
		if len(hs.Log) > 5 {
			hs.Log = hs.Log[len(hs.Log)-5:]
		}
		old := hs.Status
		inGrace := time.Since(c.c.State.StartedAt) < h.StartPeriod
		if code == 0 {
			hs.Status, hs.FailingStreak = "healthy", 0
		} else if !inGrace {
			hs.FailingStreak++
			retries := h.Retries
			if retries <= 0 {
				retries = 3
			}
			if hs.FailingStreak >= retries {
				hs.Status = "unhealthy"
			}
		}
		if hs.Status != old {
			c.notifyLocked()
			f.publishLocked("container", "health_status", c.c.ID, c.c.Name, c.c.Config.Labels, "health", hs.Status)
		}
		f.scheduleProbeLocked(c)
	})
}

// exitLocked ends the container's process with code. byUser says the API
// stopped it (no restart).
func (f *Fake) exitLocked(c *fakeContainer, code int, byUser bool) {
	if c.c.State.Status != engine.StatusRunning {
		return
	}
	f.stopTimerLocked(c.exitTimer)
	f.stopTimerLocked(c.health)
	c.exitTimer, c.health = nil, nil
	st := &c.c.State
	st.Running, st.Pid, st.ExitCode, st.FinishedAt = false, 0, code, time.Now()
	if byUser {
		c.manualStop = true
	}
	c.exits++
	f.publishLocked("container", "die", c.c.ID, c.c.Name, c.c.Config.Labels, "exitCode", strconv.Itoa(code))
	if f.shouldRestartLocked(c, code) {
		st.Status = engine.StatusRestarting
		ran := st.FinishedAt.Sub(st.StartedAt)
		if c.backoff == 0 || ran >= 10*time.Second {
			c.backoff = 100 * time.Millisecond
		} else if c.backoff < time.Minute {
			c.backoff *= 2
		}
		c.restart = f.afterLocked(c.backoff, func() {
			if c.removed || c.c.State.Status != engine.StatusRestarting {
				return
			}
			c.restart = nil
			c.c.State.RestartCount++
			f.publishLocked("container", "restart", c.c.ID, c.c.Name, c.c.Config.Labels)
			f.runLocked(c)
		})
		c.notifyLocked()
		return
	}
	st.Status = engine.StatusExited
	if st.Health != nil {
		st.Health.Status = "unhealthy"
	}
	f.detachLocked(c)
	c.notifyLocked()
	if c.c.Config.AutoRemove {
		f.removeLocked(c)
	}
}

func (f *Fake) shouldRestartLocked(c *fakeContainer, code int) bool {
	if c.manualStop || c.removed || f.closed {
		return false
	}
	r := c.c.Config.Restart
	switch r.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return code != 0 && (r.MaximumRetryCount == 0 || c.c.State.RestartCount < r.MaximumRetryCount)
	}
	return false
}

// Crash ends a running container's process with code as if it died or was
// killed outside berth: the restart policy applies. A test hook of the
// fake; the real engine's equivalent is kill -9 of the process.
func (f *Fake) Crash(id string, code int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return err
	}
	if c.c.State.Status != engine.StatusRunning {
		return fmt.Errorf("crash %s: %w", c.c.Name, engine.ErrNotRunning)
	}
	f.exitLocked(c, code, false)
	return nil
}

// Stop stops a container: its process exits on the stop signal at once.
func (fc *fakeContainers) Stop(ctx context.Context, id string, timeout *time.Duration) error {
	f := (*Fake)(fc)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	f.stopLocked(c)
	return nil
}

func (f *Fake) stopLocked(c *fakeContainer) {
	switch c.c.State.Status {
	case engine.StatusRunning:
		sig := 15
		if n, ok := signalNumber(c.c.Config.StopSignal); ok {
			sig = n
		}
		f.publishLocked("container", "stop", c.c.ID, c.c.Name, c.c.Config.Labels)
		f.exitLocked(c, 128+sig, true)
	case engine.StatusRestarting:
		f.stopTimerLocked(c.restart)
		c.restart = nil
		c.manualStop = true
		c.c.State.Status = engine.StatusExited
		f.detachLocked(c)
		c.notifyLocked()
	}
}

// Kill sends a signal; SIGKILL and the stop signal count as a manual stop,
// as Docker's do, so the restart policy stays out.
func (fc *fakeContainers) Kill(ctx context.Context, id string, signal string) error {
	f := (*Fake)(fc)
	if signal == "" {
		signal = "SIGKILL"
	}
	n, ok := signalNumber(signal)
	if !ok {
		return fmt.Errorf("kill %s: signal %q: %w", id, signal, engine.ErrInvalid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	if c.c.State.Status != engine.StatusRunning {
		return fmt.Errorf("kill %s: %w", c.c.Name, engine.ErrNotRunning)
	}
	stopSig := 15
	if s, ok := signalNumber(c.c.Config.StopSignal); ok {
		stopSig = s
	}
	if n == 28 || n == 17 || n == 23 { // WINCH, CHLD, URG are ignored by default
		return nil
	}
	f.publishLocked("container", "kill", c.c.ID, c.c.Name, c.c.Config.Labels, "signal", strconv.Itoa(n))
	f.exitLocked(c, 128+n, n == 9 || n == stopSig)
	return nil
}

// Restart stops then starts a container.
func (fc *fakeContainers) Restart(ctx context.Context, id string, timeout *time.Duration) error {
	if err := fc.Stop(ctx, id, timeout); err != nil {
		return err
	}
	return fc.Start(ctx, id)
}

// Remove deletes a container.
func (fc *fakeContainers) Remove(ctx context.Context, id string, opts engine.RemoveContainerOptions) error {
	f := (*Fake)(fc)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if running(c) {
		if !opts.Force {
			return fmt.Errorf("remove %s: %w", c.c.Name, engine.ErrRunning)
		}
		if c.c.State.Status == engine.StatusRunning {
			f.exitLocked(c, 137, true)
		} else {
			f.stopLocked(c)
		}
	}
	if c.removed {
		return nil // auto-removed on exit
	}
	f.removeLocked(c)
	return nil
}

func (f *Fake) removeLocked(c *fakeContainer) {
	f.stopTimerLocked(c.exitTimer)
	f.stopTimerLocked(c.restart)
	f.stopTimerLocked(c.health)
	f.detachLocked(c)
	c.removed = true
	c.c.State.Status = engine.StatusRemoving
	delete(f.containers, c.c.ID)
	c.notifyLocked()
	f.publishLocked("container", "destroy", c.c.ID, c.c.Name, c.c.Config.Labels)
}

// Wait blocks until cond holds and returns the exit code.
func (fc *fakeContainers) Wait(ctx context.Context, id string, cond engine.WaitCondition) (int, error) {
	f := (*Fake)(fc)
	f.mu.Lock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		f.mu.Unlock()
		return -1, fmt.Errorf("wait: %w", err)
	}
	exits := c.exits
	for {
		switch cond {
		case engine.WaitRemoved:
			if c.removed {
				code := c.c.State.ExitCode
				f.mu.Unlock()
				return code, nil
			}
		case engine.WaitNextExit:
			if c.exits > exits {
				code := c.c.State.ExitCode
				f.mu.Unlock()
				return code, nil
			}
			if c.removed {
				f.mu.Unlock()
				return -1, fmt.Errorf("wait %s: removed: %w", c.c.Name, engine.ErrNotFound)
			}
		default:
			if !running(c) || c.removed {
				code := c.c.State.ExitCode
				f.mu.Unlock()
				return code, nil
			}
		}
		ch := c.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-ch:
		}
		f.mu.Lock()
	}
}

// Inspect returns one container.
func (fc *fakeContainers) Inspect(ctx context.Context, id string) (engine.Container, error) {
	f := (*Fake)(fc)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return engine.Container{}, err
	}
	return cloneContainer(&c.c), nil
}

// List returns containers, running (and restarting) ones unless opts.All.
func (fc *fakeContainers) List(ctx context.Context, opts engine.ListContainersOptions) ([]engine.Container, error) {
	f := (*Fake)(fc)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Container
	for _, c := range f.containers {
		if !opts.All && !running(c) {
			continue
		}
		if !engine.MatchLabels(c.c.Config.Labels, opts.Labels) {
			continue
		}
		out = append(out, cloneContainer(&c.c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Update changes restart policy, limits or labels in place.
func (fc *fakeContainers) Update(ctx context.Context, id string, u engine.ContainerUpdate) error {
	f := (*Fake)(fc)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if u.Restart != nil {
		if !validRestart(*u.Restart) {
			return fmt.Errorf("update %s: restart policy %q: %w", c.c.Name, u.Restart.Name, engine.ErrInvalid)
		}
		c.c.Config.Restart = *u.Restart
	}
	if u.Resources != nil {
		r := *u.Resources
		if r.MemoryBytes < 0 || r.NanoCPUs < 0 || r.PidsLimit < 0 || r.CPUShares < 0 {
			return fmt.Errorf("update %s: negative limit: %w", c.c.Name, engine.ErrInvalid)
		}
		c.c.Config.Resources = r
	}
	if u.Labels != nil {
		c.c.Config.Labels = maps.Clone(u.Labels)
	}
	c.notifyLocked()
	f.publishLocked("container", "update", c.c.ID, c.c.Name, c.c.Config.Labels)
	return nil
}

// Logs streams captured output.
func (fc *fakeContainers) Logs(ctx context.Context, id string, opts engine.LogOptions, fn func(engine.LogEntry) error) error {
	f := (*Fake)(fc)
	f.mu.Lock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		f.mu.Unlock()
		return fmt.Errorf("logs: %w", err)
	}
	var sel []engine.LogEntry
	for _, e := range c.logs {
		if (!opts.Since.IsZero() && e.Time.Before(opts.Since)) || (!opts.Until.IsZero() && e.Time.After(opts.Until)) {
			continue
		}
		sel = append(sel, e)
	}
	if opts.Tail >= 0 && opts.Tail < len(sel) {
		sel = sel[len(sel)-opts.Tail:]
	}
	next := len(c.logs)
	f.mu.Unlock()
	for _, e := range sel {
		if err := fn(e); err != nil {
			return err
		}
	}
	for opts.Follow {
		f.mu.Lock()
		fresh := slices.Clone(c.logs[next:])
		next = len(c.logs)
		done := c.removed || (!running(c) && c.c.State.Status != engine.StatusCreated)
		ch := c.changed
		f.mu.Unlock()
		for _, e := range fresh {
			if err := fn(e); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
	return nil
}

// Attach waits for the container to exit; the fake's processes read no
// input and their output goes to the logs.
func (fc *fakeContainers) Attach(ctx context.Context, id string, s engine.Streams) error {
	f := (*Fake)(fc)
	f.mu.Lock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		f.mu.Unlock()
		return fmt.Errorf("attach: %w", err)
	}
	if c.c.State.Status != engine.StatusRunning {
		f.mu.Unlock()
		return fmt.Errorf("attach %s: %w", c.c.Name, engine.ErrNotRunning)
	}
	f.mu.Unlock()
	_, err = fc.Wait(ctx, id, engine.WaitNextExit)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// Exec runs cfg.Cmd through the command model in a running container.
func (fc *fakeContainers) Exec(ctx context.Context, id string, cfg engine.ExecConfig, s engine.Streams) (int, error) {
	f := (*Fake)(fc)
	f.mu.Lock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		f.mu.Unlock()
		return -1, fmt.Errorf("exec: %w", err)
	}
	if c.c.State.Status != engine.StatusRunning {
		f.mu.Unlock()
		return -1, fmt.Errorf("exec %s: %w", c.c.Name, engine.ErrNotRunning)
	}
	f.mu.Unlock()
	if len(cfg.Cmd) == 0 {
		return -1, fmt.Errorf("exec %s: no command: %w", id, engine.ErrInvalid)
	}
	o := model(cfg.Cmd, false)
	if s.Stdout != nil {
		for _, l := range o.stdout {
			fmt.Fprintln(s.Stdout, l)
		}
	}
	if o.forever {
		<-ctx.Done()
		return -1, ctx.Err()
	}
	if o.after > 0 {
		t := time.NewTimer(o.after)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-t.C:
		}
	}
	return o.code, nil
}

// Stats reports the limits and a nominal usage.
func (fc *fakeContainers) Stats(ctx context.Context, id string) (engine.Stats, error) {
	f := (*Fake)(fc)
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookupContainerLocked(id)
	if err != nil {
		return engine.Stats{}, fmt.Errorf("stats: %w", err)
	}
	if c.c.State.Status != engine.StatusRunning {
		return engine.Stats{}, fmt.Errorf("stats %s: %w", c.c.Name, engine.ErrNotRunning)
	}
	return engine.Stats{
		Time: time.Now(), MemoryUsage: 1 << 20, MemoryLimit: c.c.Config.Resources.MemoryBytes,
		Pids: 1, PidsLimit: c.c.Config.Resources.PidsLimit,
	}, nil
}
