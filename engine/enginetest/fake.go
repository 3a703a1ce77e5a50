package enginetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"sync"
	"time"

	"berth.dev/berth/engine"
)

// Fake is an in-memory engine.Engine for tests that must not need root:
// images, containers, networks and volumes live in maps, container
// processes follow a tiny command model, and a built-in registry stands in
// for remote ones. It passes the same conformance suite as the real engine
// (RunSuite), which keeps it honest; it is not a call-recording mock.
//
// The command model (argv is the container's entrypoint + cmd, the first
// element's base name decides):
//
//	sleep N        runs N seconds then exits 0; "sleep infinity" runs until stopped
//	true / false   exits 0 / 1 at once
//	echo ARGS      prints ARGS to stdout, exits 0
//	sh -c SCRIPT   runs SCRIPT: commands above separated by ";" or "&&",
//	               plus "exit N"
//	anything else  runs until stopped, like a server
//
// A stop signal ends the process at once with 128+signal. Healthchecks run
// their command through the same model. Restart policies, back-off
// (100 ms doubling), health, events, port conflicts, in-use checks and the
// error classes behave as the engine contract documents.
type Fake struct {
	mu         sync.Mutex
	images     map[string]*fakeImage // by ID
	tags       map[string]string     // familiar name:tag -> image ID
	registry   map[string]*fakeRepo  // familiar repository -> what a registry holds
	containers map[string]*fakeContainer
	networks   map[string]*engine.Network // by ID
	volumes    map[string]*engine.Volume  // by name
	subnets    int
	subs       map[chan engine.Event]struct{}
	closed     bool
	timers     map[*time.Timer]struct{}
}

var _ engine.Engine = (*Fake)(nil)

// NewFake returns an empty fake engine.
func NewFake() *Fake {
	return &Fake{
		images:     map[string]*fakeImage{},
		tags:       map[string]string{},
		registry:   map[string]*fakeRepo{},
		containers: map[string]*fakeContainer{},
		networks:   map[string]*engine.Network{},
		volumes:    map[string]*engine.Volume{},
		subs:       map[chan engine.Event]struct{}{},
		timers:     map[*time.Timer]struct{}{},
	}
}

// Images returns the image store.
func (f *Fake) Images() engine.Images { return (*fakeImages)(f) }

// Containers returns the container runtime.
func (f *Fake) Containers() engine.Containers { return (*fakeContainers)(f) }

// Networks returns the network manager.
func (f *Fake) Networks() engine.Networks { return (*fakeNetworks)(f) }

// Volumes returns the volume store.
func (f *Fake) Volumes() engine.Volumes { return (*fakeVolumes)(f) }

// Events streams events that happen after the call, until ctx ends.
func (f *Fake) Events(ctx context.Context) (<-chan engine.Event, error) {
	ch := make(chan engine.Event, 4096)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, fmt.Errorf("events: engine closed: %w", engine.ErrIllegalState)
	}
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
		f.mu.Unlock()
	}()
	return ch, nil
}

// Close stops the fake's timers (its "processes" freeze where they are) and
// ends event streams.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for t := range f.timers {
		t.Stop()
	}
	clear(f.timers)
	for ch := range f.subs {
		close(ch)
	}
	clear(f.subs)
	return nil
}

// publishLocked sends an event to every subscriber. A subscriber that lets
// 4096 events pile up loses the newest ones, as a slow reader of a real
// event socket would.
func (f *Fake) publishLocked(typ, action, id, name string, labels map[string]string, attrs ...string) {
	ev := engine.Event{Time: time.Now(), Type: typ, Action: action, ID: id, Name: name, Attrs: maps.Clone(labels)}
	if ev.Attrs == nil && len(attrs) > 0 {
		ev.Attrs = map[string]string{}
	}
	for i := 0; i+1 < len(attrs); i += 2 {
		ev.Attrs[attrs[i]] = attrs[i+1]
	}
	for ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// afterLocked runs fn under the lock after d, unless the fake is closed.
func (f *Fake) afterLocked(d time.Duration, fn func()) *time.Timer {
	if f.closed {
		return nil
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.timers[t]; !ok {
			return // stopped or closed
		}
		delete(f.timers, t)
		fn()
	})
	f.timers[t] = struct{}{}
	return t
}

func (f *Fake) stopTimerLocked(t *time.Timer) {
	if t != nil {
		t.Stop()
		delete(f.timers, t)
	}
}

func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
