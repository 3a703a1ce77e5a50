package schemas

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"berth.dev/berth/spec"
)

// compile compiles the checked-in schema.
func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSON))
	if err != nil {
		t.Fatalf("berth.schema.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(ID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(ID)
	if err != nil {
		t.Fatalf("compile berth.schema.json: %v", err)
	}
	return s
}

// documents splits a YAML stream into JSON-compatible values, one per
// non-empty document.
func documents(t *testing.T, data []byte) []any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("yaml: %v", err)
		}
		if v == nil {
			continue
		}
		// Through JSON, so that the validator sees JSON types.
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		j, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
}

var modeline = regexp.MustCompile(`^# yaml-language-server: \$schema=(\S+)$`)

// TestExamples: every manifest under examples/ starts with the modeline
// pointing at this schema, and validates against both the schema (each
// document) and spec.Load (each example directory, and examples/ as a
// whole, which is what `berth validate examples/` checks).
func TestExamples(t *testing.T) {
	schema := compile(t)
	self, err := filepath.Abs("berth.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir("../examples", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d example manifests", len(files))
	}
	dirs := map[string]bool{}
	for _, file := range files {
		dirs[filepath.Dir(file)] = true
		t.Run(strings.TrimPrefix(file, "../"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
			m := modeline.FindSubmatch(first)
			if m == nil {
				t.Fatalf("first line %q is not a modeline: # yaml-language-server: $schema=<path to schemas/berth.schema.json>", first)
			}
			target, err := filepath.Abs(filepath.Join(filepath.Dir(file), string(m[1])))
			if err != nil {
				t.Fatal(err)
			}
			if target != self {
				t.Errorf("modeline points at %s, want %s", target, self)
			}
			docs := documents(t, data)
			if len(docs) == 0 {
				t.Fatal("no documents")
			}
			for i, doc := range docs {
				if err := schema.Validate(doc); err != nil {
					t.Errorf("document %d: %v", i+1, err)
				}
			}
		})
	}
	dirs["../examples"] = true
	for dir := range dirs {
		if _, err := spec.Load(dir); err != nil {
			t.Errorf("spec.Load(%s):\n%v", dir, err)
		}
	}
}

// TestLoaderAndSchemaAgree: what the loader accepts, the schema accepts (an
// editor must not flag a valid manifest), both as written in
// spec/testdata/valid and in the normalized JSON form of each resource;
// and the schema rejects documents with structural mistakes.
func TestLoaderAndSchemaAgree(t *testing.T) {
	schema := compile(t)
	files, _ := filepath.Glob("../spec/testdata/valid/*.y*ml")
	if len(files) == 0 {
		t.Fatal("no valid testdata")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documents(t, data) {
			if err := schema.Validate(doc); err != nil {
				t.Errorf("%s document %d: %v", file, i+1, err)
			}
		}
		set, err := spec.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range set.Resources() {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range documents(t, b) {
				if err := schema.Validate(doc); err != nil {
					t.Errorf("%s: normalized %s: %v\n%s", file, r.Key(), err, b)
				}
			}
		}
	}

	invalid := map[string]string{
		"unknown top-level field": "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v}\nstatus: {}\n",
		"unknown spec field":      "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {image: x, imagee: y}\n",
		"wrong kind":              "apiVersion: berth.dev/v1alpha1\nkind: Pod\nmetadata: {name: p}\n",
		"wrong apiVersion":        "apiVersion: v1\nkind: Volume\nmetadata: {name: v}\n",
		"missing spec":            "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\n",
		"missing image":           "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {}\n",
		"bad name":                "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: Web}\n",
		"reserved label":          "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v, labels: {dev.berth.kind: x}}\n",
		"env number":              "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {image: x, env: {A: 1}}\n",
		"memory":                  "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {image: x, resources: {memory: 12 parsecs}}\n",
		"duration":                "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {image: x, stopGracePeriod: 5 minutes}\n",
		"restart":                 "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {image: x, restart: sometimes}\n",
		"port":                    "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {image: x, ports: [\"80\"]}\n",
		"network spec on volume":  "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v}\nspec: {subnet: 10.0.0.0/24}\n",
		"mount type":              "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: c}\nspec: {image: x, volumes: [{type: nfs, target: /x}]}\n",
		"pull policy":             "apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata: {name: i}\nspec: {ref: x, pullPolicy: sometimes}\n",
	}
	for name, doc := range invalid {
		for _, d := range documents(t, []byte(doc)) {
			if err := schema.Validate(d); err == nil {
				t.Errorf("%s: the schema accepts\n%s", name, doc)
			}
		}
		if _, err := spec.LoadReader("x.yaml", strings.NewReader(doc), t.TempDir()); err == nil {
			t.Errorf("%s: the loader accepts\n%s", name, doc)
		}
	}
}

