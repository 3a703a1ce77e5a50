package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
	"berth.dev/berth/engine/local"
	"berth.dev/berth/engine/network"
	"berth.dev/berth/engine/reexec"
)

// berthBin is the binary under test, built once by TestMain.
var berthBin string

func TestMain(m *testing.M) {
	if reexec.Init() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	berthBin = filepath.Join(dir, "berth")
	build := exec.Command("go", "build", "-o", berthBin, "berth.dev/berth/cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build berth: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testImage = "127.0.0.1:5000/berth/busybox:1.35"

// host is one data root for a test, with busybox imported as testImage.
type host struct {
	t    *testing.T
	root string

	mu         sync.Mutex
	containers map[string]bool // IDs seen, for the leak check
	bridges    map[string]bool
}

func newHost(t *testing.T) *host {
	t.Helper()
	enginetest.RequireRoot(t)
	enginetest.RequireFeature(t, "overlay")
	// A short root: unix socket paths under it must stay below 108 bytes.
	root, err := os.MkdirTemp("", "be2e-")
	if err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, root: root, containers: map[string]bool{}, bridges: map[string]bool{}}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := h.berth("ps", "-a")
			t.Logf("berth ps -a:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h.destroyEverything(ctx)
		// Monitors' cleanup processes open the data root: let them finish.
		for deadline := time.Now().Add(10 * time.Second); len(h.processes()) > 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		os.RemoveAll(root)
	})
	h.importBusybox()
	return h
}

// importBusybox makes testImage from /bin/busybox with a symlink per applet.
func (h *host) importBusybox() {
	h.t.Helper()
	rootfs := filepath.Join(h.t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "tmp", "www", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			h.t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		h.t.Fatalf("busybox-static: %v", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		h.t.Fatal(err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
		}
	}
	os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	h.mustBerth("image", "import", rootfs, testImage)
}

// berth runs the binary on the host's data root and returns its combined
// output and error (an *exec.ExitError carries the exit code).
func (h *host) berth(args ...string) (string, error) {
	return h.berthCtx(context.Background(), args...)
}

func (h *host) berthCtx(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, berthBin, append([]string{"--data-root", h.root, "--config", ""}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (h *host) mustBerth(args ...string) string {
	h.t.Helper()
	out, err := h.berth(args...)
	if err != nil {
		h.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	h.record()
	return out
}

// exitCode runs berth and returns its exit status.
func (h *host) exitCode(args ...string) (int, string) {
	h.t.Helper()
	out, err := h.berth(args...)
	if err == nil {
		return 0, out
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out
	}
	h.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	return -1, out
}

// engine opens the engine in-process (for observation only).
func (h *host) engine() *local.Engine {
	h.t.Helper()
	e, err := local.Open(h.t.Context(), local.Config{DataRoot: h.root})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { e.Close() })
	return e
}

// record notes the containers and bridges that exist now, for the leak
// check.
func (h *host) record() {
	e, err := local.Open(context.Background(), local.Config{DataRoot: h.root})
	if err != nil {
		return
	}
	defer e.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	if cs, err := e.Containers().List(context.Background(), engine.ListContainersOptions{All: true}); err == nil {
		for _, c := range cs {
			h.containers[c.ID] = true
		}
	}
	if ns, err := e.Networks().List(context.Background(), engine.ListOptions{}); err == nil {
		for _, n := range ns {
			if n.Bridge != "" {
				h.bridges[n.Bridge] = true
			}
		}
	}
}

func (h *host) destroyEverything(ctx context.Context) {
	e, err := local.Open(ctx, local.Config{DataRoot: h.root})
	if err != nil {
		return
	}
	defer e.Close()
	cs, _ := e.Containers().List(ctx, engine.ListContainersOptions{All: true})
	for _, c := range cs {
		_ = e.Containers().Remove(ctx, c.ID, engine.RemoveContainerOptions{Force: true})
	}
	ns, _ := e.Networks().List(ctx, engine.ListOptions{})
	for _, n := range ns {
		_ = e.Networks().Remove(ctx, n.ID)
	}
}

// assertClean fails the test if anything of the host's data root is left
// on the host: containers, mounts, cgroups, bridges, network namespaces,
// processes.
func (h *host) assertClean() {
	h.t.Helper()
	h.record()
	e := h.engine()
	ctx := h.t.Context()
	if cs, err := e.Containers().List(ctx, engine.ListContainersOptions{All: true}); err != nil || len(cs) > 0 {
		h.t.Errorf("containers left: %d (%v)", len(cs), err)
	}
	// Mounts under the data root (rootfs overlays live in the containers'
	// own mount namespaces; netns files are bind mounts under run/).
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if strings.Contains(s.Text(), h.root) {
				h.t.Errorf("mount left: %s", s.Text())
			}
		}
		f.Close()
	}
	if ents, err := os.ReadDir(filepath.Join(h.root, "run", "netns")); err == nil && len(ents) > 0 {
		h.t.Errorf("network namespaces left: %d", len(ents))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.containers {
		matches, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id)
		m2, _ := filepath.Glob("/sys/fs/cgroup/berth/" + id)
		for _, m := range append(matches, m2...) {
			h.t.Errorf("cgroup left: %s", m)
		}
	}
	for br := range h.bridges {
		if _, err := os.Stat("/sys/class/net/" + br); err == nil {
			h.t.Errorf("bridge left: %s", br)
		}
	}
	if n, err := nftRules(network.TableName(h.root)); err != nil {
		h.t.Errorf("nftables: %v", err)
	} else if n > 0 {
		h.t.Errorf("nftables: %d rules left in table %s", n, network.TableName(h.root))
	}
	// No process of ours: monitors and containers name the data root or a
	// container ID on their command line. A monitor's short-lived cleanup
	// role may still be finishing: give processes a few seconds to go.
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left = h.processes()
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range left {
		h.t.Errorf("process left: %s", p)
	}
}

// nftRules counts the rules of the data root's nftables table (0 when the
// table is gone).
func nftRules(table string) (int, error) {
	c, err := nftables.New()
	if err != nil {
		return 0, err
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tables {
		if t.Name != table {
			continue
		}
		chains, err := c.ListChainsOfTableFamily(t.Family)
		if err != nil {
			return 0, err
		}
		for _, ch := range chains {
			if ch.Table.Name != table {
				continue
			}
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return 0, err
			}
			n += len(rules)
		}
	}
	return n, nil
}

// processes lists the live processes that belong to the data root.
func (h *host) processes() []string {
	var out []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		c := string(cmdline)
		leak := strings.Contains(c, h.root)
		for id := range h.containers {
			leak = leak || strings.Contains(c, id)
		}
		if leak && !strings.Contains(c, "berth-e2e-bin") {
			out = append(out, p.Name()+" "+strings.ReplaceAll(c, "\x00", " "))
		}
	}
	return out
}

// copyExample copies examples/NAME into a fresh directory of the same name
// (the project), and returns it.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// examples lists the example directories that hold manifests.
func examples(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		ys, _ := filepath.Glob(filepath.Join("..", "..", "examples", e.Name(), "*.yaml"))
		if len(ys) > 0 {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatal("no examples")
	}
	return out
}

// planJSON runs plan -o json and decodes it.
func (h *host) planJSON(dir string) map[string]any {
	h.t.Helper()
	out, err := h.berth("-o", "json", "plan", dir)
	if err != nil {
		h.t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		h.t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	return doc
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
