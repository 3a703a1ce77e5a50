package cli

import (
	"context"
	"fmt"

	"berth.dev/berth/engine/local"
)

// Engine opens the embedded engine on the configured data root. The caller
// closes it.
func (o *Options) Engine(ctx context.Context) (*local.Engine, error) {
	return o.engine(ctx, local.GCOnOpen)
}

// engine opens the engine, collecting what killed commands left behind as
// gc says.
func (o *Options) engine(ctx context.Context, gc local.GCMode) (*local.Engine, error) {
	e, err := local.Open(ctx, local.Config{
		DataRoot:           o.DataRoot,
		InsecureRegistries: o.InsecureRegistries,
		Log:                o.Log,
		GC:                 gc,
	})
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	return e, nil
}
