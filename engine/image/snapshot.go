package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
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
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// snapshotIDLen is the length of a snapshot directory name: a prefix of the
// chain ID, short because overlayfs mount options are limited to a page.
const snapshotIDLen = 12

// snapshotMeta is snapshots/<id>/meta.json.
type snapshotMeta struct {
	ChainID string    `json:"chainID"`
	DiffID  string    `json:"diffID"`
	Parent  string    `json:"parent,omitempty"` // chain ID of the layer below
	Size    int64     `json:"size"`             // uncompressed layer size
	Created time.Time `json:"created"`
	// BootID is the kernel boot it was unpacked in, and Synced says its
	// files were flushed to disk since. A snapshot is derived data: a pull
	// makes its blobs durable but leaves the snapshot to the page cache,
	// which is the truth for as long as the machine does not crash. One
	// from an earlier boot that was never synced may have lost data in a
	// crash, so it is unpacked again from its (durable) blob. Rootfs syncs
	// the snapshots a container is about to use.
	BootID string `json:"bootID"`
	Synced bool   `json:"synced"`
}

// trusted reports whether the snapshot's content can be used as it is.
func (m *snapshotMeta) trusted() bool {
	if m.Synced {
		return true
	}
	boot, err := state.BootID()
	return err == nil && m.BootID == boot
}

// chainIDs computes the chain ID of each layer from the diff IDs, bottom
// first: chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n)).
func chainIDs(diffIDs []v1.Hash) []v1.Hash {
	out := make([]v1.Hash, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1].String() + " " + d.String()))
		out[i] = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	}
	return out
}

// findSnapshot returns the directory of the snapshot for chainID and
// whether it exists. When it does not, dir is where it would be created:
// the shortest prefix of the chain ID not taken by another chain.
func (s *Store) findSnapshot(chainID v1.Hash) (dir string, ok bool, err error) {
	dir, m, err := s.findSnapshotMeta(chainID)
	return dir, m != nil, err
}

// findSnapshotMeta is findSnapshot returning the snapshot's record (nil
// when absent). A snapshot that cannot be trusted (see snapshotMeta) is
// removed and reported absent.
func (s *Store) findSnapshotMeta(chainID v1.Hash) (string, *snapshotMeta, error) {
	for n := snapshotIDLen; n <= len(chainID.Hex); n += 4 {
		dir := s.path("snapshots", chainID.Hex[:n])
		var m snapshotMeta
		err := state.ReadJSON(filepath.Join(dir, "meta.json"), &m)
		if errors.Is(err, fs.ErrNotExist) {
			return dir, nil, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("snapshot %s: %w", chainID, err)
		}
		if m.ChainID != chainID.String() {
			continue
		}
		if !m.trusted() {
			s.opts.log.Debug("dropping a snapshot not synced before a reboot", "chainID", m.ChainID)
			stale := s.path("snapshots", ".tmp-stale-"+newRandom())
			if err := os.Rename(dir, stale); err == nil {
				os.RemoveAll(stale)
			}
			return dir, nil, nil
		}
		return dir, &m, nil
	}
	return "", nil, fmt.Errorf("snapshot %s: no free directory name", chainID)
}

// markSynced records that a snapshot's files are on disk.
func markSynced(dir string, m *snapshotMeta) error {
	m.Synced = true
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".meta.json.tmp-"+newRandom())
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "meta.json"))
}

func newRandom() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pendingSnapshot is a layer unpacked into a temporary directory, waiting
// for the filesystem sync after which it is renamed into place.
type pendingSnapshot struct {
	s       *Store
	tmp     string
	chainID v1.Hash
	done    bool
}

// commit renames the snapshot into place. If another process got there
// first, its copy (identical by construction) wins and ours is dropped.
func (p *pendingSnapshot) commit() error {
	if p.done {
		return nil
	}
	dir, ok, err := p.s.findSnapshot(p.chainID)
	if err != nil {
		return err
	}
	if !ok {
		err = os.Rename(p.tmp, dir)
		if err == nil {
			p.done = true
			return nil
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("snapshot %s: %w", p.chainID, err)
		}
		if _, ok, err = p.s.findSnapshot(p.chainID); err != nil || !ok {
			return fmt.Errorf("snapshot %s: lost a race for its directory", p.chainID)
		}
	}
	p.discard()
	return nil
}

// discard removes a snapshot that was not committed.
func (p *pendingSnapshot) discard() {
	if p.done {
		return
	}
	p.done = true
	os.RemoveAll(p.tmp)
}

