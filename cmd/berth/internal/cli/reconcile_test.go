package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/reconciler/render"
)

const cliTestImage = "127.0.0.1:5000/berth/busybox:1.35"

// keepOpen is the fake seen through Close calls: each verb closes its
// engine, the test's fake lives on.
type keepOpen struct{ *enginetest.Fake }

func (keepOpen) Close() error { return nil }

// useFake makes the reconciler verbs run on an in-memory engine.
func useFake(t *testing.T) *enginetest.Fake {
	t.Helper()
	f := enginetest.NewFake()
	if _, err := f.Images().Import(t.Context(), strings.NewReader("rootfs"), cliTestImage, engine.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	old := openEngine
	openEngine = func(context.Context, *Options, bool) (engine.Engine, error) { return keepOpen{f}, nil }
	t.Cleanup(func() { openEngine = old; f.Close() })
	return f
}

func manifestDir(t *testing.T, mode string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	os.MkdirAll(dir, 0o755)
	writeWeb(t, dir, mode)
	return dir
}

func writeWeb(t *testing.T, dir, mode string) {
	t.Helper()
	y := `apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: back}
---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: web}
spec:
  image: ` + cliTestImage + `
  command: [httpd, -f]
  env: {MODE: ` + mode + `, API_TOKEN: s3cr3t}
  networks: [back]
  restart: always
`
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPlanApplyDestroyCLI(t *testing.T) {
	f := useFake(t)
	root := t.TempDir()
	dir := manifestDir(t, "prod")

	code, out, errOut := berthCLI(t, root, "", "plan", "--detailed-exitcode", dir)
	if code != 2 || !strings.Contains(out, "+ container \"web\"") || !strings.Contains(out, "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy.") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("secret in plan output:\n%s", out)
	}
	out = mustBerth(t, root, "apply", dir)
	for _, want := range []string{"network/back: Creation complete", "container/web: Creation complete", "Apply complete! Resources: 2 added, 0 changed, 0 replaced, 0 destroyed."} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ := berthCLI(t, root, "", "plan", "--detailed-exitcode", dir); code != 0 || !strings.Contains(out, "No changes.") {
		t.Fatalf("plan after apply: exit %d\n%s", code, out)
	}

	writeWeb(t, dir, "dev")
	code, out, _ = berthCLI(t, root, "", "-o", "json", "plan", "--detailed-exitcode", dir)
	if code != 2 {
		t.Fatalf("json plan exit %d", code)
	}
	var doc render.JSONPlan
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json plan: %v\n%s", err, out)
	}
	if doc.Summary.Replace != 1 || doc.Summary.Add+doc.Summary.Change+doc.Summary.Destroy != 0 {
		t.Errorf("json summary %+v", doc.Summary)
	}

	// A saved plan is applied exactly.
	planFile := filepath.Join(t.TempDir(), "tfplan")
	if out := mustBerth(t, root, "plan", "-out", planFile, dir); !strings.Contains(out, "berth apply "+planFile) {
		t.Errorf("plan -out output:\n%s", out)
	}
	out = mustBerth(t, root, "apply", planFile)
	if !strings.Contains(out, "1 replaced") {
		t.Errorf("apply FILE:\n%s", out)
	}
	// Applying it again: the host changed since.
	if code, _, errOut := berthCLI(t, root, "", "apply", planFile); code != 1 || !strings.Contains(errOut, "changed on this host") {
		t.Errorf("second apply of a plan file: exit %d: %s", code, errOut)
	}

	out = mustBerth(t, root, "status", dir)
	if !strings.Contains(out, "container/web") || !strings.Contains(out, "Ready") {
		t.Errorf("status:\n%s", out)
	}

	out = mustBerth(t, root, "destroy", dir)
	if !strings.Contains(out, "Destroy complete! Resources: 2 destroyed.") {
		t.Errorf("destroy:\n%s", out)
	}
	cs, _ := f.Containers().List(t.Context(), engine.ListContainersOptions{All: true})
	if len(cs) != 0 {
		t.Errorf("%d containers left after destroy", len(cs))
	}
}

func TestPlanRefusesEmptyCLI(t *testing.T) {
	useFake(t)
	root := t.TempDir()
	dir := manifestDir(t, "prod")
	mustBerth(t, root, "apply", dir)
	os.Remove(filepath.Join(dir, "web.yaml"))
	code, _, errOut := berthCLI(t, root, "", "apply", dir)
	if code != 1 || !strings.Contains(errOut, "refusing to delete") {
		t.Fatalf("apply of an empty directory: exit %d: %s", code, errOut)
	}
	code, _, errOut = berthCLI(t, root, "", "plan", "-p", "Bad_Name", dir)
	if code != 1 || !strings.Contains(errOut, "bad-name") {
		t.Errorf("bad project name: exit %d: %s", code, errOut)
	}
}

func TestTerraformOut(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plan -out f dir", "plan --out f dir"},
		{"--data-root /r -o json plan -out=f", "--data-root /r -o json plan --out=f"},
		{"run img sh -c plan -out", "run img sh -c plan -out"},
		{"-o plan apply -out", "-o plan apply -out"},
	} {
		if got := strings.Join(terraformOut(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("terraformOut(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
