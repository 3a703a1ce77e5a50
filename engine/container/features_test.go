package container_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

func TestLogsRotateAndSurviveRestart(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", `i=0; while [ $i -lt 150 ]; do echo "line $i of a run that writes enough to rotate the log"; i=$((i+1)); done; echo err >&2; printf tail`)
	cfg.Log = engine.LogConfig{MaxSize: 8 << 10, MaxFiles: 3}
	c := v.start(cfg)
	if _, err := v.rt.Wait(t.Context(), c.ID, engine.WaitNotRunning); err != nil {
		t.Fatal(err)
	}
	if err := v.rt.Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.rt.Wait(t.Context(), c.ID, engine.WaitNotRunning); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(v.inspect(c.ID).LogPath)
	files, _ := filepath.Glob(filepath.Join(dir, "container.log*"))
	if len(files) != 3 {
		t.Errorf("log files %v, want 3 (rotated)", files)
	}
	var total int64
	for _, f := range files {
		st, _ := os.Stat(f)
		total += st.Size()
		if st.Size() > 8<<10+200 {
			t.Errorf("%s is %d bytes, over the 8 KiB limit", f, st.Size())
		}
	}
	var got []engine.LogEntry
	err := v.rt.Logs(t.Context(), c.ID, engine.LogOptions{Tail: -1}, func(e engine.LogEntry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each stream keeps its order; the two streams interleave as they
	// were read, as with any runtime.
	var stdout, stderr []string
	for _, e := range got {
		if e.Stream == "stderr" {
			stderr = append(stderr, string(e.Line))
		} else {
			stdout = append(stdout, string(e.Line))
		}
	}
	n := len(stdout)
	if n < 2 || stdout[n-1] != "tail" || !strings.HasPrefix(stdout[n-2], "line 149 ") || !strings.HasPrefix(stdout[0], "line ") {
		t.Fatalf("stdout ends with %q", stdout[max(0, n-3):])
	}
	// Both runs are in the logs (the first one's "tail" has no newline,
	// the second run's first line follows it), the oldest lines rotated away.
	runs := 0
	for _, l := range stdout {
		if strings.HasPrefix(l, "line 149 ") {
			runs++
		}
	}
	if runs != 2 || strings.HasPrefix(stdout[0], "line 0 ") || len(stderr) == 0 {
		t.Errorf("after a restart and rotation: %d runs, first line %q, stderr %q", runs, stdout[0], stderr)
	}
	var tail []string
	err = v.rt.Logs(t.Context(), c.ID, engine.LogOptions{Tail: 2}, func(e engine.LogEntry) error {
		tail = append(tail, string(e.Line))
		return nil
	})
	if err != nil || len(tail) != 2 {
		t.Errorf("tail 2 = %q, %v", tail, err)
	}
}

func TestLogsFollow(t *testing.T) {
	v := newEnv(t)
	c := v.start(v.config("sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"))
	var got []string
	start := time.Now()
	err := v.rt.Logs(t.Context(), c.ID, engine.LogOptions{Follow: true, Tail: -1}, func(e engine.LogEntry) error {
		got = append(got, string(e.Line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[1\n 2\n 3\n]" {
		t.Errorf("followed %q", got)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("follow did not end with the container")
	}
}

func TestNamedVolumeSurvivesRemove(t *testing.T) {
	v := newEnv(t)
	vol := "vol-" + uniqueName(t)
	t.Cleanup(func() { _ = v.e.Volumes().Remove(t.Context(), vol) })
	mount := []engine.Mount{{Type: engine.MountVolume, Source: vol, Target: "/data"}}
	cfg := v.config("sh", "-c", "cat /data/seed; echo kept > /data/new")
	cfg.Mounts = mount
	out, _, err := v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// An empty named volume is first filled from the image.
	if out != "from the image\n" {
		t.Errorf("first run: %q", out)
	}
	cs, _ := v.rt.List(t.Context(), engine.ListContainersOptions{All: true})
	for _, c := range cs {
		if err := v.rt.Remove(t.Context(), c.ID, engine.RemoveContainerOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg = v.config("cat", "/data/new", "/data/seed")
	cfg.Mounts = mount
	cfg.AutoRemove = true
	out, _, err = v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if out != "kept\nfrom the image\n" {
		t.Errorf("after re-create: %q", out)
	}
}

func TestMounts(t *testing.T) {
	v := newEnv(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "f"), []byte("hostfile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := v.config("sh", "-c", `cat /host/f; echo x > /host/g && echo wrote-host; echo y > /ro/f && echo wrote-ro; echo z > /scratch/z && echo wrote-tmpfs; df -k /scratch | tail -1 | awk '{print "size="$2}'`)
	cfg.Mounts = []engine.Mount{
		{Type: engine.MountBind, Source: host, Target: "/host"},
		{Type: engine.MountBind, Source: host, Target: "/ro", ReadOnly: true},
		{Type: engine.MountTmpfs, Target: "/scratch", TmpfsSize: 4 << 20},
	}
	cfg.AutoRemove = true
	out, _, err := v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"hostfile\n", "wrote-host\n", "wrote-tmpfs\n", "size=4096\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("want %q in:\n%s", w, out)
		}
	}
	if strings.Contains(out, "wrote-ro") {
		t.Errorf("read-only bind mount was writable:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(host, "g")); err != nil {
		t.Errorf("write through the bind mount: %v", err)
	}
	// A missing bind source is a clear error at create.
	cfg = v.config("true")
	cfg.Mounts = []engine.Mount{{Type: engine.MountBind, Source: "/nonexistent/berth", Target: "/x"}}
	_, err = v.rt.Create(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "bind source path does not exist: /nonexistent/berth") {
		t.Errorf("missing bind source: %v", err)
	}
}

func TestReadOnlyRootfs(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", "touch /x && echo wrote-root; touch /tmp/y && echo wrote-tmp; echo ok")
	cfg.ReadOnlyRootfs = true
	cfg.AutoRemove = true
	out, _, err := v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "wrote") || !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "ok") {
		t.Errorf("read-only rootfs:\n%s", out)
	}
}

func TestExecSharesPidNamespace(t *testing.T) {
	v := newEnv(t)
	c := v.start(v.config("sleep", "3600"))
	out, code := v.exec(c.ID, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo self=$$; hostname; id -u; pwd")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	l := lines(out)
	if len(l) < 5 || l[0] != "sleep 3600 " || l[2] != v.inspect(c.ID).Config.Hostname && l[2] != c.ID[:12] || l[3] != "0" || l[4] != "/" {
		t.Errorf("exec output:\n%s", out)
	}
	if pid := strings.TrimPrefix(l[1], "self="); pid == "" || len(pid) > 4 {
		t.Errorf("exec pid %q is not a pid of the container's namespace", pid)
	}
	// Capabilities, user, environment and workdir of an exec.
	var buf enginetest.SyncBuffer
	code, err := v.rt.Exec(t.Context(), c.ID, engine.ExecConfig{Cmd: []string{"sh", "-c", "id; pwd; echo $X; grep CapEff /proc/self/status"}, User: "alice", WorkingDir: "/home/alice", Env: []string{"X=y"}},
		engine.Streams{Stdout: &buf, Stderr: &buf})
	if err != nil || code != 0 {
		t.Fatalf("exec as alice: %d, %v", code, err)
	}
	for _, w := range []string{"uid=1000(alice) gid=1000(alice) groups=50(staff)", "/home/alice\n", "y\n", "CapEff:\t0000000000000000"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("want %q in:\n%s", w, buf.String())
		}
	}
	code, err = v.rt.Exec(t.Context(), c.ID, engine.ExecConfig{Cmd: []string{"sh", "-c", "exit 5"}}, engine.Streams{})
	if err != nil || code != 5 {
		t.Errorf("exec exit code %d, %v", code, err)
	}
	_, err = v.rt.Exec(t.Context(), c.ID, engine.ExecConfig{Cmd: []string{"nosuch"}}, engine.Streams{})
	if err == nil || !strings.Contains(err.Error(), `exec: "nosuch": executable file not found in $PATH`) {
		t.Errorf("exec of a missing command: %v", err)
	}
	// Stdin reaches the process.
	buf = enginetest.SyncBuffer{}
	code, err = v.rt.Exec(t.Context(), c.ID, engine.ExecConfig{Cmd: []string{"cat"}}, engine.Streams{Stdin: strings.NewReader("piped\n"), Stdout: &buf})
	if err != nil || code != 0 || buf.String() != "piped\n" {
		t.Errorf("exec with stdin: %q, %d, %v", buf.String(), code, err)
	}
}

func TestUserAndWorkdir(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", "id; pwd; echo $HOME; touch f && echo wrote")
	cfg.User = "alice"
	cfg.WorkingDir = "/home/alice/work"
	cfg.AutoRemove = true
	out, _, err := v.run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The missing working directory is created (owned by root, as Docker
	// does), so alice cannot write there.
	for _, w := range []string{"uid=1000(alice) gid=1000(alice) groups=50(staff)\n", "/home/alice/work\n", "/home/alice\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("want %q in:\n%s", w, out)
		}
	}
	cfg = v.config("id")
	cfg.User = "1234:50"
	cfg.AutoRemove = true
	if out, _, err = v.run(cfg); err != nil || out != "uid=1234 gid=50(staff) groups=50(staff)\n" && out != "uid=1234 gid=50(staff)\n" {
		t.Errorf("numeric user: %q, %v", out, err)
	}
	cfg = v.config("id")
	cfg.User = "nobody-here"
	if _, _, err = v.run(cfg); err == nil || !strings.Contains(err.Error(), "unable to find user nobody-here") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestTTYAndStdin(t *testing.T) {
	v := newEnv(t)
	cfg := v.config("sh", "-c", "tty; test -t 0 && echo stdin-is-tty; echo $TERM; stty size")
	cfg.Tty = true
	cfg.AutoRemove = true
	out, ex, err := v.run(cfg)
	if err != nil || ex.Code != 0 {
		t.Fatalf("%v, %d: %s", err, ex.Code, out)
	}
	for _, w := range []string{"/dev/pts/0", "stdin-is-tty", "xterm"} {
		if !strings.Contains(out, w) {
			t.Errorf("want %q in:\n%q", w, out)
		}
	}
	// docker run -i: stdin reaches the process and its end closes it.
	cfg = v.config("sh", "-c", "cat; echo end")
	cfg.OpenStdin = true
	cfg.AutoRemove = true
	var buf enginetest.SyncBuffer
	_, wait, err := v.rt.Run(t.Context(), cfg, &engine.Streams{Stdin: strings.NewReader("hello stdin\n"), Stdout: &buf, Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "hello stdin\nend\n" {
		t.Errorf("stdin: %q", buf.String())
	}
}

func TestMonitorDeathIsSeen(t *testing.T) {
	v := newEnv(t)
	c := v.start(v.config("sleep", "3600"))
	dir := filepath.Dir(v.inspect(c.ID).LogPath)
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Monitor struct{ Pid int } `json:"monitor"`
	}
	_ = json.Unmarshal(data, &st)
	pid := st.Monitor.Pid
	if pid <= 0 {
		t.Fatalf("no monitor pid in %s", data)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The init dies with its monitor (parent-death signal); the record is
	// not trusted: the container reads as dead.
	waitFor(t, 5*time.Second, "the container to read as dead", func() bool {
		return v.inspect(c.ID).State.Status == engine.StatusDead
	})
	if err := v.rt.Start(t.Context(), c.ID); err != nil {
		t.Fatalf("start of a dead container: %v", err)
	}
	if !v.inspect(c.ID).State.Running {
		t.Error("not running after start")
	}
}
