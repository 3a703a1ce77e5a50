package shim

import (
	"sync"
	"syscall"
	"time"
)

// reaper collects every child of the monitor (it is a child subreaper, so
// orphans of its children land here too) and hands each wait status to
// whoever waits for that pid.
//
// It blocks in wait4 rather than waiting for SIGCHLD: the kernel then wakes
// the reaping thread directly when a child exits, where a signal goes
// through the runtime's handler and two goroutine switches first, which
// costs milliseconds on the critical path of every exit.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	early   map[int]syscall.WaitStatus // exited before anyone waited
	// kick wakes a reaper that found no child: one was started since.
	kick chan struct{}
}

func newReaper() *reaper {
	r := &reaper{
		waiters: map[int]chan syscall.WaitStatus{},
		early:   map[int]syscall.WaitStatus{},
		kick:    make(chan struct{}, 1),
	}
	go r.loop()
	return r
}

func (r *reaper) loop() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case err == syscall.EINTR:
		case err == syscall.ECHILD:
			<-r.kick
		case err != nil:
			time.Sleep(10 * time.Millisecond)
		default:
			r.deliver(pid, ws)
		}
	}
}

func (r *reaper) deliver(pid int, ws syscall.WaitStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.waiters[pid]; ok {
		c <- ws
		delete(r.waiters, pid)
		return
	}
	if len(r.early) > 64 { // unclaimed orphans: forget the oldest
		for k := range r.early {
			delete(r.early, k)
			break
		}
	}
	r.early[pid] = ws
}

// started tells the reaper that a child was started.
func (r *reaper) started() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// wait returns a channel that receives pid's wait status. Call it as soon
// as the child is started.
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
	r.started()
	return c
}
