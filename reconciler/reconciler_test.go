package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/reconciler/plan"
	"github.com/google/go-cmp/cmp"
)

const testImage = "127.0.0.1:5000/berth/busybox:1.35"

// newFake returns a fake engine holding testImage locally and in its
// registry.
func newFake(t *testing.T) *enginetest.Fake {
	t.Helper()
	f := enginetest.NewFake()
	t.Cleanup(func() { f.Close() })
	ctx := t.Context()
	if _, err := f.Images().Import(ctx, strings.NewReader("busybox rootfs"), testImage, engine.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Images().Push(ctx, testImage, engine.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	return f
}

// writeManifests writes files (name -> YAML) into a fresh directory named
// after the test, and returns it.
func writeManifests(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "shop")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if body == "" {
			os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const netYAML = `apiVersion: berth.dev/v1alpha1
kind: Network
metadata: {name: back}
---
apiVersion: berth.dev/v1alpha1
kind: Volume
metadata: {name: data}
`

func ctrYAML(name, extra string) string {
	if !strings.Contains(extra, "  command:") {
		extra = "  command: [httpd, -f]\n" + extra
	}
	return `apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: ` + name + `}
spec:
  image: ` + testImage + `
  networks: [back]
` + extra
}

func newReconciler(t *testing.T, e engine.Engine) *Reconciler {
	return New(e, WithDataRoot(t.TempDir()))
}

func summary(p *plan.Plan) []string {
	var out []string
	for _, c := range p.Pending() {
		out = append(out, c.Action.Symbol()+" "+c.Key.String())
	}
	return out
}

func mustPlan(t *testing.T, r *Reconciler, dir string) *plan.Plan {
	t.Helper()
	res, err := r.Plan(t.Context(), PlanOptions{Target: Target{Dir: dir}})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return res.Plan
}

func mustApply(t *testing.T, r *Reconciler, opts ApplyOptions) *ApplyResult {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	res, err := r.Apply(t.Context(), opts)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

func TestPlanApplyConverges(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	dir := writeManifests(t, "", map[string]string{
		"net.yaml": netYAML,
		"db.yaml": ctrYAML("db", `  env: {MODE: prod, DB_PASSWORD: hunter2}
  volumes: ["data:/data"]
  restart: always
  healthcheck: {command: ["true"], interval: 20ms}
`),
		"web.yaml": ctrYAML("web", `  ports: ["8080:80"]
  dependsOn: [{name: db, condition: healthy}]
  restart: always
`),
	})
	got := summary(mustPlan(t, r, dir))
	want := []string{"+ network/back", "+ volume/data", "+ container/db", "+ container/web"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("first plan (-want +got):\n%s", diff)
	}
	var mu sync.Mutex
	var events []string
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}, Wait: true, Progress: func(ev Event) {
		mu.Lock()
		events = append(events, ev.Key.String()+" "+string(ev.Op)+" "+string(ev.Phase))
		mu.Unlock()
	}})
	if p := mustPlan(t, r, dir); p.HasChanges() {
		t.Fatalf("plan after apply is not empty: %v", summary(p))
	}
	// db was healthy before web was created.
	web, err := f.Containers().Inspect(t.Context(), "shop-web")
	if err != nil {
		t.Fatal(err)
	}
	db, _ := f.Containers().Inspect(t.Context(), "shop-db")
	if db.State.Health == nil || db.State.Health.Status != "healthy" || web.Created.Before(db.State.StartedAt) {
		t.Errorf("web created at %v before db was healthy (db started %v, health %+v)", web.Created, db.State.StartedAt, db.State.Health)
	}
	if !web.State.Running || web.Config.Labels[engine.LabelProject] != "shop" || web.Config.Networks[0].Aliases[0] != "web" {
		t.Errorf("web: %+v", web)
	}
	mu.Lock()
	if !containsAll(events, "container/web wait waiting", "container/web create done") {
		t.Errorf("events: %q", events)
	}
	mu.Unlock()

	// One env value changed: exactly one replace, with its reason.
	writeManifests(t, dir, map[string]string{"db.yaml": ctrYAML("db", `  env: {MODE: dev, DB_PASSWORD: hunter2}
  volumes: ["data:/data"]
  restart: always
  healthcheck: {command: ["true"], interval: 20ms}
`)})
	p := mustPlan(t, r, dir)
	if diff := cmp.Diff([]string{"-/+ container/db"}, summary(p)); diff != "" {
		t.Fatalf("plan after env change (-want +got):\n%s", diff)
	}
	ch, _ := p.Get(plan.Key{Kind: plan.KindContainer, Name: "db"})
	if diff := cmp.Diff([]string{"spec changed: env.MODE forces replacement"}, ch.Reasons); diff != "" {
		t.Errorf("reasons: %s", diff)
	}
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}, Wait: true})
	if p := mustPlan(t, r, dir); p.HasChanges() {
		t.Fatalf("plan after second apply: %v", summary(p))
	}

	// Destroy: everything but the volume goes; with volumes, all.
	if _, err := r.Destroy(t.Context(), ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}}); err != nil {
		t.Fatal(err)
	}
	left, _ := Observe(t.Context(), f, "shop")
	if len(left.Containers)+len(left.Networks) != 0 || len(left.Volumes) != 1 {
		t.Errorf("after destroy: %d containers, %d networks, %d volumes", len(left.Containers), len(left.Networks), len(left.Volumes))
	}
	if _, err := r.Destroy(t.Context(), ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}, PruneVolumes: true}}); err != nil {
		t.Fatal(err)
	}
	left, _ = Observe(t.Context(), f, "shop")
	if owned(left) != 0 {
		t.Errorf("after destroy --volumes: %d objects", owned(left))
	}
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestFailureBlocksOnlyDependents(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	dir := writeManifests(t, "", map[string]string{
		"net.yaml": netYAML,
		// The fake fails to start a container whose port another holds.
		"a.yaml": ctrYAML("a", "  ports: [\"9000:80\"]\n"),
		"b.yaml": ctrYAML("b", "  dependsOn: [a]\n"),
		"c.yaml": ctrYAML("c", ""),
	})
	// Something outside the project holds port 9000.
	n, err := f.Networks().Create(t.Context(), engine.NetworkConfig{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := f.Containers().Create(t.Context(), engine.ContainerConfig{Name: "hog2", Image: testImage, Cmd: []string{"httpd"},
		Networks: []engine.EndpointConfig{{Network: n.Name}}, Ports: []engine.PortBinding{{HostPort: 9000, ContainerPort: 80, Protocol: "tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Containers().Start(t.Context(), h2.ID); err != nil {
		t.Fatal(err)
	}
	_, err = r.Apply(t.Context(), ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}, Timeout: 5 * time.Second})
	if err == nil {
		t.Fatal("apply succeeded although a port is taken")
	}
	var ces []*ChangeError
	for _, e := range err.(interface{ WrappedErrors() []error }).WrappedErrors() {
		var ce *ChangeError
		if errors.As(e, &ce) {
			ces = append(ces, ce)
		}
	}
	if len(ces) != 2 || ces[0].Key.Name != "a" || !errors.Is(ces[0], engine.ErrConflict) || ces[1].Key.Name != "b" || !isBlocked(ces[1]) {
		t.Fatalf("errors: %v", err)
	}
	if c, err := f.Containers().Inspect(t.Context(), "shop-c"); err != nil || !c.State.Running {
		t.Errorf("independent container c was not started: %v", err)
	}
	st, err := r.Status(t.Context(), Target{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rs := st.Resource(plan.Key{Kind: plan.KindContainer, Name: "b"})
	if c, _ := rs.Get(ConditionReady); c.Status != False {
		t.Errorf("status of b: %+v", rs)
	}
}

func TestRefusesEmptyManifests(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	dir := writeManifests(t, "", map[string]string{"net.yaml": netYAML})
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	writeManifests(t, dir, map[string]string{"net.yaml": ""})
	_, err := r.Plan(t.Context(), PlanOptions{Target: Target{Dir: dir}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "berth destroy") {
		t.Fatalf("plan of an empty directory: %v", err)
	}
	if _, err := r.Plan(t.Context(), PlanOptions{Target: Target{Dir: dir + "-missing", Project: "shop"}}); !errors.Is(err, ErrRefused) {
		t.Fatalf("plan of a missing directory: %v", err)
	}
	res, err := r.Plan(t.Context(), PlanOptions{Target: Target{Dir: dir}, AllowEmpty: true})
	if err != nil || len(res.Plan.Pending()) != 1 {
		t.Fatalf("allow-empty plan: %v %v", err, res)
	}
	// An invalid manifest is a terminal error, never a plan.
	writeManifests(t, dir, map[string]string{"bad.yaml": "apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: x}\nspec: {bogus: 1}\n"})
	if _, err := r.Plan(t.Context(), PlanOptions{Target: Target{Dir: dir}}); !IsTerminal(err) || !strings.Contains(err.Error(), "bad.yaml:4") {
		t.Fatalf("plan of an invalid manifest: %v", err)
	}
}

func TestDrift(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	dir := writeManifests(t, "", map[string]string{
		"net.yaml": netYAML,
		"web.yaml": ctrYAML("web", "  restart: always\n"),
		"job.yaml": ctrYAML("job", "  command: [\"true\"]\n"),
	})
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}, Wait: true})
	ctx := t.Context()
	// The job completed under restart "no": nothing to do.
	if p := mustPlan(t, r, dir); p.HasChanges() {
		t.Fatalf("plan with a completed job: %v", summary(p))
	}
	// Stopped outside berth although restart is always.
	if err := f.Containers().Stop(ctx, "shop-web", nil); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, r, dir)
	ch, _ := p.Get(plan.Key{Kind: plan.KindContainer, Name: "web"})
	if ch.Action != plan.Update || ch.Drift != plan.DriftStopped || !ch.Start {
		t.Fatalf("stopped web: %+v", ch)
	}
	// Removed outside berth.
	if err := f.Containers().Remove(ctx, "shop-web", engine.RemoveContainerOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	p = mustPlan(t, r, dir)
	ch, _ = p.Get(plan.Key{Kind: plan.KindContainer, Name: "web"})
	if ch.Action != plan.Create || ch.Drift != plan.DriftRemoved {
		t.Fatalf("removed web: %+v", ch)
	}
	// Limits changed outside berth.
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	if err := f.Containers().Update(ctx, "shop-web", engine.ContainerUpdate{Resources: &engine.Resources{MemoryBytes: 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	p = mustPlan(t, r, dir)
	ch, _ = p.Get(plan.Key{Kind: plan.KindContainer, Name: "web"})
	if ch.Action != plan.Update || ch.Drift != plan.DriftChanged {
		t.Fatalf("changed web: %+v", ch)
	}
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	if p := mustPlan(t, r, dir); p.HasChanges() {
		t.Fatalf("drift not repaired: %v", summary(p))
	}
}

func TestImagePullPolicies(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	ctx := t.Context()
	dir := writeManifests(t, "", map[string]string{
		"net.yaml": netYAML,
		"img.yaml": `apiVersion: berth.dev/v1alpha1
kind: Image
metadata: {name: bb}
spec: {ref: "` + testImage + `", pullPolicy: always}
`,
		"web.yaml": ctrYAML("web", ""),
	})
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	// The tag moves in the registry: the image is pulled and the container
	// replaced.
	v2, err := f.Images().Import(ctx, strings.NewReader("busybox v2"), "v2:1", engine.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Images().Tag(ctx, "v2:1", testImage); err != nil {
		t.Fatal(err)
	}
	if err := f.Images().Push(ctx, testImage, engine.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Images().Import(ctx, strings.NewReader("busybox rootfs"), testImage, engine.ImportOptions{}); err != nil {
		t.Fatal(err) // the local tag back on the old image
	}
	if _, err := f.Images().Remove(ctx, v2.ID, engine.RemoveImageOptions{}); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, r, dir)
	if diff := cmp.Diff([]string{"~ image/bb", "-/+ container/web"}, summary(p)); diff != "" {
		t.Fatalf("plan after the tag moved (-want +got):\n%s", diff)
	}
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	if p := mustPlan(t, r, dir); p.HasChanges() {
		t.Fatalf("not converged: %v", summary(p))
	}
	web, _ := f.Containers().Inspect(ctx, "shop-web")
	remote, _ := f.Images().Resolve(ctx, testImage, nil)
	if !strings.HasSuffix(web.Config.Image, "@"+remote) {
		t.Errorf("web runs %s, want the registry's %s", web.Config.Image, remote)
	}

	// pullPolicy never with an image that is not local: a clear terminal error.
	writeManifests(t, dir, map[string]string{"img.yaml": `apiVersion: berth.dev/v1alpha1
kind: Image
metadata: {name: bb}
spec: {ref: "127.0.0.1:5000/nosuch:1", pullPolicy: never}
`, "web.yaml": ctrYAML("web", "") + "", "other.yaml": strings.Replace(ctrYAML("other", ""), testImage, "127.0.0.1:5000/nosuch:1", 1)})
	_, err = r.Plan(ctx, PlanOptions{Target: Target{Dir: dir}})
	if !IsTerminal(err) || !strings.Contains(err.Error(), "pull policy is never") {
		t.Fatalf("never: %v", err)
	}
}

func TestSavedPlan(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	ctx := t.Context()
	dir := writeManifests(t, "", map[string]string{"net.yaml": netYAML, "web.yaml": ctrYAML("web", "")})
	res, err := r.Plan(ctx, PlanOptions{Target: Target{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "plan.out")
	if err := WritePlanFile(file, res); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file mode %v", fi.Mode())
	}
	pf, ok, err := ReadPlanFile(file)
	if err != nil || !ok {
		t.Fatalf("read plan file: %v %v", ok, err)
	}
	if _, ok, _ := ReadPlanFile(dir); ok {
		t.Error("a directory read as a plan file")
	}
	// The manifests change: refused.
	writeManifests(t, dir, map[string]string{"web.yaml": ctrYAML("web", "  env: {A: b}\n")})
	if _, err := r.ApplyPlanFile(ctx, pf, ApplyOptions{}); !errors.Is(err, ErrStale) {
		t.Fatalf("apply of a plan whose manifests changed: %v", err)
	}
	writeManifests(t, dir, map[string]string{"web.yaml": ctrYAML("web", "")})
	// The host changes: refused.
	if _, err := f.Networks().Create(ctx, engine.NetworkConfig{Name: "shop-back", Labels: map[string]string{
		engine.LabelProject: "shop", engine.LabelKind: "Network", engine.LabelName: "back"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ApplyPlanFile(ctx, pf, ApplyOptions{}); !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "changed on this host") {
		t.Fatalf("apply of a plan whose host changed: %v", err)
	}
	n, _ := f.Networks().Inspect(ctx, "shop-back")
	if err := f.Networks().Remove(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	// Unchanged: applied exactly.
	if _, err := r.ApplyPlanFile(ctx, pf, ApplyOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if p := mustPlan(t, r, dir); p.HasChanges() {
		t.Fatalf("not converged: %v", summary(p))
	}
}

func TestLock(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	dir := writeManifests(t, "", map[string]string{"net.yaml": netYAML})
	l, err := r.lockProject(t.Context(), "shop", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Apply(t.Context(), ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("apply while locked: %v", err)
	}
	waited := make(chan string, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		l.Release()
	}()
	if _, err := r.Apply(t.Context(), ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}, LockTimeout: 5 * time.Second,
		OnLockWait: func(h string) { waited <- h }}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	default:
		t.Error("OnLockWait not called")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	l2, _ := r.lockProject(ctx, "shop", 0, nil)
	defer l2.Release()
	_, err = r.Apply(t.Context(), ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}, LockTimeout: 30 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("apply with lock timeout: %v", err)
	}
}

func TestProjectName(t *testing.T) {
	for in, want := range map[string]string{"shop": "shop", "My App_2": "my-app-2", "--x--": "x", "Ünïcode": "n-code"} {
		if got := SanitizeProject(in); got != want {
			t.Errorf("SanitizeProject(%q) = %q, want %q", in, got, want)
		}
	}
}

// A changed network is replaced with its containers in one apply, in order:
// containers removed, network removed, network created, containers created.
func TestApplyOrderOnNetworkReplace(t *testing.T) {
	f := newFake(t)
	r := newReconciler(t, f)
	dir := writeManifests(t, "", map[string]string{
		"net.yaml": netYAML,
		"a.yaml":   ctrYAML("a", ""),
		"b.yaml":   ctrYAML("b", "  dependsOn: [a]\n"),
	})
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	writeManifests(t, dir, map[string]string{"net.yaml": strings.Replace(netYAML, "metadata: {name: back}", "metadata: {name: back}\nspec: {internal: true}", 1)})
	var mu sync.Mutex
	var done []string
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}, Progress: func(ev Event) {
		if ev.Phase == PhaseDone && ev.Op != OpWait {
			mu.Lock()
			done = append(done, string(ev.Op)+" "+ev.Key.String())
			mu.Unlock()
		}
	}})
	pos := map[string]int{}
	for i, d := range done {
		pos[d] = i
	}
	for _, order := range [][2]string{
		{"destroy container/b", "destroy container/a"},
		{"destroy container/a", "destroy network/back"},
		{"destroy network/back", "create network/back"},
		{"create network/back", "create container/a"},
		{"create container/a", "create container/b"},
	} {
		a, okA := pos[order[0]]
		b, okB := pos[order[1]]
		if !okA || !okB || a > b {
			t.Errorf("%q must come before %q: %q", order[0], order[1], done)
		}
	}
	if p := mustPlan(t, r, dir); p.HasChanges() {
		t.Fatalf("not converged: %v", summary(p))
	}
}

// TestSettleBeforeChanges checks that the reconciler waits for WithSettle
// before its first change, and never when there is nothing to change.
func TestSettleBeforeChanges(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	settled := 0
	r := New(f, WithDataRoot(t.TempDir()), WithSettle(func() {
		mu.Lock()
		settled++
		mu.Unlock()
		// Nothing may have been made yet.
		if cs, _ := f.Containers().List(context.Background(), engine.ListContainersOptions{All: true}); len(cs) > 0 {
			t.Errorf("settle called after %d containers were made", len(cs))
		}
	}))
	dir := writeManifests(t, "", map[string]string{"net.yaml": netYAML, "web.yaml": ctrYAML("web", "")})
	mustPlan(t, r, dir)
	if settled != 0 {
		t.Errorf("plan settled %d times, want 0", settled)
	}
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	if settled != 1 {
		t.Errorf("apply settled %d times, want 1", settled)
	}
	mustApply(t, r, ApplyOptions{PlanOptions: PlanOptions{Target: Target{Dir: dir}}})
	if settled != 1 {
		t.Errorf("no-op apply settled %d more times, want 0", settled-1)
	}
}
