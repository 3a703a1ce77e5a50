package enginetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/engine"
)

// Factory makes the engine a suite test runs against and names an image
// present in it. Each call should return a fresh engine (or one where the
// suite's unique names cannot collide); the factory registers its own
// cleanup with t.
type Factory func(t *testing.T) (e engine.Engine, image string)

// RunSuite runs the engine conformance suite: the behaviour of the engine
// contract (engine.Engine) that holds whatever a container's process does.
// The real engine (as root) and any in-memory fake must both pass it.
//
// The suite only runs commands of this tiny model, which a fake must honour
// (argv is entrypoint + cmd; the first word decides):
//
//	sleep N        runs about N seconds, then exits 0 ("sleep 3600": until stopped)
//	true           exits 0 at once
//	sh -c "exit N" exits N at once
//
// and it expects a stopped or killed process to end (Stop may take up to its
// timeout, which the suite keeps at 1 s), SIGKILL to give exit code 137, and
// restart policies with Docker's back-off (100 ms, doubling) to apply.
// Network subtests run only when the engine's Networks() is non-nil and
// Create does not fail with engine.ErrUnsupported.
func RunSuite(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"ContainerCreateInspectList", testCreateInspectList},
		{"ContainerStartStopRemove", testStartStopRemove},
		{"ContainerExitCodeAndWait", testExitCodeAndWait},
		{"ContainerErrors", testContainerErrors},
		{"ContainerLabels", testLabels},
		{"ContainerUpdate", testUpdate},
		{"ContainerKill", testKill},
		{"ContainerRestartPolicy", testRestartPolicy},
		{"ContainerRestart", testRestart},
		{"Events", testEvents},
		{"Volumes", testVolumes},
		{"Networks", testNetworks},
		{"PublishedPorts", testPublishedPorts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, image := factory(t)
			tc.fn(t, &suite{t: t, e: e, image: image})
		})
	}
}

type suite struct {
	t     *testing.T
	e     engine.Engine
	image string
}

const stopTimeout = time.Second

func (s *suite) name(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "suite-" + prefix + "-" + hex.EncodeToString(b[:])
}

func (s *suite) cs() engine.Containers { return s.e.Containers() }

// create makes a container that the test's cleanup removes.
func (s *suite) create(cfg engine.ContainerConfig) engine.Container {
	s.t.Helper()
	if cfg.Image == "" {
		cfg.Image = s.image
	}
	if cfg.Name == "" {
		cfg.Name = s.name("c")
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = stopTimeout
	}
	c, err := s.cs().Create(s.t.Context(), cfg)
	if err != nil {
		s.t.Fatalf("create %v: %v", cfg.Cmd, err)
	}
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.cs().Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true}); err != nil && !errors.Is(err, engine.ErrNotFound) {
			s.t.Errorf("cleanup: remove %s: %v", c.Name, err)
		}
	})
	return c
}

func (s *suite) start(cfg engine.ContainerConfig) engine.Container {
	s.t.Helper()
	c := s.create(cfg)
	if err := s.cs().Start(s.t.Context(), c.ID); err != nil {
		s.t.Fatalf("start %v: %v", cfg.Cmd, err)
	}
	return c
}

func (s *suite) inspect(ref string) engine.Container {
	s.t.Helper()
	c, err := s.cs().Inspect(s.t.Context(), ref)
	if err != nil {
		s.t.Fatalf("inspect %s: %v", ref, err)
	}
	return c
}

func (s *suite) wait(id string) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 20*time.Second)
	defer cancel()
	code, err := s.cs().Wait(ctx, id, engine.WaitNotRunning)
	if err != nil {
		s.t.Fatalf("wait %s: %v", id, err)
	}
	return code
}

