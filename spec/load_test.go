package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-multierror"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// testdataDir stands for the absolute path of testdata in golden files, so
// that they do not depend on where the repository is checked out.
const testdataDir = "$TESTDATA"

// cases lists the test cases in dir: each .yaml/.yml file and each
// directory is one.
func cases(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || isManifestName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("no test cases in %s", dir)
	}
	return out
}

func caseName(entry string) string {
	return strings.TrimSuffix(strings.TrimSuffix(entry, ".yaml"), ".yml")
}

// golden compares got with the file, or rewrites the file with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./spec -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", file, diff)
	}
}

func TestLoadValid(t *testing.T) {
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases(t, "testdata/valid") {
		t.Run(caseName(c), func(t *testing.T) {
			t.Parallel()
			set, err := Load(filepath.Join("testdata/valid", c))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			out, err := json.MarshalIndent(set.Resources(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = bytes.ReplaceAll(append(out, '\n'), []byte(abs), []byte(testdataDir))
			golden(t, filepath.Join("testdata/valid", caseName(c)+".golden.json"), out)
		})
	}
}

// TestLoadInvalid checks that each invalid case reports exactly the errors
// in its .errors file, one per line, in order.
func TestLoadInvalid(t *testing.T) {
	for _, c := range cases(t, "testdata/invalid") {
		t.Run(caseName(c), func(t *testing.T) {
			t.Parallel()
			_, err := Load(filepath.Join("testdata/invalid", c))
			if err == nil {
				t.Fatal("Load succeeded, want errors")
			}
			var got strings.Builder
			for _, fe := range FieldErrors(err) {
				got.WriteString(fe.Error() + "\n")
			}
			if err.Error()+"\n" != got.String() {
				t.Errorf("err.Error() is not the list of field errors:\n%s", err)
			}
			golden(t, filepath.Join("testdata/invalid", caseName(c)+".errors"), []byte(got.String()))
		})
	}
}

// TestDemoBroken is the broken sample `make demo` shows: three mistakes in
// two files.
func TestDemoBroken(t *testing.T) {
	_, err := Load("testdata/demo-broken")
	fes := FieldErrors(err)
	files := map[string]bool{}
	for _, fe := range fes {
		files[fe.File] = true
	}
	if len(fes) != 3 || len(files) != 2 {
		t.Errorf("got %d errors in %d files, want 3 in 2:\n%v", len(fes), len(files), err)
	}
}

func TestLoadWalk(t *testing.T) {
	dir := t.TempDir()
	doc := func(name string) string {
		return "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: " + name + "\n"
	}
	files := map[string]string{
		"a.yaml":             doc("a"),
		"b.yml":              doc("b"),
		"sub/deeper/c.yaml":  doc("c"),
		"notes.txt":          "not a manifest",
		"README.md":          "# not a manifest",
		".hidden.yaml":       "not: [valid",
		".git/config.yaml":   "not: [valid",
		"sub/.cache/x.yaml":  "not: [valid",
		"explicit/other.txt": doc("explicit"),
		"empty.yaml":         "# nothing here\n",
		"UPPER.YAML":         "not: [valid", // extensions are matched exactly
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "link-to-sub")); err != nil {
		t.Fatal(err)
	}

	// The directory, a file in it again, and a file with another extension
	// named explicitly.
	set, err := Load(dir, filepath.Join(dir, "a.yaml"), filepath.Join(dir, "explicit/other.txt"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var got []string
	for _, r := range set.Resources() {
		got = append(got, r.Name())
	}
	if want := []string{"a", "b", "c", "explicit"}; !slices.Equal(got, want) {
		t.Errorf("resources = %v, want %v", got, want)
	}
	wantFiles := []string{"a.yaml", "b.yml", "empty.yaml", "sub/deeper/c.yaml", "explicit/other.txt"}
	for i := range wantFiles {
		wantFiles[i] = filepath.Join(dir, wantFiles[i])
	}
	if diff := cmp.Diff(wantFiles, set.Files()); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	r, _ := set.Get(Key{KindVolume, "c"})
	if r.Dir != filepath.Join(dir, "sub/deeper") {
		t.Errorf("Dir = %s, want %s", r.Dir, filepath.Join(dir, "sub/deeper"))
	}
	if r.Pos != (Pos{File: filepath.Join(dir, "sub/deeper/c.yaml"), Line: 1, Column: 1}) {
		t.Errorf("Pos = %v", r.Pos)
	}
}

func TestLoadMissingPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Load(missing)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File != missing || fe.Line != 0 {
		t.Fatalf("errors.As: %#v", fe)
	}
	if want := missing + ": no such file or directory"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestLoadReader(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.env"), []byte("X=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := `apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: web}
spec:
  image: busybox
  envFile: x.env
  volumes: ["./site:/www"]
`
	set, err := LoadReader("<stdin>", strings.NewReader(in), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := set.Get(Key{KindContainer, "web"})
	if !ok {
		t.Fatal("web not found")
	}
	c := r.Container()
	if c.Env["X"] != "1" || c.Volumes[0].Source != filepath.Join(dir, "site") || r.Pos.File != "<stdin>" {
		t.Errorf("env %v, volumes %v, pos %v", c.Env, c.Volumes, r.Pos)
	}

	_, err = LoadReader("<stdin>", strings.NewReader("kind: Nope\n"), dir)
	want := "<stdin>:1:1: missing required field \"apiVersion\"\n" +
		"<stdin>:1:1: missing required field \"metadata\"\n" +
		"<stdin>:1:7: kind: unknown kind \"Nope\": want Image, Container, Network or Volume"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want\n%s", err, want)
	}
}

func TestFieldErrorsAndAs(t *testing.T) {
	_, err := LoadReader("web.yaml", strings.NewReader(`apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: web}
spec:
  image: busybox
  networks: [n]
  ports: ["8080:80", "70000:80"]
  restart: sometimes
---
apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: n}
`), "")
	var merr *multierror.Error
	if !errors.As(err, &merr) || len(merr.Errors) != 2 {
		t.Fatalf("want a *multierror.Error of 2, got %#v", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatal("errors.As found no *FieldError")
	}
	want := &FieldError{File: "web.yaml", Line: 7, Column: 22, Field: "spec.ports[1]", Msg: "port 70000 out of range"}
	if diff := cmp.Diff(want, fe); diff != "" {
		t.Errorf("first error (-want +got):\n%s", diff)
	}
	if got := fe.Error(); got != "web.yaml:7:22: spec.ports[1]: port 70000 out of range" {
		t.Errorf("Error() = %q", got)
	}
	if n := len(FieldErrors(errors.Join(errors.New("other"), err))); n != 2 {
		t.Errorf("FieldErrors through errors.Join: %d, want 2", n)
	}
}

func TestSet(t *testing.T) {
	set, err := Load("testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range set.Resources() {
		keys = append(keys, r.Key().String())
	}
	want := []string{"Network/backend", "Network/frontend", "Volume/pgdata", "Image/app", "Container/db", "Container/web"}
	if !slices.Equal(keys, want) {
		t.Errorf("order = %v, want %v", keys, want)
	}
	if set.Len() != len(want) {
		t.Errorf("Len = %d", set.Len())
	}
	if got := len(set.Kind(KindContainer)); got != 2 {
		t.Errorf("Kind(Container) has %d", got)
	}
	web, ok := set.Get(Key{KindContainer, "web"})
	if !ok || web.Container() == nil || web.Image() != nil || web.Network() != nil || web.Volume() != nil {
		t.Fatalf("Get web: %v %v", web, ok)
	}
	img, ok := set.ImageFor(web.Container().Image)
	if !ok || img.Name() != "app" {
		t.Errorf("ImageFor(%s) = %v, %v", web.Container().Image, img, ok)
	}
	if _, ok := set.ImageFor("busybox"); ok {
		t.Error("ImageFor(busybox) found a resource")
	}
	if p, ok := web.PosOf("spec.ports[1]"); !ok || p.Line == 0 || p.File != "testdata/valid/full.yaml" {
		t.Errorf("PosOf(spec.ports[1]) = %v, %v", p, ok)
	}
	if _, ok := web.PosOf("spec.nothing"); ok {
		t.Error("PosOf(spec.nothing) ok")
	}
}

func TestImageForNormalizes(t *testing.T) {
	set, err := LoadReader("x.yaml", strings.NewReader(`apiVersion: berth.dev/v1alpha1
kind: Image
metadata: {name: bb}
spec: {ref: busybox}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox", "index.docker.io/library/busybox:latest"} {
		if r, ok := set.ImageFor(ref); !ok || r.Name() != "bb" {
			t.Errorf("ImageFor(%s) = %v, %v", ref, r, ok)
		}
	}
	if _, ok := set.ImageFor("busybox:1.36"); ok {
		t.Error("ImageFor(busybox:1.36) matched busybox:latest")
	}
}

// TestRoundTrip: a resource's JSON is a manifest that loads back to the same
// hash.
func TestRoundTrip(t *testing.T) {
	for _, dir := range []string{"testdata/valid", "../examples"} {
		set, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range set.Resources() {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			// Containers refer to other resources; give them the whole set.
			var stream bytes.Buffer
			for _, o := range set.Resources() {
				if o == r {
					stream.Write(b)
				} else {
					ob, _ := json.Marshal(o)
					stream.Write(ob)
				}
				stream.WriteString("\n---\n")
			}
			back, err := LoadReader("roundtrip.yaml", &stream, r.Dir)
			if err != nil {
				t.Fatalf("%s: reload: %v\n%s", r.Key(), err, b)
			}
			r2, _ := back.Get(r.Key())
			if Hash(r) != Hash(r2) {
				t.Errorf("%s: hash changed through JSON:\n%s", r.Key(), b)
			}
		}
	}
}
