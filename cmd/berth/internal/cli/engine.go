package cli

import (
	"context"
	"fmt"

	"berth.dev/berth/engine/local"
)

// Engine opens the embedded engine on the configured data root. The caller
// closes it.
func (o *Options) Engine(ctx context.Context) (*local.Engine, error) {
	e, err := local.Open(ctx, local.Config{
		DataRoot:           o.DataRoot,
		InsecureRegistries: o.InsecureRegistries,
		Log:                o.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	return e, nil
}