// eventually polls cond for up to d.
func (s *suite) eventually(d time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sleeper() []string { return []string{"sleep", "3600"} }

func ids(cs []engine.Container) map[string]bool {
	m := map[string]bool{}
	for _, c := range cs {
		m[c.ID] = true
	}
	return m
}

func testCreateInspectList(t *testing.T, s *suite) {
	ctx := t.Context()
	c := s.create(engine.ContainerConfig{Cmd: sleeper()})
	if len(c.ID) != 64 || strings.Trim(c.ID, "0123456789abcdef") != "" {
		t.Errorf("ID %q is not 64 lowercase hex", c.ID)
	}
	if c.State.Status != engine.StatusCreated || c.State.Running {
		t.Errorf("new container state %+v", c.State)
	}
	if c.ImageID == "" || len(c.Command) != 2 || c.Command[0] != "sleep" {
		t.Errorf("container %+v: want an image ID and the command", c)
	}
	for _, ref := range []string{c.ID, c.Name, c.ID[:12]} {
		got, err := s.cs().Inspect(ctx, ref)
		if err != nil || got.ID != c.ID {
			t.Errorf("inspect %q: %v, %v", ref, got.ID, err)
		}
	}
	running, err := s.cs().List(ctx, engine.ListContainersOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ids(running)[c.ID] {
		t.Error("list without All shows a created container")
	}
	all, err := s.cs().List(ctx, engine.ListContainersOptions{All: true})
	if err != nil || !ids(all)[c.ID] {
		t.Errorf("list All lacks the container: %v", err)
	}
	// Docker's command rules: an entrypoint drops the image's cmd.
	c2 := s.create(engine.ContainerConfig{Entrypoint: []string{"sleep"}, Cmd: []string{"2"}})
	if strings.Join(c2.Command, " ") != "sleep 2" {
		t.Errorf("entrypoint + cmd = %q", c2.Command)
	}
	c3 := s.create(engine.ContainerConfig{Entrypoint: []string{"true"}})
	if strings.Join(c3.Command, " ") != "true" {
		t.Errorf("entrypoint without cmd = %q, want the image's cmd dropped", c3.Command)
	}
}

func testStartStopRemove(t *testing.T, s *suite) {
	ctx := t.Context()
	c := s.start(engine.ContainerConfig{Cmd: sleeper()})
	got := s.inspect(c.ID).State
	if got.Status != engine.StatusRunning || !got.Running || got.Pid <= 0 || got.StartedAt.IsZero() {
		t.Errorf("running state %+v", got)
	}
	running, _ := s.cs().List(ctx, engine.ListContainersOptions{})
	if !ids(running)[c.ID] {
		t.Error("list lacks a running container")
	}
	if err := s.cs().Stop(ctx, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	got = s.inspect(c.ID).State
	if got.Status != engine.StatusExited || got.Running || got.FinishedAt.IsZero() {
		t.Errorf("stopped state %+v", got)
	}
	if err := s.cs().Stop(ctx, c.ID, nil); err != nil {
		t.Errorf("stop of a stopped container: %v", err)
	}
	// Start again: an exited container starts.
	if err := s.cs().Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if !s.inspect(c.ID).State.Running {
		t.Error("not running after a second start")
	}
	if err := s.cs().Remove(ctx, c.ID, engine.RemoveContainerOptions{}); !errors.Is(err, engine.ErrRunning) {
		t.Errorf("remove of a running container: %v, want ErrRunning", err)
	}
	if err := s.cs().Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true}); err != nil {
		t.Fatalf("forced remove: %v", err)
	}
	if _, err := s.cs().Inspect(ctx, c.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect after remove: %v, want ErrNotFound", err)
	}
	if err := s.cs().Remove(ctx, c.ID, engine.RemoveContainerOptions{}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
	// The name is free again.
	s.create(engine.ContainerConfig{Name: c.Name, Cmd: sleeper()})
}

func testExitCodeAndWait(t *testing.T, s *suite) {
	c := s.start(engine.ContainerConfig{Cmd: []string{"sh", "-c", "exit 3"}})
	if code := s.wait(c.ID); code != 3 {
		t.Errorf("wait = %d, want 3", code)
	}
	if st := s.inspect(c.ID).State; st.Status != engine.StatusExited || st.ExitCode != 3 || st.Running {
		t.Errorf("state %+v", st)
	}
	c2 := s.start(engine.ContainerConfig{Cmd: []string{"true"}})
	if code := s.wait(c2.ID); code != 0 {
		t.Errorf("true: wait = %d", code)
	}
	// Wait for removal.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := s.cs().Wait(ctx, c2.ID, engine.WaitRemoved)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.cs().Remove(t.Context(), c2.ID, engine.RemoveContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("wait removed: %v", err)
	}
	// Wait honours its context.
	c3 := s.start(engine.ContainerConfig{Cmd: sleeper()})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.cs().Wait(ctx, c3.ID, engine.WaitNotRunning); err == nil {
		t.Error("wait on a running container returned before its context ended")
	}
}

func testContainerErrors(t *testing.T, s *suite) {
	ctx := t.Context()
	c := s.start(engine.ContainerConfig{Cmd: sleeper()})
	if err := s.cs().Start(ctx, c.ID); !errors.Is(err, engine.ErrRunning) {
		t.Errorf("start of a running container: %v, want ErrRunning", err)
	}
	if _, err := s.cs().Create(ctx, engine.ContainerConfig{Name: c.Name, Image: s.image, Cmd: sleeper()}); !errors.Is(err, engine.ErrExists) {
		t.Errorf("create with a taken name: %v, want ErrExists", err)
	}
	missing := s.name("missing")
	for name, err := range map[string]error{
		"inspect": func() error { _, err := s.cs().Inspect(ctx, missing); return err }(),
		"start":   s.cs().Start(ctx, missing),
		"stop":    s.cs().Stop(ctx, missing, nil),
		"kill":    s.cs().Kill(ctx, missing, "KILL"),
		"remove":  s.cs().Remove(ctx, missing, engine.RemoveContainerOptions{}),
		"update":  s.cs().Update(ctx, missing, engine.ContainerUpdate{}),
		"wait":    func() error { _, err := s.cs().Wait(ctx, missing, engine.WaitNotRunning); return err }(),
	} {
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("%s of a missing container: %v, want ErrNotFound", name, err)
		}
	}
	created := s.create(engine.ContainerConfig{Cmd: sleeper()})
	if err := s.cs().Kill(ctx, created.ID, "KILL"); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("kill of a created container: %v, want ErrNotRunning", err)
	}
	if _, err := s.cs().Exec(ctx, created.ID, engine.ExecConfig{Cmd: []string{"true"}}, engine.Streams{}); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("exec in a created container: %v, want ErrNotRunning", err)
	}
	if _, err := s.cs().Create(ctx, engine.ContainerConfig{Name: s.name("noimg"), Image: "berth-suite-no-such-image:1", Cmd: sleeper()}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("create from a missing image: %v, want ErrNotFound", err)
	}
	if _, err := s.cs().Create(ctx, engine.ContainerConfig{Name: "bad/name", Image: s.image, Cmd: sleeper()}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("create with a bad name: %v, want ErrInvalid", err)
	}
	if _, err := s.cs().Create(ctx, engine.ContainerConfig{Name: s.name("pol"), Image: s.image, Cmd: sleeper(), Restart: engine.RestartPolicy{Name: "sometimes"}}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("create with a bad restart policy: %v, want ErrInvalid", err)
	}
}