// layerLimit is the most a layer of compressed size n may expand to before
// it is treated as a decompression bomb (see doc.go).
func (s *Store) layerLimit(compressed int64) int64 {
	return min(max(int64(512<<20), compressed*256), s.opts.maxLayerSize)
}

// ErrLayerTooLarge is returned for a layer that expands beyond the store's
// limit: a decompression bomb, or a layer larger than WithMaxLayerSize.
var ErrLayerTooLarge = errors.New("layer expands beyond the size limit")

// buildSnapshot unpacks the compressed layer r (gzip, zstd or plain tar,
// told apart by content) into a new pending snapshot for chainID. The
// uncompressed stream must hash to diffID. compressed is the layer's size,
// for the bomb limit.
func (s *Store) buildSnapshot(ctx context.Context, r io.Reader, compressed int64, diffID, chainID, parent v1.Hash, synced bool) (*pendingSnapshot, error) {
	dr, closeDR, err := decompress(r)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer closeDR()
	p, got, size, err := s.unpackPending(ctx, dr, s.layerLimit(compressed))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if got != diffID {
		p.discard()
		return nil, fmt.Errorf("layer %s: uncompressed content has digest %s, not the diff ID the image config names", diffID, got)
	}
	if err := p.finish(chainID, diffID, parent, size, synced); err != nil {
		p.discard()
		return nil, err
	}
	return p, nil
}

// unpackPending unpacks an uncompressed tar stream into a new temporary
// snapshot directory and returns it with the stream's digest and size. The
// stream is read to its end; more than limit bytes is an error.
func (s *Store) unpackPending(ctx context.Context, tarStream io.Reader, limit int64) (*pendingSnapshot, v1.Hash, int64, error) {
	tmp, err := os.MkdirTemp(s.path("snapshots"), ".tmp-")
	if err != nil {
		return nil, v1.Hash{}, 0, fmt.Errorf("snapshot: %w", err)
	}
	p := &pendingSnapshot{s: s, tmp: tmp}
	ok := false
	defer func() {
		if !ok {
			p.discard()
		}
	}()
	fsDir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return nil, v1.Hash{}, 0, fmt.Errorf("snapshot: %w", err)
	}
	// Reading the stream (for a pull: downloading, storing and hashing the
	// blob, and decompressing it) runs in its own goroutine, ahead of the
	// unpacker, which hashes what it reads and writes the files: one large
	// layer keeps two cores busy, and on a small one the decompressor, the
	// longest step, has a core to itself.
	pipe := newChunkPipe(3)
	produced := make(chan error, 1)
	go func() { produced <- fill(pipe, tarStream) }()
	lr := &limitedHashReader{r: pipe, h: sha256.New(), limit: limit}
	stats, err := unpackTar(ctx, fsDir, lr, s.opts.log)
	if err == nil {
		// Read to the end: the tar stream's padding belongs to the diff ID,
		// and a decompressor checks its trailer only at the end.
		_, err = io.Copy(io.Discard, lr)
	}
	pipe.closeRead()
	if perr := <-produced; err == nil && perr != nil && perr != errPipeClosed {
		err = perr
	}
	pipe.release()
	if lr.exceeded {
		return nil, v1.Hash{}, 0, fmt.Errorf("%w (%d bytes): refusing a possible decompression bomb", ErrLayerTooLarge, limit)
	}
	if err != nil {
		return nil, v1.Hash{}, 0, err
	}
	s.opts.log.Debug("layer unpacked", "entries", stats.Entries, "bytes", lr.n, "skipped", stats.Skipped)
	ok = true
	return p, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(lr.h.Sum(nil))}, lr.n, nil
}

// finish records what the snapshot is; synced says the caller syncs the
// filesystem before it commits the snapshot.
func (p *pendingSnapshot) finish(chainID, diffID, parent v1.Hash, size int64, synced bool) error {
	p.chainID = chainID
	boot, err := state.BootID()
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	meta := snapshotMeta{ChainID: chainID.String(), DiffID: diffID.String(), Size: size, Created: time.Now().UTC(), BootID: boot, Synced: synced}
	if parent != (v1.Hash{}) {
		meta.Parent = parent.String()
	}
	data, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	// No fsync of its own: see snapshotMeta.
	if err := os.WriteFile(filepath.Join(p.tmp, "meta.json"), data, 0o600); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// decompress returns the uncompressed tar stream of a layer, telling gzip,
// zstd and plain tar apart by their magic numbers rather than trusting the
// media type.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	default:
		return br, func() {}, nil
	}
}

