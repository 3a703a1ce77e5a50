package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/enginetest"
)

func init() {
	register(Bench{Name: "container/run-rm-true", Target: "<= 40 ms p50", Root: true, Run: benchRunTrue})
	register(Bench{Name: "container/start-20", Target: "< 1 s for 20", Root: true, Run: benchStart20})
	register(Bench{Name: "container/log-throughput", Target: ">= 100 MB/s", Root: true, Run: benchLogThroughput})
}

// berthRoot is a fresh data root with the busybox image, driven through the
// berth binary as a user would.
type berthRoot struct {
	bin, root string
}

func newBerthRoot(ctx context.Context, env *Env) (*berthRoot, func(), error) {
	root, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return nil, nil, err
	}
	b := &berthRoot{bin: env.Berth, root: root}
	cleanup := func() {
		out, _ := b.run(context.Background(), "ps", "-aq", "--no-trunc")
		for _, id := range strings.Fields(out) {
			_, _ = b.run(context.Background(), "rm", "-f", id)
		}
		// Networks are kernel objects (bridges, nftables tables): removing
		// the data root would orphan them. prune spares "bridge", so it goes
		// by name.
		_, _ = b.run(context.Background(), "network", "prune", "-f")
		_, _ = b.run(context.Background(), "network", "rm", "bridge")
		_ = os.RemoveAll(root)
	}
	data, err := enginetest.BusyboxTar()
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	tarball := filepath.Join(root, "busybox.tar")
	if err := os.WriteFile(tarball, data, 0o644); err != nil {
		cleanup()
		return nil, nil, err
	}
	args := []string{"image", "import", tarball, "busybox"}
	for _, c := range enginetest.BusyboxChanges {
		args = append(args, "--change", c)
	}
	if _, err := b.run(ctx, args...); err != nil {
		cleanup()
		return nil, nil, err
	}
	return b, cleanup, nil
}

func (b *berthRoot) run(ctx context.Context, args ...string) (string, error) {
	out, _, err := b.runCPU(ctx, args...)
	return out, err
}

