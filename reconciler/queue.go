package reconciler

import (
	"sync"
	"time"

	"berth.dev/berth/reconciler/plan"
)

// queue is controller-runtime's workqueue, reduced to what watch needs: a
// set of dirty keys handed to workers in FIFO order, where a key being
// processed is never handed out again until Done (if it was added
// meanwhile it comes back after Done), delayed adds, and per-key
// exponential back-off that Forget resets.
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	items      []plan.Key
	dirty      map[plan.Key]bool
	processing map[plan.Key]bool
	failures   map[plan.Key]int
	timers     map[plan.Key]*time.Timer
	shutdown   bool

	baseDelay, maxDelay time.Duration
}

func newQueue(base, max time.Duration) *queue {
	q := &queue{
		dirty: map[plan.Key]bool{}, processing: map[plan.Key]bool{},
		failures: map[plan.Key]int{}, timers: map[plan.Key]*time.Timer{},
		baseDelay: base, maxDelay: max,
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add marks key dirty now.
func (q *queue) Add(key plan.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *queue) addLocked(key plan.Key) {
	if q.shutdown || q.dirty[key] {
		return
	}
	if t, ok := q.timers[key]; ok {
		t.Stop() // an immediate add wins over a pending delayed one
		delete(q.timers, key)
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // Done re-queues it
	}
	q.items = append(q.items, key)
	q.cond.Signal()
}

// AddAfter marks key dirty after d, unless something adds it sooner.
func (q *queue) AddAfter(key plan.Key, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	if d <= 0 {
		q.addLocked(key)
		return
	}
	if t, ok := q.timers[key]; ok {
		t.Stop()
	}
	q.timers[key] = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.timers, key)
		q.addLocked(key)
	})
}

// Backoff records a failure of key and re-adds it after 1 s, 2 s, 4 s ...
// up to the maximum (5 min); it returns the delay.
func (q *queue) Backoff(key plan.Key) time.Duration {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	d := q.baseDelay << min(n, 30)
	if d > q.maxDelay || d <= 0 {
		d = q.maxDelay
	}
	q.AddAfter(key, d)
	return d
}

// Forget resets key's back-off.
func (q *queue) Forget(key plan.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// Get blocks until a key is ready, and marks it processing. ok is false
// once the queue is shut down.
func (q *queue) Get() (plan.Key, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return plan.Key{}, false
	}
	key := q.items[0]
	q.items = q.items[1:]
	delete(q.dirty, key)
	q.processing[key] = true
	return key, true
}

// Done ends processing of key; if it was added meanwhile it is queued again.
func (q *queue) Done(key plan.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] && !q.shutdown {
		q.items = append(q.items, key)
		q.cond.Signal()
	}
}

// ShutDown wakes every Get with ok false and stops delayed adds.
func (q *queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
}

// Len returns the number of keys waiting.
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
