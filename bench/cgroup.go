package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/cgroup"
)

func init() {
	register(Bench{
		Name:   "cgroup/lifecycle",
		Target: "< 10 ms p50",
		Root:   true,
		Run:    benchCgroupLifecycle,
	})
}

const (
	cgroupRuns         = 50
	cgroupWarmups      = 3
	cgroupTargetMillis = 10
)

// benchCgroupLifecycle times the cgroup work of one container's life: New
// with limits, Add of its (already started) init, KillAll, Delete. It is
// part of the 40 ms `berth run --rm` budget; starting the process itself is
// not counted.
func benchCgroupLifecycle(ctx context.Context, _ *Env) (Result, error) {
	var times, adds Durations
	for i := range cgroupWarmups + cgroupRuns {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		cmd := exec.CommandContext(ctx, "/bin/busybox", "sleep", "60")
		if err := cmd.Start(); err != nil {
			return Result{}, err
		}
		total, add, err := cgroupLife(ctx, cmd.Process.Pid)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			return Result{}, err
		}
		if i >= cgroupWarmups {
			times = append(times, total)
			adds = append(adds, add)
		}
	}
	p50 := times.Percentile(50)
	return Result{
		Value: ms(p50) + " p50",
		Pass:  p50 < cgroupTargetMillis*time.Millisecond,
		Notes: fmt.Sprintf("%s mode; %s; Add alone %s", cgroup.HostMode(), times.Summary(), adds.Summary()),
	}, nil
}

func cgroupLife(ctx context.Context, pid int) (total, add time.Duration, err error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	start := time.Now()
	cg, err := cgroup.New(cgroup.PathFor("bench-"+hex.EncodeToString(b)), engine.Resources{MemoryBytes: 256 << 20, NanoCPUs: 1e9, PidsLimit: 100})
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil { // leave nothing behind
			_ = cg.KillAll(context.WithoutCancel(ctx))
			_ = cg.Delete()
		}
	}()
	addStart := time.Now()
	if err := cg.Add(pid); err != nil {
		return 0, 0, err
	}
	add = time.Since(addStart)
	if err := cg.KillAll(ctx); err != nil {
		return 0, 0, err
	}
	if err := cg.Delete(); err != nil {
		return 0, 0, err
	}
	return time.Since(start), add, nil
}
