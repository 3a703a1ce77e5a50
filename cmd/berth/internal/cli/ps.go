package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("ps", NewCmdPs) }

type psOptions struct {
	all     bool
	quiet   bool
	noTrunc bool
	filters []string
}

// NewCmdPs builds `berth ps`.
func NewCmdPs(o *Options) *cobra.Command {
	var f psOptions
	cmd := &cobra.Command{
		Use:   "ps [-a] [-q] [--filter label=KEY[=VALUE]]",
		Short: "List containers",
		Long: `List running containers (all of them with -a), newest first. Filters:
label=KEY or label=KEY=VALUE (every one must match), name=SUBSTRING,
status=created|running|restarting|exited|dead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := engine.ListContainersOptions{All: f.all}
			var names, statuses []string
			for _, flt := range f.filters {
				k, v, ok := strings.Cut(flt, "=")
				if !ok {
					return fmt.Errorf("--filter %q: want KEY=VALUE: %w", flt, engine.ErrInvalid)
				}
				switch k {
				case "label":
					if opts.Labels == nil {
						opts.Labels = map[string]string{}
					}
					lk, lv, _ := strings.Cut(v, "=")
					opts.Labels[lk] = lv
				case "name":
					names = append(names, v)
				case "status":
					statuses = append(statuses, v)
					opts.All = true
				default:
					return fmt.Errorf("--filter %q: known filters are label, name and status: %w", flt, engine.ErrInvalid)
				}
			}
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				list, err := cs.List(cmd.Context(), opts)
				if err != nil {
					return err
				}
				out := list[:0]
				for _, c := range list {
					if matchAny(c.Name, names, strings.Contains) && matchAny(string(c.State.Status), statuses, func(a, b string) bool { return a == b }) {
						out = append(out, c)
					}
				}
				w := cmd.OutOrStdout()
				switch {
				case o.JSON():
					return writeJSON(w, out)
				case f.quiet:
					for _, c := range out {
						fmt.Fprintln(w, truncID(c.ID, f.noTrunc))
					}
					return nil
				}
				tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
				fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES")
				now := time.Now()
				for _, c := range out {
					cmdline := quoteCommand(c.Command)
					if f.noTrunc {
						cmdline = fmt.Sprintf("%q", strings.Join(c.Command, " "))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\t%s\t%s\n", truncID(c.ID, f.noTrunc), truncImage(c.Config.Image, f.noTrunc), cmdline,
						humanDuration(now.Sub(c.Created)), containerStatus(c.State, now), formatPorts(c.Ports), c.Name)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&f.all, "all", "a", false, "show stopped containers too")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print IDs only")
	cmd.Flags().BoolVar(&f.noTrunc, "no-trunc", false, "do not truncate IDs and commands")
	cmd.Flags().StringArrayVarP(&f.filters, "filter", "f", nil, "filter: label=KEY[=VALUE], name=SUBSTRING, status=STATUS (repeatable)")
	return cmd
}

func matchAny(s string, want []string, match func(string, string) bool) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if match(s, w) {
			return true
		}
	}
	return false
}

// truncImage shortens a digest-pinned reference (the reconciler pins every
// container to name@sha256:<64 hex>) to 12 hex digits, as IDs are shown.
func truncImage(ref string, full bool) string {
	name, digest, ok := strings.Cut(ref, "@sha256:")
	if full || !ok || len(digest) <= 12 {
		return ref
	}
	return name + "@sha256:" + digest[:12]
}

// formatPorts shows published ports as docker ps does:
// "0.0.0.0:8080->80/tcp, 127.0.0.1:32768->53/udp".
func formatPorts(ports []engine.PortBinding) string {
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, formatPort(p))
	}
	return strings.Join(out, ", ")
}

func formatPort(p engine.PortBinding) string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s:%d->%d/%s", ip, p.HostPort, p.ContainerPort, proto(p.Protocol))
}
