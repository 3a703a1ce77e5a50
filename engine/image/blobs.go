package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/engine"
)

// maxSmallBlob bounds manifests, indexes and configs read into memory.
const maxSmallBlob = 16 << 20

// parseDigest parses a sha256 digest; the local store holds sha256 content
// only (registries may use others, see engine/registry).
func parseDigest(s string) (v1.Hash, error) {
	alg, hexPart, ok := strings.Cut(s, ":")
	if !ok || alg != "sha256" || len(hexPart) != 64 || !isHex(hexPart) {
		if ok && alg != "sha256" && alg != "" {
			return v1.Hash{}, fmt.Errorf("digest %q: algorithm %s: %w", s, alg, engine.ErrUnsupported)
		}
		return v1.Hash{}, fmt.Errorf("digest %q: %w", s, engine.ErrInvalid)
	}
	return v1.Hash{Algorithm: alg, Hex: hexPart}, nil
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

func checkDigest(d v1.Hash) error {
	if d.Algorithm != "sha256" {
		return fmt.Errorf("digest %s: algorithm %s: %w", d, d.Algorithm, engine.ErrUnsupported)
	}
	if len(d.Hex) != 64 || !isHex(d.Hex) {
		return fmt.Errorf("digest %s: %w", d, engine.ErrInvalid)
	}
	return nil
}

func (s *Store) blobPath(d v1.Hash) string {
	return filepath.Join(s.root, "blobs", d.Algorithm, d.Hex)
}

// blobSize returns the size of a stored blob, or ok=false if it is absent.
func (s *Store) blobSize(d v1.Hash) (size int64, ok bool) {
	if checkDigest(d) != nil {
		return 0, false
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// readBlob reads a small blob and verifies its digest (and size, when
// wantSize >= 0) every time: manifests and configs are cheap to hash, and a
// damaged one must not be trusted.
func (s *Store) readBlob(d v1.Hash, wantSize int64) ([]byte, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", d, engine.ErrNotFound)
		}
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSmallBlob+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if len(data) > maxSmallBlob {
		return nil, fmt.Errorf("blob %s: larger than %d bytes: %w", d, maxSmallBlob, engine.ErrInvalid)
	}
	if wantSize >= 0 && int64(len(data)) != wantSize {
		return nil, fmt.Errorf("blob %s: size %d, want %d: store damaged", d, len(data), wantSize)
	}
	if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != d.Hex {
		return nil, fmt.Errorf("blob %s: content does not match its digest: store damaged", d)
	}
	return data, nil
}

// ingest is a blob being written: bytes go to a temporary file in ingest/
// and through a hash; commit renames the file into blobs/ only when digest
// and size are what the caller expected.
type ingest struct {
	s       *Store
	f       *os.File
	h       hash.Hash
	n       int64
	synced  int64      // bytes handed to writeback so far
	fsynced bool       // on disk
	bg      chan error // the result of a background sync, if one runs
	done    bool
}

// writebackChunk is how much an ingest writes before it asks the kernel to
// start writing it to disk, so that the sync before commit finds little
// left to do.
const writebackChunk = 8 << 20

func (s *Store) newIngest() (*ingest, error) {
	f, err := os.CreateTemp(s.path("ingest"), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return &ingest{s: s, f: f, h: sha256.New()}, nil
}

func (w *ingest) Write(p []byte) (int, error) {
	w.fsynced = false
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if w.n-w.synced >= writebackChunk {
		startWriteback(w.f, w.synced, w.n-w.synced)
		w.synced = w.n
	}
	return n, err
}

// digest returns what was written so far.
func (w *ingest) digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

// verify checks the content against want and wantSize (< 0: any size).
func (w *ingest) verify(want v1.Hash, wantSize int64) error {
	if wantSize >= 0 && w.n != wantSize {
		return fmt.Errorf("blob %s: received %d bytes, want %d", want, w.n, wantSize)
	}
	if got := w.digest(); got != want {
		return fmt.Errorf("blob %s: received content has digest %s", want, got)
	}
	return nil
}

// syncInBackground starts flushing a complete ingest to disk, so that the
// commit finds it done; nothing may be written to it afterwards. sync
// waits for it.
func (w *ingest) syncInBackground() {
	if w.done || w.fsynced || w.bg != nil {
		return
	}
	bg := make(chan error, 1)
	w.bg = bg
	f := w.f
	go func() { bg <- f.Sync() }()
}

// sync flushes an ingest's data to disk.
func (w *ingest) sync() error {
	if w.done || w.fsynced {
		return nil
	}
	var err error
	if w.bg != nil {
		err = <-w.bg
		w.bg = nil
	} else {
		err = w.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	w.fsynced = true
	return nil
}

// commit moves a verified ingest into blobs/. Call sync first: a blob is
// renamed into place only once its data is on disk.
func (w *ingest) commit() error {
	if w.done {
		return nil
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	d := w.digest()
	if err := os.Rename(w.f.Name(), w.s.blobPath(d)); err != nil {
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	w.done = true
	return nil
}

// discard removes an ingest that was not committed; it is safe to call after
// commit.
func (w *ingest) discard() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// manifestKind tells an index from an image manifest by its content, which is
// more reliable than the Content-Type some registries send.
func manifestKind(data []byte, mediaType string) (string, error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return "", fmt.Errorf("manifest: %w: %w", err, engine.ErrInvalid)
	}
	mt := probe.MediaType
	if mt == "" {
		mt = mediaType
	}
	switch {
	case probe.SchemaVersion == 1 || len(probe.FSLayers) > 0:
		return "", fmt.Errorf("docker schema 1 manifests are deprecated and not supported: %w", engine.ErrUnsupported)
	case mt == string(types.OCIImageIndex) || mt == string(types.DockerManifestList) || mt == "" && len(probe.Manifests) > 0:
		return "index", nil
	case mt == string(types.OCIManifestSchema1) || mt == string(types.DockerManifestSchema2) || mt == "" && len(probe.Config) > 0:
		return "image", nil
	}
	return "", fmt.Errorf("manifest media type %q: %w", mt, engine.ErrUnsupported)
}

// bytesEqualZero reports whether b (at most holeUnit long) holds only zero
// bytes.
func bytesEqualZero(b []byte) bool {
	return len(b) > 0 && b[0] == 0 && bytes.Equal(b, zeroChunk[:len(b)])
}

var zeroChunk [holeUnit]byte
