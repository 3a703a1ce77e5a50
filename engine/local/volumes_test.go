package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/engine"
)

// listOnly is a container runtime that can only list; volumes need no more.
type listOnly struct {
	engine.Containers
	cs []engine.Container
}

func (l listOnly) List(_ context.Context, opts engine.ListContainersOptions) ([]engine.Container, error) {
	if !opts.All {
		return nil, errors.New("volume users must count stopped containers too")
	}
	return l.cs, nil
}

// usersOnly is a container runtime that reports usage from its records
// (as container.Runtime.Users does) and cannot list.
type usersOnly struct {
	engine.Containers
	volumes map[string][]string
}

func (usersOnly) List(context.Context, engine.ListContainersOptions) ([]engine.Container, error) {
	return nil, errors.New("volume users must come from the records, not from List")
}

func (u usersOnly) Users(context.Context) (images, volumes, networks map[string][]string, err error) {
	return nil, u.volumes, nil, nil
}

func TestVolumeUsersFromRecords(t *testing.T) {
	e := &Engine{cfg: Config{DataRoot: t.TempDir()}, containers: usersOnly{volumes: map[string][]string{"data": {"c1"}}}}
	users, err := e.volumeUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]string{"data": {"c1"}}, users); diff != "" {
		t.Errorf("volumeUsers (-want +got):\n%s", diff)
	}
}

func TestVolumes(t *testing.T) {
	ctx := t.Context()
	e := &Engine{cfg: Config{DataRoot: t.TempDir()}}
	if err := openVolumes(ctx, e); err != nil {
		t.Fatal(err)
	}
	v, err := e.Volumes().Create(ctx, engine.VolumeConfig{Name: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(e.cfg.DataRoot, "volumes", "data", "_data"); v.Mountpoint != want {
		t.Errorf("Mountpoint = %s, want %s", v.Mountpoint, want)
	}
	if _, err := os.Stat(v.Mountpoint); err != nil {
		t.Fatal(err)
	}
	if e.volumeStore() == nil {
		t.Fatal("volumeStore() = nil")
	}

	// No container runtime yet: nothing is in use.
	if users, err := e.volumeUsers(ctx); err != nil || users != nil {
		t.Errorf("volumeUsers without containers = %v, %v", users, err)
	}

	e.containers = listOnly{cs: []engine.Container{
		{ID: "c1", Config: engine.ContainerConfig{Mounts: []engine.Mount{
			{Type: engine.MountVolume, Source: "data", Target: "/d"},
			{Type: engine.MountBind, Source: "/srv", Target: "/srv"},
		}}},
		{ID: "c2", Config: engine.ContainerConfig{Mounts: []engine.Mount{
			{Type: engine.MountVolume, Source: "data", Target: "/x"},
			{Type: engine.MountVolume, Source: "other", Target: "/o"},
			{Type: engine.MountTmpfs, Target: "/tmp"},
		}}},
	}}
	users, err := e.volumeUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]string{"data": {"c1", "c2"}, "other": {"c2"}}, users); diff != "" {
		t.Errorf("volumeUsers (-want +got):\n%s", diff)
	}
	if err := e.Volumes().Remove(ctx, "data"); !errors.Is(err, engine.ErrInUse) {
		t.Errorf("Remove of a mounted volume = %v, want ErrInUse", err)
	}
	got, err := e.Volumes().Inspect(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"c1", "c2"}, got.UsedBy); diff != "" {
		t.Errorf("UsedBy (-want +got):\n%s", diff)
	}
}
