package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/events"
	"berth.dev/berth/engine/container/shim"
	"berth.dev/berth/engine/state"
)

// Create records a container and prepares its read-write layer.
func (r *Runtime) Create(ctx context.Context, cfg engine.ContainerConfig) (engine.Container, error) {
	l, err := r.create(ctx, cfg, false, newID())
	if err != nil {
		return engine.Container{}, err
	}
	defer l.release()
	return r.container(ctx, l.dir, l.rec), nil
}

// create makes the container id and returns it locked. pending marks it as
// part of a berth run that must be undone if its process never starts; such
// a container's record is made durable only once it has started (see
// releaseMonitor), or never for an AutoRemove one, which a crash of the host
// ends anyway.
func (r *Runtime) create(ctx context.Context, cfg engine.ContainerConfig, pending bool, id string) (*locked, error) {
	if r.images == nil {
		return nil, fmt.Errorf("create container: no image store: %w", engine.ErrUnsupported)
	}
	if err := r.validate(&cfg); err != nil {
		return nil, err
	}
	img, err := r.images.Rootfs(ctx, cfg.Image)
	if err != nil {
		return nil, fmt.Errorf("create container: image %s: %w", cfg.Image, err)
	}
	argv := resolveCommand(cfg, img.Config)
	if len(argv) == 0 {
		return nil, fmt.Errorf("create container: no command specified: %w", engine.ErrInvalid)
	}
	if _, err := r.capabilities(cfg); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = randomName()
	}
	if mode := networkMode(cfg); mode == engine.NetworkModeBridge {
		if r.networks == nil {
			return nil, fmt.Errorf("create container: bridge networks: %w", engine.ErrUnsupported)
		}
		if err := r.networks.CheckPorts(ctx, id, cfg.Ports); err != nil {
			return nil, fmt.Errorf("create container %s: %w", cfg.Name, err)
		}
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = shortID(id)
		if networkMode(cfg) == engine.NetworkModeHost {
			if h, err := os.Hostname(); err == nil {
				hostname = h
			}
		}
	}
	rec := &record{
		ID:       id,
		Name:     cfg.Name,
		Created:  time.Now().UTC(),
		ImageID:  img.ImageID,
		Image:    img.Config,
		Lowers:   img.Lowers,
		Config:   cfg,
		Command:  argv,
		Hostname: hostname,
	}

	tmp := filepath.Join(r.dir, tmpPrefix+id)
	if err := os.Mkdir(tmp, 0o711); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	lk, err := state.Acquire(ctx, filepath.Join(tmp, lockFile))
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("create container: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
			lk.Release()
		}
	}()
	for _, d := range []string{shim.UpperDir, shim.WorkDir, shim.RootfsDir} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
	}
	write := r.writeRecord
	if pending {
		write = r.writeNewRecord
	}
	if err := write(tmp, rec); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := r.reserveName(cfg.Name, id); err != nil {
		return nil, err
	}
	// AutoRemove containers keep the marker until they are removed, so that
	// gc removes one whose remover died.
	if pending || cfg.AutoRemove {
		if err := os.WriteFile(filepath.Join(r.dir, pendingPrefix+id), nil, 0o600); err != nil {
			r.releaseName(cfg.Name, id)
			return nil, fmt.Errorf("create container: %w", err)
		}
	}
	dir := r.cdir(id)
	if err := os.Rename(tmp, dir); err != nil {
		r.releaseName(cfg.Name, id)
		os.Remove(filepath.Join(r.dir, pendingPrefix+id))
		return nil, fmt.Errorf("create container: %w", err)
	}
	ok = true
	if !pending {
		if err := state.SyncDir(r.dir); err != nil {
			r.log.Debug("sync containers directory", "err", err)
		}
	}
	r.publish(rec, "create", nil)
	return &locked{id: id, dir: dir, rec: rec, lock: lk, pending: pending}, nil
}

