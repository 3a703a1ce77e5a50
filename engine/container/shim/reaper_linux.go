package shim

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper collects every child of the monitor (it is a child subreaper, so
// orphans of its children land here too) and hands each wait status to
// whoever waits for that pid.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	early   map[int]syscall.WaitStatus // exited before anyone waited
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int]chan syscall.WaitStatus{}, early: map[int]syscall.WaitStatus{}}
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		for range ch {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		if c, ok := r.waiters[pid]; ok {
			c <- ws
			delete(r.waiters, pid)
		} else {
			if len(r.early) > 64 { // unclaimed orphans: forget the oldest
				for k := range r.early {
					delete(r.early, k)
					break
				}
			}
			r.early[pid] = ws
		}
		r.mu.Unlock()
	}
}

// wait returns a channel that receives pid's wait status.
func (r *reaper) wait(pid int) <-chan syscall.WaitStatus {
	c := make(chan syscall.WaitStatus, 1)
	r.mu.Lock()
	if ws, ok := r.early[pid]; ok {
		c <- ws
		delete(r.early, pid)
	} else {
		r.waiters[pid] = c
	}
	r.mu.Unlock()
	r.reap() // in case its SIGCHLD was coalesced with an earlier one
	return c
}
