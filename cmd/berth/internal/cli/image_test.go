package cli

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/registry"
)

// imageTestRegistry serves a registry on 127.0.0.1 for the test's life.
func imageTestRegistry(t *testing.T) string {
	t.Helper()
	reg, err := registry.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer reg.Close()
		reg.ListenAndServe(ctx, "127.0.0.1:0", "", "", func(a net.Addr) { ready <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return (<-ready).String()
}

// TestImageVerbs drives import, images, push, rmi, pull, tag, inspect and
// prune through the command line.
func TestImageVerbs(t *testing.T) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs /bin/busybox: %v", err)
	}
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755)
	os.Symlink("busybox", filepath.Join(rootfs, "bin", "sh"))

	addr := imageTestRegistry(t)
	root := t.TempDir()
	ref := addr + "/cli/busybox:1"

	id := strings.TrimSpace(mustBerth(t, root, "image", "import", rootfs, ref, "--change", `CMD ["sh"]`))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q", id)
	}
	out := mustBerth(t, root, "images")
	if !strings.Contains(out, "REPOSITORY") || !strings.Contains(out, addr+"/cli/busybox") || !strings.Contains(out, "<none>") {
		t.Fatalf("images:\n%s", out)
	}
	push := mustBerth(t, root, "push", ref)
	if !strings.Contains(push, "Pushed") || !strings.Contains(push, "digest: sha256:") {
		t.Fatalf("push printed:\n%s", push)
	}
	var imgs []engine.Image
	if err := json.Unmarshal([]byte(mustBerth(t, root, "image", "ls", "-o", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ID != id || imgs[0].Digest == "" {
		t.Fatalf("image ls -o json: %+v", imgs)
	}
	digest := imgs[0].Digest

	if out := mustBerth(t, root, "rmi", ref); !strings.Contains(out, "Deleted: "+id) {
		t.Fatalf("rmi printed:\n%s", out)
	}
	if out := mustBerth(t, root, "pull", "-q", ref); out != digest+"\n" {
		t.Fatalf("pull -q printed %q, want the pinned digest %s", out, digest)
	}
	pull := mustBerth(t, root, "pull", ref)
	if !strings.Contains(pull, "Already exists") || !strings.Contains(pull, "Digest: "+digest) {
		t.Fatalf("second pull printed:\n%s", pull)
	}
	mustBerth(t, root, "tag", ref, "local/busybox:latest")
	var inspected []engine.Image
	if err := json.Unmarshal([]byte(mustBerth(t, root, "image", "inspect", "local/busybox")), &inspected); err != nil {
		t.Fatal(err)
	}
	if len(inspected) != 1 || len(inspected[0].RepoTags) != 2 || inspected[0].Config.Cmd[0] != "sh" {
		t.Fatalf("inspect: %+v", inspected)
	}
	if code, _, errOut := berthCLI(t, root, "", "rmi", id); code != 1 || !strings.Contains(errOut, "referenced by 2 tags") {
		t.Fatalf("rmi by ID with two tags: exit %d: %s", code, errOut)
	}
	mustBerth(t, root, "image", "rm", "-f", id)
	if out := mustBerth(t, root, "image", "prune"); !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("prune printed:\n%s", out)
	}
	if code, _, errOut := berthCLI(t, root, "", "pull", "--platform", "nonsense", ref); code != 1 || !strings.Contains(errOut, "os/arch") {
		t.Fatalf("pull with a bad platform: exit %d: %s", code, errOut)
	}
}
