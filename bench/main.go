// Command bench measures berth against the targets its issues set and prints
// one table. Run it with `make bench` (as root: most benchmarks start real
// containers). Select benchmarks with -run REGEXP.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"
)

// Bench is one measurement.
type Bench struct {
	Name   string // short, unique, e.g. "spec/load-1000"
	Target string // the target, human readable ("< 100 ms")
	// Root says the benchmark needs root; without root it is reported as skipped.
	Root bool
	Run  func(ctx context.Context, env *Env) (Result, error)
}

// Result is what a benchmark measured.
type Result struct {
	Value string // the headline figure, e.g. "41.2 ms p50"
	Pass  bool   // met its target
	Notes string // anything else worth a line: comparisons, other percentiles
}

// Env is what benchmarks share.
type Env struct {
	Berth string // absolute path of the built berth binary
	Repo  string // repository root
}

var benches []Bench

func register(b Bench) { benches = append(benches, b) }

func main() {
	run := flag.String("run", ".", "run only benchmarks whose name matches this regexp")
	bin := flag.String("berth", "bin/berth", "berth binary")
	flag.Parse()
	re, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	repo, _ := os.Getwd()
	berth, _ := filepath.Abs(*bin)
	env := &Env{Berth: berth, Repo: repo}

	sort.SliceStable(benches, func(i, j int) bool { return benches[i].Name < benches[j].Name })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tRESULT\tTARGET\tOK\tNOTES")
	failed := false
	for _, b := range benches {
		if !re.MatchString(b.Name) {
			continue
		}
		if b.Root && os.Geteuid() != 0 {
			fmt.Fprintf(tw, "%s\t-\t%s\tskip\trequires root\n", b.Name, b.Target)
			continue
		}
		start := time.Now()
		res, err := b.Run(ctx, env)
		if err != nil {
			failed = true
			fmt.Fprintf(tw, "%s\terror\t%s\tFAIL\t%v\n", b.Name, b.Target, err)
			tw.Flush()
			continue
		}
		ok := "yes"
		if !res.Pass {
			ok = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%.1fs)\n", b.Name, res.Value, b.Target, ok, res.Notes, time.Since(start).Seconds())
		tw.Flush()
	}
	tw.Flush()
	if failed {
		os.Exit(1)
	}
}
