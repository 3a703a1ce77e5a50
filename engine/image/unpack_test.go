package image

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine/enginetest"
)

// TestUnpackOwnershipAndReplacement checks what the unpacker's shortcuts
// (create first and clear only on EEXIST; no chown when a new entry already
// has the owner asked for) must not change: owners under set-group-ID
// directories, whose new entries take the directory's group, also when the
// directory's attributes change in the middle of the layer, and entries
// that replace earlier ones of the same layer.
func TestUnpackOwnershipAndReplacement(t *testing.T) {
	enginetest.RequireRoot(t)
	owned := func(e entry, uid, gid int) entry {
		e.hdr.Uid, e.hdr.Gid = uid, gid
		return e
	}
	layer := tarOf(
		owned(dir("sg/", 0o2775), 0, 1234),
		owned(file("sg/root", "r", 0o644), 0, 0),
		owned(file("sg/group", "g", 0o644), 0, 1234),
		owned(dir("sg/sub/", 0o755), 0, 0),
		owned(symlink("sg/link", "root"), 0, 0),
		owned(file("user", "u", 0o600), 1000, 1001),
		// "late" is implied by its first file, then made set-group-ID.
		owned(file("late/x", "x", 0o644), 0, 0),
		owned(dir("late/", 0o2755), 0, 55),
		owned(file("late/y", "y", 0o644), 0, 0),
		owned(file("late/z", "z", 0o644), 0, 55),
		// The root too, after a file of its own.
		owned(file("top1", "1", 0o644), 0, 0),
		owned(dir("./", 0o2755), 0, 77),
		owned(file("top2", "2", 0o644), 0, 0),
		// Replacements within the layer: the last entry of a name wins.
		file("r", "first", 0o644),
		dir("r/", 0o755),
		file("r/inner", "gone", 0o644),
		file("r", "second", 0o640),
		symlink("s", "r"),
		hardlink("s", "r"),
		file("d", "file", 0o644),
		dir("d/", 0o750),
		file("d/in", "kept", 0o644),
		dir("d/", 0o700),
	)
	root := t.TempDir()
	if _, err := unpackTar(t.Context(), root, bytes.NewReader(layer), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	type attrs struct {
		Mode     os.FileMode
		UID, GID uint32
		Body     string
	}
	got := map[string]attrs{}
	for _, name := range []string{"sg", "sg/root", "sg/group", "sg/sub", "sg/link", "user", "late", "late/x", "late/y", "late/z", "r", "s", "d", "d/in", ".", "top1", "top2"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, name), &st); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Lstat(filepath.Join(root, name))
		a := attrs{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid}
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(filepath.Join(root, name))
			a.Body = string(data)
		}
		got[name] = a
	}
	want := map[string]attrs{
		"sg":       {Mode: os.ModeDir | os.ModeSetgid | 0o775, GID: 1234},
		"sg/root":  {Mode: 0o644, Body: "r"},
		"sg/group": {Mode: 0o644, GID: 1234, Body: "g"},
		"sg/sub":   {Mode: os.ModeDir | 0o755},
		"sg/link":  {Mode: os.ModeSymlink | 0o777},
		"user":     {Mode: 0o600, UID: 1000, GID: 1001, Body: "u"},
		"late":     {Mode: os.ModeDir | os.ModeSetgid | 0o755, GID: 55},
		"late/x":   {Mode: 0o644, Body: "x"},
		"late/y":   {Mode: 0o644, Body: "y"},
		"late/z":   {Mode: 0o644, GID: 55, Body: "z"},
		"r":        {Mode: 0o640, Body: "second"},
		"s":        {Mode: 0o640, Body: "second"},
		"d":        {Mode: os.ModeDir | 0o700},
		"d/in":     {Mode: 0o644, Body: "kept"},
		".":        {Mode: os.ModeDir | os.ModeSetgid | 0o755, GID: 77},
		"top1":     {Mode: 0o644, Body: "1"},
		"top2":     {Mode: 0o644, Body: "2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unpacked tree (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(root, "r", "inner")); err == nil {
		t.Errorf("r/inner survived r's replacement by a file")
	}
}

// TestOpenMarksTopDirs checks that a new store asks ext4 to spread its
// parts and its snapshots over block groups (see markTopDir).
func TestOpenMarksTopDirs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "images")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{s.Root(), s.path("snapshots"), s.path("blobs")} {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		unix.Close(fd)
		if err != nil {
			t.Skipf("the file system of %s has no inode flags: %v", dir, err)
		}
		want := dir != s.path("blobs")
		if got := flags&fsTopDirFl != 0; got != want {
			t.Errorf("%s: top-of-hierarchy flag %v, want %v", dir, got, want)
		}
	}
}
