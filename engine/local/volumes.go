package local

import (
	"context"

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

// volumeStore is the concrete store, for the container runtime: it needs
// Mountpoint, NeedsPopulate and MarkPopulated beyond engine.Volumes.
func (e *Engine) volumeStore() *volume.Store {
	s, _ := e.volumes.(*volume.Store)
	return s
}
