package local

import (
	"context"
	"fmt"
	"os"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/cgroup"
	"berth.dev/berth/engine/container"
	"berth.dev/berth/engine/container/events"
	"berth.dev/berth/engine/image"
	"berth.dev/berth/engine/network"
	"berth.dev/berth/engine/reexec"
)

// CleanupRole is the role a container's monitor runs (arguments: data root,
// container ID) once the container stopped for good: it opens the engine to
// release the container's network attachment and to remove an AutoRemove
// container. The monitor itself never links the stores.
const CleanupRole = "berth-cleanup"

func init() { reexec.Register(CleanupRole, cleanupMain) }

// openContainers wires the container runtime to the image, volume and
// network stores and the cgroup manager, and events to the runtime's event
// sockets under run/events.
func openContainers(ctx context.Context, e *Engine) error {
	opts := []container.Option{
		container.WithLogger(e.cfg.Log),
		container.WithCleanupRole(CleanupRole),
	}
	if s, ok := e.images.(*image.Store); ok {
		opts = append(opts, container.WithImages(images{s}))
	}
	if v := e.volumeStore(); v != nil {
		opts = append(opts, container.WithVolumes(v))
	}
	if m, ok := e.networks.(*network.Manager); ok {
		opts = append(opts, container.WithNetworks(networks{m}))
	}
	if cgroup.HostMode() != cgroup.Unavailable {
		opts = append(opts, container.WithCgroups(cgroups{}))
	}
	if e.cfg.GC != GCOnOpen {
		opts = append(opts, container.WithoutGC()) // see Open
	}
	rt, err := container.New(ctx, e.cfg.DataRoot, opts...)
	if err != nil {
		return fmt.Errorf("open containers: %w", err)
	}
	e.containers = rt
	root := e.cfg.DataRoot
	e.events = func(ctx context.Context) (<-chan engine.Event, error) { return events.Subscribe(ctx, root) }
	return nil
}

// cleanupMain is the cleanup role.
func cleanupMain() {
	if len(os.Args) < 3 {
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// One container's business: a collection, which reads every container,
	// is left to the berth commands (with a hundred containers stopping
	// at once, it would be read ten thousand times).
	e, err := Open(ctx, Config{DataRoot: os.Args[1], GC: GCNever})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-cleanup: %v\n", err)
		os.Exit(1)
	}
	defer e.Close()
	rt, ok := e.containers.(*container.Runtime)
	if !ok {
		os.Exit(1)
	}
	if err := rt.Finalize(ctx, os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "berth-cleanup: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// images adapts the image store to the runtime.
type images struct{ s *image.Store }

func (i images) Rootfs(ctx context.Context, ref string) (container.Rootfs, error) {
	info, err := i.s.Rootfs(ctx, ref)
	if err != nil {
		return container.Rootfs{}, err
	}
	return container.Rootfs{ImageID: info.ImageID, Config: info.Config, Lowers: info.Lowers}, nil
}

// networks adapts the network manager to the runtime.
type networks struct{ m *network.Manager }

func (n networks) Sandbox(ctx context.Context, id string) (string, error) {
	return n.m.Sandbox(ctx, id)
}
func (n networks) RemoveSandbox(ctx context.Context, id string) error {
	return n.m.RemoveSandbox(ctx, id)
}
func (n networks) Detach(ctx context.Context, id string) error { return n.m.Detach(ctx, id) }
func (n networks) CheckPorts(ctx context.Context, id string, ports []engine.PortBinding) error {
	return n.m.CheckPorts(ctx, id, ports)
}
func (n networks) Endpoints(ctx context.Context, id string) ([]engine.EndpointStatus, error) {
	return n.m.Endpoints(ctx, id)
}
func (n networks) GC(ctx context.Context, live func(string) bool) error { return n.m.GC(ctx, live) }

func (n networks) Attach(ctx context.Context, req container.AttachRequest) (container.Attachment, error) {
	a, err := n.m.Attach(ctx, network.AttachRequest{
		ContainerID: req.ContainerID, ContainerName: req.ContainerName, Hostname: req.Hostname,
		NsPath: req.NsPath, Endpoints: req.Endpoints, Ports: req.Ports,
	})
	if err != nil {
		return container.Attachment{}, err
	}
	return container.Attachment{Endpoints: a.Endpoints, ResolvConf: a.ResolvConf, Hosts: a.Hosts, Ports: a.Ports}, nil
}

// cgroups adapts engine/cgroup to the runtime.
type cgroups struct{}

func (cgroups) New(p string, r engine.Resources) (container.Cgroup, error) {
	cg, err := cgroup.New(p, r)
	if err != nil {
		return nil, err
	}
	return cgroupOf{cg}, nil
}

func (cgroups) Load(p string) (container.Cgroup, error) {
	cg, err := cgroup.Load(p)
	if err != nil {
		return nil, err
	}
	return cgroupOf{cg}, nil
}

func (cgroups) List(prefix string) ([]string, error) { return cgroup.List(prefix) }

type cgroupOf struct{ cg cgroup.Cgroup }

func (c cgroupOf) Dirs() ([]string, bool)            { return c.cg.Dirs() }
func (c cgroupOf) Update(r engine.Resources) error   { return c.cg.Update(r) }
func (c cgroupOf) KillAll(ctx context.Context) error { return c.cg.KillAll(ctx) }
func (c cgroupOf) Delete() error                     { return c.cg.Delete() }
func (c cgroupOf) Stats() (engine.Stats, error) {
	s, err := c.cg.Stats()
	if err != nil {
		return engine.Stats{}, err
	}
	return engine.Stats{MemoryUsage: s.MemoryUsage, MemoryLimit: s.MemoryLimit, CPUUsage: s.CPUUsage, Pids: s.Pids, PidsLimit: s.PidsLimit}, nil
}
