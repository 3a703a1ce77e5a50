package local

import (
	"context"
	"fmt"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container"
	"berth.dev/berth/engine/volume"
)

// openVolumes opens the volume store under <data-root>/volumes. Which
// containers use a volume is derived from the container records at each
// call, never stored with the volume.
func openVolumes(ctx context.Context, e *Engine) error {
	s, err := volume.Open(e.path("volumes"), volume.WithUsers(e.volumeUsers))
	if err != nil {
		return err
	}
	e.volumes = s
	return nil
}

// volumeUsers maps each volume name to the IDs of the containers, running
// or not, that mount it. It reads e.containers when called, so it works
// whatever the order of construction; without a container runtime no
// volume is in use.
func (e *Engine) volumeUsers(ctx context.Context) (map[string][]string, error) {
	if e.containers == nil {
		return nil, nil
	}
	if u, ok := e.containers.(containerUsers); ok {
		// The records say which volumes a container mounts; List would also
		// check every container's processes, for nothing.
		_, volumes, _, err := u.Users(ctx)
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		return volumes, nil
	}
	cs, err := e.containers.List(ctx, engine.ListContainersOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	users := map[string][]string{}
	for _, c := range cs {
		for _, m := range c.Config.Mounts {
			if m.Type == engine.MountVolume {
				users[m.Source] = append(users[m.Source], c.ID)
			}
		}
	}
	return users, nil
}

// containerUsers is the container runtime's cheap usage report
// (container.Runtime.Users): image IDs, volume names and network references
// to the IDs of the containers using them, from their records alone.
type containerUsers interface {
	Users(ctx context.Context) (images, volumes, networks map[string][]string, err error)
}

var _ containerUsers = (*container.Runtime)(nil)

// volumeStore is the concrete store, for the container runtime: it needs
// Mountpoint, NeedsPopulate and MarkPopulated beyond engine.Volumes.
func (e *Engine) volumeStore() *volume.Store {
	s, _ := e.volumes.(*volume.Store)
	return s
}