// limitedHashReader hashes what it reads and fails once more than limit
// bytes came through.
type limitedHashReader struct {
	r        io.Reader
	h        hash.Hash
	n, limit int64
	exceeded bool
}

func (l *limitedHashReader) Read(p []byte) (int, error) {
	if l.n > l.limit {
		l.exceeded = true
		return 0, ErrLayerTooLarge
	}
	n, err := l.r.Read(p)
	l.h.Write(p[:n])
	l.n += int64(n)
	if l.n > l.limit {
		l.exceeded = true
		return n, ErrLayerTooLarge
	}
	return n, err
}

// startWriteback asks the kernel to start writing a file range to disk
// without waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE): the disk
// works while the CPU decompresses, and the final syncfs waits for less.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// syncFS makes everything written to the store's filesystem durable: one
// syncfs instead of an fsync per unpacked file.
func (s *Store) syncFS() error {
	f, err := os.Open(s.root)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// ensureSnapshots makes sure every layer of an image has its snapshot,
// unpacking missing ones from their blobs, and that all of them are on disk
// (one syncfs for those a pull left in the page cache). It returns the
// snapshot directories bottom first.
func (s *Store) ensureSnapshots(ctx context.Context, layers []v1.Descriptor, diffIDs []v1.Hash) ([]string, error) {
	chains := chainIDs(diffIDs)
	dirs := make([]string, len(chains))
	var unsynced []int
	metas := make([]*snapshotMeta, len(chains))
	for i, c := range chains {
		dir, m, err := s.findSnapshotMeta(c)
		if err != nil {
			return nil, err
		}
		if m == nil {
			dir, err = s.unpackLocal(ctx, layers[i], diffIDs[i], c, parentOf(chains, i))
			if err != nil {
				return nil, err
			}
		} else if !m.Synced {
			unsynced = append(unsynced, i)
			metas[i] = m
		}
		dirs[i] = dir
	}
	if len(unsynced) > 0 {
		if err := s.syncFS(); err != nil {
			return nil, err
		}
		for _, i := range unsynced {
			if err := markSynced(dirs[i], metas[i]); err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", chains[i], err)
			}
		}
	}
	return dirs, nil
}

func parentOf(chains []v1.Hash, i int) v1.Hash {
	if i == 0 {
		return v1.Hash{}
	}
	return chains[i-1]
}

// unpackLocal unpacks a stored layer blob into its snapshot and commits it.
func (s *Store) unpackLocal(ctx context.Context, layer v1.Descriptor, diffID, chainID, parent v1.Hash) (string, error) {
	unlock := s.building.lock(chainID.String())
	defer unlock()
	if dir, ok, err := s.findSnapshot(chainID); err != nil || ok {
		return dir, err
	}
	f, err := os.Open(s.blobPath(layer.Digest))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("layer %s: blob missing from the store (pull the image again): %w", layer.Digest, engine.ErrNotFound)
		}
		return "", fmt.Errorf("layer %s: %w", layer.Digest, err)
	}
	defer f.Close()
	p, err := s.buildSnapshot(ctx, f, layer.Size, diffID, chainID, parent, true)
	if err != nil {
		return "", err
	}
	if err := s.syncFS(); err != nil {
		p.discard()
		return "", err
	}
	if err := p.commit(); err != nil {
		return "", err
	}
	dir, ok, err := s.findSnapshot(chainID)
	if err != nil || !ok {
		return "", fmt.Errorf("snapshot %s: missing after commit", chainID)
	}
	return dir, nil
}

// emptySnapshot returns an empty, read-only directory to stand in as the only
// lower layer of an image without layers (overlayfs needs at least one).
func (s *Store) emptySnapshot() (string, error) {
	dir := s.path("snapshots", "empty")
	if err := os.MkdirAll(filepath.Join(dir, "fs"), 0o755); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	return dir, nil
}

// LowerDir joins snapshot directories (top-most first, as RootfsInfo.Lowers)
// into the value of overlayfs's lowerdir option, escaping the characters the
// option treats specially. The whole mount data must fit in one page (4096
// bytes); with longer stacks mount with the new mount API and one
// "lowerdir+" per layer (Linux 6.8 and later), or use paths relative to a
// common directory.
func LowerDir(lowers []string) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`)
	parts := make([]string, len(lowers))
	for i, l := range lowers {
		parts[i] = esc.Replace(l)
	}
	return strings.Join(parts, ":")
}
