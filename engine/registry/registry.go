package registry

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/engine/state"
)

// Registry is an OCI distribution registry whose content lives on disk. It
// is an http.Handler for the /v2/ API.
type Registry struct {
	st      *storage
	uploads *uploads
	log     *slog.Logger
	lock    *state.Lock

	accessMu sync.Mutex
	access   io.Writer

	users     map[string][]byte // htpasswd: user -> bcrypt hash
	authCache sync.Map          // user + sha256(password) of verified pairs

	maxManifest int64
	bufs        sync.Pool
	routesOnce  sync.Once
	routeTable  []route
	stop        chan struct{}
	wg          sync.WaitGroup
}

// Option configures a Registry.
type Option func(*Registry) error

// WithLogger sets the logger for diagnostics (errors of the server itself).
func WithLogger(l *slog.Logger) Option {
	return func(r *Registry) error {
		if l != nil {
			r.log = l
		}
		return nil
	}
}

// WithAccessLog writes one line per request to w, in the common log format
// followed by the duration.
func WithAccessLog(w io.Writer) Option {
	return func(r *Registry) error {
		r.access = w
		return nil
	}
}

// WithHtpasswd requires HTTP basic authentication against an htpasswd file
// of bcrypt hashes (htpasswd -B).
func WithHtpasswd(path string) Option {
	return func(r *Registry) error {
		users, err := loadHtpasswd(path)
		if err != nil {
			return err
		}
		r.users = users
		return nil
	}
}

// maxManifestSize bounds manifests; the spec asks registries to take at
// least 4 MiB.
const maxManifestSize = 8 << 20

// New opens (creating if needed) a registry stored under root. Only one
// Registry may serve a root at a time; Close releases it.
func New(root string, opts ...Option) (*Registry, error) {
	for _, dir := range []string{"blobs", "repositories", "uploads"} {
		if err := os.MkdirAll(root+"/"+dir, 0o755); err != nil {
			return nil, fmt.Errorf("registry root: %w", err)
		}
	}
	lock, ok, err := state.TryAcquire(root + "/lock")
	if err != nil {
		return nil, fmt.Errorf("registry root: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("registry root %s: another registry process serves it", root)
	}
	r := &Registry{
		st:          &storage{root: root},
		log:         slog.New(slog.DiscardHandler),
		lock:        lock,
		maxManifest: maxManifestSize,
		stop:        make(chan struct{}),
	}
	r.uploads = &uploads{st: r.st, m: map[string]*upload{}}
	r.bufs.New = func() any { b := make([]byte, 1<<20); return &b }
	for _, o := range opts {
		if err := o(r); err != nil {
			lock.Release()
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		r.uploads.janitor(24 * time.Hour)
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				r.uploads.janitor(24 * time.Hour)
			}
		}
	}()
	return r, nil
}

// Close stops background work and releases the root.
func (r *Registry) Close() error {
	select {
	case <-r.stop:
		return nil
	default:
	}
	close(r.stop)
	r.wg.Wait()
	return r.lock.Release()
}

// ListenAndServe serves the registry on addr (TLS when certFile and keyFile
// are set) until ctx ends, then shuts down gracefully. ready, when non-nil,
// is called with the bound address once the listener is open.
func (r *Registry) ListenAndServe(ctx context.Context, addr, certFile, keyFile string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Connections that never carried a request: a client dialled one for a
	// request another connection then served (Go's transport does, under
	// concurrency). Shutdown would wait for them as if they were busy.
	var fresh sync.Map
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				fresh.Store(c, struct{}{})
			} else {
				fresh.Delete(c)
			}
		},
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		fresh.Range(func(c, _ any) bool {
			c.(net.Conn).Close()
			return true
		})
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		return nil
	}
}

type handler func(http.ResponseWriter, *http.Request, string, string) *apiError

type route struct {
	re      *regexp.Regexp
	methods map[string]handler
}

// routes maps the API's paths and methods to handlers. Order matters:
// "blobs/uploads" would also match a blob path.
func (r *Registry) routes() []route {
	r.routesOnce.Do(func() {
		re := routeREs()
		reUploads, reUpload, reBlob, reManifest, reTags, reRefs := re[0], re[1], re[2], re[3], re[4], re[5]
		r.routeTable = []route{
			{reUploads, map[string]handler{http.MethodPost: r.startUpload}},
			{reUpload, map[string]handler{
				http.MethodGet:    r.uploadStatus,
				http.MethodPatch:  r.patchUpload,
				http.MethodPut:    r.finishUpload,
				http.MethodDelete: r.cancelUpload,
			}},
			{reBlob, map[string]handler{
				http.MethodGet:    r.getBlob,
				http.MethodHead:   r.getBlob,
				http.MethodDelete: r.deleteBlob,
			}},
			{reManifest, map[string]handler{
				http.MethodGet:    r.getManifest,
				http.MethodHead:   r.getManifest,
				http.MethodPut:    r.putManifest,
				http.MethodDelete: r.deleteManifest,
			}},
			{reTags, map[string]handler{http.MethodGet: r.listTags}},
			{reRefs, map[string]handler{http.MethodGet: r.listReferrers}},
		}
	})
	return r.routeTable
}

