package local_test

import (
	"context"
	"os"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/local"
	"berth.dev/berth/engine/reexec"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestConformance runs the engine conformance suite against the real
// engine, each subtest on a fresh data root with the busybox image.
func TestConformance(t *testing.T) {
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "overlay")
	enginetest.RunSuite(t, func(t *testing.T) (engine.Engine, string) {
		e, err := local.Open(t.Context(), local.Config{DataRoot: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cs, _ := e.Containers().List(ctx, engine.ListContainersOptions{All: true})
			for _, c := range cs {
				_ = e.Containers().Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true})
			}
			e.Close()
		})
		return e, enginetest.ImportBusybox(t, t.Context(), e, "busybox:suite")
	})
}
