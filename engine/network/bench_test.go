package network

import (
	"testing"

	"berth.dev/berth/engine"
)

// BenchmarkLifecycle is one container's network life without DNS or ports:
// Sandbox, Attach, Detach, RemoveSandbox (what berth run --rm pays).
func BenchmarkLifecycle(b *testing.B) {
	e := newEnv(b)
	if _, err := e.m.Create(b.Context(), engine.NetworkConfig{Name: "n"}); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	for b.Loop() {
		id := newID()
		ns, err := e.m.Sandbox(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.m.Attach(ctx, AttachRequest{ContainerID: id, NsPath: ns, Endpoints: []engine.EndpointConfig{{Network: "n"}}}); err != nil {
			b.Fatal(err)
		}
		if err := e.m.Detach(ctx, id); err != nil {
			b.Fatal(err)
		}
		if err := e.m.RemoveSandbox(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
