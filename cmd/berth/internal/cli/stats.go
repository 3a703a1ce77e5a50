package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("stats", NewCmdStats) }

// statsRow is one line of berth stats (and its JSON form).
type statsRow struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	CPUPercent  float64 `json:"cpuPercent"`
	MemoryUsage int64   `json:"memoryUsage"`
	MemoryLimit int64   `json:"memoryLimit"`
	MemPercent  float64 `json:"memoryPercent"`
	NetRx       uint64  `json:"netRxBytes"`
	NetTx       uint64  `json:"netTxBytes"`
	Pids        int64   `json:"pids"`
}

// NewCmdStats builds `berth stats`.
func NewCmdStats(o *Options) *cobra.Command {
	var noStream bool
	cmd := &cobra.Command{
		Use:   "stats [--no-stream] [CONTAINER...]",
		Short: "Show containers' resource usage",
		Long: `Show CPU, memory, network and process usage of running containers (all of
them without arguments), refreshed every second until interrupted, or once
with --no-stream. CPU % is over the last interval (over 100 ms once).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				return streamStats(cmd.Context(), cs, args, noStream, o.JSON(), cmd.OutOrStdout())
			})
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one reading and exit")
	return cmd
}

func streamStats(ctx context.Context, cs engine.Containers, refs []string, once, asJSON bool, w io.Writer) error {
	targets := func() ([]engine.Container, error) {
		if len(refs) == 0 {
			return cs.List(ctx, engine.ListContainersOptions{})
		}
		var out []engine.Container
		for _, r := range refs {
			c, err := cs.Inspect(ctx, r)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	prev := map[string]engine.Stats{}
	sample := func(list []engine.Container) map[string]engine.Stats {
		m := map[string]engine.Stats{}
		for _, c := range list {
			if st, err := cs.Stats(ctx, c.ID); err == nil {
				m[c.ID] = st
			}
		}
		return m
	}
	list, err := targets()
	if err != nil {
		return err
	}
	prev = sample(list)
	interval := time.Second
	if once {
		interval = 100 * time.Millisecond
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		if list, err = targets(); err != nil {
			return err
		}
		cur := sample(list)
		var rows []statsRow
		for _, c := range list {
			st, ok := cur[c.ID]
			if !ok {
				continue
			}
			row := statsRow{ID: c.ID, Name: c.Name, MemoryUsage: st.MemoryUsage, MemoryLimit: st.MemoryLimit, NetRx: st.NetRxBytes, NetTx: st.NetTxBytes, Pids: st.Pids}
			if p, ok := prev[c.ID]; ok && st.Time.After(p.Time) && st.CPUUsage >= p.CPUUsage {
				row.CPUPercent = float64(st.CPUUsage-p.CPUUsage) / float64(st.Time.Sub(p.Time).Nanoseconds()) * 100
			}
			if st.MemoryLimit > 0 {
				row.MemPercent = float64(st.MemoryUsage) / float64(st.MemoryLimit) * 100
			}
			rows = append(rows, row)
		}
		prev = cur
		if asJSON {
			if err := writeJSON(w, rows); err != nil {
				return err
			}
		} else {
			if !once {
				fmt.Fprint(w, "\033[2J\033[H")
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tPIDS")
			for _, r := range rows {
				limit := "unlimited"
				if r.MemoryLimit > 0 {
					limit = formatBytes(r.MemoryLimit)
				}
				fmt.Fprintf(tw, "%s\t%s\t%.2f%%\t%s / %s\t%.2f%%\t%s / %s\t%d\n", truncID(r.ID, false), r.Name, r.CPUPercent,
					formatBytes(r.MemoryUsage), limit, r.MemPercent, formatBytes(int64(r.NetRx)), formatBytes(int64(r.NetTx)), r.Pids)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if once {
			return nil
		}
	}
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
