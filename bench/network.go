package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/network"
)

// Network benchmarks: the whole CLI (bin/berth as a subprocess) on a data
// root of their own. docker run --rm on these machines: 611 ms, podman run
// --rm: 549 ms.
func init() {
	register(Bench{Name: "network/run-rm-bridge", Target: "<= 60 ms p50, bridge < none + 20 ms", Root: true, Run: benchRunBridge})
	register(Bench{Name: "network/throughput", Target: "report (bridge, published port, loopback)", Root: true, Run: benchThroughput})
	register(Bench{Name: "network/attach-detach", Target: "< 20 ms p50", Root: true, Run: benchAttachDetach})
}

// benchAttachDetach times the network manager alone, in process, for one
// container on a bridge: Sandbox, Attach, Detach, RemoveSandbox. It is what
// a bridge network costs a berth run --rm beyond a process, less the
// namespace (Sandbox), which --network none pays too.
func benchAttachDetach(ctx context.Context, _ *Env) (Result, error) {
	tmp, err := os.MkdirTemp("", "berth-bench-attach-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)
	m, err := network.Open(filepath.Join(tmp, "networks"), network.WithRunDir(filepath.Join(tmp, "run")))
	if err != nil {
		return Result{}, err
	}
	n, err := m.Create(ctx, engine.NetworkConfig{Name: "bench"})
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = m.Remove(context.WithoutCancel(ctx), n.ID) }()
	var sandbox, attach, detach, total Durations
	for i := range 5 + 40 {
		id := fmt.Sprintf("%064x", i+1)
		t0 := time.Now()
		ns, err := m.Sandbox(ctx, id)
		if err != nil {
			return Result{}, err
		}
		t1 := time.Now()
		if _, err := m.Attach(ctx, network.AttachRequest{ContainerID: id, NsPath: ns, Endpoints: []engine.EndpointConfig{{Network: "bench"}}}); err != nil {
			return Result{}, err
		}
		t2 := time.Now()
		if err := m.Detach(ctx, id); err != nil {
			return Result{}, err
		}
		t3 := time.Now()
		if err := m.RemoveSandbox(ctx, id); err != nil {
			return Result{}, err
		}
		t4 := time.Now()
		if i >= 5 {
			sandbox = append(sandbox, t1.Sub(t0))
			attach = append(attach, t2.Sub(t1))
			detach = append(detach, t3.Sub(t2))
			total = append(total, t4.Sub(t0))
		}
		// The kernel destroys the namespace in the background, as it does
		// between two berth runs.
		time.Sleep(50 * time.Millisecond)
	}
	p50 := total.Percentile(50)
	return Result{
		Value: ms(p50) + " p50",
		Pass:  p50 < 20*time.Millisecond,
		Notes: fmt.Sprintf("sandbox %s, attach %s, detach %s (p50s)", ms(sandbox.Percentile(50)), ms(attach.Percentile(50)), ms(detach.Percentile(50))),
	}, nil
}

// netBench is a data root with the busybox image (see newBerthRoot) and, for
// throughput, the tcpbench program.
type netBench struct {
	*berthRoot
	tool    string // directory holding tcpbench, bind-mounted at /b
	cleanup func()
}

func newNetBench(ctx context.Context, env *Env, withTool bool) (*netBench, error) {
	br, cleanup, err := newBerthRoot(ctx, env)
	if err != nil {
		return nil, err
	}
	b := &netBench{berthRoot: br, tool: filepath.Join(br.root, "tool"), cleanup: cleanup}
	if withTool {
		if err := buildTCPBench(ctx, b.tool); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

// close removes the containers, then the networks, then the data root.
func (b *netBench) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := b.run(ctx, "ps", "-aq", "--no-trunc"); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = b.run(ctx, "rm", "-f", id)
		}
	}
	if out, err := b.run(ctx, "network", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			_, _ = b.run(ctx, "network", "rm", id)
		}
	}
	b.cleanup()
}

// benchRunBridge times berth run --rm busybox true on the default bridge
// network and with --network none, alternating so both see the same
// machine.
func benchRunBridge(ctx context.Context, env *Env) (Result, error) {
	b, err := newNetBench(ctx, env, false)
	if err != nil {
		return Result{}, err
	}
	defer b.close()
	run := func(args ...string) (time.Duration, error) {
		start := time.Now()
		_, err := b.run(ctx, append([]string{"run", "--rm"}, append(args, "busybox", "true")...)...)
		return time.Since(start), err
	}
	// Warm up: the first run creates the default network.
	for range 3 {
		if _, err := run(); err != nil {
			return Result{}, err
		}
		if _, err := run("--network", "none"); err != nil {
			return Result{}, err
		}
	}
	// A run that fails is counted, not fatal: the figure is the network's
	// share, and a failure of the rest of the run is reported in the notes.
	var bridge, none Durations
	var failed int
	var lastErr error
	for range 30 {
		for _, mode := range [][]string{nil, {"--network", "none"}} {
			d, err := run(mode...)
			if err != nil {
				failed, lastErr = failed+1, fmt.Errorf("%v: %w", mode, err)
				if failed > 6 {
					return Result{}, err
				}
				continue
			}
			if mode == nil {
				bridge = append(bridge, d)
			} else {
				none = append(none, d)
			}
		}
	}
	p50, p50none := bridge.Percentile(50), none.Percentile(50)
	added := p50 - p50none
	return Result{
		Value: ms(p50) + " p50",
		Pass:  p50 <= 60*time.Millisecond && added < 20*time.Millisecond,
		Notes: fmt.Sprintf("bridge %s; --network none %s; bridge adds %s%s", bridge.Summary(), none.Summary(), ms(added), failures(failed, lastErr)),
	}, nil
}

