package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must never panic, and
// whatever it accepts must survive a round trip through its JSON form with
// the same hash. `make fuzz` runs it for a few seconds.
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"testdata/valid/*.y*ml", "testdata/invalid/*.yaml", "testdata/demo-broken/*.yaml", "../examples/*/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: x}\nspec: {image: x, ports: [\"1-65535:1-65535\"], networks: [n]}\n"))

	// Env files and bind sources resolve against an empty directory, so the
	// fuzzer cannot make the loader read the machine's files by relative
	// path; absolute env file paths are read (bounded to regular files of
	// 1 MiB), which is harmless.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := LoadReader("fuzz.yaml", bytes.NewReader(data), dir)
		for _, fe := range FieldErrors(err) {
			if fe.File != "fuzz.yaml" && fe.Line == 0 {
				t.Errorf("error without a position: %v", fe)
			}
		}
		if err != nil {
			return
		}
		var stream bytes.Buffer
		hashes := map[Key]string{}
		for _, r := range set.Resources() {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("marshal %s: %v", r.Key(), err)
			}
			stream.Write(b)
			stream.WriteString("\n---\n")
			hashes[r.Key()] = Hash(r)
		}
		back, err := LoadReader("roundtrip.yaml", &stream, dir)
		if err != nil {
			t.Fatalf("reloading the JSON form: %v\n%s", err, stream.String())
		}
		for _, r := range back.Resources() {
			if Hash(r) != hashes[r.Key()] {
				t.Errorf("%s: hash changed through the JSON form:\n%s", r.Key(), stream.String())
			}
		}
		if back.Len() != set.Len() {
			t.Errorf("round trip has %d resources, want %d", back.Len(), set.Len())
		}
	})
}