func testLabels(t *testing.T, s *suite) {
	ctx := t.Context()
	tag := s.name("l")
	a := s.create(engine.ContainerConfig{Cmd: sleeper(), Labels: map[string]string{"suite": tag, "tier": "front"}})
	b := s.create(engine.ContainerConfig{Cmd: sleeper(), Labels: map[string]string{"suite": tag, "tier": "back"}})
	tests := []struct {
		labels map[string]string
		want   []string
	}{
		{map[string]string{"suite": tag}, []string{a.ID, b.ID}},
		{map[string]string{"suite": tag, "tier": "front"}, []string{a.ID}},
		{map[string]string{"suite": tag, "tier": ""}, []string{a.ID, b.ID}},
		{map[string]string{"suite": tag, "tier": "none"}, nil},
	}
	for _, tc := range tests {
		got, err := s.cs().List(ctx, engine.ListContainersOptions{All: true, Labels: tc.labels})
		if err != nil {
			t.Fatal(err)
		}
		if g := ids(got); len(g) != len(tc.want) || (len(tc.want) > 0 && !g[tc.want[0]]) {
			t.Errorf("labels %v: got %d containers, want %d", tc.labels, len(got), len(tc.want))
		}
	}
	if got := s.inspect(a.ID).Config.Labels["tier"]; got != "front" {
		t.Errorf("label tier = %q", got)
	}
}

