package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// DriverLocal is the only driver: a directory under the data root.
const DriverLocal = "local"

// Files and directories of the store. Names starting with "." can never be
// volume names, so they never collide with one.
const (
	recordFile = "volume.json"
	dataDir    = "_data"
	lockFile   = ".lock"
	tmpPrefix  = ".tmp-"   // a volume being created
	trashPref  = ".trash-" // a volume being removed
)

// maxNameLen keeps <name> a valid file name.
const maxNameLen = 255

// Users returns, for each volume name, the IDs of the containers that mount
// it (running or not).
type Users func(ctx context.Context) (map[string][]string, error)

type options struct {
	users Users
}

// Option configures Open.
type Option func(*options)

// WithUsers sets how the store learns which containers mount which volume.
// The store calls fn with its lock held (so that no container can start
// using a volume between the check and its removal): fn must not call back
// into the store, nor wait on a lock that a caller of Create or Mountpoint
// may hold meanwhile (read container records without locking them). Without
// it (or with nil) no volume is ever in use.
func WithUsers(fn Users) Option {
	return func(o *options) { o.users = fn }
}

// Store keeps named volumes under one directory:
//
//	<root>/.lock                     flock serializing changes across processes
//	<root>/<name>/volume.json        the record (atomic writes)
//	<root>/<name>/_data              the content, what containers mount
//
// A volume appears and disappears by a rename of its directory, so readers
// need no lock and a crash leaves either the whole volume or none of it.
type Store struct {
	root  string
	users Users
}

var _ engine.Volumes = (*Store)(nil)

