package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"berth.dev/berth/engine/enginetest"
)

var update = flag.Bool("update", false, "rewrite the generated files in testdata")

// canary is a host directory that hostile layers aim at. The corpus is
// checked in, so the path is fixed; the test creates it and checks that no
// layer wrote into it.
const canary = "/tmp/berth-hostile-canary"

// entry is one tar entry of a generated layer.
type entry struct {
	hdr  tar.Header
	body string
}

var corpusTime = time.Unix(1700000000, 0).UTC()

func file(name, body string, mode int64) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: corpusTime}, body}
}

func dir(name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: corpusTime}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: corpusTime}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: corpusTime}}
}

func device(name string, typ byte, major, minor int64) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: corpusTime}}
}

func tarOf(entries ...entry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			panic(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func gzipOf(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// zeros is an io.Reader of n zero bytes.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// bombOf is a tar holding one file of size zero bytes, compressed with
// zstd (or gzip): a few kilobytes that expand to size.
func bombOf(size int64, useGzip bool) []byte {
	var b bytes.Buffer
	var w io.WriteCloser
	if useGzip {
		w, _ = gzip.NewWriterLevel(&b, gzip.BestCompression)
	} else {
		w, _ = zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	}
	tw := tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Mode: 0o644, Size: size, ModTime: corpusTime})
	io.Copy(tw, &zeros{size})
	tw.Close()
	w.Close()
	return b.Bytes()
}

func withXattrs(e entry, kv ...string) entry {
	e.hdr.Format = tar.FormatPAX
	e.hdr.PAXRecords = map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		e.hdr.PAXRecords["SCHILY.xattr."+kv[i]] = kv[i+1]
	}
	return e
}

// hostileCase is one layer of the corpus and what unpacking it must do.
type hostileCase struct {
	file    string
	desc    string
	build   func() []byte
	wantErr string                           // refused: the error must say this
	check   func(t *testing.T, fsDir string) // neutralised: what the snapshot must hold
	lower   string                           // a corpus file unpacked first, as the layer below
	opts    []Option                         // store options for this case
	skipGen bool                             // generated at test time, not checked in
}

var deepDotDot = strings.Repeat("../", 40)

