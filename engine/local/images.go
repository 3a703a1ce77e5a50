package local

import (
	"context"
	"fmt"

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
