package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
	"berth.dev/berth/engine/state"
)

const (
	namesDir       = ".names"
	tmpPrefix      = ".tmp-"
	pendingPrefix  = ".pending-"
	removingPrefix = ".removing-"
	lockFile       = "lock"
)

// record is a container's persistent configuration (container.json). The
// monitor reads Spec, Config.Restart, Config.AutoRemove, ManuallyStopped,
// Releasing and Removing from it.
type record struct {
	ID      string                 `json:"id"`
	Name    string                 `json:"name"`
	Created time.Time              `json:"created"`
	ImageID string                 `json:"imageID"`
	Image   engine.ImageConfig     `json:"imageConfig"`
	Lowers  []string               `json:"lowers"`
	Config  engine.ContainerConfig `json:"config"`
	// Command is the resolved argv (entrypoint + cmd): the Docker rules are
	// applied once, at create, where nil and empty still differ.
	Command []string `json:"command"`
	// Hostname is the resolved hostname.
	Hostname string `json:"hostname"`
	// ManuallyStopped is set by stop and kill and cleared by start: the
	// restart policy leaves such a container alone (Docker's
	// HasBeenManuallyStopped).
	ManuallyStopped bool `json:"manuallyStopped,omitempty"`
	// Releasing is set, with ManuallyStopped, by a command that stops the
	// container, waits for its monitor to end and then releases what the
	// stopped container held itself (see Runtime.Stop); the monitor then
	// skips its cleanup process. Cleared by start.
	Releasing bool `json:"releasing,omitempty"`
	Removing  bool `json:"removing,omitempty"`
	// Spec is what the monitor runs, computed at each start.
	Spec *shim.Spec `json:"spec,omitempty"`
	// Ports are the published ports as the last start bound them, host
	// ports chosen for those configured as 0.
	Ports []engine.PortBinding `json:"ports,omitempty"`
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func (r *Runtime) readRecord(dir string) (*record, error) {
	var rec record
	if err := state.ReadJSON(filepath.Join(dir, shim.RecordFile), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

func (r *Runtime) writeRecord(dir string, rec *record) error {
	return state.WriteJSON(filepath.Join(dir, shim.RecordFile), rec)
}

// writeRuntimeRecord replaces the record atomically without fsync, for
// changes that only matter while processes run (the runtime spec at start,
// the stop flag): a crash of the host makes them moot, and the syncs would
// sit on the critical path of every start and stop. syncRecord makes it
// durable when it must be.
func (r *Runtime) writeRuntimeRecord(dir string, rec *record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, shim.RecordFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeNewRecord writes the record of a container that nobody sees yet (its
// .tmp- directory, renamed into place once complete): no temporary file,
// and no fsync.
func (r *Runtime) writeNewRecord(dir string, rec *record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, shim.RecordFile), data, 0o600)
}

// syncRecord makes a container's record, and the container itself, durable:
// the record file, its directory and the containers directory.
func (r *Runtime) syncRecord(dir string) error {
	f, err := os.Open(filepath.Join(dir, shim.RecordFile))
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	if err := state.SyncDir(dir); err != nil {
		return err
	}
	return state.SyncDir(r.dir)
}

func (r *Runtime) readState(dir string) shim.State {
	var st shim.State
	if err := state.ReadJSON(filepath.Join(dir, shim.StateFile), &st); err != nil {
		return shim.State{Status: engine.StatusCreated}
	}
	return st
}

// resolve finds a container's ID by full ID, name or unique ID prefix.
func (r *Runtime) resolve(ref string) (string, error) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return "", fmt.Errorf("container %q: %w", ref, engine.ErrInvalid)
	}
	if engine.ValidID(ref) {
		if _, err := os.Stat(filepath.Join(r.cdir(ref), shim.RecordFile)); err == nil {
			return ref, nil
		}
	}
	if engine.ValidName(ref) {
		if target, err := os.Readlink(filepath.Join(r.dir, namesDir, ref)); err == nil {
			if _, err := os.Stat(filepath.Join(r.cdir(target), shim.RecordFile)); err == nil {
				return target, nil
			}
		}
	}
	if isHex(ref) && len(ref) < 64 {
		ids, err := r.ids()
		if err != nil {
			return "", err
		}
		var found []string
		for _, id := range ids {
			if strings.HasPrefix(id, ref) {
				found = append(found, id)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return "", fmt.Errorf("container ID prefix %q matches %d containers: %w", ref, len(found), engine.ErrInvalid)
		}
	}
	return "", fmt.Errorf("container %s: %w", ref, engine.ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// ids lists the committed containers.
func (r *Runtime) ids() ([]string, error) {
	f, err := os.Open(r.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list containers: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := names[:0]
	for _, n := range names {
		if engine.ValidID(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// locked is a container under its lock, with its record loaded.
type locked struct {
	id   string
	dir  string
	rec  *record
	lock *state.Lock
	// pending: made by create for a berth run, whose record is not yet
	// durable.
	pending bool
}

func (l *locked) release() { _ = l.lock.Release() }

// lock resolves ref and takes the container's lock. The record is read after
// the lock is held, so it is current; a container removed while we waited
// reads as not found.
func (r *Runtime) lock(ctx context.Context, ref string) (*locked, error) {
	id, err := r.resolve(ref)
	if err != nil {
		return nil, err
	}
	dir := r.cdir(id)
	lk, err := state.AcquireExisting(ctx, filepath.Join(dir, lockFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", ref, engine.ErrNotFound)
		}
		return nil, fmt.Errorf("container %s: %w", ref, err)
	}
	rec, err := r.readRecord(dir)
	if err != nil {
		lk.Release()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", ref, engine.ErrNotFound)
		}
		return nil, fmt.Errorf("container %s: %w", ref, err)
	}
	return &locked{id: id, dir: dir, rec: rec, lock: lk}, nil
}

// reserveName links .names/name to id; engine.ErrExists if another live
// container has it. A link left by a crashed create or remove is replaced.
func (r *Runtime) reserveName(name, id string) error {
	link := filepath.Join(r.dir, namesDir, name)
	for attempt := 0; attempt < 3; attempt++ {
		err := os.Symlink(id, link)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("reserve name %s: %w", name, err)
		}
		other, rerr := os.Readlink(link)
		if rerr != nil {
			continue
		}
		if r.nameInUse(other) {
			return fmt.Errorf("container name %q is already in use by container %s: %w", name, shortID(other), engine.ErrExists)
		}
		_ = os.Remove(link)
	}
	return fmt.Errorf("container name %q: %w", name, engine.ErrExists)
}

// nameInUse reports whether the container id that a name points at exists or
// is being created.
func (r *Runtime) nameInUse(id string) bool {
	if _, err := os.Lstat(r.cdir(id)); err == nil {
		return true
	}
	tmp := filepath.Join(r.dir, tmpPrefix+id)
	if _, err := os.Lstat(tmp); err != nil {
		return false
	}
	lk, ok, err := state.TryAcquireExisting(filepath.Join(tmp, lockFile))
	if err != nil || !ok {
		return true // being created right now
	}
	lk.Release()
	return false
}

func (r *Runtime) releaseName(name, id string) {
	link := filepath.Join(r.dir, namesDir, name)
	if target, err := os.Readlink(link); err == nil && target == id {
		_ = os.Remove(link)
	}
}

var (
	adjectives = []string{"agile", "bold", "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly",
		"keen", "lively", "merry", "nimble", "proud", "quiet", "rapid", "sharp", "steady", "swift", "tidy", "vivid", "witty", "zen"}
	nouns = []string{"anchor", "barge", "beacon", "buoy", "cabin", "cargo", "compass", "dinghy", "ferry", "harbor",
		"hull", "keel", "lagoon", "mast", "pier", "quay", "rudder", "schooner", "skiff", "sloop", "tide", "wharf", "yacht"}
)

func randomName() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return adjectives[int(b[0])%len(adjectives)] + "_" + nouns[int(b[1])%len(nouns)] + "_" + hex.EncodeToString(b[2:])
}
