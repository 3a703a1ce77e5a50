package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"berth.dev/berth/engine/enginetest"
)

func init() {
	register(Bench{
		Name:   "image/pull-busybox",
		Target: "<= 50 ms p50",
		Run:    benchImagePullBusybox,
	})
	register(Bench{
		Name:   "image/pull-5-layers-200MB",
		Target: ">= 300 MB/s",
		Run:    benchImagePullLarge,
	})
	register(Bench{
		Name:   "image/registry-rss-1GiB-push",
		Target: "< 64 MB RSS",
		Run:    benchRegistryRSS,
	})
}

const (
	imagePullRuns    = 20
	imagePullWarmups = 2
	imageLargeRuns   = 3
)

// imageRegistry is a `berth registry serve` child process on 127.0.0.1.
type imageRegistry struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

func startImageRegistry(ctx context.Context, env *Env) (*imageRegistry, error) {
	dir, err := os.MkdirTemp("", "berth-bench-registry-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, env.Berth, "registry", "serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(dir, "root"), "--access-log", "")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start registry: %w", err)
	}
	r := &imageRegistry{cmd: cmd, dir: dir}
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		r.stop()
		return nil, fmt.Errorf("registry did not start: %q %v", line, err)
	}
	r.addr = strings.Fields(line)[2]
	go io.Copy(io.Discard, stderr)
	return r, nil
}

func (r *imageRegistry) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
	os.RemoveAll(r.dir)
}

// push sends one blob (monolithic POST) or a manifest.
func (r *imageRegistry) put(ctx context.Context, method, path, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	return nil
}

func imageDigest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// timeBerth runs the berth CLI once and returns its wall time.
func timeBerth(ctx context.Context, env *Env, args ...string) (time.Duration, error) {
	d, _, err := timeBerthCPU(ctx, env, args...)
	return d, err
}

