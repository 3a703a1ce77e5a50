package engine

import (
	"context"
	"io"
	"time"
)

// Engine is berth's engine as one value. It composes the role-sized
// interfaces below; consumers that need less declare the narrower interface
// they use.
type Engine interface {
	// Images returns the image store.
	Images() Images
	// Containers returns the container runtime.
	Containers() Containers
	// Networks returns the network manager.
	Networks() Networks
	// Volumes returns the volume store.
	Volumes() Volumes
	// Events streams events until ctx ends. Only events that happen after the
	// call returns are delivered. The channel is closed when ctx ends.
	Events(ctx context.Context) (<-chan Event, error)
	// Close releases what the engine holds open. Containers keep running.
	Close() error
}

// Images stores, pulls, pushes and removes images.
type Images interface {
	// Pull fetches ref (name:tag or name@digest) into the local store and
	// records the resolved manifest digest. Layers already present are skipped.
	Pull(ctx context.Context, ref string, opts PullOptions) (Image, error)
	// Push sends a local image to its registry, skipping blobs the registry has.
	Push(ctx context.Context, ref string, opts PushOptions) error
	// Import makes a single-layer image from a rootfs tar stream and tags it ref.
	Import(ctx context.Context, rootfs io.Reader, ref string, opts ImportOptions) (Image, error)
	// Tag makes target point at the image source names.
	Tag(ctx context.Context, source, target string) error
	// Inspect returns a local image by reference, digest or (prefix of) ID.
	Inspect(ctx context.Context, ref string) (Image, error)
	// List returns every local image.
	List(ctx context.Context) ([]Image, error)
	// Remove untags ref and deletes the image when no tag is left. It fails
	// with ErrInUse when a container uses it, unless opts.Force.
	Remove(ctx context.Context, ref string, opts RemoveImageOptions) ([]string, error)
	// Prune deletes blobs and snapshots no image or container references.
	Prune(ctx context.Context) (PruneReport, error)
	// Resolve returns the manifest digest that ref names in its registry now,
	// without downloading layers (a HEAD request), for pull-policy decisions.
	Resolve(ctx context.Context, ref string, platform *Platform) (string, error)
}

// Containers creates and supervises containers.
type Containers interface {
	// Create records a container and prepares its read-write layer. It does not
	// start it. ErrExists if the name is taken.
	Create(ctx context.Context, cfg ContainerConfig) (Container, error)
	// Start starts a created or exited container and returns once its process
	// runs (or its start failed, with the reason). ErrRunning if it runs.
	Start(ctx context.Context, id string) error
	// Stop sends the stop signal, waits up to timeout (nil = the container's
	// StopTimeout), then SIGKILL. Stopping a stopped container is not an error.
	Stop(ctx context.Context, id string, timeout *time.Duration) error
	// Kill sends a signal (name or number) to the container's process.
	Kill(ctx context.Context, id string, signal string) error
	// Restart stops then starts a container.
	Restart(ctx context.Context, id string, timeout *time.Duration) error
	// Remove deletes a container, its read-write layer, cgroup and network
	// attachments. ErrRunning if it runs and !opts.Force.
	Remove(ctx context.Context, id string, opts RemoveContainerOptions) error
	// Wait blocks until the condition holds and returns the exit code.
	Wait(ctx context.Context, id string, cond WaitCondition) (int, error)
	// Inspect returns one container by ID, ID prefix or name.
	Inspect(ctx context.Context, id string) (Container, error)
	// List returns containers, running only unless opts.All.
	List(ctx context.Context, opts ListContainersOptions) ([]Container, error)
	// Update changes restart policy, limits or labels in place.
	Update(ctx context.Context, id string, u ContainerUpdate) error
	// Logs streams captured output. With opts.Follow it ends when ctx ends or
	// the container stops for good.
	Logs(ctx context.Context, id string, opts LogOptions, fn func(LogEntry) error) error
	// Attach connects streams to a running container's stdio (its TTY when it
	// has one) until the container exits or ctx ends.
	Attach(ctx context.Context, id string, s Streams) error
	// Exec runs a process in a running container's namespaces and cgroup and
	// returns its exit code.
	Exec(ctx context.Context, id string, cfg ExecConfig, s Streams) (int, error)
	// Stats reads the container's cgroup now.
	Stats(ctx context.Context, id string) (Stats, error)
}

// Networks manages bridge networks.
type Networks interface {
	// Create makes a network. ErrExists if the name is taken; ErrConflict if
	// the subnet overlaps another network or a host route.
	Create(ctx context.Context, cfg NetworkConfig) (Network, error)
	// Inspect returns one network by name or ID.
	Inspect(ctx context.Context, nameOrID string) (Network, error)
	// List returns networks matching opts.
	List(ctx context.Context, opts ListOptions) ([]Network, error)
	// Remove deletes a network, its bridge and rules. ErrInUse while
	// containers are attached.
	Remove(ctx context.Context, nameOrID string) error
	// Prune removes networks no container uses.
	Prune(ctx context.Context) ([]string, error)
}

// Volumes manages named volumes.
type Volumes interface {
	// Create makes a volume; creating one that exists with the same driver
	// returns it unchanged.
	Create(ctx context.Context, cfg VolumeConfig) (Volume, error)
	// Inspect returns one volume.
	Inspect(ctx context.Context, name string) (Volume, error)
	// List returns volumes matching opts.
	List(ctx context.Context, opts ListOptions) ([]Volume, error)
	// Remove deletes a volume and its data. ErrInUse while a container
	// mounts it.
	Remove(ctx context.Context, name string) error
	// Prune removes volumes no container mounts and reports the space freed.
	Prune(ctx context.Context) (PruneReport, error)
}
