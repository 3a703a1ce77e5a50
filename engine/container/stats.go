package container

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/engine"
)

// Stats reads the container's cgroup and network counters now.
func (r *Runtime) Stats(ctx context.Context, ref string) (engine.Stats, error) {
	id, err := r.resolve(ref)
	if err != nil {
		return engine.Stats{}, err
	}
	dir := r.cdir(id)
	rec, err := r.readRecord(dir)
	if err != nil {
		return engine.Stats{}, fmt.Errorf("stats %s: %w", ref, engine.ErrNotFound)
	}
	o := r.observe(dir, rec)
	if err := transition(rec.Name, o.Status, opStats); err != nil {
		return engine.Stats{}, err
	}
	if r.cgroups == nil {
		return engine.Stats{}, fmt.Errorf("stats %s: no cgroup support: %w", rec.Name, engine.ErrUnsupported)
	}
	cg, err := r.cgroups.Load(cgroupPath(id))
	if err != nil {
		return engine.Stats{}, fmt.Errorf("stats %s: %w", rec.Name, err)
	}
	st, err := cg.Stats()
	if err != nil {
		return engine.Stats{}, fmt.Errorf("stats %s: %w", rec.Name, err)
	}
	st.Time = time.Now().UTC()
	st.NetRxBytes, st.NetTxBytes = netCounters(o.Pid)
	return st, nil
}

// netCounters sums the byte counters of a process's network namespace,
// loopback excluded.
func netCounters(pid int) (rx, tx uint64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(fields[0], 10, 64)
		t, _ := strconv.ParseUint(fields[8], 10, 64)
		rx, tx = rx+r, tx+t
	}
	return rx, tx
}
