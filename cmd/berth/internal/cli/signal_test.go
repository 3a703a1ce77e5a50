package cli

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNotifyContext(t *testing.T) {
	// A handler of the test's own, so that a signal sent before
	// NotifyContext's is installed does not end the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGUSR2)
	defer signal.Stop(guard)

	ctx, stop := NotifyContext(t.Context(), syscall.SIGUSR2)
	defer stop()
	deadline := time.After(10 * time.Second)
	for ctx.Err() == nil {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatal("the signal did not cancel the context")
		}
	}
	if cause := context.Cause(ctx); cause == nil || !strings.Contains(cause.Error(), "signal received") {
		t.Errorf("cause = %v, want the signal", cause)
	}

	ctx2, stop2 := NotifyContext(t.Context(), syscall.SIGUSR2)
	stop2()
	stop2()
	if ctx2.Err() == nil {
		t.Error("stop did not cancel the context")
	}
}