func hostileCorpus() []hostileCase {
	return []hostileCase{
		{
			file: "01-dotdot-traversal.tar", desc: "a plain ../ path out of the layer",
			build:   func() []byte { return tarOf(file("../../../../../../"+canary[1:]+"/pwned", "x", 0o644)) },
			wantErr: "climbs out of the layer root",
		},
		{
			file: "02-nested-dotdot.tar", desc: "a ../ hidden in the middle of a path",
			build:   func() []byte { return tarOf(dir("a/", 0o755), file("a/b/../../../escaped", "x", 0o644)) },
			wantErr: "climbs out of the layer root",
		},
		{
			file: "03-absolute-path.tar", desc: "an absolute entry name lands inside the layer",
			build: func() []byte { return tarOf(file(canary+"/pwned", "inside", 0o644)) },
			check: func(t *testing.T, fsDir string) {
				assertFile(t, filepath.Join(fsDir, canary, "pwned"), "inside")
			},
		},
		{
			file: "04-write-through-absolute-symlink.tar", desc: "a symlink to a host directory, then a file through it",
			build:   func() []byte { return tarOf(symlink("link", canary), file("link/pwned", "x", 0o644)) },
			wantErr: `"link/pwned"`,
		},
		{
			file: "05-write-through-relative-symlink.tar", desc: "a relative symlink that climbs out, then a file through it",
			build:   func() []byte { return tarOf(symlink("link", deepDotDot+canary[1:]), file("link/pwned", "x", 0o644)) },
			wantErr: `"link/pwned"`,
		},
		{
			file: "06-absolute-symlink-chain.tar", desc: "a chain of symlinks ending at an absolute host path",
			build: func() []byte {
				return tarOf(symlink("a", "b"), symlink("b", "/c"), symlink("c", canary), file("a/pwned", "x", 0o644))
			},
			wantErr: `"a/pwned"`,
		},
		{
			file: "07a-symlink-layer.tar", desc: "the lower layer of 07b: a symlink to the host",
			build: func() []byte { return tarOf(symlink("evil", canary)) },
			check: func(t *testing.T, fsDir string) {
				if got, _ := os.Readlink(filepath.Join(fsDir, "evil")); got != canary {
					t.Errorf("symlink evil -> %q, want %q kept as is", got, canary)
				}
			},
		},
		{
			file: "07b-write-through-lower-symlink.tar", desc: "a file under a symlink planted by the layer below",
			lower: "07a-symlink-layer.tar",
			build: func() []byte { return tarOf(file("evil/pwned", "inside", 0o644)) },
			check: func(t *testing.T, fsDir string) {
				// Each layer is its own directory: here evil is a real
				// directory that hides the lower symlink in the overlay.
				fi, err := os.Lstat(filepath.Join(fsDir, "evil"))
				if err != nil || !fi.IsDir() {
					t.Fatalf("evil is %v (%v), want a directory of this layer", fi, err)
				}
				assertFile(t, filepath.Join(fsDir, "evil", "pwned"), "inside")
			},
		},
		{
			file: "08-hardlink-to-host-file.tar", desc: "a hard link to an absolute host path",
			build:   func() []byte { return tarOf(hardlink("passwd", canary+"/secret")) },
			wantErr: `hard link to "` + canary + `/secret"`,
		},
		{
			file: "09-hardlink-dotdot.tar", desc: "a hard link whose target climbs out",
			build:   func() []byte { return tarOf(hardlink("passwd", deepDotDot+canary[1:]+"/secret")) },
			wantErr: "climbs out of the layer root",
		},
		{
			file: "10-hardlink-through-symlink.tar", desc: "a hard link whose target goes through a symlink to the host",
			build:   func() []byte { return tarOf(symlink("d", canary), hardlink("stolen", "d/secret")) },
			wantErr: `"stolen"`,
		},
		{
			file: "11-whiteout-dotdot.tar", desc: `a whiteout of ".."`,
			build:   func() []byte { return tarOf(dir("etc/", 0o755), file("etc/.wh...", "", 0o644)) },
			wantErr: `whiteout of an invalid name ".."`,
		},
		{
			file: "12-whiteout-escape.tar", desc: "a whiteout outside the layer root",
			build:   func() []byte { return tarOf(file("../"+filepath.Base(canary)+"/.wh.secret", "", 0o644)) },
			wantErr: "climbs out of the layer root",
		},
		{
			file: "13-device-nodes.tar", desc: "device nodes (skipped) and a FIFO (kept)",
			build: func() []byte {
				return tarOf(dir("dev/", 0o755), device("dev/mem", tar.TypeChar, 1, 1), device("dev/sda", tar.TypeBlock, 8, 0),
					device("dev/null0", tar.TypeChar, 0, 0), device("dev/fifo", tar.TypeFifo, 0, 0))
			},
			check: func(t *testing.T, fsDir string) {
				for _, n := range []string{"mem", "sda", "null0"} {
					if _, err := os.Lstat(filepath.Join(fsDir, "dev", n)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("device node dev/%s was created (%v); devices must be skipped", n, err)
					}
				}
				if fi, err := os.Lstat(filepath.Join(fsDir, "dev", "fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
					t.Errorf("dev/fifo: %v %v, want a FIFO", fi, err)
				}
			},
		},
		{
			file: "14-setuid.tar", desc: "setuid and setgid binaries keep their bits",
			build: func() []byte {
				return tarOf(dir("bin/", 0o755), file("bin/su", "#!/bin/sh\n", 0o4755), file("bin/wall", "#!/bin/sh\n", 0o2755))
			},
			check: func(t *testing.T, fsDir string) {
				for n, want := range map[string]fs.FileMode{"su": fs.ModeSetuid | 0o755, "wall": fs.ModeSetgid | 0o755} {
					fi, err := os.Lstat(filepath.Join(fsDir, "bin", n))
					if err != nil || fi.Mode() != want {
						t.Errorf("bin/%s mode %v (%v), want %v", n, fi.Mode(), err, want)
					}
				}
			},
		},
		{
			file: "15-zstd-bomb.tar.zst", desc: "32 KiB of zstd that expands to 1 GiB",
			build:   func() []byte { return bombOf(1<<30, false) },
			wantErr: "decompression bomb",
		},
		{
			file: "16-truncated.tar.gz", desc: "a gzip stream cut in the middle",
			build: func() []byte {
				z := gzipOf(tarOf(file("a", strings.Repeat("berth ", 20000), 0o644), file("b", "b", 0o644)))
				return z[:len(z)/2]
			},
			wantErr: "unexpected EOF",
		},
		{
			file: "17-overlay-xattrs.tar", desc: "overlayfs xattrs forged in PAX records are dropped",
			build: func() []byte {
				return tarOf(withXattrs(dir("d/", 0o755), "trusted.overlay.redirect", canary, "trusted.overlay.opaque", "y", "user.kept", "yes"))
			},
			check: func(t *testing.T, fsDir string) {
				buf := make([]byte, 256)
				for _, x := range []string{"trusted.overlay.redirect", "trusted.overlay.opaque"} {
					if _, err := unix.Lgetxattr(filepath.Join(fsDir, "d"), x, buf); !errors.Is(err, unix.ENODATA) {
						t.Errorf("xattr %s on d: %v, want none", x, err)
					}
				}
				if n, err := unix.Lgetxattr(filepath.Join(fsDir, "d"), "user.kept", buf); err != nil || string(buf[:n]) != "yes" {
					t.Errorf("user.kept = %q (%v), want yes", buf[:max(n, 0)], err)
				}
			},
		},
		{
			file: "18-symlink-replaced-by-file.tar", desc: "a symlink to a host file, then a regular file of the same name",
			build: func() []byte { return tarOf(symlink("f", canary+"/secret"), file("f", "replaced", 0o644)) },
			check: func(t *testing.T, fsDir string) {
				assertFile(t, filepath.Join(fsDir, "f"), "replaced")
			},
		},
		{
			file: "19-pax-path-traversal.tar", desc: "a PAX path record that climbs out",
			build:   func() []byte { return tarOf(file(deepDotDot+canary[1:]+"/pax", "x", 0o644)) },
			wantErr: "climbs out of the layer root",
		},
		{
			file: "20-symlink-loop.tar", desc: "a symlink loop, then a file through it",
			build:   func() []byte { return tarOf(symlink("a", "b"), symlink("b", "a"), file("a/x", "x", 0o644)) },
			wantErr: `"a/x"`,
		},
		{
			file: "21-root-as-file.tar", desc: "the layer root given as a regular file",
			build:   func() []byte { return tarOf(file(".", "x", 0o644)) },
			wantErr: "the layer root must be a directory",
		},
		{
			file: "22-dir-swapped-for-symlink.tar", desc: "a directory replaced by a symlink to the host, then a file under it",
			build: func() []byte {
				return tarOf(dir("d/", 0o755), file("d/f", "x", 0o644), symlink("d", canary), file("d/g", "x", 0o644))
			},
			wantErr: `"d/g"`,
		},
		{
			file: "24-hardlink-to-symlink.tar", desc: "a hard link to a symlink that points at the host, then content written to it",
			build: func() []byte {
				return tarOf(symlink("evil", canary+"/secret"), hardlink("hl", "evil"), file("hl", "replaced", 0o644))
			},
			check: func(t *testing.T, fsDir string) {
				// The link is to the symlink itself; the later file replaces
				// the name instead of writing through it.
				if got, _ := os.Readlink(filepath.Join(fsDir, "evil")); got != canary+"/secret" {
					t.Errorf("evil -> %q", got)
				}
				assertFile(t, filepath.Join(fsDir, "hl"), "replaced")
			},
		},
		{
			file: "23-gzip-bomb-over-max-layer-size.tar.gz", desc: "a gzip layer over WithMaxLayerSize",
			build:   func() []byte { return bombOf(64<<20, true) },
			opts:    []Option{WithMaxLayerSize(16 << 20)},
			wantErr: "decompression bomb",
			skipGen: true,
		},
	}
}

func assertFile(t *testing.T, p, want string) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != want {
		t.Errorf("%s = %q (%v), want %q", p, got, err, want)
	}
}

