package local

import (
	"context"
	"fmt"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/image"
)

// openImages opens the image store at <data-root>/images. Which containers
// use which image is read live from the container runtime, so that image
// removal and prune never take an image from under a container.
func openImages(ctx context.Context, e *Engine) error {
	s, err := image.Open(e.path("images"),
		image.WithInsecureRegistries(e.cfg.InsecureRegistries),
		image.WithLogger(e.cfg.Log),
		image.WithUsers(e.imageUsers),
	)
	if err != nil {
		return fmt.Errorf("open images: %w", err)
	}
	e.images = s
	return nil
}

// imageUsers maps image IDs to the IDs of the containers created from them.
// Before the container runtime is wired in, no container uses any image.
func (e *Engine) imageUsers(ctx context.Context) (map[string][]string, error) {
	if e.containers == nil {
		return nil, nil
	}
	cs, err := e.containers.List(ctx, engine.ListContainersOptions{All: true})
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, c := range cs {
		if c.ImageID != "" {
			users[c.ImageID] = append(users[c.ImageID], c.ID)
		}
	}
	return users, nil
}
