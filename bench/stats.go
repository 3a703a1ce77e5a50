package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Durations summarizes repeated timings.
type Durations []time.Duration

// Percentile returns the p-th percentile (0..100) by nearest rank.
func (d Durations) Percentile(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(Durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

// Summary is "p50 X, p90 Y, n=N".
func (d Durations) Summary() string {
	return fmt.Sprintf("p50 %s, p90 %s, n=%d", ms(d.Percentile(50)), ms(d.Percentile(90)), len(d))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// waitFor polls cond every 2 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}