// TestHostileCorpusUpToDate regenerates the corpus and compares it, by
// content, with testdata/hostile (-update rewrites it).
func TestHostileCorpusUpToDate(t *testing.T) {
	dir := filepath.Join("testdata", "hostile")
	for _, c := range hostileCorpus() {
		if c.skipGen {
			continue
		}
		data := c.build()
		p := filepath.Join(dir, c.file)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run go test -run TestHostileCorpusUpToDate -update)", err)
		}
		// Compare what the files decompress to: compressors may change
		// their output between versions, the layers must not.
		if !bytes.Equal(decompressAll(t, have), decompressAll(t, data)) {
			t.Errorf("%s is out of date (run go test -run TestHostileCorpusUpToDate -update)", p)
		}
	}
}

func decompressAll(t *testing.T, data []byte) []byte {
	r, closeR, err := decompress(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer closeR()
	out, _ := io.ReadAll(io.LimitReader(r, 8<<20)) // truncated streams end in an error
	return out
}

// TestHostileLayers unpacks every layer of the corpus and checks that it is
// refused with a clear error or neutralised, and that nothing outside the
// snapshot changed: not the host canary, not the store around the snapshot.
func TestHostileLayers(t *testing.T) {
	enginetest.RequireRoot(t)
	if err := os.MkdirAll(canary, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(canary) })
	if err := os.WriteFile(filepath.Join(canary, "secret"), []byte("canary"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostBefore := treeOf(t, canary)

	corpus := hostileCorpus()
	byFile := map[string]hostileCase{}
	for _, c := range corpus {
		byFile[c.file] = c
	}
	for _, c := range corpus {
		t.Run(strings.TrimSuffix(c.file, filepath.Ext(c.file)), func(t *testing.T) {
			s, err := Open(t.TempDir(), c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			storeBefore := storeTree(t, s)
			if c.lower != "" {
				if _, err := unpackCorpusFile(t, s, byFile[c.lower]); err != nil {
					t.Fatalf("lower layer %s: %v", c.lower, err)
				}
			}
			p, err := unpackCorpusFile(t, s, c)
			switch {
			case c.wantErr != "" && err == nil:
				t.Errorf("%s (%s): unpacked without error, want an error containing %q", c.file, c.desc, c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Errorf("%s (%s): error %q, want it to contain %q", c.file, c.desc, err, c.wantErr)
			case c.wantErr == "" && err != nil:
				t.Errorf("%s (%s): %v, want it unpacked", c.file, c.desc, err)
			case c.wantErr == "":
				c.check(t, filepath.Join(p.tmp, "fs"))
				// Nothing next to the layer's own directory either.
				if names, _ := os.ReadDir(p.tmp); len(names) != 1 || names[0].Name() != "fs" {
					t.Errorf("snapshot directory holds %v, want only fs", names)
				}
			}
			if err != nil {
				t.Logf("%s refused: %v", c.file, err)
				// A refused layer leaves nothing behind.
				if diff := cmp.Diff(storeBefore, storeTree(t, s)); diff != "" {
					t.Errorf("store changed around a refused layer (-before +after):\n%s", diff)
				}
			}
			if p != nil {
				p.discard()
			}
			if diff := cmp.Diff(hostBefore, treeOf(t, canary)); diff != "" {
				t.Fatalf("%s changed the host (-before +after):\n%s", c.file, diff)
			}
		})
	}
}

// unpackCorpusFile unpacks a corpus layer into a pending snapshot the test
// discards at its end.
func unpackCorpusFile(t *testing.T, s *Store, c hostileCase) (*pendingSnapshot, error) {
	t.Helper()
	var data []byte
	if c.skipGen {
		data = c.build()
	} else {
		var err error
		if data, err = os.ReadFile(filepath.Join("testdata", "hostile", c.file)); err != nil {
			t.Fatal(err)
		}
	}
	r, closeR, err := decompress(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer closeR()
	p, _, _, err := s.unpackPending(t.Context(), r, s.layerLimit(int64(len(data))))
	if p != nil {
		t.Cleanup(p.discard)
	}
	return p, err
}

// treeOf lists a directory tree: paths, modes and file contents.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := p + " " + fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			line += " " + string(data)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// storeTree lists the store outside pending snapshots' own directories.
func storeTree(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(s.root, p)
		if strings.HasPrefix(rel, "snapshots/.tmp-") && filepath.Base(rel) == "fs" {
			return filepath.SkipDir
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out
}
