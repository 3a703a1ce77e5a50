package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
)

// Store is the on-disk image store. It implements engine.Images, and Rootfs
// for the container runtime. A Store is safe for concurrent use, by
// goroutines and by other processes opening the same root.
type Store struct {
	root string
	opts options

	// building serializes unpacks of one chain ID within this process; other
	// processes race harmlessly (the loser of the final rename discards its
	// copy).
	building keyedMutex
}

var _ engine.Images = (*Store)(nil)

// Option configures a Store.
type Option func(*options)

type options struct {
	insecure     []string
	log          *slog.Logger
	users        func(ctx context.Context) (map[string][]string, error)
	maxLayerSize int64
	jobs         int
	keychain     authn.Keychain
	transport    http.RoundTripper
}

// WithInsecureRegistries names registries (host, host:port, or a CIDR of
// addresses) that may be reached over plain HTTP. Loopback registries always
// may.
func WithInsecureRegistries(hosts []string) Option {
	return func(o *options) { o.insecure = append([]string(nil), hosts...) }
}

// WithLogger sets the logger for debug diagnostics; the store logs nothing
// above Debug.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithUsers sets the callback that reports which containers use which image:
// image ID -> IDs or names of the containers using it. Remove refuses, and
// Prune keeps, any image it lists. A nil callback means no container uses
// any image.
func WithUsers(fn func(ctx context.Context) (map[string][]string, error)) Option {
	return func(o *options) { o.users = fn }
}

// WithMaxLayerSize caps the uncompressed size of any one layer (default
// 64 GiB); a layer that expands beyond it is refused as a decompression bomb.
func WithMaxLayerSize(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.maxLayerSize = n
		}
	}
}

// WithJobs sets how many layers a pull or push transfers at once (default 6).
func WithJobs(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.jobs = n
		}
	}
}

// WithKeychain replaces the Docker config keychain used for registry
// credentials (tests use it to supply credentials without a config file).
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) { o.keychain = kc }
}

// WithTransport sets the HTTP transport registries are reached with (default:
// a clone of http.DefaultTransport). The plain-HTTP policy is enforced on top
// of it.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

const (
	defaultMaxLayerSize = 64 << 30
	defaultJobs         = 6
)

// Open opens the store at root, creating it if needed. Opening is cheap: it
// reads nothing until asked.
func Open(root string, opts ...Option) (*Store, error) {
	o := options{
		log:          slog.New(slog.DiscardHandler),
		maxLayerSize: defaultMaxLayerSize,
		jobs:         defaultJobs,
		keychain:     authn.DefaultKeychain,
	}
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", root, err)
	}
	s := &Store{root: abs, opts: o}
	// 0700: snapshots hold setuid binaries and device-less copies of whole
	// images; no unprivileged host user has any business in them.
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	for _, dir := range []string{"", "blobs", "blobs/sha256", "snapshots", "ingest"} {
		path := filepath.Join(abs, dir)
		err := os.Mkdir(path, 0o700)
		switch {
		case err == nil && (dir == "" || dir == "snapshots"):
			markTopDir(path)
		case err != nil && !errors.Is(err, fs.ErrExist):
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	layout := filepath.Join(abs, "oci-layout")
	if _, err := os.Stat(layout); errors.Is(err, fs.ErrNotExist) {
		// Informational only (tools reading the layout look for it); the
		// next sync of the store makes it durable.
		if err := os.WriteFile(layout, []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	return s, nil
}

// Root returns the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// lockIndex takes the exclusive lock that serializes writers of the reference
// index.
func (s *Store) lockIndex(ctx context.Context) (*state.Lock, error) {
	return state.Acquire(ctx, s.path("lock"))
}

// lockContent takes gc.lock shared: held while content is added, so that a
// garbage collection never runs in between.
func (s *Store) lockContent(ctx context.Context) (*state.Lock, error) {
	return state.AcquireShared(ctx, s.path("gc.lock"))
}

// users reports the image ID -> containers map from the WithUsers callback.
func (s *Store) users(ctx context.Context) (map[string][]string, error) {
	if s.opts.users == nil {
		return nil, nil
	}
	u, err := s.opts.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("list image users: %w", err)
	}
	return u, nil
}

// keyedMutex is a set of mutexes by key, created on demand and dropped when
// unused.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