// timeBerthCPU runs the berth CLI once and returns its wall and CPU (user
// plus system) time.
func timeBerthCPU(ctx context.Context, env *Env, args ...string) (wall, cpu time.Duration, err error) {
	cmd := exec.CommandContext(ctx, env.Berth, args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return wall, 0, fmt.Errorf("berth %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// imagePullSetup starts a registry and makes a work directory for the data
// roots of the runs; cleanup removes both.
func imagePullSetup(ctx context.Context, env *Env) (*imageRegistry, string, func(), error) {
	reg, err := startImageRegistry(ctx, env)
	if err != nil {
		return nil, "", nil, err
	}
	work, err := os.MkdirTemp("", "berth-bench-pull-")
	if err != nil {
		reg.stop()
		return nil, "", nil, err
	}
	return reg, work, func() { reg.stop(); os.RemoveAll(work) }, nil
}

// benchImagePullBusybox times `berth pull` of a one-layer busybox image from
// `berth registry serve` on 127.0.0.1 into a fresh data root each run: the
// whole command, from exec to exit.
func benchImagePullBusybox(ctx context.Context, env *Env) (Result, error) {
	reg, work, cleanup, err := imagePullSetup(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()

	// The image: the static busybox and a hard link to it per applet, as in
	// Docker's official busybox image, imported and pushed with berth
	// itself.
	rootfs := filepath.Join(work, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return Result{}, fmt.Errorf("needs /bin/busybox (busybox-static): %w", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return Result{}, err
	}
	list, err := exec.CommandContext(ctx, "/bin/busybox", "--list").Output()
	if err != nil {
		return Result{}, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			if err := os.Link(filepath.Join(rootfs, "bin", "busybox"), filepath.Join(rootfs, "bin", applet)); err != nil {
				return Result{}, err
			}
		}
	}
	ref := reg.addr + "/library/busybox:latest"
	setup := filepath.Join(work, "setup")
	if _, err := timeBerth(ctx, env, "--data-root", setup, "image", "import", rootfs, ref, "--change", `CMD ["sh"]`); err != nil {
		return Result{}, err
	}
	if _, err := timeBerth(ctx, env, "--data-root", setup, "push", "-q", ref); err != nil {
		return Result{}, err
	}

	// Every run gets a fresh data root; they are all removed at the end, not
	// between runs: ext4 makes the next run's new inodes pay for scanning
	// the ones just deleted (recently_deleted in find_inode_bit), which is
	// a cost of the benchmark's clean-up, not of a pull.
	var times Durations
	for i := range imagePullWarmups + imagePullRuns {
		root := filepath.Join(work, "run-"+strconv.Itoa(i))
		d, err := timeBerth(ctx, env, "--data-root", root, "pull", "-q", ref)
		if err != nil {
			return Result{}, err
		}
		if i >= imagePullWarmups {
			times = append(times, d)
		}
	}
	p50 := times.Percentile(50)
	return Result{
		Value: ms(p50) + " p50",
		Pass:  p50 <= 50*time.Millisecond,
		Notes: fmt.Sprintf("%s; busybox %s and %d hard links; fresh data root per run; %s (skopeo copy: 71 ms)", times.Summary(), imageMB(int64(len(bb))), len(strings.Fields(string(list)))-1, imageLoad()),
	}, nil
}

func imageMB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// benchImagePullLarge times `berth pull` (the whole command, download and
// unpack) of a 5-layer image of 200 MB into a fresh data root.
func benchImagePullLarge(ctx context.Context, env *Env) (Result, error) {
	reg, work, cleanup, err := imagePullSetup(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()

	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	var layers []desc
	var diffIDs []string
	var total, compressed int64
	for i := range 5 {
		tarData := enginetest.SyntheticLayer(uint64(i+1), 40<<20)
		total += int64(len(tarData))
		diffIDs = append(diffIDs, imageDigest(tarData))
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(tarData)
		w.Close()
		compressed += int64(z.Len())
		d := imageDigest(z.Bytes())
		if err := reg.put(ctx, http.MethodPost, "/v2/bench/large/blobs/uploads/?digest="+d, "application/octet-stream", z.Bytes()); err != nil {
			return Result{}, err
		}
		layers = append(layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", d, int64(z.Len())})
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
		"config": map[string]any{"Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err := reg.put(ctx, http.MethodPost, "/v2/bench/large/blobs/uploads/?digest="+imageDigest(cfg), "application/octet-stream", cfg); err != nil {
		return Result{}, err
	}
	mf, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{"application/vnd.oci.image.config.v1+json", imageDigest(cfg), int64(len(cfg))},
		"layers": layers,
	})
	if err := reg.put(ctx, http.MethodPut, "/v2/bench/large/manifests/latest", "application/vnd.oci.image.manifest.v1+json", mf); err != nil {
		return Result{}, err
	}

	var times, cpus Durations
	for i := range imageLargeRuns { // fresh data roots, removed at the end (see above)
		root := filepath.Join(work, "run-"+strconv.Itoa(i))
		d, cpu, err := timeBerthCPU(ctx, env, "--data-root", root, "pull", "-q", reg.addr+"/bench/large")
		if err != nil {
			return Result{}, err
		}
		times, cpus = append(times, d), append(cpus, cpu)
	}
	p50 := times.Percentile(50)
	rate := float64(total) / 1e6 / p50.Seconds()
	return Result{
		Value: fmt.Sprintf("%.0f MB/s", rate),
		Pass:  rate >= 300,
		Notes: fmt.Sprintf("%s uncompressed (%s gzip) in %s p50 (%s), CPU %s p50; %.0f MB/s compressed; %s", imageMB(total), imageMB(compressed), ms(p50), times.Summary(), ms(cpus.Percentile(50)), float64(compressed)/1e6/p50.Seconds(), imageLoad()),
	}, nil
}

// benchRegistryRSS streams a 1 GiB blob into `berth registry serve` (PATCH
// without a length, then PUT with the digest) and reads the server's peak
// resident set (VmHWM) from /proc.
func benchRegistryRSS(ctx context.Context, env *Env) (Result, error) {
	reg, err := startImageRegistry(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer reg.stop()
	pid := reg.cmd.Process.Pid
	before, _ := imageProcKB(pid, "VmRSS")

	resp, err := http.Post("http://"+reg.addr+"/v2/bench/rss/blobs/uploads/", "", nil)
	if err != nil {
		return Result{}, err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")

	const size = 1 << 30
	chunk := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	h := sha256.New()
	pr, pw := io.Pipe()
	go func() {
		w := io.MultiWriter(pw, h)
		for sent := 0; sent < size; sent += len(chunk) {
			// Vary each chunk so that nothing could dedupe it.
			chunk[0], chunk[1] = byte(sent>>20), byte(sent>>28)
			if _, err := w.Write(chunk); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	peak := int64(0)
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if kb, err := imageProcKB(pid, "VmRSS"); err == nil && kb > peak {
				peak = kb
			}
			select {
			case <-stopSample:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPatch, "http://"+reg.addr+loc, pr)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		close(stopSample)
		return Result{}, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		close(stopSample)
		return Result{}, fmt.Errorf("PATCH: %d", resp.StatusCode)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, "http://"+reg.addr+resp.Header.Get("Location")+"?digest="+digest, nil)
	resp, err = http.DefaultClient.Do(req)
	close(stopSample)
	<-sampled
	if err != nil {
		return Result{}, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return Result{}, fmt.Errorf("PUT: %d", resp.StatusCode)
	}
	elapsed := time.Since(start)
	hwm, err := imageProcKB(pid, "VmHWM")
	if err != nil {
		return Result{}, err
	}
	return Result{
		Value: fmt.Sprintf("%.1f MB", float64(hwm)/1024),
		Pass:  hwm < 64*1024,
		Notes: fmt.Sprintf("VmHWM (peak RSS) of the server; idle %.1f MB, sampled peak %.1f MB; 1 GiB in %s (%.0f MB/s)", float64(before)/1024, float64(peak)/1024, elapsed.Round(time.Millisecond), float64(size)/1e6/elapsed.Seconds()),
	}, nil
}

// imageLoad is the 1-minute load average, for reading timings taken on a
// shared machine.
func imageLoad() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	return "load " + strings.Fields(string(data))[0]
}

// imageProcKB reads a "Vm..." field of /proc/PID/status in kB.
func imageProcKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}