func failures(n int, err error) string {
	if n == 0 {
		return ""
	}
	msg := strings.TrimSpace(err.Error())
	if i := strings.LastIndex(msg, "berth: "); i >= 0 {
		msg = msg[:strings.Index(msg, ":")] + ": " + msg[i:]
	}
	return fmt.Sprintf("; %d runs failed, the last: %s", n, msg)
}

// benchThroughput measures TCP throughput from one container to another
// on a bridge, from the host through a published port (127.0.0.1, DNAT and
// masquerade), and over the host's loopback, with a static Go sender and
// receiver (3 s each).
func benchThroughput(ctx context.Context, env *Env) (Result, error) {
	b, err := newNetBench(ctx, env, true)
	if err != nil {
		return Result{}, err
	}
	defer b.close()
	tool := filepath.Join(b.tool, "tcpbench")
	const secs = "3"

	// Host loopback.
	rx := exec.CommandContext(ctx, tool, "recv", "127.0.0.1:0")
	stdout, err := rx.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := rx.Start(); err != nil {
		return Result{}, err
	}
	defer func() { _ = rx.Process.Kill(); _ = rx.Wait() }()
	addrLine := make([]byte, 64)
	n, err := stdout.Read(addrLine)
	if err != nil {
		return Result{}, fmt.Errorf("tcpbench recv: %w", err)
	}
	loop, err := runTCPBench(ctx, tool, "send", strings.TrimSpace(string(addrLine[:n])), secs)
	if err != nil {
		return Result{}, err
	}

	// Two containers on one bridge, and a published port.
	if _, err := b.run(ctx, "network", "create", "benchnet"); err != nil {
		return Result{}, err
	}
	port := strconv.Itoa(freePortTCP())
	mount := b.tool + ":/b:ro"
	if _, err := b.run(ctx, "run", "-d", "--name", "rx", "--network", "benchnet", "-p", "127.0.0.1:"+port+":5001", "-v", mount,
		"busybox", "/b/tcpbench", "recv", ":5001"); err != nil {
		return Result{}, err
	}
	if err := waitPort(ctx, "127.0.0.1:"+port); err != nil {
		return Result{}, err
	}
	out, err := b.run(ctx, "run", "--rm", "--network", "benchnet", "-v", mount, "busybox", "/b/tcpbench", "send", "rx:5001", secs)
	if err != nil {
		return Result{}, err
	}
	bridge, err := parseMBps(out)
	if err != nil {
		return Result{}, err
	}
	published, err := runTCPBench(ctx, tool, "send", "127.0.0.1:"+port, secs)
	if err != nil {
		return Result{}, err
	}
	return Result{
		Value: fmt.Sprintf("%.2f Gbit/s bridge", bridge*8/1000),
		Pass:  true,
		Notes: fmt.Sprintf("container->container on a bridge %.2f Gbit/s; host->published port %.2f Gbit/s; host loopback %.2f Gbit/s",
			bridge*8/1000, published*8/1000, loop*8/1000),
	}, nil
}

func runTCPBench(ctx context.Context, tool string, args ...string) (float64, error) {
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("tcpbench %v: %w: %s", args, err, out)
	}
	return parseMBps(string(out))
}

// parseMBps reads tcpbench's "N MB/s" line.
func parseMBps(out string) (float64, error) {
	f := strings.Fields(out)
	for i := 1; i < len(f); i++ {
		if f[i] == "MB/s" {
			return strconv.ParseFloat(f[i-1], 64)
		}
	}
	return 0, fmt.Errorf("tcpbench printed %q", out)
}

func freePortTCP() int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 18080
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(ctx context.Context, addr string) error {
	return waitFor(ctx, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// buildTCPBench builds the static sender/receiver into dir.
func buildTCPBench(ctx context.Context, dir string) error {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module tcpbench\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(tcpBenchSource), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "tcpbench"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build tcpbench: %w: %s", err, out)
	}
	return nil
}

// tcpBenchSource: "recv ADDR" prints its address and discards what every
// connection sends; "send ADDR SECONDS" writes for that long and prints
// "N MB/s".
const tcpBenchSource = `package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	switch os.Args[1] {
	case "recv":
		l, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(l.Addr())
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(1)
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	case "send":
		secs, _ := strconv.Atoi(os.Args[3])
		var c net.Conn
		var err error
		for i := 0; i < 100; i++ {
			if c, err = net.Dial("tcp", os.Args[2]); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		buf := make([]byte, 256<<10)
		var n int64
		start := time.Now()
		for time.Since(start) < time.Duration(secs)*time.Second {
			w, err := c.Write(buf)
			n += int64(w)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		c.Close()
		fmt.Printf("%.1f MB/s\n", float64(n)/1e6/time.Since(start).Seconds())
	}
}
`
