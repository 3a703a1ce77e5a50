package image_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/engine/image"
)

// TestDirTarReproducible checks that a directory makes the same layer
// whatever its files' access times and sub-second modification times, with
// Docker's header conventions: no PAX record for a plain entry.
func TestDirTarReproducible(t *testing.T) {
	dir := busyboxRootfs(t)
	read := func() []byte {
		t.Helper()
		r := image.DirTar(t.Context(), dir)
		defer r.Close()
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	first := read()
	mtime := time.Unix(1700000000, 123456789)
	for _, name := range []string{"bin/busybox", "etc/passwd"} {
		if err := os.Chtimes(filepath.Join(dir, name), time.Now(), mtime); err != nil {
			t.Fatal(err)
		}
	}
	second := read()
	for _, name := range []string{"bin/busybox", "etc/passwd"} {
		if err := os.Chtimes(filepath.Join(dir, name), time.Unix(1, 0), mtime.Add(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if third := read(); !bytes.Equal(second, third) {
		t.Errorf("the layer changed with access times and sub-second modification times")
	}
	if bytes.Equal(first, second) {
		t.Errorf("the layer did not change with modification times")
	}
	tr := tar.NewReader(bytes.NewReader(second))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(hdr.PAXRecords) > 0 || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() || hdr.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: PAX records %v, atime %v, ctime %v, mtime %v; want none, none, none and whole seconds", hdr.Name, hdr.PAXRecords, hdr.AccessTime, hdr.ChangeTime, hdr.ModTime)
		}
	}
}
