package reconciler

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/reconciler/plan"
)

// startWatch runs Watch until the test ends and returns its log.
func startWatch(t *testing.T, f *enginetest.Fake, dir string) (*Reconciler, *enginetest.SyncBuffer) {
	t.Helper()
	logs := &enginetest.SyncBuffer{}
	r := New(f, WithDataRoot(t.TempDir()), WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(ctx, WatchOptions{Target: Target{Dir: dir}, Resync: 500 * time.Millisecond, Debounce: 20 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
		if t.Failed() {
			t.Logf("watch log:\n%s", logs.String())
		}
	})
	return r, logs
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func running(f *enginetest.Fake, name string) (engine.Container, bool) {
	c, err := f.Containers().Inspect(context.Background(), name)
	return c, err == nil && c.State.Running
}

// attached reports whether the containers run attached to network id.
func attached(f *enginetest.Fake, id string, names ...string) bool {
	for _, name := range names {
		c, ok := running(f, name)
		if !ok || len(c.Endpoints) == 0 || c.Endpoints[0].NetworkID != id {
			return false
		}
	}
	return true
}

func TestWatch(t *testing.T) {
	f := newFake(t)
	dir := writeManifests(t, "", map[string]string{
		"net.yaml": netYAML,
		"db.yaml":  ctrYAML("db", "  restart: always\n  healthcheck: {command: [\"true\"], interval: 20ms}\n"),
		"web.yaml": ctrYAML("web", "  env: {MODE: prod}\n  restart: always\n  dependsOn: [{name: db, condition: healthy}]\n"),
	})
	r, logs := startWatch(t, f, dir)
	ctx := t.Context()

	eventually(t, "first convergence", func() bool { _, ok := running(f, "shop-web"); return ok })
	first, _ := running(f, "shop-web")

	t.Run("an edit converges", func(t *testing.T) {
		// An editor's atomic save: write a temp file, rename it over.
		tmp := filepath.Join(dir, ".web.yaml.swp")
		os.WriteFile(tmp, []byte(ctrYAML("web", "  env: {MODE: dev}\n  restart: always\n  dependsOn: [{name: db, condition: healthy}]\n")), 0o644)
		if err := os.Rename(tmp, filepath.Join(dir, "web.yaml")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "web replaced with MODE=dev", func() bool {
			c, ok := running(f, "shop-web")
			return ok && c.ID != first.ID && strings.Contains(strings.Join(c.Config.Env, " "), "MODE=dev")
		})
	})

	t.Run("a syntax error keeps the old state and says where", func(t *testing.T) {
		before, _ := running(f, "shop-web")
		writeManifests(t, dir, map[string]string{"web.yaml": "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: web\n"})
		eventually(t, "error reported with file:line", func() bool {
			return strings.Contains(logs.String(), "web.yaml") && strings.Contains(logs.String(), "line=")
		})
		time.Sleep(100 * time.Millisecond)
		after, ok := running(f, "shop-web")
		if !ok || after.ID != before.ID {
			t.Fatalf("web changed while the manifests were broken")
		}
		st, err := r.Status(ctx, Target{Dir: dir})
		if err != nil || st.Error == "" {
			t.Errorf("status does not report the error: %v %+v", err, st)
		}
		// Fixed again: nothing to do (same spec as before the error).
		writeManifests(t, dir, map[string]string{"web.yaml": ctrYAML("web", "  env: {MODE: dev}\n  restart: always\n  dependsOn: [{name: db, condition: healthy}]\n")})
		eventually(t, "error cleared", func() bool {
			st, err := r.Status(ctx, Target{Dir: dir})
			return err == nil && st.Error == ""
		})
	})

	t.Run("a container removed out of band comes back", func(t *testing.T) {
		if err := f.Containers().Remove(ctx, "shop-db", engine.RemoveContainerOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "db back", func() bool { _, ok := running(f, "shop-db"); return ok })
	})

	t.Run("a network removed out of band comes back", func(t *testing.T) {
		if err := f.LoseNetwork("shop-back"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "network back and containers re-attached", func() bool {
			n, err := f.Networks().Inspect(ctx, "shop-back")
			return err == nil && attached(f, n.ID, "shop-db", "shop-web")
		})
	})

	t.Run("a changed network is replaced with its containers", func(t *testing.T) {
		old, _ := f.Networks().Inspect(ctx, "shop-back")
		writeManifests(t, dir, map[string]string{"net.yaml": strings.Replace(netYAML, "metadata: {name: back}", "metadata: {name: back}\nspec: {internal: true}", 1)})
		eventually(t, "network replaced, containers on it", func() bool {
			n, err := f.Networks().Inspect(ctx, "shop-back")
			return err == nil && n.ID != old.ID && n.Config.Internal && attached(f, n.ID, "shop-db", "shop-web")
		})
	})

	t.Run("a new subdirectory is watched", func(t *testing.T) {
		sub := filepath.Join(dir, "more", "deeper")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let the watch on "more" land
		writeManifests(t, sub, map[string]string{"extra.yaml": ctrYAML("extra", "")})
		eventually(t, "extra created", func() bool { _, ok := running(f, "shop-extra"); return ok })
		os.RemoveAll(filepath.Join(dir, "more"))
		eventually(t, "extra pruned", func() bool {
			_, err := f.Containers().Inspect(ctx, "shop-extra")
			return err != nil
		})
	})

	t.Run("the restart policy decides about exits", func(t *testing.T) {
		c, _ := running(f, "shop-db")
		if err := f.Crash(c.ID, 137); err != nil {
			t.Fatal(err)
		}
		eventually(t, "db restarted in place", func() bool {
			n, ok := running(f, "shop-db")
			return ok && n.ID == c.ID
		})
	})

	t.Run("status", func(t *testing.T) {
		defer func() {
			if t.Failed() {
				st, err := r.Status(ctx, Target{Dir: dir})
				t.Logf("status: %v %+v", err, st)
			}
		}()
		eventually(t, "all ready", func() bool {
			st, err := r.Status(ctx, Target{Dir: dir})
			if err != nil || st.Watcher == nil {
				return false
			}
			for _, rs := range st.Resources {
				if c, _ := rs.Get(ConditionReady); c.Status != True {
					return false
				}
			}
			return len(st.Resources) == 5
		})
	})
}

func TestWatchStallsOnTerminalErrors(t *testing.T) {
	f := newFake(t)
	ctx := t.Context()
	// A container berth does not own holds the name shop-web.
	if _, err := f.Containers().Create(ctx, engine.ContainerConfig{Name: "shop-web", Image: testImage, Cmd: []string{"httpd"}}); err != nil {
		t.Fatal(err)
	}
	dir := writeManifests(t, "", map[string]string{"net.yaml": netYAML, "web.yaml": ctrYAML("web", "")})
	r, logs := startWatch(t, f, dir)
	key := plan.Key{Kind: plan.KindContainer, Name: "web"}
	eventually(t, "web stalled", func() bool {
		st, err := r.Status(ctx, Target{Dir: dir})
		if err != nil {
			return false
		}
		c, ok := st.Resource(key).Get(ConditionStalled)
		return ok && c.Status == True && strings.Contains(c.Message, "does not own")
	})
	n := strings.Count(logs.String(), "stalled until its manifest changes")
	time.Sleep(700 * time.Millisecond) // past a resync
	if m := strings.Count(logs.String(), "stalled until its manifest changes"); m != n {
		t.Errorf("a stalled resource was retried without a manifest change (%d -> %d)", n, m)
	}
	// The manifest changes (another name): it converges.
	writeManifests(t, dir, map[string]string{"web.yaml": strings.Replace(ctrYAML("web", ""), "name: web", "name: web2", 1)})
	eventually(t, "web2 running", func() bool { _, ok := running(f, "shop-web2"); return ok })
}

func TestQueue(t *testing.T) {
	q := newQueue(time.Millisecond, 10*time.Millisecond)
	k := plan.Key{Kind: plan.KindContainer, Name: "a"}
	q.Add(k)
	q.Add(k)
	if q.Len() != 1 {
		t.Fatalf("len %d after a double add", q.Len())
	}
	got, _ := q.Get()
	q.Add(k) // while processing: not handed out twice
	if q.Len() != 0 {
		t.Fatal("a key being processed was queued")
	}
	q.Done(got)
	if q.Len() != 1 {
		t.Fatal("a key added while processing did not come back")
	}
	got, _ = q.Get()
	q.Done(got)
	for i, want := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond, 10 * time.Millisecond} {
		if d := q.Backoff(k); d != want {
			t.Errorf("backoff %d = %v, want %v", i, d, want)
		}
	}
	q.Forget(k)
	if d := q.Backoff(k); d != time.Millisecond {
		t.Errorf("backoff after forget = %v", d)
	}
	q.ShutDown()
	if _, ok := q.Get(); ok {
		t.Error("Get after ShutDown")
	}
}
