package local

import (
	"context"
	"fmt"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container"
)

// The stores ask which containers use an image, a volume or a network
// before they remove one. The answer is read from the container runtime at
// each call, never stored with the object, and counts stopped containers
// too; it works whatever the order of construction, and without a
// container runtime nothing is in use.

// imageUsers maps image IDs to the IDs of the containers created from them.
func (e *Engine) imageUsers(ctx context.Context) (map[string][]string, error) {
	u, err := e.users(ctx)
	return u.images, err
}

// volumeUsers maps volume names to the IDs of the containers that mount
// them.
func (e *Engine) volumeUsers(ctx context.Context) (map[string][]string, error) {
	u, err := e.users(ctx)
	return u.volumes, err
}

// networkUsers maps the network references in container configs (names or
// IDs) to the containers that carry them.
func (e *Engine) networkUsers(ctx context.Context) (map[string][]string, error) {
	u, err := e.users(ctx)
	return u.networks, err
}

// usage is what containers use, each to the IDs of the containers using it.
type usage struct {
	images, volumes, networks map[string][]string
}

// containerUsers is the container runtime's cheap usage report
// (container.Runtime.Users), from the records alone.
type containerUsers interface {
	Users(ctx context.Context) (images, volumes, networks map[string][]string, err error)
}

var _ containerUsers = (*container.Runtime)(nil)

// users reads the usage from the container records where the runtime can
// (List would also check every container's processes, for nothing), else
// from List.
func (e *Engine) users(ctx context.Context) (usage, error) {
	if e.containers == nil {
		return usage{}, nil
	}
	if r, ok := e.containers.(containerUsers); ok {
		images, volumes, networks, err := r.Users(ctx)
		if err != nil {
			return usage{}, fmt.Errorf("list containers: %w", err)
		}
		return usage{images: images, volumes: volumes, networks: networks}, nil
	}
	cs, err := e.containers.List(ctx, engine.ListContainersOptions{All: true})
	if err != nil {
		return usage{}, fmt.Errorf("list containers: %w", err)
	}
	u := usage{images: map[string][]string{}, volumes: map[string][]string{}, networks: map[string][]string{}}
	for _, c := range cs {
		if c.ImageID != "" {
			u.images[c.ImageID] = append(u.images[c.ImageID], c.ID)
		}
		for _, m := range c.Config.Mounts {
			if m.Type == engine.MountVolume {
				u.volumes[m.Source] = append(u.volumes[m.Source], c.ID)
			}
		}
		for _, ep := range c.Config.Networks {
			u.networks[ep.Network] = append(u.networks[ep.Network], c.ID)
		}
	}
	return u, nil
}
