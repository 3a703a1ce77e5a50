package state

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Lock is an advisory lock on a file (flock). The kernel drops it when the
// holder dies, so a kill -9 never leaves a stale lock behind.
type Lock struct {
	f *os.File
}

// Acquire takes an exclusive lock on path, creating the file if needed, and
// waits for it until ctx ends.
func Acquire(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, path, syscall.LOCK_EX, os.O_CREATE)
}

// AcquireExisting is Acquire for a lock file that must already exist: a
// missing file is fs.ErrNotExist, and nothing is created. Locks that live
// inside a directory another process may be deleting need it: creating the
// file there would make that deletion fail with "directory not empty".
func AcquireExisting(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, path, syscall.LOCK_EX, 0)
}

// AcquireShared takes a shared lock on path, waiting until ctx ends.
func AcquireShared(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, path, syscall.LOCK_SH, os.O_CREATE)
}

// TryAcquire takes an exclusive lock on path without waiting; ok is false
// when another process holds it.
func TryAcquire(path string) (l *Lock, ok bool, err error) {
	return tryAcquire(path, os.O_CREATE)
}

// TryAcquireExisting is TryAcquire without creating the file (see
// AcquireExisting).
func TryAcquireExisting(path string) (l *Lock, ok bool, err error) {
	return tryAcquire(path, 0)
}

func tryAcquire(path string, create int) (l *Lock, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|create|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, true, nil
}

func acquire(ctx context.Context, path string, how, create int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|create|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Poll with LOCK_NB rather than block in flock: a blocked flock cannot be
	// interrupted by ctx. The back-off keeps an uncontended lock at one syscall.
	wait := 200 * time.Microsecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, context.Cause(ctx))
		case <-t.C:
		}
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}

// Release drops the lock. Releasing a nil or released lock does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last fd drops the flock
	l.f = nil
	return err
}