// validate checks what can be checked before anything is made.
func (r *Runtime) validate(cfg *engine.ContainerConfig) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("create container: "+format+": %w", append(args, engine.ErrInvalid)...)
	}
	if cfg.Image == "" {
		return invalid("no image")
	}
	cfg.Name = strings.TrimPrefix(cfg.Name, "/")
	if cfg.Name != "" && (!engine.ValidName(cfg.Name) || len(cfg.Name) > 255) {
		return invalid("name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", cfg.Name)
	}
	switch cfg.Restart.Name {
	case "", "no", "always", "unless-stopped":
		if cfg.Restart.MaximumRetryCount != 0 {
			return invalid("maximum retry count applies to on-failure only")
		}
	case "on-failure":
		if cfg.Restart.MaximumRetryCount < 0 {
			return invalid("maximum retry count %d", cfg.Restart.MaximumRetryCount)
		}
	default:
		return invalid("restart policy %q", cfg.Restart.Name)
	}
	if cfg.AutoRemove && cfg.Restart.Name != "" && cfg.Restart.Name != "no" {
		return invalid("automatic removal conflicts with restart policy %q", cfg.Restart.Name)
	}
	res := cfg.Resources
	if res.MemoryBytes < 0 || res.NanoCPUs < 0 || res.CPUShares < 0 {
		return invalid("negative resource limit")
	}
	if res.MemoryBytes > 0 && res.MemoryBytes < 6<<20 {
		return invalid("minimum memory limit allowed is 6MB")
	}
	if r.cgroups == nil && (res.MemoryBytes > 0 || res.NanoCPUs > 0 || res.CPUShares > 0 || res.PidsLimit > 0) {
		return fmt.Errorf("create container: resource limits: no cgroup support: %w", engine.ErrUnsupported)
	}
	if cfg.StopSignal != "" {
		if _, err := parseSignal(cfg.StopSignal); err != nil {
			return invalid("stop signal %q", cfg.StopSignal)
		}
	}
	if cfg.StopTimeout < 0 {
		return invalid("negative stop timeout")
	}
	if hc := cfg.Healthcheck; hc != nil && len(hc.Test) > 0 {
		if hc.Interval < 0 || hc.Timeout < 0 || hc.Retries < 0 || hc.StartPeriod < 0 {
			return invalid("negative healthcheck setting")
		}
	}
	switch cfg.NetworkMode {
	case "", engine.NetworkModeNone, engine.NetworkModeHost:
		if cfg.NetworkMode != "" && len(cfg.Networks) > 0 {
			return invalid("network mode %q with networks", cfg.NetworkMode)
		}
	case engine.NetworkModeBridge:
	default:
		return invalid("network mode %q", cfg.NetworkMode)
	}
	if len(cfg.Ports) > 0 && networkMode(*cfg) != engine.NetworkModeBridge {
		return invalid("published ports need a bridge network")
	}
	seen := map[string]bool{}
	for _, m := range cfg.Mounts {
		if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
			return invalid("mount target %q must be an absolute path other than /", m.Target)
		}
		t := path.Clean(m.Target)
		if seen[t] {
			return invalid("duplicate mount point %s", t)
		}
		seen[t] = true
		switch m.Type {
		case engine.MountBind:
			if !filepath.IsAbs(m.Source) {
				return invalid("bind source %q must be an absolute path", m.Source)
			}
			if _, err := os.Stat(m.Source); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return invalid("bind source path does not exist: %s", m.Source)
				}
				return fmt.Errorf("create container: bind source %s: %w", m.Source, err)
			}
		case engine.MountVolume:
			if m.Source == "" || strings.Contains(m.Source, "/") {
				return invalid("volume name %q", m.Source)
			}
			if r.volumes == nil {
				return fmt.Errorf("create container: named volumes: %w", engine.ErrUnsupported)
			}
		case engine.MountTmpfs:
			if m.Source != "" {
				return invalid("tmpfs mount %s has a source", m.Target)
			}
			if m.TmpfsSize < 0 {
				return invalid("tmpfs size %d", m.TmpfsSize)
			}
		default:
			return invalid("mount type %q", m.Type)
		}
	}
	return nil
}

// resolveCommand applies Docker's rules: an entrypoint set on the container
// replaces the image's and drops the image's cmd unless a cmd is set too.
func resolveCommand(cfg engine.ContainerConfig, img engine.ImageConfig) []string {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if cfg.Entrypoint != nil {
		entrypoint = cfg.Entrypoint
		cmd = nil
	}
	if len(cfg.Cmd) > 0 {
		cmd = cfg.Cmd
	}
	argv := append(append([]string(nil), entrypoint...), cmd...)
	return argv
}

func networkMode(cfg engine.ContainerConfig) string {
	switch {
	case cfg.NetworkMode != "":
		return cfg.NetworkMode
	case len(cfg.Networks) > 0:
		return engine.NetworkModeBridge
	}
	return engine.NetworkModeNone
}

// availableCaps is this process's bounding set, which berth never changes:
// read once.
var availableCaps = sync.OnceValues(shim.AvailableCaps)

// capabilities computes the container's capability set.
func (r *Runtime) capabilities(cfg engine.ContainerConfig) ([]string, error) {
	avail, err := availableCaps()
	if err != nil {
		return nil, err
	}
	caps, err := shim.Caps(cfg.CapAdd, cfg.CapDrop, avail)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", withClass(engine.ErrInvalid, err))
	}
	return caps, nil
}

func (r *Runtime) publish(rec *record, action string, attrs map[string]string) {
	a := map[string]string{"name": rec.Name, "image": rec.Config.Image}
	for k, v := range rec.Config.Labels {
		a[k] = v
	}
	for k, v := range attrs {
		a[k] = v
	}
	if err := events.Publish(r.root, engine.Event{Type: "container", Action: action, ID: rec.ID, Name: rec.Name, Attrs: a}); err != nil {
		r.log.Debug("publish event", "action", action, "err", err)
	}
}
