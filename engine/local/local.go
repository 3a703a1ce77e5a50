package local

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container"
)

// Config configures the local engine.
type Config struct {
	// DataRoot holds all state (default /var/lib/berth).
	DataRoot string
	// InsecureRegistries may be reached over plain HTTP; loopback registries
	// always may.
	InsecureRegistries []string
	// Log receives debug diagnostics; nil discards them.
	Log *slog.Logger
	// ResolvConf is the host resolver configuration that containers' DNS is
	// derived from and forwarded to (default /etc/resolv.conf).
	ResolvConf string
	// GC says when Open collects what killed berth commands left behind,
	// which checks every container.
	GC GCMode
}

// GCMode says when Open collects what killed berth commands left behind.
type GCMode int

const (
	// GCOnOpen collects before Open returns.
	GCOnOpen GCMode = iota
	// GCBackground collects while the caller reads; the caller calls
	// WaitGC before it changes anything (Close waits too).
	GCBackground
	// GCNever does not collect: for callers that only read (plan,
	// status), to which leftovers make no difference.
	GCNever
)

// Engine is the local engine.
type Engine struct {
	cfg        Config
	images     engine.Images
	containers engine.Containers
	networks   engine.Networks
	volumes    engine.Volumes
	events     func(ctx context.Context) (<-chan engine.Event, error)
	closers    []func() error
	gcDone     chan struct{} // closed when a background collection is over
}

var _ engine.Engine = (*Engine)(nil)

// Open opens (creating if needed) the engine at cfg.DataRoot.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataRoot == "" {
		cfg.DataRoot = "/var/lib/berth"
	}
	root, err := filepath.Abs(cfg.DataRoot)
	if err != nil {
		return nil, fmt.Errorf("data root %s: %w", cfg.DataRoot, err)
	}
	cfg.DataRoot = root
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o711); err != nil {
		return nil, fmt.Errorf("data root: %w", err)
	}
	e := &Engine{cfg: cfg}
	// Order matters: containers consume images, volumes and networks.
	for _, open := range []func(context.Context, *Engine) error{openImages, openVolumes, openNetworks, openContainers} {
		if err := open(ctx, e); err != nil {
			e.Close()
			return nil, err
		}
	}
	if rt, ok := e.containers.(*container.Runtime); ok && cfg.GC == GCBackground {
		done := make(chan struct{})
		go func() {
			defer close(done)
			rt.GC(ctx)
		}()
		e.gcDone = done
		e.closers = append(e.closers, func() error { <-done; return nil })
	}
	return e, nil
}

// WaitGC waits for the collection Open started in the background
// (GCBackground). Changes must wait for it: the collection would take the
// network sandbox of a container being created for a leftover.
func (e *Engine) WaitGC() {
	if e.gcDone != nil {
		<-e.gcDone
	}
}

// Images returns the image store.
func (e *Engine) Images() engine.Images { return e.images }

// Containers returns the container runtime.
func (e *Engine) Containers() engine.Containers { return e.containers }

// Networks returns the network manager.
func (e *Engine) Networks() engine.Networks { return e.networks }

// Volumes returns the volume store.
func (e *Engine) Volumes() engine.Volumes { return e.volumes }

// Events streams engine events until ctx ends.
func (e *Engine) Events(ctx context.Context) (<-chan engine.Event, error) {
	if e.events == nil {
		return nil, fmt.Errorf("events: %w", engine.ErrUnsupported)
	}
	return e.events(ctx)
}

// Close releases what the engine holds; containers keep running.
func (e *Engine) Close() error {
	var first error
	for i := len(e.closers) - 1; i >= 0; i-- {
		if err := e.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	e.closers = nil
	return first
}

func (e *Engine) path(elem ...string) string {
	return filepath.Join(append([]string{e.cfg.DataRoot}, elem...)...)
}
