package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/image"
	"berth.dev/berth/engine/registry"
)

// testRegistry is a real `berth registry serve` registry, in process, on a
// 127.0.0.1 port, stored under root. Stop and Start keep the address, so
// references stay valid across a restart.
type testRegistry struct {
	t    testing.TB
	root string
	addr string
	opts []registry.Option

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func startRegistry(t testing.TB, opts ...registry.Option) *testRegistry {
	t.Helper()
	r := &testRegistry{t: t, root: t.TempDir(), addr: "127.0.0.1:0", opts: opts}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

func (r *testRegistry) Start() {
	r.t.Helper()
	reg, err := registry.New(r.root, r.opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		defer reg.Close()
		errc <- reg.ListenAndServe(ctx, r.addr, "", "", func(a net.Addr) { ready <- a })
	}()
	select {
	case a := <-ready:
		r.addr = a.String()
	case err := <-errc:
		cancel()
		r.t.Fatalf("registry: %v", err)
	}
	r.mu.Lock()
	r.cancel, r.done = cancel, done
	r.mu.Unlock()
}

func (r *testRegistry) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// busyboxRootfs makes a root filesystem of the static busybox and a few
// applet links.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs the static busybox at /bin/busybox (busybox-static): %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "ls", "cat", "echo", "true"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openStore(t testing.TB, opts ...image.Option) *image.Store {
	t.Helper()
	s, err := image.Open(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tarEntry describes one entry of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
}

func layerTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Typeflag: typ, Name: e.name, Linkname: e.link, Mode: mode, Uid: e.uid, Gid: e.gid, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	tw.Close()
	return b.Bytes()
}

func sha(data []byte) v1.Hash {
	s := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// builtImage is an image made blob by blob, to push with exact media types.
type builtImage struct {
	blobs     map[v1.Hash][]byte
	config    []byte
	manifest  []byte
	mediaType types.MediaType
	id        string // config digest
	digest    string // manifest digest
}

// buildImage makes an image of the given layer tars, compressed with comp
// ("gzip", "zstd", "none"), with Docker media types when docker is set.
func buildImage(t testing.TB, layers [][]byte, comp string, docker bool, p engine.Platform, cfgFn func(*v1.Config)) builtImage {
	t.Helper()
	img := builtImage{blobs: map[v1.Hash][]byte{}}
	mf := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	cfg := v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, Created: v1.Time{Time: time.Unix(1700000000, 0).UTC()}, RootFS: v1.RootFS{Type: "layers"}}
	cfg.Config.Cmd = []string{"/bin/sh"}
	if cfgFn != nil {
		cfgFn(&cfg.Config)
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, sha(l))
		var data []byte
		var mt types.MediaType
		switch comp {
		case "gzip":
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write(l)
			w.Close()
			data, mt = b.Bytes(), types.OCILayer
			if docker {
				mt = types.DockerLayer
			}
		case "zstd":
			var b bytes.Buffer
			w, _ := zstd.NewWriter(&b)
			w.Write(l)
			w.Close()
			data, mt = b.Bytes(), types.OCILayerZStd
		default:
			data, mt = l, types.OCIUncompressedLayer
			if docker {
				mt = types.DockerUncompressedLayer
			}
		}
		d := sha(data)
		img.blobs[d] = data
		mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: mt, Size: int64(len(data)), Digest: d})
	}
	cfgData, _ := json.Marshal(cfg)
	img.config = cfgData
	cd := sha(cfgData)
	img.blobs[cd] = cfgData
	img.id = cd.String()
	mf.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfgData)), Digest: cd}
	if docker {
		mf.MediaType = types.DockerManifestSchema2
		mf.Config.MediaType = types.DockerConfigJSON
	}
	img.mediaType = mf.MediaType
	img.manifest, _ = json.Marshal(mf)
	img.digest = sha(img.manifest).String()
	return img
}

// push sends a built image to repo (name without host) on the registry,
// under ref (a tag, or "" to push by digest).
func (r *testRegistry) push(t testing.TB, repo, ref string, img builtImage) {
	t.Helper()
	for d, data := range img.blobs {
		r.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", data, http.StatusCreated)
	}
	if ref == "" {
		ref = img.digest
	}
	r.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, string(img.mediaType), img.manifest, http.StatusCreated)
}

// pushIndex sends an index of already pushed manifests.
func (r *testRegistry) pushIndex(t testing.TB, repo, tag string, docker bool, imgs []builtImage, plats []engine.Platform) string {
	t.Helper()
	ix := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if docker {
		ix.MediaType = types.DockerManifestList
	}
	for i, img := range imgs {
		r.push(t, repo, "", img)
		p := plats[i]
		ix.Manifests = append(ix.Manifests, v1.Descriptor{MediaType: img.mediaType, Size: int64(len(img.manifest)), Digest: sha(img.manifest),
			Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}})
	}
	data, _ := json.Marshal(ix)
	r.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, string(ix.MediaType), data, http.StatusCreated)
	return sha(data).String()
}

func (r *testRegistry) do(t testing.TB, method, path, contentType string, body []byte, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, msg, want)
	}
	return resp
}

// staticKeychain hands out one authenticator for every registry.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// progressLog records progress events.
type progressLog struct {
	mu     sync.Mutex
	events []engine.PullProgress
}

func (p *progressLog) add(ev engine.PullProgress) {
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
}

// final returns the last status of each digest.
func (p *progressLog) final() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for _, ev := range p.events {
		out[ev.Digest] = ev.Status
	}
	return out
}

func countDir(t testing.TB, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