// runCPU is run that also returns the CPU time (user and system) of the
// command and of the processes it waited for: for berth run --rm, the
// container's monitor and, through it, its init.
func (b *berthRoot) runCPU(ctx context.Context, args ...string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, b.bin, append([]string{"--data-root", b.root}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), 0, fmt.Errorf("berth %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// benchRunTrue times the whole CLI: berth run --rm --network none busybox
// true, from exec of berth to its exit.
func benchRunTrue(ctx context.Context, env *Env) (Result, error) {
	b, cleanup, err := newBerthRoot(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	var times, cpus, version Durations
	for i := range 5 + 40 {
		start := time.Now()
		_, cpu, err := b.runCPU(ctx, "run", "--rm", "--network", "none", "busybox", "true")
		if err != nil {
			return Result{}, err
		}
		if i >= 5 {
			times, cpus = append(times, time.Since(start)), append(cpus, cpu)
		}
	}
	for range 20 {
		start := time.Now()
		if _, err := b.run(ctx, "version"); err != nil {
			return Result{}, err
		}
		version = append(version, time.Since(start))
	}
	p50 := times.Percentile(50)
	return Result{
		Value: ms(p50) + " p50",
		Pass:  p50 <= 40*time.Millisecond,
		Notes: fmt.Sprintf("%s; CPU (berth, monitor, init) %s p50; berth version alone %s; %s; docker 504 ms, podman 339 ms, runc 59 ms",
			times.Summary(), ms(cpus.Percentile(50)), ms(version.Percentile(50)), imageLoad()),
	}, nil
}

// benchStart20 creates and starts 20 sleeping containers with berth run -d,
// then reports the memory of their monitors.
func benchStart20(ctx context.Context, env *Env) (Result, error) {
	b, cleanup, err := newBerthRoot(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	start := time.Now()
	for i := range 20 {
		if _, err := b.run(ctx, "run", "-d", "--network", "none", "--name", "s"+strconv.Itoa(i), "busybox", "sleep", "3600"); err != nil {
			return Result{}, err
		}
	}
	took := time.Since(start)
	// Memory at rest: a monitor sheds the pages only its start-up used a
	// second after its container started.
	time.Sleep(1500 * time.Millisecond)
	mem, err := monitorMemory(ctx, b)
	if err != nil {
		return Result{}, err
	}
	return Result{
		Value: fmt.Sprintf("%.2f s", took.Seconds()),
		Pass:  took < time.Second,
		Notes: fmt.Sprintf("%.0f ms each; %s (docker run -d x20: 10 s, podman 6.4 s)", float64(took.Milliseconds())/20, mem),
	}, nil
}

// monitorMemory reads PSS and RSS of every monitor of b from smaps_rollup.
func monitorMemory(ctx context.Context, b *berthRoot) (string, error) {
	out, err := b.run(ctx, "-o", "json", "ps")
	if err != nil {
		return "", err
	}
	var cs []engine.Container
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		return "", err
	}
	var pss, rss []int
	for _, c := range cs {
		data, err := os.ReadFile(filepath.Join(b.root, "containers", c.ID, "state.json"))
		if err != nil {
			return "", err
		}
		var st struct {
			Monitor struct{ Pid int } `json:"monitor"`
		}
		if err := json.Unmarshal(data, &st); err != nil {
			return "", err
		}
		p, r, err := smapsRollup(st.Monitor.Pid)
		if err != nil {
			return "", err
		}
		pss, rss = append(pss, p), append(rss, r)
	}
	if len(pss) == 0 {
		return "", fmt.Errorf("no monitors")
	}
	avg := func(v []int) float64 {
		s := 0
		for _, x := range v {
			s += x
		}
		return float64(s) / float64(len(v)) / 1024
	}
	maxOf := func(v []int) float64 {
		m := 0
		for _, x := range v {
			m = max(m, x)
		}
		return float64(m) / 1024
	}
	ok := "within"
	if maxOf(pss) >= 3 || maxOf(rss) >= 6 {
		ok = "OVER"
	}
	return fmt.Sprintf("monitors (%d): PSS avg %.2f MB max %.2f MB, RSS avg %.2f MB max %.2f MB (%s PSS < 3 MB, RSS < 6 MB)",
		len(pss), avg(pss), maxOf(pss), avg(rss), maxOf(rss), ok), nil
}

func smapsRollup(pid int) (pssKB, rssKB int, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Pss:":
			pssKB = n
		case "Rss:":
			rssKB = n
		}
	}
	return pssKB, rssKB, s.Err()
}

// benchLogThroughput has a container write 512 MiB of 100-byte lines to
// stdout (a 64 MiB file of them, catted 8 times) and measures, from the
// timestamps the monitor put on the first and last records, how fast the
// monitor took them into the log: the container blocks when the monitor
// falls behind, so that is the logging rate.
func benchLogThroughput(ctx context.Context, env *Env) (Result, error) {
	b, cleanup, err := newBerthRoot(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	const chunk, times = 64 << 20, 8
	script := fmt.Sprintf("yes %s | head -c %d > /tmp/chunk; echo start; cat%s", strings.Repeat("x", 99), chunk, strings.Repeat(" /tmp/chunk", times))
	id, err := b.run(ctx, "run", "-d", "--network", "none", "--log-opt", "max-size=64m", "--log-opt", "max-file=20", "busybox", "sh", "-c", script)
	if err != nil {
		return Result{}, err
	}
	id = strings.TrimSpace(id)
	if _, err := b.run(ctx, "wait", id); err != nil {
		return Result{}, err
	}
	logs, _ := filepath.Glob(filepath.Join(b.root, "containers", id, "container.log*"))
	var first, last time.Time
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			return Result{}, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasSuffix(line, " F start") {
				first, _ = time.Parse(time.RFC3339Nano, strings.Fields(line)[0])
				break
			}
		}
		if filepath.Base(l) == "container.log" {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			last, _ = time.Parse(time.RFC3339Nano, strings.Fields(lines[len(lines)-1])[0])
		}
	}
	if first.IsZero() || last.IsZero() {
		return Result{}, fmt.Errorf("log throughput: no start or end record in %v", logs)
	}
	took := last.Sub(first)
	rate := float64(chunk*times) / took.Seconds() / 1e6
	return Result{
		Value: fmt.Sprintf("%.0f MB/s", rate),
		Pass:  rate >= 100,
		Notes: fmt.Sprintf("512 MiB of 100-byte lines logged in %s (CRI format, 45%% more bytes on disk, rotated at 64 MiB)", took.Round(time.Millisecond)),
	}, nil
}
