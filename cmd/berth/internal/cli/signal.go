package cli

import (
	"context"
	"os"
	"os/signal"
	"sync"
)

// NotifyContext is signal.NotifyContext with the handlers installed on
// another goroutine, so that the command starts meanwhile: the first
// handler starts the Go runtime's signal thread and waits for it, 0.6 ms
// on these machines, in a command whose whole budget is 20. Until the
// handlers are in place a signal has its default effect, as it has during
// the process's start-up anyway. As with signal.NotifyContext, the first
// signal cancels ctx (its cause names the signal) and later ones are
// ignored until stop is called.
func NotifyContext(parent context.Context, signals ...os.Signal) (ctx context.Context, stop context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	stopped := make(chan struct{})
	go func() {
		sctx, sstop := signal.NotifyContext(context.Background(), signals...)
		defer sstop()
		select {
		case <-sctx.Done():
			cancel(context.Cause(sctx))
			<-stopped
		case <-stopped:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			cancel(nil)
			close(stopped)
		})
	}
}