// TestPatterns: every string the loader's parsers accept matches the
// schema's pattern; strings that are plainly wrong do not.
func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		parse   func(string) error
		valid   []string
		invalid []string // rejected by the pattern (and the loader)
	}{
		{QuantityPattern, func(s string) error { _, err := spec.ParseQuantity(s); return err },
			[]string{"256Mi", "1.5Gi", ".5Ki", "500M", "1k", "1e3", "1048576", "0", "1E"},
			[]string{"12 parsecs", "256 Mi", "Mi", "1..2", "-1Gi", "1GB"}},
		{CPUsPattern, func(s string) error { _, err := spec.ParseCPUs(s); return err },
			[]string{"0.5", "2", ".25", "500m", "1.000000001", "0"},
			[]string{"half", "-1", "0.5m", "1.0000000001", "1 cpu"}},
		{DurationPattern, func(s string) error { _, err := spec.ParseDuration(s); return err },
			[]string{"30s", "1m30s", "500ms", "1.5h", "0", "10us", "2h45m0.5s"},
			[]string{"5 minutes", "5", "1d", "-1s", "s"}},
		{PortPattern, func(s string) error { _, err := spec.ParsePort(s); return err },
			[]string{"8080:80", "127.0.0.1:8080:80", "[::1]:8080:80", "53:53/udp", "80:80/tcp", "8000-8010:9000-9010"},
			[]string{"80", "8080:80/sctp", "http:80", "::1:8080:80", "localhost:80:80"}},
		{SignalPattern, func(s string) error { _, err := spec.ParseSignal(s); return err },
			[]string{"SIGTERM", "TERM", "term", "15", "SIGRTMIN+3", "RTMAX-2"},
			[]string{"SIG TERM", "-9", ""}},
		{MountPattern, nil,
			[]string{"data:/data", "data:/data:ro", "./conf:/etc/app:ro", "/var/log:/logs:rw"},
			[]string{"/anonymous", "data:relative", "a:b:c:d", "data:/x:z"}},
		{NamePattern, func(s string) error {
			if !spec.ValidName(s) {
				return errors.New("invalid")
			}
			return nil
		},
			[]string{"a", "web", "web-1", "my_app", "a.b", "0"},
			[]string{"", "Web", "-web", "web-", "a b"}},
	}
	for _, tc := range tests {
		re := regexp.MustCompile(tc.pattern)
		for _, s := range tc.valid {
			if tc.parse != nil {
				if err := tc.parse(s); err != nil {
					t.Errorf("loader rejects %q: %v", s, err)
				}
			}
			if !re.MatchString(s) {
				t.Errorf("pattern %s rejects %q, which the loader accepts", tc.pattern, s)
			}
		}
		for _, s := range tc.invalid {
			if re.MatchString(s) {
				t.Errorf("pattern %s accepts %q", tc.pattern, s)
			}
			if tc.parse != nil && tc.parse(s) == nil {
				t.Errorf("loader accepts %q", s)
			}
		}
	}
}
