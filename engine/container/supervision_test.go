package container_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

func TestHealthcheck(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", "sleep 0.6; touch /tmp/ok; sleep 3600")
	cfg.Healthcheck = &engine.Healthcheck{Test: []string{"sh", "-c", "cat /tmp/ok && echo fine"}, Interval: 150 * time.Millisecond, Retries: 2, Timeout: time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	evs, err := v.e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := v.start(cfg)
	if h := v.inspect(c.ID).State.Health; h == nil || h.Status != "starting" {
		t.Errorf("health at start: %+v", h)
	}
	var seen []string
	timeout := time.After(10 * time.Second)
	for len(seen) < 2 {
		select {
		case ev := <-evs:
			if ev.ID == c.ID && ev.Action == "health_status" {
				seen = append(seen, ev.Attrs["health"])
			}
		case <-timeout:
			t.Fatalf("health events %v", seen)
		}
	}
	if strings.Join(seen, ",") != "unhealthy,healthy" {
		t.Errorf("health went %v, want unhealthy then healthy", seen)
	}
	h := v.inspect(c.ID).State.Health
	if h == nil || h.Status != "healthy" || h.FailingStreak != 0 || len(h.Log) == 0 || h.Log[len(h.Log)-1].Output != "fine\n" {
		t.Errorf("health %+v", h)
	}
}

func TestEventsAndWait(t *testing.T) {
	v := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	evs, err := v.e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := v.start(v.config("sleep", "0.3"))
	got := map[string]time.Time{}
	timeout := time.After(10 * time.Second)
	for got["die"].IsZero() {
		select {
		case ev := <-evs:
			if ev.ID == c.ID {
				got[ev.Action] = time.Now()
				if ev.Action == "die" && ev.Attrs["exitCode"] != "0" {
					t.Errorf("die event %+v", ev)
				}
			}
		case <-timeout:
			t.Fatalf("events %v", got)
		}
	}
	for _, a := range []string{"create", "start", "die"} {
		if got[a].IsZero() {
			t.Errorf("no %s event", a)
		}
	}
	// The exit is published as soon as it is recorded: well within 100 ms.
	st := v.inspect(c.ID).State
	if lag := got["die"].Sub(st.FinishedAt); lag > 100*time.Millisecond {
		t.Errorf("die event %s after the exit", lag)
	}
	code, err := v.rt.Wait(ctx, c.ID, engine.WaitNotRunning)
	if err != nil || code != 0 {
		t.Errorf("wait: %d, %v", code, err)
	}
	done := make(chan error, 1)
	go func() { _, err := v.rt.Wait(ctx, c.ID, engine.WaitRemoved); done <- err }()
	time.Sleep(100 * time.Millisecond)
	if err := v.rt.Remove(ctx, c.ID, engine.RemoveContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("wait removed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("wait removed did not return")
	}
}

func TestUpdateInPlace(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sleep", "3600")
	cfg.Labels = map[string]string{"a": "1"}
	c := v.start(cfg)
	ctx := t.Context()
	mem := int64(64 << 20)
	err := v.rt.Update(ctx, c.ID, engine.ContainerUpdate{
		Restart:   &engine.RestartPolicy{Name: "always"},
		Resources: &engine.Resources{MemoryBytes: mem, PidsLimit: 50},
		Labels:    map[string]string{"b": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := v.inspect(c.ID)
	if got.Config.Restart.Name != "always" || got.Config.Labels["b"] != "2" || got.Config.Labels["a"] != "" || !got.State.Running || got.State.Pid != c.State.Pid {
		t.Errorf("after update: %+v", got)
	}
	st, err := v.rt.Stats(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.MemoryLimit != mem || st.PidsLimit != 50 || st.Pids < 1 || st.MemoryUsage <= 0 {
		t.Errorf("stats %+v", st)
	}
	cs, err := v.rt.List(ctx, engine.ListContainersOptions{Labels: map[string]string{"b": "2"}})
	if err != nil || len(cs) != 1 || cs[0].ID != c.ID {
		t.Errorf("list by label: %v, %v", cs, err)
	}
	if cs, _ := v.rt.List(ctx, engine.ListContainersOptions{Labels: map[string]string{"a": ""}}); len(cs) != 0 {
		t.Errorf("old label still matches")
	}
}

func TestAttach(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", "while read l; do echo got $l; done; echo bye")
	cfg.OpenStdin = true
	c := v.start(cfg)
	pr, pw := ioPipe()
	var out enginetest.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- v.rt.Attach(t.Context(), c.ID, engine.Streams{Stdin: pr, Stdout: &out, Stderr: &out}) }()
	time.Sleep(200 * time.Millisecond)
	pw.Write([]byte("one\ntwo\n"))
	pw.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end")
	}
	if out.String() != "got one\ngot two\nbye\n" {
		t.Errorf("attached output %q", out.String())
	}
}
