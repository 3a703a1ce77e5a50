package enginetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/engine"
)

func fakeWithImage(t *testing.T) *Fake {
	t.Helper()
	f := NewFake()
	t.Cleanup(func() { f.Close() })
	if _, err := f.Images().Import(t.Context(), strings.NewReader("rootfs"), "busybox:latest", engine.ImportOptions{Changes: []string{`CMD ["sh"]`}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func run(t *testing.T, f *Fake, cfg engine.ContainerConfig) engine.Container {
	t.Helper()
	if cfg.Image == "" {
		cfg.Image = "busybox"
	}
	c, err := f.Containers().Create(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Containers().Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFakeCommandModel(t *testing.T) {
	f := fakeWithImage(t)
	ctx := t.Context()
	tests := []struct {
		cmd  []string
		code int
	}{
		{[]string{"true"}, 0},
		{[]string{"false"}, 1},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "echo hi; exit 7"}, 7},
		{[]string{"sleep", "0.01"}, 0},
	}
	for i, tc := range tests {
		c := run(t, f, engine.ContainerConfig{Name: "m" + string(rune('a'+i)), Cmd: tc.cmd})
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		code, err := f.Containers().Wait(ctx, c.ID, engine.WaitNotRunning)
		cancel()
		if err != nil || code != tc.code {
			t.Errorf("%q: exit %d, %v; want %d", tc.cmd, code, err, tc.code)
		}
	}
	c := run(t, f, engine.ContainerConfig{Name: "sleeper", Cmd: []string{"sleep", "infinity"}})
	got, _ := f.Containers().Inspect(ctx, "sleeper")
	if !got.State.Running {
		t.Fatal("sleep infinity is not running")
	}
	if err := f.Containers().Stop(ctx, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = f.Containers().Inspect(ctx, c.ID)
	if got.State.Status != engine.StatusExited || got.State.ExitCode != 143 {
		t.Errorf("after stop: %+v", got.State)
	}
}

func TestFakeRestartAndHealth(t *testing.T) {
	f := fakeWithImage(t)
	ctx := t.Context()
	c := run(t, f, engine.ContainerConfig{
		Name: "web", Cmd: []string{"httpd"}, Restart: engine.RestartPolicy{Name: "always"},
		Healthcheck: &engine.Healthcheck{Test: []string{"true"}, Interval: 10 * time.Millisecond},
	})
	waitFor(t, func() bool {
		got, _ := f.Containers().Inspect(ctx, c.ID)
		return got.State.Health != nil && got.State.Health.Status == "healthy"
	})
	if err := f.Crash(c.ID, 137); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		got, _ := f.Containers().Inspect(ctx, c.ID)
		return got.State.Running && got.State.RestartCount == 1
	})
	// A manual stop is not undone by the restart policy.
	if err := f.Containers().Stop(ctx, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	got, _ := f.Containers().Inspect(ctx, c.ID)
	if got.State.Status != engine.StatusExited {
		t.Errorf("stopped container restarted: %+v", got.State)
	}
	if err := f.Containers().Remove(ctx, c.ID, engine.RemoveContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Containers().Inspect(ctx, c.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect after remove: %v", err)
	}
}

func TestFakeRegistry(t *testing.T) {
	f := fakeWithImage(t)
	ctx := t.Context()
	if _, err := f.Images().Resolve(ctx, "127.0.0.1:5000/bb:1", nil); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("resolve before push: %v", err)
	}
	if err := f.Images().Tag(ctx, "busybox", "127.0.0.1:5000/bb:1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Images().Push(ctx, "127.0.0.1:5000/bb:1", engine.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	d, err := f.Images().Resolve(ctx, "127.0.0.1:5000/bb:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	im, err := f.Images().Inspect(ctx, "127.0.0.1:5000/bb@"+d)
	if err != nil || im.Digest != d {
		t.Fatalf("inspect by digest: %+v %v", im, err)
	}
	if _, err := f.Images().Pull(ctx, "127.0.0.1:5000/bb@"+d, engine.PullOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
