package local

import "context"

// openContainers wires nothing yet: the containers part lands in a later commit.
func openContainers(ctx context.Context, e *Engine) error { return nil }