// Routes are compiled on first use, not at program start: the berth binary
// links this package for every command, and start-up time matters.
var routeREs = sync.OnceValue(func() [6]*regexp.Regexp {
	const name = `(.+?)`
	return [6]*regexp.Regexp{
		regexp.MustCompile(`^/v2/` + name + `/blobs/uploads/?$`),
		regexp.MustCompile(`^/v2/` + name + `/blobs/uploads/([^/]+)$`),
		regexp.MustCompile(`^/v2/` + name + `/blobs/([^/]+)$`),
		regexp.MustCompile(`^/v2/` + name + `/manifests/([^/]+)$`),
		regexp.MustCompile(`^/v2/` + name + `/tags/list$`),
		regexp.MustCompile(`^/v2/` + name + `/referrers/([^/]+)$`),
	}
})

// ServeHTTP serves the distribution API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
	user := "-"
	defer func() {
		if r.access != nil {
			r.logAccess(req, lw, user, time.Since(start))
		}
	}()
	lw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.users != nil {
		u, ok := r.authenticate(req)
		if !ok {
			lw.Header().Set("WWW-Authenticate", `Basic realm="berth registry"`)
			errUnauthorized.write(lw)
			return
		}
		user = u
	}
	if err := r.route(lw, req); err != nil {
		if err.Status >= 500 {
			r.log.Error("registry request failed", "method", req.Method, "path", req.URL.Path, "err", err)
		}
		err.write(lw)
	}
}

func (r *Registry) route(w http.ResponseWriter, req *http.Request) *apiError {
	p := req.URL.Path
	if p == "/v2/" || p == "/v2" {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			return errUnsupported("method %s", req.Method)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if req.Method == http.MethodGet {
			io.WriteString(w, "{}")
		}
		return nil
	}
	if p == "/v2/_catalog" {
		if req.Method != http.MethodGet {
			return errUnsupported("method %s", req.Method)
		}
		return r.catalog(w, req)
	}
	for _, rt := range r.routes() {
		m := rt.re.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		name, arg := m[1], ""
		if len(m) > 2 {
			arg = m[2]
		}
		if err := checkName(name); err != nil {
			return err
		}
		h, ok := rt.methods[req.Method]
		if !ok {
			return errUnsupported("method %s not allowed here", req.Method)
		}
		return h(w, req, name, arg)
	}
	return errf(http.StatusNotFound, "NOT_FOUND", "no such endpoint: %s", p)
}

// authenticate checks HTTP basic credentials. bcrypt is slow on purpose, so
// a verified user and password pair is remembered (by a hash of the
// password) for the life of the process.
func (r *Registry) authenticate(req *http.Request) (string, bool) {
	user, pass, ok := req.BasicAuth()
	if !ok {
		return "", false
	}
	hash, ok := r.users[user]
	if !ok {
		return "", false
	}
	sum := sha256.Sum256([]byte(pass))
	key := user + "\x00" + string(sum[:])
	if _, ok := r.authCache.Load(key); ok {
		return user, true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return "", false
	}
	r.authCache.Store(key, true)
	return user, true
}

// loadHtpasswd reads user:bcrypt-hash lines.
func loadHtpasswd(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	users := map[string][]byte{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		user, hash, ok := strings.Cut(text, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s:%d: want user:hash", path, line)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd %s:%d: user %s: only bcrypt hashes (htpasswd -B) are supported: %w", path, line, user, err)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	if len(users) == 0 {
		return nil, errors.New("htpasswd: no users")
	}
	return users, nil
}

// logWriter records the status and size of a response for the access log.
// It forwards ReadFrom so that blob downloads keep using sendfile.
type logWriter struct {
	http.ResponseWriter
	status  int
	written int64
	wrote   bool
}

func (l *logWriter) WriteHeader(code int) {
	if !l.wrote {
		l.status, l.wrote = code, true
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.wrote = true
	n, err := l.ResponseWriter.Write(b)
	l.written += int64(n)
	return n, err
}

func (l *logWriter) ReadFrom(src io.Reader) (int64, error) {
	l.wrote = true
	n, err := io.Copy(l.ResponseWriter, src)
	l.written += n
	return n, err
}

func (l *logWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

func (r *Registry) logAccess(req *http.Request, lw *logWriter, user string, d time.Duration) {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	line := fmt.Sprintf("%s - %s [%s] %q %d %d %.3fms\n",
		host, user, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
		req.Method+" "+req.URL.RequestURI()+" "+req.Proto, lw.status, lw.written,
		float64(d.Microseconds())/1000)
	r.accessMu.Lock()
	io.WriteString(r.access, line)
	r.accessMu.Unlock()
}

func (r *Registry) buffer() (*[]byte, func()) {
	b := r.bufs.Get().(*[]byte)
	return b, func() { r.bufs.Put(b) }
}