func testUpdate(t *testing.T, s *suite) {
	ctx := t.Context()
	c := s.start(engine.ContainerConfig{Cmd: sleeper(), Labels: map[string]string{"a": "1"}})
	pid := s.inspect(c.ID).State.Pid
	err := s.cs().Update(ctx, c.ID, engine.ContainerUpdate{
		Restart: &engine.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2},
		Labels:  map[string]string{"b": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := s.inspect(c.ID)
	if got.Config.Restart.Name != "on-failure" || got.Config.Restart.MaximumRetryCount != 2 {
		t.Errorf("restart policy %+v", got.Config.Restart)
	}
	if got.Config.Labels["b"] != "2" || got.Config.Labels["a"] != "" {
		t.Errorf("labels %v, want replaced", got.Config.Labels)
	}
	if !got.State.Running || got.State.Pid != pid {
		t.Errorf("update restarted the container: %+v", got.State)
	}
	if err := s.cs().Update(ctx, c.ID, engine.ContainerUpdate{Restart: &engine.RestartPolicy{Name: "bogus"}}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("update with a bad policy: %v, want ErrInvalid", err)
	}
}

func testKill(t *testing.T, s *suite) {
	ctx := t.Context()
	c := s.start(engine.ContainerConfig{Cmd: sleeper(), Restart: engine.RestartPolicy{Name: "always"}})
	if err := s.cs().Kill(ctx, c.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	if code := s.wait(c.ID); code != 137 {
		t.Errorf("exit code after SIGKILL %d, want 137", code)
	}
	// A killed container stays down whatever its policy.
	time.Sleep(300 * time.Millisecond)
	if st := s.inspect(c.ID).State; st.Running || st.Status != engine.StatusExited {
		t.Errorf("after kill: %+v", st)
	}
	if err := s.cs().Kill(ctx, c.ID, "BOGUS"); !errors.Is(err, engine.ErrInvalid) && !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("kill with a bad signal: %v", err)
	}
}

func testRestartPolicy(t *testing.T, s *suite) {
	c := s.start(engine.ContainerConfig{Cmd: []string{"sh", "-c", "exit 3"}, Restart: engine.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}})
	s.eventually(15*time.Second, "on-failure:2 to give up", func() bool {
		st := s.inspect(c.ID).State
		return st.Status == engine.StatusExited && st.RestartCount == 2
	})
	if st := s.inspect(c.ID).State; st.ExitCode != 3 {
		t.Errorf("state %+v", st)
	}
	ok := s.start(engine.ContainerConfig{Cmd: []string{"true"}, Restart: engine.RestartPolicy{Name: "on-failure"}})
	s.wait(ok.ID)
	time.Sleep(300 * time.Millisecond)
	if st := s.inspect(ok.ID).State; st.RestartCount != 0 || st.Status != engine.StatusExited {
		t.Errorf("on-failure restarted a success: %+v", st)
	}
	always := s.start(engine.ContainerConfig{Cmd: []string{"true"}, Restart: engine.RestartPolicy{Name: "always"}})
	s.eventually(15*time.Second, "always to restart twice", func() bool {
		return s.inspect(always.ID).State.RestartCount >= 2
	})
	if err := s.cs().Stop(t.Context(), always.ID, nil); err != nil {
		t.Fatal(err)
	}
	n := s.inspect(always.ID).State.RestartCount
	time.Sleep(500 * time.Millisecond)
	if st := s.inspect(always.ID).State; st.Running || st.RestartCount != n {
		t.Errorf("a stopped always container went on restarting: %+v", st)
	}
}

func testRestart(t *testing.T, s *suite) {
	c := s.start(engine.ContainerConfig{Cmd: sleeper()})
	before := s.inspect(c.ID).State
	d := stopTimeout
	if err := s.cs().Restart(t.Context(), c.ID, &d); err != nil {
		t.Fatal(err)
	}
	after := s.inspect(c.ID).State
	if !after.Running || !after.StartedAt.After(before.StartedAt) {
		t.Errorf("after restart %+v (before %+v)", after, before)
	}
	created := s.create(engine.ContainerConfig{Cmd: sleeper()})
	if err := s.cs().Restart(t.Context(), created.ID, &d); err != nil {
		t.Errorf("restart of a created container: %v", err)
	}
	if !s.inspect(created.ID).State.Running {
		t.Error("restart of a created container did not start it")
	}
}

func testEvents(t *testing.T, s *suite) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := s.e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := s.start(engine.ContainerConfig{Cmd: []string{"sh", "-c", "exit 4"}})
	seen := map[string]engine.Event{}
	timeout := time.After(15 * time.Second)
	for seen["die"].ID == "" {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("event channel closed")
			}
			if ev.ID == c.ID && ev.Type == "container" {
				seen[ev.Action] = ev
			}
		case <-timeout:
			t.Fatalf("events seen: %v", seen)
		}
	}
	if seen["start"].ID == "" {
		t.Error("no start event")
	}
	if die := seen["die"]; die.Attrs["exitCode"] != "4" || die.Time.IsZero() {
		t.Errorf("die event %+v", die)
	}
	cancel()
	// The channel closes when ctx ends.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("event channel not closed after its context ended")
		}
	}
}

