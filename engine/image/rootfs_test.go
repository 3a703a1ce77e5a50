package image_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/image"
)

// TestRootfsOverlay stacks three layers with a whiteout, an opaque directory
// and a hard link, mounts the snapshots Rootfs returns as an overlay, and
// checks the merged tree is what the image means.
func TestRootfsOverlay(t *testing.T) {
	enginetest.RequireFeature(t, "overlay")
	reg := startRegistry(t)
	l1 := layerTar(t,
		tarEntry{name: "a/", typ: tar.TypeDir},
		tarEntry{name: "a/x", body: "x"},
		tarEntry{name: "a/xl", link: "a/x", typ: tar.TypeLink},
		tarEntry{name: "b", body: "b"},
		tarEntry{name: "keep/", typ: tar.TypeDir, mode: 0o1777},
		tarEntry{name: "keep/k", body: "k", mode: 0o4755, uid: 1000, gid: 2000},
	)
	l2 := layerTar(t,
		tarEntry{name: "a/", typ: tar.TypeDir},
		tarEntry{name: "a/.wh..wh..opq"},
		tarEntry{name: "a/y", body: "y"},
		tarEntry{name: ".wh.b"},
	)
	l3 := layerTar(t, tarEntry{name: "c", body: "c"})
	img := buildImage(t, [][]byte{l1, l2, l3}, "gzip", false, amd64, nil)
	reg.push(t, "layers/app", "latest", img)

	s := openStore(t)
	ctx := t.Context()
	if _, err := s.Pull(ctx, reg.addr+"/layers/app", engine.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Rootfs(ctx, reg.addr+"/layers/app")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Lowers) != 3 {
		t.Fatalf("lowers %v", info.Lowers)
	}
	top, mid, bottom := info.Lowers[0], info.Lowers[1], info.Lowers[2]
	if _, err := os.Stat(filepath.Join(top, "c")); err != nil {
		t.Fatalf("lowers are not top-most first: %v", err)
	}

	// The overlay whiteout and opaque marker in the middle layer.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(mid, "b"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("b in the middle layer: mode %o rdev %d (%v), want a 0/0 character device", st.Mode, st.Rdev, err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(mid, "a"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Fatalf("a in the middle layer: opaque xattr %q (%v)", buf[:max(n, 0)], err)
	}
	// Hard links stay hard links.
	var x, xl unix.Stat_t
	unix.Lstat(filepath.Join(bottom, "a", "x"), &x)
	unix.Lstat(filepath.Join(bottom, "a", "xl"), &xl)
	if x.Ino != xl.Ino || x.Nlink != 2 {
		t.Errorf("a/xl is not a hard link of a/x (inodes %d %d, links %d)", x.Ino, xl.Ino, x.Nlink)
	}

	merged := t.TempDir()
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+image.LowerDir(info.Lowers)); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	want := []string{"a", "a/y", "c", "keep", "keep/k"}
	var got []string
	filepath.WalkDir(merged, func(p string, d fs.DirEntry, err error) error {
		if p != merged {
			rel, _ := filepath.Rel(merged, p)
			got = append(got, rel)
		}
		return nil
	})
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged tree (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(merged, "keep")); err != nil || fi.Mode() != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("keep: %v (%v), want a sticky 1777 directory", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(merged, "keep", "k")); err != nil || fi.Mode() != fs.ModeSetuid|0o755 {
		t.Errorf("keep/k: %v (%v), want setuid 4755", fi.Mode(), err)
	}
	// Ownership and modification times come through.
	var k unix.Stat_t
	if err := unix.Lstat(filepath.Join(merged, "keep", "k"), &k); err != nil || k.Uid != 1000 || k.Gid != 2000 || k.Mtim.Sec != 1700000000 {
		t.Errorf("keep/k: uid %d gid %d mtime %d (%v), want 1000 2000 1700000000", k.Uid, k.Gid, k.Mtim.Sec, err)
	}
	var a unix.Stat_t
	if err := unix.Lstat(filepath.Join(merged, "a"), &a); err != nil || a.Mtim.Sec != 1700000000 {
		t.Errorf("directory a: mtime %d (%v), want 1700000000 (set after its entries)", a.Mtim.Sec, err)
	}
}

// TestRootfsUnpacksMissing: a snapshot that went missing is unpacked again
// from the stored layer blob.
func TestRootfsUnpacksMissing(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	img, err := s.Import(ctx, image.DirTar(ctx, busyboxRootfs(t)), "bb:1", engine.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := must[image.RootfsInfo](t)(s.Rootfs(ctx, "bb:1"))
	if err := os.RemoveAll(filepath.Dir(info.Lowers[0])); err != nil {
		t.Fatal(err)
	}
	again := must[image.RootfsInfo](t)(s.Rootfs(ctx, img.ID[7:19]))
	if diff := cmp.Diff(info, again); diff != "" {
		t.Fatalf("rootfs (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(again.Lowers[0], "bin", "busybox")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rootfs(ctx, "nothere:1"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("rootfs of a missing image: %v", err)
	}
}

// TestSnapshotNotSyncedBeforeReboot: a snapshot a pull left in the page
// cache is trusted during the boot that made it; Rootfs syncs it; one from
// an earlier boot that was never synced is unpacked again.
func TestSnapshotNotSyncedBeforeReboot(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	if _, err := s.Import(ctx, strings.NewReader(string(layerTar(t, tarEntry{name: "f", body: "content"}))), "sync:1", engine.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	snapshots, _ := filepath.Glob(filepath.Join(s.Root(), "snapshots", "*", "meta.json"))
	if len(snapshots) != 1 {
		t.Fatalf("snapshots %v", snapshots)
	}
	meta := func() map[string]any {
		var m map[string]any
		data, err := os.ReadFile(snapshots[0])
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(data, &m)
		return m
	}
	if m := meta(); m["synced"] != false || m["bootID"] == "" {
		t.Fatalf("after import: %v, want an unsynced snapshot of this boot", m)
	}
	if _, err := s.Rootfs(ctx, "sync:1"); err != nil {
		t.Fatal(err)
	}
	if m := meta(); m["synced"] != true {
		t.Fatalf("after rootfs: %v, want synced", m)
	}

	// Pretend it was made, and never synced, before a reboot; and damage
	// it as a crash could have.
	m := meta()
	m["synced"], m["bootID"] = false, "an-earlier-boot"
	data, _ := json.Marshal(m)
	os.WriteFile(snapshots[0], data, 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(snapshots[0]), "fs", "f"), nil, 0o644)
	info, err := s.Rootfs(ctx, "sync:1")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(info.Lowers[0], "f")); string(got) != "content" {
		t.Fatalf("f = %q after the untrusted snapshot was replaced", got)
	}
}

func TestLowerDir(t *testing.T) {
	got := image.LowerDir([]string{"/a/b", "/c:d", `/e\f`, "/g,h"})
	if want := `/a/b:/c\:d:/e\\f:/g\,h`; got != want {
		t.Errorf("LowerDir = %q, want %q", got, want)
	}
}
