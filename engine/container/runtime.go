package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

// Images is what the runtime needs of the image store.
type Images interface {
	// Rootfs resolves ref to an image and returns its overlay lowers.
	Rootfs(ctx context.Context, ref string) (Rootfs, error)
}

// Rootfs is an image ready to be a container's lower layers.
type Rootfs struct {
	ImageID string
	Config  engine.ImageConfig
	Lowers  []string // absolute directories, top-most first
}

// Volumes is what the runtime needs of the volume store.
type Volumes interface {
	// Mountpoint returns the host directory of a named volume, creating the
	// volume if missing.
	Mountpoint(ctx context.Context, name string) (string, error)
	// NeedsPopulate reports whether the volume has never been filled from an
	// image.
	NeedsPopulate(ctx context.Context, name string) (bool, error)
	// MarkPopulated records that the volume was filled.
	MarkPopulated(ctx context.Context, name string) error
}

// Networks is what the runtime needs of the network manager.
type Networks interface {
	Sandbox(ctx context.Context, containerID string) (nsPath string, err error)
	RemoveSandbox(ctx context.Context, containerID string) error
	CheckPorts(ctx context.Context, containerID string, ports []engine.PortBinding) error
	Attach(ctx context.Context, req AttachRequest) (Attachment, error)
	Detach(ctx context.Context, containerID string) error
	Endpoints(ctx context.Context, containerID string) ([]engine.EndpointStatus, error)
	GC(ctx context.Context, live func(containerID string) bool) error
}

// AttachRequest asks the network manager to connect a sandbox to networks.
type AttachRequest struct {
	ContainerID, ContainerName, Hostname, NsPath string
	Endpoints                                    []engine.EndpointConfig
	Ports                                        []engine.PortBinding
}

// Attachment is what a container gets from its networks.
type Attachment struct {
	Endpoints  []engine.EndpointStatus
	ResolvConf []byte
	Hosts      []byte // extra /etc/hosts lines
	// Ports are the published ports as bound, with the host port each one
	// configured as 0 got.
	Ports []engine.PortBinding
}

// Cgroups creates and finds container cgroups.
type Cgroups interface {
	// New creates (or opens) the cgroup at path with limits r.
	New(path string, r engine.Resources) (Cgroup, error)
	// Load opens an existing cgroup; engine.ErrNotFound if there is none.
	Load(path string) (Cgroup, error)
	// List returns the cgroup paths directly below prefix.
	List(prefix string) ([]string, error)
}

// Cgroup is one container's cgroup.
type Cgroup interface {
	// Dirs returns the directories a process joins: one per v1
	// hierarchy, or the unified one (v2 set).
	Dirs() (dirs []string, v2 bool)
	Update(r engine.Resources) error
	// Stats fills the memory, CPU and pids figures of engine.Stats.
	Stats() (engine.Stats, error)
	KillAll(ctx context.Context) error
	Delete() error
}

// CgroupRoot is the cgroup under which containers' cgroups live.
const CgroupRoot = "/berth"

func cgroupPath(id string) string { return CgroupRoot + "/" + id }

// cgroupsDir (under <root>/run) holds one empty file per container cgroup
// this data root made: every data root shares /berth, and gc must only ever
// collect its own.
const cgroupsDir = "cgroups"

func (r *Runtime) cgroupMarker(id string) string {
	return filepath.Join(r.root, "run", cgroupsDir, id)
}

// Option configures a Runtime.
type Option func(*Runtime)

// WithImages sets the image store (required to create containers).
func WithImages(i Images) Option { return func(r *Runtime) { r.images = i } }

// WithVolumes sets the volume store (required for named volumes).
func WithVolumes(v Volumes) Option { return func(r *Runtime) { r.volumes = v } }

// WithNetworks sets the network manager. Without one, "none" gives each
// container a fresh network namespace of its own and bridge networks are
// unsupported.
func WithNetworks(n Networks) Option { return func(r *Runtime) { r.networks = n } }

// WithCgroups sets the cgroup manager. Without one, resource limits are
// unsupported.
func WithCgroups(c Cgroups) Option { return func(r *Runtime) { r.cgroups = c } }

// WithLogger sets where debug diagnostics go.
func WithLogger(l *slog.Logger) Option { return func(r *Runtime) { r.log = l } }

// WithCleanupRole names the re-exec role (registered by whoever wires the
// runtime) that a monitor runs, with arguments root and ID, when its
// container stops for good and needs a network detach or an automatic
// removal. Without one, detached AutoRemove containers are removed by the
// next berth command's garbage collection.
func WithCleanupRole(role string) Option { return func(r *Runtime) { r.cleanupRole = role } }

// WithoutGC skips the collection of what killed berth commands left
// behind when the runtime is opened (see New): for callers that only read,
// to which leftovers make no difference, or that run GC themselves.
func WithoutGC() Option { return func(r *Runtime) { r.noGC = true } }

// GC collects what killed berth commands left behind, as New does unless
// WithoutGC. Like any berth command's, it may run while other goroutines
// and processes use the data root: it works under each container's lock.
func (r *Runtime) GC(ctx context.Context) { r.gc(ctx) }

// Runtime implements engine.Containers on a data root.
type Runtime struct {
	root        string // data root
	dir         string // <root>/containers
	images      Images
	volumes     Volumes
	networks    Networks
	cgroups     Cgroups
	cleanupRole string
	log         *slog.Logger
	noGC        bool
}

var _ engine.Containers = (*Runtime)(nil)

// New opens the container runtime of data root root and collects what
// killed berth commands left behind.
func New(ctx context.Context, root string, opts ...Option) (*Runtime, error) {
	r := &Runtime{root: root, dir: filepath.Join(root, "containers"), log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(r)
	}
	for _, d := range []string{filepath.Join(r.dir, namesDir), filepath.Join(root, "run", cgroupsDir)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("containers: %w", err)
		}
	}
	if !r.noGC {
		r.gc(ctx)
	}
	return r, nil
}

// Root returns the data root.
func (r *Runtime) Root() string { return r.root }

func (r *Runtime) cdir(id string) string { return filepath.Join(r.dir, id) }

func (r *Runtime) sealed() (string, error) { return shim.Seal() }

// classError gives err an engine error class without changing its message.
type classError struct {
	class error
	err   error
}

func (e *classError) Error() string   { return e.err.Error() }
func (e *classError) Unwrap() []error { return []error{e.class, e.err} }

func withClass(class, err error) error {
	if err == nil || errors.Is(err, class) {
		return err
	}
	return &classError{class: class, err: err}
}
