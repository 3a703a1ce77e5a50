package local

import "context"

// openNetworks wires nothing yet: the networks part lands in a later commit.
func openNetworks(ctx context.Context, e *Engine) error { return nil }
