package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth.dev/berth/spec"
)

func init() {
	register(Bench{
		Name:   "spec/load-validate-hash-1000",
		Target: "< 100 ms p50",
		Run:    benchSpecLoad,
	})
}

const (
	specFiles        = 100
	specPerFile      = 10 // 1 network, 1 volume, 1 image, 7 containers
	specRuns         = 30
	specWarmups      = 3
	specTargetMillis = 100
)

// benchSpecLoad times spec.Load of 1,000 resources over 100 files, plus a
// Hash of every resource: what plan, apply and every watch reconcile pay
// before they look at the host.
func benchSpecLoad(ctx context.Context, _ *Env) (Result, error) {
	dir, err := os.MkdirTemp("", "berth-bench-spec-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	size, err := writeSpecTree(dir)
	if err != nil {
		return Result{}, err
	}

	var times Durations
	for i := range specWarmups + specRuns {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		start := time.Now()
		set, err := spec.Load(dir)
		if err != nil {
			return Result{}, fmt.Errorf("load generated manifests: %w", err)
		}
		for _, r := range set.Resources() {
			_ = spec.Hash(r)
		}
		elapsed := time.Since(start)
		if set.Len() != specFiles*specPerFile {
			return Result{}, fmt.Errorf("loaded %d resources, want %d", set.Len(), specFiles*specPerFile)
		}
		if i >= specWarmups {
			times = append(times, elapsed)
		}
	}
	p50 := times.Percentile(50)
	return Result{
		Value: ms(p50) + " p50",
		Pass:  p50 < specTargetMillis*time.Millisecond,
		Notes: fmt.Sprintf("%s; %d resources in %d files, %d KiB", times.Summary(), specFiles*specPerFile, specFiles, size>>10),
	}, nil
}

// writeSpecTree writes a realistic manifest tree: per file (in its own
// directory, ten per parent) a network, a volume, an image and seven
// containers of that image with ports, env, an env file, volumes,
// healthchecks and a dependsOn chain. It returns the bytes written.
func writeSpecTree(dir string) (int, error) {
	total := 0
	for f := range specFiles {
		d := filepath.Join(dir, fmt.Sprintf("team-%02d", f/10), fmt.Sprintf("app-%02d", f))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(d, "app.env"), []byte("LOG_LEVEL=info\nREGION=eu-west\n"), 0o644); err != nil {
			return 0, err
		}
		var b strings.Builder
		fmt.Fprintf(&b, `# yaml-language-server: $schema=../../schemas/berth.schema.json
apiVersion: berth.dev/v1alpha1
kind: Network
metadata:
  name: net-%[1]d
  labels: {app: app-%[1]d}
spec:
  subnet: 10.%[1]d.0.0/24
---
apiVersion: berth.dev/v1alpha1
kind: Volume
metadata:
  name: data-%[1]d
---
apiVersion: berth.dev/v1alpha1
kind: Image
metadata:
  name: img-%[1]d
spec:
  ref: registry.example:5000/team/app-%[1]d:1.%[1]d
  pullPolicy: ifNotPresent
`, f)
		for c := range specPerFile - 3 {
			fmt.Fprintf(&b, `---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata:
  name: app-%[1]d-%[2]d
  labels:
    app: app-%[1]d
    tier: "%[2]d"
  annotations:
    owner: team-%[3]d
spec:
  image: registry.example:5000/team/app-%[1]d:1.%[1]d
  command: ["/bin/app", "serve"]
  args: ["--port", "80", "--replica", "%[2]d"]
  env:
    MODE: production
    REPLICA: "%[2]d"
    DATABASE_URL: postgres://db-%[1]d:5432/app
  envFile: app.env
  workingDir: /srv/app
  user: "1000:1000"
  ports:
    - "%[4]d:80"
    - 127.0.0.1:%[5]d:9090
  networks:
    - name: net-%[1]d
      aliases: [svc-%[2]d]
  volumes:
    - data-%[1]d:/var/lib/app
    - ./conf:/etc/app:ro
    - type: tmpfs
      target: /tmp
      size: 64Mi
  restart: unless-stopped
  resources:
    memory: 256Mi
    cpus: "0.5"
    pids: 200
  healthcheck:
    command: ["/bin/app", "health"]
    interval: 5s
    timeout: 2s
    retries: 3
    startPeriod: 10s
  stopSignal: SIGTERM
  stopGracePeriod: 20s
  capDrop: [ALL]
  capAdd: [NET_BIND_SERVICE]
  logging: {maxSize: 10Mi, maxFiles: 3}
`, f, c, f/10, 10000+f*10+c, 20000+f*10+c)
			if c > 0 {
				fmt.Fprintf(&b, "  dependsOn:\n    - name: app-%d-%d\n      condition: healthy\n", f, c-1)
			}
		}
		if err := os.WriteFile(filepath.Join(d, "app.yaml"), []byte(b.String()), 0o644); err != nil {
			return 0, err
		}
		total += b.Len()
	}
	return total, nil
}
