package local

import "context"

// openVolumes wires nothing yet: the volumes part lands in a later commit.
func openVolumes(ctx context.Context, e *Engine) error { return nil }