func testVolumes(t *testing.T, s *suite) {
	ctx := t.Context()
	vs := s.e.Volumes()
	if vs == nil {
		t.Skip("engine without volumes")
	}
	name := s.name("v")
	v, err := vs.Create(ctx, engine.VolumeConfig{Name: name, Driver: "local", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vs.Remove(context.Background(), name) })
	if v.Name != name || v.Config.Labels["k"] != "v" {
		t.Errorf("volume %+v", v)
	}
	if again, err := vs.Create(ctx, engine.VolumeConfig{Name: name, Driver: "local"}); err != nil || again.Name != name {
		t.Errorf("create of an existing volume: %v", err)
	}
	list, err := vs.List(ctx, engine.ListOptions{Labels: map[string]string{"k": "v"}})
	if err != nil || len(list) == 0 {
		t.Errorf("list by label: %v, %v", list, err)
	}
	c := s.create(engine.ContainerConfig{Cmd: sleeper(), Mounts: []engine.Mount{{Type: engine.MountVolume, Source: name, Target: "/data"}}})
	if err := vs.Remove(ctx, name); !errors.Is(err, engine.ErrInUse) {
		t.Errorf("remove of a volume in use: %v, want ErrInUse", err)
	}
	got, err := vs.Inspect(ctx, name)
	if err != nil || len(got.UsedBy) != 1 || got.UsedBy[0] != c.ID {
		t.Errorf("UsedBy %v, %v", got.UsedBy, err)
	}
	if err := s.cs().Remove(ctx, c.ID, engine.RemoveContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := vs.Remove(ctx, name); err != nil {
		t.Errorf("remove of an unused volume: %v", err)
	}
	if _, err := vs.Inspect(ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect of a removed volume: %v", err)
	}
}

func testNetworks(t *testing.T, s *suite) {
	ctx := t.Context()
	ns := s.e.Networks()
	if ns == nil {
		t.Skip("engine without networks")
	}
	name := s.name("n")
	n, err := ns.Create(ctx, engine.NetworkConfig{Name: name, Driver: "bridge", Labels: map[string]string{"k": "v"}})
	if errors.Is(err, engine.ErrUnsupported) {
		t.Skipf("networks unsupported: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Remove(context.Background(), name) })
	if n.Name != name || n.Config.Subnet == "" {
		t.Errorf("network %+v", n)
	}
	if _, err := ns.Create(ctx, engine.NetworkConfig{Name: name, Driver: "bridge"}); !errors.Is(err, engine.ErrExists) {
		t.Errorf("create with a taken name: %v, want ErrExists", err)
	}
	list, err := ns.List(ctx, engine.ListOptions{Labels: map[string]string{"k": "v"}})
	if err != nil || len(list) != 1 || list[0].Name != name {
		t.Errorf("list by label: %v, %v", list, err)
	}
	// A stop releases the container's address by the time it returns.
	r := s.start(engine.ContainerConfig{Cmd: sleeper(), StopSignal: "SIGKILL", Networks: []engine.EndpointConfig{{Network: name}}})
	if eps := s.inspect(r.ID).Endpoints; len(eps) != 1 || eps[0].Network != name || eps[0].IPv4 == "" {
		t.Errorf("endpoints of a running container: %+v, want one on %s", eps, name)
	}
	if err := s.cs().Stop(ctx, r.ID, nil); err != nil {
		t.Fatal(err)
	}
	if eps := s.inspect(r.ID).Endpoints; len(eps) != 0 {
		t.Errorf("endpoints right after stop: %+v, want none", eps)
	}
	c := s.create(engine.ContainerConfig{Cmd: sleeper(), Networks: []engine.EndpointConfig{{Network: name}}})
	if err := ns.Remove(ctx, name); !errors.Is(err, engine.ErrInUse) {
		t.Errorf("remove of a network in use: %v, want ErrInUse", err)
	}
	for _, id := range []string{c.ID, r.ID} {
		if err := s.cs().Remove(ctx, id, engine.RemoveContainerOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns.Remove(ctx, name); err != nil {
		t.Errorf("remove of an unused network: %v", err)
	}
	if _, err := ns.Inspect(ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect of a removed network: %v", err)
	}
}

// testPublishedPorts checks that a port published on host port 0 gets one
// from the ephemeral range at start, shown while the container runs, and
// that two containers asking for any port both get one.
func testPublishedPorts(t *testing.T, s *suite) {
	ctx := t.Context()
	ns := s.e.Networks()
	if ns == nil {
		t.Skip("engine without networks")
	}
	name := s.name("n")
	if _, err := ns.Create(ctx, engine.NetworkConfig{Name: name, Driver: "bridge"}); errors.Is(err, engine.ErrUnsupported) {
		t.Skipf("networks unsupported: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Remove(context.Background(), name) })
	cfg := engine.ContainerConfig{
		Cmd:      sleeper(),
		Networks: []engine.EndpointConfig{{Network: name}},
		Ports:    []engine.PortBinding{{HostIP: "127.0.0.1", ContainerPort: 80, Protocol: "tcp"}, {HostIP: "127.0.0.1", ContainerPort: 81, Protocol: "tcp"}},
	}
	seen := map[uint16]bool{}
	var first engine.Container
	for i := range 2 {
		c := s.start(cfg)
		got := s.inspect(c.ID).Ports
		if len(got) != 2 {
			t.Fatalf("container %d: ports %+v, want 2", i, got)
		}
		for j, p := range got {
			if p.HostPort < 32768 || p.HostPort > 60999 || seen[p.HostPort] {
				t.Errorf("container %d: host port %d: want a distinct one in 32768-60999", i, p.HostPort)
			}
			seen[p.HostPort] = true
			if p.ContainerPort != cfg.Ports[j].ContainerPort || p.HostIP != "127.0.0.1" || p.Protocol != "tcp" {
				t.Errorf("container %d: port %+v, want one for %+v", i, p, cfg.Ports[j])
			}
		}
		if c := s.inspect(c.ID); c.Config.Ports[0].HostPort != 0 {
			t.Errorf("the configuration changed: %+v", c.Config.Ports)
		}
		if i == 0 {
			first = c
		}
	}
	if err := s.cs().Stop(ctx, first.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := s.inspect(first.ID).Ports; len(got) != 0 {
		t.Errorf("a stopped container shows ports %+v", got)
	}
}
