package image_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/image"
	"berth.dev/berth/engine/registry"
)

var amd64 = engine.Platform{OS: "linux", Architecture: "amd64"}

// TestRoundTripBusybox: import busybox, push, rmi, restart the registry,
// pull: the same digest comes back, and it unpacks.
func TestRoundTripBusybox(t *testing.T) {
	reg := startRegistry(t)
	s := openStore(t)
	ctx := t.Context()
	ref := reg.addr + "/library/busybox:1.36"

	rootfs := image.DirTar(ctx, busyboxRootfs(t))
	imported, err := s.Import(ctx, rootfs, ref, engine.ImportOptions{Changes: []string{`CMD ["sh"]`, "ENV PATH=/bin"}})
	rootfs.Close()
	if err != nil {
		t.Fatal(err)
	}
	if imported.Digest != "" || !slices.Equal(imported.RepoTags, []string{ref}) {
		t.Fatalf("imported image: digest %q tags %v, want no digest and tag %s", imported.Digest, imported.RepoTags, ref)
	}
	if diff := cmp.Diff([]string{"sh"}, imported.Config.Cmd); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}

	if err := s.Push(ctx, ref, engine.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	pushed := must[engine.Image](t)(s.Inspect(ctx, ref))
	if !strings.HasPrefix(pushed.Digest, "sha256:") || len(pushed.RepoDigests) != 1 {
		t.Fatalf("after push: digest %q repo digests %v", pushed.Digest, pushed.RepoDigests)
	}

	out, err := s.Remove(ctx, ref, engine.RemoveImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(out, "Deleted: "+imported.ID) {
		t.Errorf("remove said %v, want the image deleted", out)
	}
	if imgs := must[[]engine.Image](t)(s.List(ctx)); len(imgs) != 0 {
		t.Fatalf("after rmi: %d images", len(imgs))
	}
	if n := countDir(t, filepath.Join(s.Root(), "blobs", "sha256")); n != 0 {
		t.Errorf("after rmi: %d blobs left", n)
	}
	if n := countDir(t, filepath.Join(s.Root(), "snapshots")); n != 0 {
		t.Errorf("after rmi: %d snapshots left", n)
	}

	reg.Stop()
	reg.Start() // same root, same address: the registry kept everything

	pulled, err := s.Pull(ctx, ref, engine.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest != pushed.Digest || pulled.ID != imported.ID {
		t.Fatalf("pulled digest %s id %s, pushed digest %s id %s", pulled.Digest, pulled.ID, pushed.Digest, imported.ID)
	}
	info, err := s.Rootfs(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Lowers) != 1 || info.ImageID != imported.ID {
		t.Fatalf("rootfs %+v", info)
	}
	if fi, err := os.Stat(filepath.Join(info.Lowers[0], "bin", "busybox")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("busybox in the snapshot: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(info.Lowers[0], "bin", "sh")); err != nil || l != "busybox" {
		t.Fatalf("bin/sh -> %q (%v)", l, err)
	}
	// Pulling again transfers nothing.
	var prog progressLog
	if _, err := s.Pull(ctx, ref, engine.PullOptions{Progress: prog.add}); err != nil {
		t.Fatal(err)
	}
	for d, st := range prog.final() {
		if st != "exists" {
			t.Errorf("second pull: layer %s %s, want exists", d, st)
		}
	}
}

// TestPullPlatforms pulls from an index: the host's platform by default,
// another on request, an error for one the index lacks.
func TestPullPlatforms(t *testing.T) {
	reg := startRegistry(t)
	arm64 := engine.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	a := buildImage(t, [][]byte{layerTar(t, tarEntry{name: "arch", body: "amd64"})}, "gzip", false, amd64, nil)
	b := buildImage(t, [][]byte{layerTar(t, tarEntry{name: "arch", body: "arm64"})}, "gzip", false, arm64, nil)
	for _, docker := range []bool{false, true} {
		t.Run(map[bool]string{false: "oci", true: "docker"}[docker], func(t *testing.T) {
			repo := "multi/" + map[bool]string{false: "oci", true: "docker"}[docker]
			indexDigest := reg.pushIndex(t, repo, "v1", docker, []builtImage{a, b}, []engine.Platform{amd64, arm64})
			ref := reg.addr + "/" + repo + ":v1"
			s := openStore(t)
			ctx := t.Context()

			resolved, err := s.Resolve(ctx, ref, nil)
			if err != nil || resolved != indexDigest {
				t.Fatalf("resolve: %s %v, want the index %s", resolved, err, indexDigest)
			}
			if _, err := s.Resolve(ctx, ref, &engine.Platform{OS: "linux", Architecture: "s390x"}); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("resolve for s390x: %v, want ErrNotFound", err)
			}

			host := image.HostPlatform()
			if host != amd64 && host.Architecture != "arm64" {
				t.Skipf("host platform %s is in neither index entry", host)
			}
			img, err := s.Pull(ctx, ref, engine.PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := a.id
			if host.Architecture == "arm64" {
				want = b.id
			}
			if img.ID != want || img.Digest != indexDigest {
				t.Fatalf("pulled %s (digest %s), want %s (digest %s)", img.ID, img.Digest, want, indexDigest)
			}
			img2, err := s.Pull(ctx, ref, engine.PullOptions{Platform: &engine.Platform{OS: "linux", Architecture: "arm64"}})
			if err != nil {
				t.Fatal(err)
			}
			if img2.ID != b.id || img2.Platform.Architecture != "arm64" {
				t.Fatalf("pulled arm64 as %s %s, want %s", img2.ID, img2.Platform, b.id)
			}
			if _, err := s.Pull(ctx, ref, engine.PullOptions{Platform: &engine.Platform{OS: "linux", Architecture: "s390x"}}); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("pull s390x: %v, want ErrNotFound", err)
			}
			// By digest, the index resolves locally.
			byDigest := must[engine.Image](t)(s.Inspect(ctx, reg.addr+"/"+repo+"@"+indexDigest))
			if byDigest.ID != img2.ID && byDigest.ID != img.ID {
				t.Fatalf("inspect by index digest: %s", byDigest.ID)
			}
		})
	}
}

// TestPullLayerFormats pulls gzip, zstd and uncompressed layers with OCI and
// Docker media types; every one unpacks to the same tree.
func TestPullLayerFormats(t *testing.T) {
	reg := startRegistry(t)
	layers := [][]byte{
		layerTar(t, tarEntry{name: "etc/", typ: tar.TypeDir}, tarEntry{name: "etc/hostname", body: "base\n"}),
		layerTar(t, tarEntry{name: "app/", typ: tar.TypeDir}, tarEntry{name: "app/run", body: "#!/bin/sh\n", mode: 0o755}, tarEntry{name: "app/link", link: "run", typ: tar.TypeSymlink}),
	}
	for _, tc := range []struct {
		name   string
		comp   string
		docker bool
	}{
		{"oci-gzip", "gzip", false},
		{"oci-zstd", "zstd", false},
		{"oci-uncompressed", "none", false},
		{"docker-gzip", "gzip", true},
		{"docker-uncompressed", "none", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := buildImage(t, layers, tc.comp, tc.docker, amd64, nil)
			reg.push(t, "formats/"+tc.name, "latest", img)
			s := openStore(t)
			got, err := s.Pull(t.Context(), reg.addr+"/formats/"+tc.name, engine.PullOptions{Platform: &amd64})
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != img.id || got.Digest != img.digest {
				t.Fatalf("pulled %s %s, want %s %s", got.ID, got.Digest, img.id, img.digest)
			}
			info := must[image.RootfsInfo](t)(s.Rootfs(t.Context(), got.ID))
			if len(info.Lowers) != 2 {
				t.Fatalf("lowers %v", info.Lowers)
			}
			// Top-most first.
			if l, _ := os.Readlink(filepath.Join(info.Lowers[0], "app", "link")); l != "run" {
				t.Errorf("top layer app/link -> %q", l)
			}
			if data, _ := os.ReadFile(filepath.Join(info.Lowers[1], "etc", "hostname")); string(data) != "base\n" {
				t.Errorf("bottom layer etc/hostname = %q", data)
			}
		})
	}
}

// TestSharedLayers: a second image on the same base downloads only its own
// layer, and the two share the base snapshot.
func TestSharedLayers(t *testing.T) {
	reg := startRegistry(t)
	base := layerTar(t, tarEntry{name: "base", body: strings.Repeat("b", 100000)})
	one := buildImage(t, [][]byte{base, layerTar(t, tarEntry{name: "one", body: "1"})}, "gzip", false, amd64, nil)
	two := buildImage(t, [][]byte{base, layerTar(t, tarEntry{name: "two", body: "2"})}, "gzip", false, amd64, nil)
	reg.push(t, "app/one", "latest", one)
	reg.push(t, "app/two", "latest", two)
	s := openStore(t)
	ctx := t.Context()
	if _, err := s.Pull(ctx, reg.addr+"/app/one", engine.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	var prog progressLog
	if _, err := s.Pull(ctx, reg.addr+"/app/two", engine.PullOptions{Progress: prog.add}); err != nil {
		t.Fatal(err)
	}
	var mf v1.Manifest
	if err := json.Unmarshal(two.manifest, &mf); err != nil {
		t.Fatal(err)
	}
	final := prog.final()
	if final[mf.Layers[0].Digest.String()] != "exists" || final[mf.Layers[1].Digest.String()] != "done" {
		t.Fatalf("progress %v: want the base layer to exist and the top one downloaded", final)
	}
	if n := countDir(t, filepath.Join(s.Root(), "snapshots")); n != 3 {
		t.Fatalf("%d snapshots, want 3 (one shared base)", n)
	}
	i1 := must[image.RootfsInfo](t)(s.Rootfs(ctx, reg.addr+"/app/one"))
	i2 := must[image.RootfsInfo](t)(s.Rootfs(ctx, reg.addr+"/app/two"))
	if i1.Lowers[1] != i2.Lowers[1] || i1.Lowers[0] == i2.Lowers[0] {
		t.Fatalf("lowers %v and %v: want the base shared, the tops not", i1.Lowers, i2.Lowers)
	}
	for _, l := range i1.Lowers {
		if rel, _ := filepath.Rel(s.Root(), l); len(rel) > len("snapshots/0123456789ab/fs") {
			t.Errorf("snapshot path %s is longer than it needs to be", rel)
		}
	}
}

// TestPullInterrupted: a pull cut off in the middle of a layer leaves
// nothing trusted, the next pull works, and prune clears what a crash would
// have left.
func TestPullInterrupted(t *testing.T) {
	reg := startRegistry(t)
	big := layerTar(t, tarEntry{name: "big", body: strings.Repeat("0123456789abcdef", 1<<18)})
	img := buildImage(t, [][]byte{big}, "none", false, amd64, nil)
	reg.push(t, "slow/app", "latest", img)

	// A proxy that stops half way through the layer and hangs.
	target, _ := url.Parse("http://" + reg.addr)
	var cut sync.Once
	cutc := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/sha256:") && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, sha(big).Hex) {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.WriteHeader(http.StatusOK)
			w.Write(big[:len(big)/2])
			w.(http.Flusher).Flush()
			cut.Do(func() { close(cutc) })
			<-r.Context().Done()
			return
		}
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		r.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	proxyAddr := strings.TrimPrefix(proxy.URL, "http://")

	s := openStore(t)
	ctx := t.Context()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-cutc
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	if _, err := s.Pull(pctx, proxyAddr+"/slow/app", engine.PullOptions{}); err == nil {
		t.Fatal("interrupted pull succeeded")
	}
	if n := countDir(t, filepath.Join(s.Root(), "snapshots")); n != 0 {
		t.Errorf("%d snapshots after an interrupted pull", n)
	}
	for _, e := range must[[]os.DirEntry](t)(os.ReadDir(filepath.Join(s.Root(), "blobs", "sha256"))) {
		if e.Name() == sha(big).Hex {
			t.Errorf("the interrupted layer is in blobs/")
		}
	}
	if _, err := s.Inspect(ctx, proxyAddr+"/slow/app"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect after an interrupted pull: %v, want ErrNotFound", err)
	}

	// What a kill -9 would leave: a partial download and a half-built
	// snapshot. Neither is trusted, and prune removes both.
	if err := os.WriteFile(filepath.Join(s.Root(), "ingest", "blob-123"), big[:1000], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Root(), "snapshots", ".tmp-123", "fs", "big"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pull(ctx, reg.addr+"/slow/app", engine.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.id {
		t.Fatalf("pulled %s, want %s", got.ID, img.id)
	}
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SpaceReclaimed == 0 {
		t.Errorf("prune reclaimed nothing: %+v", rep)
	}
	if countDir(t, filepath.Join(s.Root(), "ingest")) != 0 || exists(filepath.Join(s.Root(), "snapshots", ".tmp-123")) {
		t.Errorf("prune left the debris of a crash")
	}
	if _, err := s.Rootfs(ctx, got.ID); err != nil {
		t.Fatalf("prune broke a tagged image: %v", err)
	}
}

// TestRemoveAndPruneInUse: an image a container uses is refused by rmi,
// kept (untagged) by rmi -f and by prune until the container goes.
func TestRemoveAndPruneInUse(t *testing.T) {
	var mu sync.Mutex
	users := map[string][]string{}
	s := openStore(t, image.WithUsers(func(ctx context.Context) (map[string][]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return users, nil
	}))
	ctx := t.Context()
	tarData := layerTar(t, tarEntry{name: "f", body: strings.Repeat("x", 50000)})
	img := must[engine.Image](t)(s.Import(ctx, strings.NewReader(string(tarData)), "app:1", engine.ImportOptions{}))
	mu.Lock()
	users[img.ID] = []string{"web"}
	mu.Unlock()

	if _, err := s.Remove(ctx, "app:1", engine.RemoveImageOptions{}); !errors.Is(err, engine.ErrInUse) {
		t.Fatalf("rmi of an image in use: %v, want ErrInUse", err)
	}
	if _, err := s.Remove(ctx, "app:1", engine.RemoveImageOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	left := must[engine.Image](t)(s.Inspect(ctx, img.ID))
	if len(left.RepoTags) != 0 {
		t.Fatalf("forced rmi left tags %v", left.RepoTags)
	}
	if _, err := s.Rootfs(ctx, img.ID); err != nil {
		t.Fatalf("the container's image is gone: %v", err)
	}
	rep := must[engine.PruneReport](t)(s.Prune(ctx))
	if len(rep.Deleted) != 0 {
		t.Fatalf("prune deleted %v while a container uses the image", rep.Deleted)
	}
	if _, err := s.Rootfs(ctx, img.ID); err != nil {
		t.Fatalf("prune removed the snapshots of an image in use: %v", err)
	}

	mu.Lock()
	delete(users, img.ID)
	mu.Unlock()
	rep = must[engine.PruneReport](t)(s.Prune(ctx))
	if !slices.Contains(rep.Deleted, img.ID) || rep.SpaceReclaimed < 50000 {
		t.Fatalf("prune after the container went: %+v", rep)
	}
	if countDir(t, filepath.Join(s.Root(), "snapshots")) != 0 || countDir(t, filepath.Join(s.Root(), "blobs", "sha256")) != 0 {
		t.Fatal("prune left content of a deleted image")
	}
}

// TestRemoveNames follows docker rmi: untag by name, refuse an ID with
// several tags unless forced.
func TestRemoveNames(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	tarData := layerTar(t, tarEntry{name: "f", body: "x"})
	img := must[engine.Image](t)(s.Import(ctx, strings.NewReader(string(tarData)), "app:1", engine.ImportOptions{}))
	if err := s.Tag(ctx, "app:1", "app:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, img.ID[7:15], "other/app"); err != nil {
		t.Fatal(err)
	}
	got := must[engine.Image](t)(s.Inspect(ctx, "other/app:latest"))
	if diff := cmp.Diff([]string{"app:1", "app:2", "other/app:latest"}, got.RepoTags); diff != "" {
		t.Fatalf("tags (-want +got):\n%s", diff)
	}
	if _, err := s.Remove(ctx, img.ID, engine.RemoveImageOptions{}); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("rmi by ID with 3 tags: %v, want ErrConflict", err)
	}
	out := must[[]string](t)(s.Remove(ctx, "app:2", engine.RemoveImageOptions{}))
	if diff := cmp.Diff([]string{"Untagged: app:2"}, out); diff != "" {
		t.Fatalf("rmi app:2 (-want +got):\n%s", diff)
	}
	out = must[[]string](t)(s.Remove(ctx, img.ID[7:19], engine.RemoveImageOptions{Force: true}))
	if !slices.Contains(out, "Deleted: "+img.ID) {
		t.Fatalf("forced rmi by ID prefix: %v", out)
	}
	if _, err := s.Inspect(ctx, "app:1"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("inspect after rmi: %v", err)
	}
}

// TestPushSkipsAndMounts: a second push sends nothing; a push to another
// repository of the same registry mounts the layers.
func TestPushSkipsAndMounts(t *testing.T) {
	reg := startRegistry(t)
	s := openStore(t)
	ctx := t.Context()
	tarData := layerTar(t, tarEntry{name: "f", body: strings.Repeat("y", 70000)})
	a := reg.addr + "/team/a:1"
	must[engine.Image](t)(s.Import(ctx, strings.NewReader(string(tarData)), a, engine.ImportOptions{}))
	if err := s.Push(ctx, a, engine.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	var again progressLog
	if err := s.Push(ctx, a, engine.PushOptions{Progress: again.add}); err != nil {
		t.Fatal(err)
	}
	for d, st := range again.final() {
		if st != "exists" {
			t.Errorf("second push: %s %s, want exists", d, st)
		}
	}
	b := reg.addr + "/team/b:1"
	if err := s.Tag(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	var other progressLog
	if err := s.Push(ctx, b, engine.PushOptions{Progress: other.add}); err != nil {
		t.Fatal(err)
	}
	final := other.final()
	if len(final) != 2 {
		t.Fatalf("push to b: %v", final)
	}
	for d, st := range final {
		if st != "mounted" {
			t.Errorf("push to another repository: %s %s, want mounted", d, st)
		}
	}
	img := must[engine.Image](t)(s.Inspect(ctx, b))
	if len(img.RepoDigests) != 2 {
		t.Errorf("repo digests %v, want one per repository", img.RepoDigests)
	}
}

// TestAuth pulls from a registry that wants basic authentication, with
// credentials from a Docker config file (DOCKER_CONFIG).
func TestAuth(t *testing.T) {
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, registry.WithHtpasswd(htpasswd))
	img := buildImage(t, [][]byte{layerTar(t, tarEntry{name: "f", body: "secret"})}, "gzip", false, amd64, nil)
	pusher := openStore(t, image.WithKeychain(staticKeychain{&authn.Basic{Username: "alice", Password: "s3cret"}}))
	ctx := t.Context()
	ref := reg.addr + "/private/app:1"
	must[engine.Image](t)(pusher.Import(ctx, strings.NewReader(string(layerTar(t, tarEntry{name: "f", body: "secret"}))), ref, engine.ImportOptions{}))
	if err := pusher.Push(ctx, ref, engine.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = img

	anon := openStore(t, image.WithKeychain(staticKeychain{authn.Anonymous}))
	if _, err := anon.Pull(ctx, ref, engine.PullOptions{}); err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("anonymous pull: %v, want unauthorized", err)
	}

	cfgDir := t.TempDir()
	cfg := `{"auths":{"` + reg.addr + `":{"auth":"YWxpY2U6czNjcmV0"}}}` // alice:s3cret
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	s := openStore(t) // the default keychain reads $DOCKER_CONFIG/config.json
	if _, err := s.Pull(ctx, ref, engine.PullOptions{}); err != nil {
		t.Fatalf("pull with DOCKER_CONFIG credentials: %v", err)
	}
}

// TestConcurrentStores: two stores on one root (two berth processes) pull
// and tag at the same time without losing anything.
func TestConcurrentStores(t *testing.T) {
	reg := startRegistry(t)
	img := buildImage(t, [][]byte{layerTar(t, tarEntry{name: "f", body: strings.Repeat("z", 300000)}), layerTar(t, tarEntry{name: "g", body: "g"})}, "gzip", false, amd64, nil)
	reg.push(t, "shared/app", "latest", img)
	root := t.TempDir()
	s1 := must[*image.Store](t)(image.Open(root))
	s2 := must[*image.Store](t)(image.Open(root))
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i, s := range []*image.Store{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Pull(ctx, reg.addr+"/shared/app", engine.PullOptions{}); err != nil {
				errs <- err
				return
			}
			for j := range 5 {
				if err := s.Tag(ctx, reg.addr+"/shared/app", "local/app:"+string(rune('a'+i))+string(rune('0'+j))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := must[engine.Image](t)(s1.Inspect(ctx, img.id))
	if len(got.RepoTags) != 21 {
		t.Fatalf("%d tags, want 21: %v", len(got.RepoTags), got.RepoTags)
	}
	if n := countDir(t, filepath.Join(root, "snapshots")); n != 2 {
		t.Fatalf("%d snapshots, want 2", n)
	}
	if n := countDir(t, filepath.Join(root, "ingest")); n != 0 {
		t.Fatalf("%d files left in ingest", n)
	}
}

// TestImportCompressedAndChanges imports a gzip tarball with every kind of
// change.
func TestImportCompressedAndChanges(t *testing.T) {
	s := openStore(t)
	tarData := layerTar(t, tarEntry{name: "app", body: "x", mode: 0o755})
	img := buildImage(t, [][]byte{tarData}, "gzip", false, amd64, nil)
	var gz []byte
	for _, b := range img.blobs {
		if len(b) > 2 && b[0] == 0x1f {
			gz = b
		}
	}
	got, err := s.Import(t.Context(), strings.NewReader(string(gz)), "imported/app", engine.ImportOptions{
		Platform: &engine.Platform{OS: "linux", Architecture: "arm64"},
		Changes: []string{
			`ENTRYPOINT ["/app"]`, `CMD --serve`, `ENV A=1 B="two words"`, `ENV C 3`, `WORKDIR /srv`, `WORKDIR data`,
			`USER 1000:1000`, `LABEL org.example.team=core "quoted key"=v`, `EXPOSE 80 53/udp`, `STOPSIGNAL SIGINT`, `VOLUME ["/data"]`,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := engine.ImageConfig{
		User:         "1000:1000",
		Env:          []string{"A=1", "B=two words", "C=3"},
		Entrypoint:   []string{"/app"},
		Cmd:          []string{"/bin/sh", "-c", "--serve"},
		WorkingDir:   "/srv/data",
		Labels:       map[string]string{"org.example.team": "core", "quoted key": "v"},
		StopSignal:   "SIGINT",
		ExposedPorts: []string{"53/udp", "80/tcp"},
		Volumes:      []string{"/data"},
	}
	if diff := cmp.Diff(want, got.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if got.Platform.Architecture != "arm64" || got.Layers[0] != sha(tarData).String() {
		t.Errorf("platform %s, layers %v", got.Platform, got.Layers)
	}
	if _, err := s.Import(t.Context(), strings.NewReader(string(tarData)), "x", engine.ImportOptions{Changes: []string{"RUN rm -rf /"}}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("import with RUN: %v, want ErrInvalid", err)
	}
}

// TestLookup resolves every kind of local reference.
func TestLookup(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	img := must[engine.Image](t)(s.Import(ctx, strings.NewReader(string(layerTar(t, tarEntry{name: "f", body: "x"}))), "docker.io/library/busybox:1", engine.ImportOptions{}))
	for _, ref := range []string{"busybox:1", "docker.io/library/busybox:1", "index.docker.io/library/busybox:1", img.ID, img.ID[7:], img.ID[7:12]} {
		got, err := s.Inspect(ctx, ref)
		if err != nil || got.ID != img.ID {
			t.Errorf("inspect %q: %v %v", ref, got.ID, err)
		}
	}
	if diff := cmp.Diff([]string{"busybox:1"}, img.RepoTags); diff != "" {
		t.Errorf("familiar tags (-want +got):\n%s", diff)
	}
	for _, ref := range []string{"busybox", "busybox:2", "nothere", "sha256:" + strings.Repeat("0", 64)} {
		if _, err := s.Inspect(ctx, ref); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("inspect %q: %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := s.Inspect(ctx, "Invalid::Ref"); err == nil {
		t.Errorf("inspect of an invalid reference succeeded")
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestPullHostileLayer: a pull of an image with a hostile layer fails with
// the unpacker's reason and leaves nothing behind.
func TestPullHostileLayer(t *testing.T) {
	reg := startRegistry(t)
	hostile, err := os.ReadFile(filepath.Join("testdata", "hostile", "04-write-through-absolute-symlink.tar"))
	if err != nil {
		t.Fatal(err)
	}
	good := layerTar(t, tarEntry{name: "ok", body: "fine"})
	img := buildImage(t, [][]byte{good, hostile}, "gzip", false, amd64, nil)
	reg.push(t, "evil/app", "latest", img)
	s := openStore(t)
	_, err = s.Pull(t.Context(), reg.addr+"/evil/app", engine.PullOptions{})
	var ue *image.UnpackError
	if !errors.As(err, &ue) || ue.Entry != "link/pwned" {
		t.Fatalf("pull of a hostile image: %v, want an UnpackError for link/pwned", err)
	}
	for _, dir := range []string{"snapshots", "ingest", filepath.Join("blobs", "sha256")} {
		if n := countDir(t, filepath.Join(s.Root(), dir)); n != 0 {
			t.Errorf("%s holds %d entries after a refused pull", dir, n)
		}
	}
	if imgs := must[[]engine.Image](t)(s.List(t.Context())); len(imgs) != 0 {
		t.Errorf("a refused pull recorded %d images", len(imgs))
	}
}

// TestPullConfigMissing checks that layers downloaded while the config was
// fetched (see prefetch) are dropped when the config turns out to be
// missing, and leave nothing in the store.
func TestPullConfigMissing(t *testing.T) {
	reg := startRegistry(t)
	layers := [][]byte{
		layerTar(t, tarEntry{name: "a", body: strings.Repeat("a", 1<<20)}),
		layerTar(t, tarEntry{name: "b", body: strings.Repeat("b", 1<<20)}),
	}
	img := buildImage(t, layers, "gzip", false, amd64, nil)
	reg.push(t, "noconfig/app", "latest", img)
	reg.do(t, http.MethodDelete, "/v2/noconfig/app/blobs/"+img.id, "", nil, http.StatusAccepted)
	s := openStore(t)
	if _, err := s.Pull(t.Context(), reg.addr+"/noconfig/app", engine.PullOptions{}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("pull without a config: %v, want ErrNotFound", err)
	}
	for _, dir := range []string{"snapshots", "ingest", filepath.Join("blobs", "sha256")} {
		if n := countDir(t, filepath.Join(s.Root(), dir)); n != 0 {
			t.Errorf("%s holds %d entries after a failed pull", dir, n)
		}
	}
	// The same store pulls the image once it is whole again.
	reg.push(t, "noconfig/app", "latest", img)
	if _, err := s.Pull(t.Context(), reg.addr+"/noconfig/app", engine.PullOptions{}); err != nil {
		t.Fatal(err)
	}
}