// record is volume.json.
type record struct {
	Name    string            `json:"name"`
	Driver  string            `json:"driver"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	// Populated is set once a container's runtime filled the volume from
	// its image (see NeedsPopulate).
	Populated bool `json:"populated,omitempty"`
}

// Open opens the store at root (<data-root>/volumes), creating it if needed,
// and clears what a crash in the middle of a create or remove left behind.
func Open(root string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("open volumes: %w", err)
	}
	s := &Store{root: root, users: o.users}
	// Only with the lock: without it another process may be mid-create.
	if l, ok, err := state.TryAcquire(s.path(lockFile)); err != nil {
		return nil, fmt.Errorf("open volumes: %w", err)
	} else if ok {
		defer l.Release()
		entries, err := os.ReadDir(root)
		if err != nil {
			return nil, fmt.Errorf("open volumes: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), trashPref) {
				_ = os.RemoveAll(s.path(e.Name()))
			}
		}
	}
	return s, nil
}

// Create makes a volume. An empty name gets a random 64-hex one (an
// anonymous volume, as Docker's). An empty driver is "local", the only one;
// others are engine.ErrUnsupported. Creating a volume that exists returns it
// unchanged (labels included), whatever labels cfg has; a volume of that
// name with another driver is engine.ErrConflict. So engine.ErrExists is
// never returned: re-running a create is always safe.
func (s *Store) Create(ctx context.Context, cfg engine.VolumeConfig) (engine.Volume, error) {
	if cfg.Name == "" {
		cfg.Name = randomName()
	}
	if err := checkName(cfg.Name); err != nil {
		return engine.Volume{}, err
	}
	if cfg.Driver == "" {
		cfg.Driver = DriverLocal
	}
	if cfg.Driver != DriverLocal {
		return engine.Volume{}, fmt.Errorf("volume %s: driver %q: %w", cfg.Name, cfg.Driver, engine.ErrUnsupported)
	}
	var rec record
	err := s.withLock(ctx, func() (err error) {
		rec, err = s.create(cfg)
		return err
	})
	if err != nil {
		return engine.Volume{}, err
	}
	return s.volume(rec, nil), nil
}

// create makes the volume unless it exists; the caller holds the lock.
func (s *Store) create(cfg engine.VolumeConfig) (record, error) {
	rec, err := s.read(cfg.Name)
	if err == nil {
		if rec.Driver != cfg.Driver {
			return record{}, fmt.Errorf("volume %s exists with driver %q: %w", cfg.Name, rec.Driver, engine.ErrConflict)
		}
		return rec, nil
	}
	if !errors.Is(err, engine.ErrNotFound) {
		return record{}, err
	}
	rec = record{Name: cfg.Name, Driver: cfg.Driver, Labels: cfg.Labels, Created: time.Now().UTC()}
	// Build it aside, then rename it into place: a crash leaves a .tmp-
	// directory that the next Open removes, never a volume without record.
	tmp, err := os.MkdirTemp(s.root, tmpPrefix)
	if err != nil {
		return record{}, fmt.Errorf("create volume %s: %w", cfg.Name, err)
	}
	defer os.RemoveAll(tmp) // nothing left there once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return record{}, fmt.Errorf("create volume %s: %w", cfg.Name, err)
	}
	if err := os.Mkdir(filepath.Join(tmp, dataDir), 0o755); err != nil {
		return record{}, fmt.Errorf("create volume %s: %w", cfg.Name, err)
	}
	if err := state.WriteJSON(filepath.Join(tmp, recordFile), rec); err != nil {
		return record{}, fmt.Errorf("create volume %s: %w", cfg.Name, err)
	}
	if err := os.Rename(tmp, s.path(cfg.Name)); err != nil {
		return record{}, fmt.Errorf("create volume %s: %w", cfg.Name, err)
	}
	if err := state.SyncDir(s.root); err != nil {
		return record{}, fmt.Errorf("create volume %s: %w", cfg.Name, err)
	}
	return rec, nil
}

// Inspect returns one volume; engine.ErrNotFound if there is none.
func (s *Store) Inspect(ctx context.Context, name string) (engine.Volume, error) {
	if err := checkName(name); err != nil {
		return engine.Volume{}, err
	}
	rec, err := s.read(name)
	if err != nil {
		return engine.Volume{}, err
	}
	users, err := s.usersOf(ctx)
	if err != nil {
		return engine.Volume{}, err
	}
	return s.volume(rec, users[name]), nil
}

// List returns the volumes whose labels match opts.Labels, sorted by name.
func (s *Store) List(ctx context.Context, opts engine.ListOptions) ([]engine.Volume, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	recs = slices.DeleteFunc(recs, func(rec record) bool { return !engine.MatchLabels(rec.Labels, opts.Labels) })
	out := []engine.Volume{}
	if len(recs) == 0 {
		// Users read every container record: not for nothing.
		return out, nil
	}
	users, err := s.usersOf(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		out = append(out, s.volume(rec, users[rec.Name]))
	}
	return out, nil
}

// Remove deletes a volume and its data: engine.ErrInUse while a container
// (running or stopped) mounts it, engine.ErrNotFound if there is none.
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	var trash string
	err := s.withLock(ctx, func() error {
		if _, err := s.read(name); err != nil {
			return err
		}
		users, err := s.usersOf(ctx)
		if err != nil {
			return err
		}
		if ids := users[name]; len(ids) > 0 {
			return fmt.Errorf("remove volume %s: used by %s: %w", name, strings.Join(shortIDs(ids), ", "), engine.ErrInUse)
		}
		trash, err = s.detach(name)
		return err
	})
	if err != nil {
		return err
	}
	// The data is deleted outside the lock: it may be large.
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Prune removes every volume no container mounts and reports the names and
// the bytes of data freed.
func (s *Store) Prune(ctx context.Context) (engine.PruneReport, error) {
	report := engine.PruneReport{Deleted: []string{}}
	var trash []string
	err := s.withLock(ctx, func() error {
		recs, err := s.records()
		if err != nil {
			return err
		}
		users, err := s.usersOf(ctx)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if len(users[rec.Name]) > 0 {
				continue
			}
			size, err := diskUsage(filepath.Join(s.path(rec.Name), dataDir))
			if err != nil {
				return fmt.Errorf("prune volume %s: %w", rec.Name, err)
			}
			dir, err := s.detach(rec.Name)
			if err != nil {
				return err
			}
			trash = append(trash, dir)
			report.Deleted = append(report.Deleted, rec.Name)
			report.SpaceReclaimed += size
		}
		return nil
	})
	// Data goes outside the lock; what was detached is gone either way.
	for _, dir := range trash {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("prune volumes: %w", rerr)
		}
	}
	return report, err
}

// Mountpoint returns the host directory to mount for the volume name,
// creating the volume (local driver, no labels) when it does not exist, as
// Docker does for a named volume a container mentions before anyone created
// it. The runtime should record the container before calling it, so that
// the container counts as a user from then on.
func (s *Store) Mountpoint(ctx context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if _, err := s.read(name); errors.Is(err, engine.ErrNotFound) {
		err := s.withLock(ctx, func() error {
			_, err := s.create(engine.VolumeConfig{Name: name, Driver: DriverLocal})
			return err
		})
		if err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	return s.mountpoint(name), nil
}

// NeedsPopulate reports whether the runtime should fill the volume from the
// image before it first mounts it: the volume was never populated and its
// data directory is empty.
//
// The contract, Docker's "copy image content into an empty named volume":
// when a container mounts a named volume at a path where its image has
// content, the runtime asks NeedsPopulate; if true, it copies that content
// (files, ownership, modes) from the container's rootfs into the volume,
// inside the container's mount namespace before the volume hides the path,
// then calls MarkPopulated. It does not call MarkPopulated when the image has
// nothing at the path, so that a later container's image may fill the volume.
// Once marked, a volume is never filled again, even if emptied.
func (s *Store) NeedsPopulate(ctx context.Context, name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	rec, err := s.read(name)
	if err != nil {
		return false, err
	}
	if rec.Populated {
		return false, nil
	}
	f, err := os.Open(s.mountpoint(name))
	if err != nil {
		return false, fmt.Errorf("volume %s: %w", name, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("volume %s: %w", name, err)
	}
	return true, nil
}

// MarkPopulated records that the volume was filled from an image.
func (s *Store) MarkPopulated(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	return s.withLock(ctx, func() error {
		rec, err := s.read(name)
		if err != nil || rec.Populated {
			return err
		}
		rec.Populated = true
		if err := state.WriteJSON(filepath.Join(s.path(name), recordFile), rec); err != nil {
			return fmt.Errorf("volume %s: %w", name, err)
		}
		return nil
	})
}

// detach renames a volume out of the namespace so that it is gone at once;
// its directory is then deleted at leisure (or by the next Open).
func (s *Store) detach(name string) (string, error) {
	trash := s.path(trashPref + name + "-" + randomName()[:8])
	if err := os.Rename(s.path(name), trash); err != nil {
		return "", fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := state.SyncDir(s.root); err != nil {
		return "", fmt.Errorf("remove volume %s: %w", name, err)
	}
	return trash, nil
}

func (s *Store) read(name string) (record, error) {
	var rec record
	err := state.ReadJSON(filepath.Join(s.path(name), recordFile), &rec)
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, fmt.Errorf("volume %s: %w", name, engine.ErrNotFound)
	}
	if err != nil {
		return record{}, fmt.Errorf("volume %s: %w", name, err)
	}
	return rec, nil
}

// records reads every volume, sorted by name. A directory vanishing
// meanwhile (a concurrent remove) is skipped.
func (s *Store) records() ([]record, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var recs []record
	for _, e := range entries {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		rec, err := s.read(e.Name())
		if errors.Is(err, engine.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.Name, b.Name) })
	return recs, nil
}

func (s *Store) usersOf(ctx context.Context) (map[string][]string, error) {
	if s.users == nil {
		return nil, nil
	}
	users, err := s.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("volume users: %w", err)
	}
	return users, nil
}

func (s *Store) volume(rec record, users []string) engine.Volume {
	var used []string
	if len(users) > 0 {
		used = slices.Clone(users)
		slices.Sort(used)
		used = slices.Compact(used)
	}
	return engine.Volume{
		Name:       rec.Name,
		Created:    rec.Created,
		Config:     engine.VolumeConfig{Name: rec.Name, Driver: rec.Driver, Labels: rec.Labels},
		Mountpoint: s.mountpoint(rec.Name),
		UsedBy:     used,
	}
}

// withLock runs fn holding the store's lock, which serializes changes
// across goroutines and processes (flock on a fresh open file description
// each time, so goroutines of one process exclude each other too).
func (s *Store) withLock(ctx context.Context, fn func() error) error {
	l, err := state.Acquire(ctx, s.path(lockFile))
	if err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	defer l.Release()
	return fn()
}

func (s *Store) path(name string) string { return filepath.Join(s.root, name) }

func (s *Store) mountpoint(name string) string { return filepath.Join(s.root, name, dataDir) }

func checkName(name string) error {
	if len(name) > maxNameLen || !engine.ValidName(name) {
		return fmt.Errorf("volume name %q: must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most %d characters): %w", name, maxNameLen, engine.ErrInvalid)
	}
	return nil
}

func randomName() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// shortIDs shortens container IDs to Docker's 12 characters for messages.
func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:min(len(id), 12)]
	}
	return out
}
