package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/engine/registry"
)

// TestMain doubles as a registry server for the kill -9 test: with
// BERTH_TEST_REGISTRY_ROOT set, the test binary serves that root.
func TestMain(m *testing.M) {
	if root := os.Getenv("BERTH_TEST_REGISTRY_ROOT"); root != "" {
		reg, err := registry.New(root)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		err = reg.ListenAndServe(context.Background(), "127.0.0.1:0", "", "", func(a net.Addr) {
			fmt.Printf("listening on %s\n", a)
		})
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// server is a registry on an httptest server; restart reopens the same
// root behind a new server.
type server struct {
	t    *testing.T
	root string
	opts []registry.Option
	reg  *registry.Registry
	srv  *httptest.Server
	host string
}

func newServer(t *testing.T, opts ...registry.Option) *server {
	s := &server{t: t, root: t.TempDir(), opts: opts}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	reg, err := registry.New(s.root, s.opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.reg = reg
	s.srv = httptest.NewServer(reg)
	s.host = strings.TrimPrefix(s.srv.URL, "http://")
}

func (s *server) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.reg.Close()
		s.srv = nil
	}
}

func (s *server) restart() {
	s.stop()
	s.start()
}

func (s *server) do(method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	s.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = s.srv.URL + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func (s *server) expect(want int, method, path string, body io.Reader, hdr ...string) *http.Response {
	s.t.Helper()
	resp, data := s.do(method, path, body, hdr...)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	return resp
}

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func sha512Of(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(s[:])
}

// TestGGCRRoundTrip pushes and pulls images and an index with
// go-containerregistry, across a restart of the registry.
func TestGGCRRoundTrip(t *testing.T) {
	s := newServer(t)
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	push := func() (name.Reference, name.Reference) {
		ir, _ := name.ParseReference(s.host + "/test/image:v1")
		xr, _ := name.ParseReference(s.host + "/test/index:v1")
		return ir, xr
	}
	ir, xr := push()
	ctx := t.Context()
	if err := remote.Write(ir, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(xr, idx, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	s.restart()
	ir, xr = push()
	got, err := remote.Image(ir, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	gotIdx, err := remote.Index(xr, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(gotIdx); err != nil {
		t.Fatal(err)
	}
	// A manifest that references missing blobs is refused.
	mf := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + sha256Of([]byte("nope")) + `","size":4},"layers":[]}`)
	resp, body := s.do(http.MethodPut, "/v2/test/image/manifests/broken", bytes.NewReader(mf), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "MANIFEST_BLOB_UNKNOWN") {
		t.Fatalf("manifest with a missing config: %d %s", resp.StatusCode, body)
	}
}

// TestChunkedUploadResume: chunks must come in order, an out-of-order chunk
// gets 416 and the Range to resume from, and a session survives a restart.
func TestChunkedUploadResume(t *testing.T) {
	s := newServer(t)
	data := bytes.Repeat([]byte("0123456789"), 30) // 300 bytes
	resp := s.expect(http.StatusAccepted, http.MethodPost, "/v2/chunks/app/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	resp = s.expect(http.StatusAccepted, http.MethodPatch, loc, bytes.NewReader(data[:100]), "Content-Range", "0-99", "Content-Type", "application/octet-stream")
	if r := resp.Header.Get("Range"); r != "0-99" {
		t.Fatalf("range after the first chunk: %q", r)
	}
	loc = resp.Header.Get("Location")
	resp = s.expect(http.StatusRequestedRangeNotSatisfiable, http.MethodPatch, loc, bytes.NewReader(data[200:]), "Content-Range", "200-299")
	if r := resp.Header.Get("Range"); r != "0-99" {
		t.Fatalf("range after an out-of-order chunk: %q", r)
	}
	s.expect(http.StatusAccepted, http.MethodPatch, loc, bytes.NewReader(data[100:200]), "Content-Range", "100-199")

	s.restart()
	resp = s.expect(http.StatusNoContent, http.MethodGet, loc, nil)
	if r := resp.Header.Get("Range"); r != "0-199" {
		t.Fatalf("range after a restart: %q", r)
	}
	resp = s.expect(http.StatusCreated, http.MethodPut, loc+"?digest="+sha256Of(data), bytes.NewReader(data[200:]), "Content-Range", "200-299")
	if d := resp.Header.Get("Docker-Content-Digest"); d != sha256Of(data) {
		t.Fatalf("digest header %q", d)
	}
	_, got := s.do(http.MethodGet, "/v2/chunks/app/blobs/"+sha256Of(data), nil)
	if !bytes.Equal(got, data) {
		t.Fatalf("blob content differs")
	}
	// The session is gone.
	s.expect(http.StatusNotFound, http.MethodGet, loc, nil)

	// A streamed upload (PATCH without a range) with a wrong digest is
	// refused and leaves no blob.
	resp = s.expect(http.StatusAccepted, http.MethodPost, "/v2/chunks/app/blobs/uploads/", nil)
	loc = resp.Header.Get("Location")
	s.expect(http.StatusAccepted, http.MethodPatch, loc, bytes.NewReader([]byte("streamed")))
	s.expect(http.StatusBadRequest, http.MethodPut, loc+"?digest="+sha256Of([]byte("something else")), nil)
	s.expect(http.StatusNotFound, http.MethodHead, "/v2/chunks/app/blobs/"+sha256Of([]byte("something else")), nil)
	if _, err := os.Stat(filepath.Join(s.root, "blobs", "sha256", strings.TrimPrefix(sha256Of([]byte("streamed")), "sha256:"))); err == nil {
		t.Fatal("a refused upload left a blob")
	}

	// Cancel.
	resp = s.expect(http.StatusAccepted, http.MethodPost, "/v2/chunks/app/blobs/uploads/", nil)
	s.expect(http.StatusNoContent, http.MethodDelete, resp.Header.Get("Location"), nil)
	s.expect(http.StatusNotFound, http.MethodGet, resp.Header.Get("Location"), nil)
}

// TestSHA512 uploads with sha512 digests, monolithic and in a session.
func TestSHA512(t *testing.T) {
	s := newServer(t)
	a, b := []byte("sha512 content a"), []byte("sha512 content b")
	s.expect(http.StatusCreated, http.MethodPost, "/v2/algo/blobs/uploads/?digest="+sha512Of(a), bytes.NewReader(a))
	resp := s.expect(http.StatusAccepted, http.MethodPost, "/v2/algo/blobs/uploads/?digest-algorithm=sha512", nil)
	s.expect(http.StatusCreated, http.MethodPut, resp.Header.Get("Location")+"?digest="+sha512Of(b), bytes.NewReader(b))
	for _, c := range [][]byte{a, b} {
		_, got := s.do(http.MethodGet, "/v2/algo/blobs/"+sha512Of(c), nil)
		if !bytes.Equal(got, c) {
			t.Fatalf("GET %s = %q", sha512Of(c), got)
		}
	}
}

// TestConcurrentPushes: many clients push the same image to the same tag at
// once; all succeed and the result is whole.
func TestConcurrentPushes(t *testing.T) {
	s := newServer(t)
	img, err := random.Image(256<<10, 4)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(s.host + "/race/app:latest")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := remote.Image(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, "uploads")); len(entries) != 0 {
		t.Errorf("%d upload sessions left", len(entries))
	}
}

// TestKillDuringUpload kills a real registry process with SIGKILL in the
// middle of an upload: no blob appears, and after a restart the upload
// resumes from what arrived.
func TestKillDuringUpload(t *testing.T) {
	root := t.TempDir()
	start := func() (*exec.Cmd, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "BERTH_TEST_REGISTRY_ROOT="+root)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return cmd, "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	}
	cmd, base := start()
	data := bytes.Repeat([]byte("berth registry "), 1<<20) // 15 MiB
	digest := sha256Of(data)
	resp, err := http.Post(base+"/v2/kill/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")

	// Stream half the blob, then kill the server before the rest.
	pr, pw := io.Pipe()
	sent := make(chan struct{})
	go func() {
		pw.Write(data[:len(data)/2])
		close(sent)
	}()
	req, _ := http.NewRequest(http.MethodPut, base+loc+"?digest="+digest, pr)
	req.ContentLength = int64(len(data))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		done <- err
	}()
	<-sent
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	pw.CloseWithError(io.ErrClosedPipe)
	<-done

	if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))); err == nil {
		t.Fatal("a killed upload left a blob")
	}
	_, base = start()
	resp, err = http.Get(base + loc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("upload status after a restart: %d", resp.StatusCode)
	}
	var end int
	if _, err := fmt.Sscanf(resp.Header.Get("Range"), "0-%d", &end); err != nil || end <= 0 || end >= len(data) {
		t.Fatalf("range after the kill: %q", resp.Header.Get("Range"))
	}
	req, _ = http.NewRequest(http.MethodPut, base+loc+"?digest="+digest, bytes.NewReader(data[end+1:]))
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", end+1, len(data)-1))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("resumed upload: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/v2/kill/app/blobs/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("resumed blob differs")
	}
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "berth test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestAuthAndTLS serves over TLS with basic authentication.
func TestAuthAndTLS(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(htpasswd, []byte("# users\nbob:"+string(hash)+"\n"), 0o600)
	var log bytes.Buffer
	var logMu sync.Mutex
	reg, err := registry.New(t.TempDir(), registry.WithHtpasswd(htpasswd), registry.WithAccessLog(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return log.Write(p)
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	certFile, keyFile, pool := selfSigned(t)
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan net.Addr, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.ListenAndServe(ctx, "127.0.0.1:0", certFile, keyFile, func(a net.Addr) { ready <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	addr := (<-ready).String()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	client := &http.Client{Transport: tr}

	resp, err := client.Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("anonymous /v2/: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for pw, want := range map[string]int{"wrong": http.StatusUnauthorized, "pw": http.StatusOK} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/v2/", nil)
		req.SetBasicAuth("bob", pw)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("password %q: %d, want %d", pw, resp.StatusCode, want)
		}
	}
	ref, _ := name.ParseReference(addr + "/secure/app:1")
	img, _ := random.Image(1024, 1)
	opts := []remote.Option{remote.WithContext(t.Context()), remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: "bob", Password: "pw"})}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(ref, opts...); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	logMu.Unlock()
	if len(lines) < 5 || !strings.Contains(lines[0], `"GET /v2/ HTTP/1.1" 401`) || !strings.Contains(log.String(), " - bob [") {
		t.Errorf("access log:\n%s", strings.Join(lines, "\n"))
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// pushManifest pushes a config blob and a manifest (with an optional
// subject and artifact type) and returns the manifest digest.
func (s *server) pushManifest(repo, ref, artifactType string, subject map[string]any, annotations map[string]string) string {
	s.t.Helper()
	cfg := []byte("{}")
	s.expect(http.StatusCreated, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+sha256Of(cfg), bytes.NewReader(cfg))
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256Of(cfg), "size": 2},
		"layers":        []any{},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if subject != nil {
		m["subject"] = subject
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	data, _ := json.Marshal(m)
	if ref == "" {
		ref = sha256Of(data)
	}
	s.expect(http.StatusCreated, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(data), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	return sha256Of(data)
}

func TestTagsCatalogPagination(t *testing.T) {
	s := newServer(t)
	for _, tag := range []string{"e", "a", "c", "b", "d"} {
		s.pushManifest("pages/one", tag, "", nil, map[string]string{"tag": tag})
	}
	s.pushManifest("pages/two", "x", "", nil, nil)
	s.pushManifest("pages/three", "y", "", nil, nil)
	list := func(path string) (map[string]any, string) {
		resp, data := s.do(http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, data)
		}
		var v map[string]any
		json.Unmarshal(data, &v)
		return v, resp.Header.Get("Link")
	}
	v, link := list("/v2/pages/one/tags/list?n=2")
	if fmt.Sprint(v["tags"]) != "[a b]" || !strings.Contains(link, "last=b") || !strings.Contains(link, `rel="next"`) {
		t.Fatalf("first page %v, link %q", v, link)
	}
	v, _ = list("/v2/pages/one/tags/list?n=2&last=b")
	if fmt.Sprint(v["tags"]) != "[c d]" {
		t.Fatalf("second page %v", v)
	}
	v, link = list("/v2/pages/one/tags/list?last=d")
	if fmt.Sprint(v["tags"]) != "[e]" || link != "" {
		t.Fatalf("last page %v, link %q", v, link)
	}
	v, _ = list("/v2/_catalog?n=2")
	if fmt.Sprint(v["repositories"]) != "[pages/one pages/three]" {
		t.Fatalf("catalog page %v", v)
	}
	v, _ = list("/v2/_catalog?last=pages/three")
	if fmt.Sprint(v["repositories"]) != "[pages/two]" {
		t.Fatalf("catalog after last %v", v)
	}
	s.expect(http.StatusNotFound, http.MethodGet, "/v2/pages/none/tags/list", nil)
	s.expect(http.StatusBadRequest, http.MethodGet, "/v2/Bad_Name/tags/list", nil)
	// Deleting a tag leaves the manifest; deleting the manifest takes its tags.
	s.expect(http.StatusAccepted, http.MethodDelete, "/v2/pages/one/manifests/e", nil)
	s.expect(http.StatusNotFound, http.MethodGet, "/v2/pages/one/manifests/e", nil)
	resp := s.expect(http.StatusOK, http.MethodHead, "/v2/pages/one/manifests/a", nil)
	d := resp.Header.Get("Docker-Content-Digest")
	s.expect(http.StatusAccepted, http.MethodDelete, "/v2/pages/one/manifests/"+d, nil)
	s.expect(http.StatusNotFound, http.MethodGet, "/v2/pages/one/manifests/a", nil)
	s.expect(http.StatusNotFound, http.MethodGet, "/v2/pages/one/manifests/"+d, nil)
}

func TestReferrers(t *testing.T) {
	s := newServer(t)
	subj := s.pushManifest("refs/app", "v1", "", nil, nil)
	subject := map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subj, "size": 1}
	sig := s.pushManifest("refs/app", "", "application/vnd.example.sig", subject, map[string]string{"k": "v"})
	sbom := s.pushManifest("refs/app", "", "application/vnd.example.sbom", subject, nil)
	get := func(q string) ([]map[string]any, http.Header) {
		resp, data := s.do(http.MethodGet, "/v2/refs/app/referrers/"+subj+q, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
			t.Fatalf("referrers: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		var ix struct {
			Manifests []map[string]any `json:"manifests"`
		}
		json.Unmarshal(data, &ix)
		return ix.Manifests, resp.Header
	}
	all, _ := get("")
	var got []string
	for _, m := range all {
		got = append(got, m["digest"].(string)+" "+m["artifactType"].(string))
	}
	want := []string{sig + " application/vnd.example.sig", sbom + " application/vnd.example.sbom"}
	if len(got) != 2 || !(got[0] == want[0] || got[1] == want[0]) {
		t.Fatalf("referrers %v, want %v", got, want)
	}
	filtered, h := get("?artifactType=application/vnd.example.sbom")
	if len(filtered) != 1 || filtered[0]["digest"] != sbom || h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers %v %v", filtered, h)
	}
	s.expect(http.StatusAccepted, http.MethodDelete, "/v2/refs/app/manifests/"+sbom, nil)
	if left, _ := get(""); len(left) != 1 || left[0]["digest"] != sig {
		t.Fatalf("after deleting one referrer: %v", left)
	}
	if empty, _ := get(""); empty == nil {
		t.Fatal("referrers must be a list")
	}
}

// TestDeleteSharedBlob: content mounted into two repositories stays until
// the last one lets it go.
func TestDeleteSharedBlob(t *testing.T) {
	s := newServer(t)
	data := []byte("shared layer")
	d := sha256Of(data)
	s.expect(http.StatusCreated, http.MethodPost, "/v2/a/app/blobs/uploads/?digest="+d, bytes.NewReader(data))
	s.expect(http.StatusCreated, http.MethodPost, "/v2/b/app/blobs/uploads/?mount="+d+"&from=a/app", nil)
	// A mount from a repository that lacks the blob falls back to an upload.
	s.expect(http.StatusAccepted, http.MethodPost, "/v2/c/app/blobs/uploads/?mount="+d+"&from=nothere/app", nil)
	s.expect(http.StatusNotFound, http.MethodHead, "/v2/c/app/blobs/"+d, nil)
	s.expect(http.StatusAccepted, http.MethodDelete, "/v2/a/app/blobs/"+d, nil)
	s.expect(http.StatusNotFound, http.MethodGet, "/v2/a/app/blobs/"+d, nil)
	s.expect(http.StatusOK, http.MethodGet, "/v2/b/app/blobs/"+d, nil)
	content := filepath.Join(s.root, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	if _, err := os.Stat(content); err != nil {
		t.Fatal("content deleted while a repository links it")
	}
	s.expect(http.StatusAccepted, http.MethodDelete, "/v2/b/app/blobs/"+d, nil)
	if _, err := os.Stat(content); err == nil {
		t.Fatal("content kept after the last link went")
	}
	s.expect(http.StatusNotFound, http.MethodDelete, "/v2/b/app/blobs/"+d, nil)
	// Range requests.
	s.expect(http.StatusCreated, http.MethodPost, "/v2/a/app/blobs/uploads/?digest="+d, bytes.NewReader(data))
	resp, got := s.do(http.MethodGet, "/v2/a/app/blobs/"+d, nil, "Range", "bytes=7-")
	if resp.StatusCode != http.StatusPartialContent || string(got) != "layer" {
		t.Fatalf("range request: %d %q", resp.StatusCode, got)
	}
	if diff := cmp.Diff("bytes 7-11/12", resp.Header.Get("Content-Range")); diff != "" {
		t.Fatal(diff)
	}
}

// TestManifestInvalidDigests: digests inside a manifest are checked before
// any of them becomes a path.
func TestManifestInvalidDigests(t *testing.T) {
	s := newServer(t)
	for _, bad := range []string{"sha256:../../../../etc/passwd", "sha256:xyz", "md5:d41d8cd98f00b204e9800998ecf8427e"} {
		ix := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + bad + `","size":1}]}`
		resp, body := s.do(http.MethodPut, "/v2/bad/app/manifests/v1", strings.NewReader(ix), "Content-Type", "application/vnd.oci.image.index.v1+json")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "MANIFEST_INVALID") {
			t.Errorf("index naming %q: %d %s", bad, resp.StatusCode, body)
		}
	}
}
