package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("logs", NewCmdLogs) }

type logsOptions struct {
	follow     bool
	since      string
	until      string
	tail       string
	timestamps bool
}

// NewCmdLogs builds `berth logs`.
func NewCmdLogs(o *Options) *cobra.Command {
	var f logsOptions
	cmd := &cobra.Command{
		Use:   "logs [-f] [--since T] [--until T] [--tail N] [-t] CONTAINER",
		Short: "Show a container's output",
		Long: `Print what a container wrote to stdout (on stdout) and stderr (on stderr),
from its rotated log files. --since and --until take an RFC 3339 time, a Unix
time or a duration before now (10m); -f follows until the container stops for
good. With -o json each entry is one JSON object per line.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.LogOptions{Follow: f.follow, Tail: -1}
			var err error
			now := time.Now()
			if opts.Since, err = parseTime(f.since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if opts.Until, err = parseTime(f.until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if f.tail != "all" && f.tail != "" {
				n, err := strconv.Atoi(f.tail)
				if err != nil || n < 0 {
					return fmt.Errorf("--tail %q: want a number or all: %w", f.tail, engine.ErrInvalid)
				}
				opts.Tail = n
			}
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				return cs.Logs(cmd.Context(), args[0], opts, func(e engine.LogEntry) error {
					if o.JSON() {
						return writeJSONLine(stdout, e)
					}
					w := stdout
					if e.Stream == "stderr" {
						w = stderr
					}
					if f.timestamps {
						if _, err := fmt.Fprint(w, e.Time.Format(time.RFC3339Nano)+" "); err != nil {
							return err
						}
					}
					_, err := w.Write(e.Line)
					return err
				})
			})
		},
	}
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "follow the output")
	cmd.Flags().StringVar(&f.since, "since", "", "show entries since a time or a duration ago")
	cmd.Flags().StringVar(&f.until, "until", "", "show entries until a time or a duration ago")
	cmd.Flags().StringVarP(&f.tail, "tail", "n", "all", "show the last N entries")
	cmd.Flags().BoolVarP(&f.timestamps, "timestamps", "t", false, "prefix each entry with its time")
	return cmd
}

// parseTime accepts RFC 3339 (with or without fraction), a Unix time in
// seconds (with a fraction) or a Go duration counted back from now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "eE") {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time, a Unix time or a duration: %w", s, engine.ErrInvalid)
}
