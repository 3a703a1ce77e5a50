package enginetest

import (
	"testing"

	"berth.dev/berth/engine"
)

func TestFakeConformance(t *testing.T) {
	RunSuite(t, func(t *testing.T) (engine.Engine, string) {
		f := NewFake()
		t.Cleanup(func() { f.Close() })
		ImportBusybox(t, t.Context(), f, "busybox:suite")
		return f, "busybox:suite"
	})
}
