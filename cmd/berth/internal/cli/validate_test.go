package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/spec"
)

// run runs berth with args in dir (the repository root when "") and returns
// the exit code and the outputs.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	// Settings from the environment or a config file must not leak in.
	t.Setenv("NO_COLOR", "")
	args = append([]string{"--config", ""}, args...)
	code = Run(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// repo is the repository root, relative to this package.
const repo = "../../../.."

func TestValidateExamples(t *testing.T) {
	t.Chdir(repo)
	code, out, errOut := run(t, "", "validate", "examples/")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	if want := "examples/: 8 resources in 5 files are valid\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestValidateBroken(t *testing.T) {
	t.Chdir(repo)
	code, out, errOut := run(t, "", "validate", "spec/testdata/demo-broken")
	want := `spec/testdata/demo-broken/api.yaml:11:15: spec.healthcheck.interval: invalid duration "5 minutes": want a number with a unit (ns, us, ms, s, m, h), e.g. 30s or 1m30s
spec/testdata/demo-broken/web.yaml:18:7: spec.ports[1]: port 70000 out of range
spec/testdata/demo-broken/web.yaml:20:13: spec.resources.memory: invalid quantity "12 parsecs": want a number of bytes, optionally with a suffix such as Ki, Mi, Gi (powers of 1024) or k, M, G (powers of 1000), e.g. 256Mi
3 errors in 2 files
`
	if code != 1 || errOut != "" {
		t.Errorf("exit %d, stderr %q; want 1 and nothing on stderr", code, errOut)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}

func TestValidateJSON(t *testing.T) {
	t.Chdir(repo)
	code, out, _ := run(t, "", "validate", "-o", "json", "spec/testdata/demo-broken")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	var got ValidateReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Valid || got.Resources != 3 || len(got.Errors) != 3 {
		t.Fatalf("report = %+v", got)
	}
	want := ValidateReportErr{File: "spec/testdata/demo-broken/web.yaml", Line: 18, Column: 7, Field: "spec.ports[1]", Message: "port 70000 out of range"}
	if diff := cmp.Diff(want, got.Errors[1]); diff != "" {
		t.Errorf("errors[1] (-want +got):\n%s", diff)
	}

	code, out, _ = run(t, "", "validate", "--output=json", "examples")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	if want := "{\n  \"valid\": true,\n  \"resources\": 8,\n  \"errors\": []\n}\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestValidateStdin(t *testing.T) {
	doc := "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: data}\n"
	code, out, _ := run(t, doc, "validate", "-")
	if code != 0 || out != "<stdin>: 1 resource in 1 file is valid\n" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	code, out, _ = run(t, "kind: Volume\n", "validate", "-")
	if code != 1 || !strings.HasPrefix(out, "<stdin>:1:1: missing required field \"apiVersion\"\n") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	code, _, errOut := run(t, doc, "validate", "-", "examples")
	if code != 1 || !strings.Contains(errOut, "cannot be combined") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestValidateDefaultAndEmpty(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, _ := run(t, "", "validate")
	if code != 1 || out != ".: no manifests (*.yaml or *.yml files)\n1 error in 1 file\n" {
		t.Errorf("empty dir: exit %d, stdout %q", code, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "v.yml"), []byte("apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: v}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "", "validate")
	if code != 0 || out != "./: 1 resource in 1 file is valid\n" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	code, out, _ = run(t, "", "validate", "missing.yaml", ".")
	if code != 1 || out != "missing.yaml: no such file or directory\n1 error in 1 file\n" {
		t.Errorf("missing file: exit %d, stdout %q", code, out)
	}
}

func TestValidateColor(t *testing.T) {
	var out bytes.Buffer
	writeValidateText(&out, true, []string{"x"}, nil, 2, 1)
	if strings.Contains(out.String(), "\x1b[") {
		t.Errorf("success line has colour: %q", out.String())
	}
	out.Reset()
	problems := []*spec.FieldError{{File: "a.yaml", Line: 3, Column: 5, Field: "spec.image", Msg: "bad"}}
	writeValidateText(&out, true, []string{"x"}, problems, 0, 1)
	if want := "\x1b[1ma.yaml:3:5:\x1b[0m spec.image: \x1b[31mbad\x1b[0m\n\x1b[1m\x1b[31m1 error in 1 file\x1b[0m\n"; out.String() != want {
		t.Errorf("coloured report = %q, want %q", out.String(), want)
	}
	t.Chdir(repo)
	code, plain, _ := run(t, "", "validate", "spec/testdata/demo-broken")
	if code != 1 || strings.Contains(plain, "\x1b[") {
		t.Errorf("colour without a terminal: %q", plain)
	}
}
