package registry

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// upload is a blob upload session. Its bytes go straight to
// uploads/<id>/data as they arrive, through a hash, so a push of any size
// needs a buffer's worth of memory; the digest is checked before the file
// is renamed into blobs/.
type upload struct {
	mu   sync.Mutex
	id   string
	repo string
	dir  string
	alg  digest.Algorithm
	h    hash.Hash // nil until the data file was hashed (after a restart)
	size int64
	used time.Time
}

type uploadInfo struct {
	Repo      string           `json:"repo"`
	Algorithm digest.Algorithm `json:"algorithm"`
	Started   time.Time        `json:"started"`
}

// uploads holds the open sessions. Sessions survive a restart: one not in
// memory is reloaded from its directory on first use.
type uploads struct {
	st *storage
	mu sync.Mutex
	m  map[string]*upload
}

func newUploadID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (u *uploads) start(repo string, alg digest.Algorithm) (*upload, error) {
	id := newUploadID()
	dir := u.st.path("uploads", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	info, _ := json.Marshal(uploadInfo{Repo: repo, Algorithm: alg, Started: time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(dir, "info.json"), info, 0o600); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	up := &upload{id: id, repo: repo, dir: dir, alg: alg, h: alg.Hash(), used: time.Now()}
	u.mu.Lock()
	u.m[id] = up
	u.mu.Unlock()
	return up, nil
}

// get returns session id of repo, locked; the caller unlocks it.
func (u *uploads) get(repo, id string) (*upload, *apiError) {
	if len(id) != 32 || !isHex(id) {
		return nil, errUploadUnknown(id)
	}
	u.mu.Lock()
	up := u.m[id]
	if up == nil {
		up = u.load(id)
		if up != nil {
			u.m[id] = up
		}
	}
	u.mu.Unlock()
	if up == nil || up.repo != repo {
		return nil, errUploadUnknown(id)
	}
	up.mu.Lock()
	if !exists(filepath.Join(up.dir, "data")) { // finished or cancelled meanwhile
		up.mu.Unlock()
		return nil, errUploadUnknown(id)
	}
	up.used = time.Now()
	return up, nil
}

// load reloads a session left by a previous run of the server.
func (u *uploads) load(id string) *upload {
	dir := u.st.path("uploads", id)
	data, err := os.ReadFile(filepath.Join(dir, "info.json"))
	if err != nil {
		return nil
	}
	var info uploadInfo
	if json.Unmarshal(data, &info) != nil || !info.Algorithm.Available() {
		return nil
	}
	fi, err := os.Stat(filepath.Join(dir, "data"))
	if err != nil {
		return nil
	}
	return &upload{id: id, repo: info.Repo, dir: dir, alg: info.Algorithm, size: fi.Size(), used: time.Now()}
}

func (u *uploads) forget(up *upload) {
	u.mu.Lock()
	delete(u.m, up.id)
	u.mu.Unlock()
	os.RemoveAll(up.dir)
}

// append writes r to the end of the session's data.
func (up *upload) append(r io.Reader, buf []byte) (int64, error) {
	f, err := os.OpenFile(filepath.Join(up.dir, "data"), os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(up.size, io.SeekStart); err != nil {
		return 0, err
	}
	if up.h == nil {
		if err := up.rehash(); err != nil {
			return 0, err
		}
	}
	// A client that goes away mid-chunk leaves what arrived: the hash
	// covers exactly those bytes and the client can resume at Range.
	n, err := io.CopyBuffer(io.MultiWriter(f, up.h), r, buf)
	up.size += n
	return n, err
}

// sync makes the data durable before it is renamed into blobs/.
func (up *upload) sync() error {
	f, err := os.OpenFile(filepath.Join(up.dir, "data"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// rehash rebuilds the hash from the data file (after a restart), dropping
// any bytes beyond the recorded size.
func (up *upload) rehash() error {
	f, err := os.Open(filepath.Join(up.dir, "data"))
	if err != nil {
		return err
	}
	defer f.Close()
	h := up.alg.Hash()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	up.h, up.size = h, n
	return nil
}

// digestAs returns the digest of the data with algorithm alg.
func (up *upload) digestAs(alg digest.Algorithm) (digest.Digest, error) {
	if up.h == nil {
		if err := up.rehash(); err != nil {
			return "", err
		}
	}
	if alg == up.alg {
		return digest.NewDigest(alg, up.h), nil
	}
	f, err := os.Open(filepath.Join(up.dir, "data"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	return alg.FromReader(f)
}

// rangeHeader is the value of the Range header for the session's progress.
func (up *upload) rangeHeader() string {
	end := up.size - 1
	if end < 0 {
		end = 0
	}
	return fmt.Sprintf("0-%d", end)
}

// janitor drops sessions nobody touched for a day.
func (u *uploads) janitor(maxIdle time.Duration) {
	cutoff := time.Now().Add(-maxIdle)
	u.mu.Lock()
	for id, up := range u.m {
		if up.mu.TryLock() {
			if up.used.Before(cutoff) {
				delete(u.m, id)
				os.RemoveAll(up.dir)
			}
			up.mu.Unlock()
		}
	}
	u.mu.Unlock()
	entries, err := os.ReadDir(u.st.path("uploads"))
	if err != nil {
		return
	}
	for _, e := range entries {
		u.mu.Lock()
		_, live := u.m[e.Name()]
		u.mu.Unlock()
		if live {
			continue
		}
		p := u.st.path("uploads", e.Name())
		if di, err := os.Stat(p); err != nil || di.ModTime().After(cutoff) {
			continue
		}
		fi, err := os.Stat(filepath.Join(p, "data"))
		if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.ModTime().Before(cutoff)) {
			os.RemoveAll(p)
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
