package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("volume", NewCmdVolume) }

// NewCmdVolume builds `berth volume` and its subcommands.
func NewCmdVolume(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Manage named volumes",
		Long: `Named volumes are directories under the data root that outlive the
containers mounting them. A volume in use by a container (running or not)
cannot be removed.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		newCmdVolumeCreate(o),
		newCmdVolumeList(o),
		newCmdVolumeInspect(o),
		newCmdVolumeRemove(o),
		newCmdVolumePrune(o),
	)
	return cmd
}

// withVolumes runs fn with the engine's volume store, closing the engine
// afterwards.
func (o *Options) withVolumes(ctx context.Context, fn func(engine.Volumes) error) error {
	e, err := o.Engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	return fn(e.Volumes())
}

type volumeCreateOptions struct {
	driver string
	labels []string
}

func newCmdVolumeCreate(o *Options) *cobra.Command {
	var f volumeCreateOptions
	cmd := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a volume (a random name when none is given)",
		Long: `Create a volume. Creating a volume that exists returns it unchanged.
Without a name the volume gets a random 64-hex one.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseVolumeLabels(f.labels)
			if err != nil {
				return err
			}
			cfg := engine.VolumeConfig{Driver: f.driver, Labels: labels}
			if len(args) == 1 {
				cfg.Name = args[0]
			}
			return o.withVolumes(cmd.Context(), func(vs engine.Volumes) error {
				v, err := vs.Create(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				if o.JSON() {
					return writeVolumeJSON(cmd.OutOrStdout(), v)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), v.Name)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&f.driver, "driver", "d", "local", "volume driver (local is the only one)")
	cmd.Flags().StringArrayVar(&f.labels, "label", nil, "set a label, KEY=VALUE (repeatable)")
	return cmd
}

type volumeListOptions struct {
	filters []string
	quiet   bool
}

// volumeFilter is `ls --filter` parsed: label=K[=V], name=SUBSTRING,
// dangling=true|false, as in Docker.
type volumeFilter struct {
	labels   map[string]string
	names    []string
	dangling *bool
}

func parseVolumeFilters(in []string) (volumeFilter, error) {
	var f volumeFilter
	for _, s := range in {
		key, value, ok := strings.Cut(s, "=")
		if !ok {
			return f, fmt.Errorf("--filter %q: want KEY=VALUE: %w", s, engine.ErrInvalid)
		}
		switch key {
		case "label":
			k, v, _ := strings.Cut(value, "=")
			if k == "" {
				return f, fmt.Errorf("--filter %q: empty label: %w", s, engine.ErrInvalid)
			}
			if f.labels == nil {
				f.labels = map[string]string{}
			}
			f.labels[k] = v
		case "name":
			f.names = append(f.names, value)
		case "dangling":
			b, err := strconv.ParseBool(value)
			if err != nil {
				return f, fmt.Errorf("--filter %q: want true or false: %w", s, engine.ErrInvalid)
			}
			f.dangling = &b
		default:
			return f, fmt.Errorf("--filter %q: unknown filter %q (label, name, dangling): %w", s, key, engine.ErrInvalid)
		}
	}
	return f, nil
}

// match applies what the engine does not: names (any of them, as a
// substring) and dangling (used by no container).
func (f volumeFilter) match(v engine.Volume) bool {
	if f.dangling != nil && *f.dangling != (len(v.UsedBy) == 0) {
		return false
	}
	if len(f.names) == 0 {
		return true
	}
	for _, n := range f.names {
		if strings.Contains(v.Name, n) {
			return true
		}
	}
	return false
}

func newCmdVolumeList(o *Options) *cobra.Command {
	var f volumeListOptions
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := parseVolumeFilters(f.filters)
			if err != nil {
				return err
			}
			return o.withVolumes(cmd.Context(), func(vs engine.Volumes) error {
				all, err := vs.List(cmd.Context(), engine.ListOptions{Labels: filter.labels})
				if err != nil {
					return err
				}
				vols := []engine.Volume{}
				for _, v := range all {
					if filter.match(v) {
						vols = append(vols, v)
					}
				}
				w := cmd.OutOrStdout()
				switch {
				case o.JSON():
					return writeVolumeJSON(w, vols)
				case f.quiet:
					for _, v := range vols {
						fmt.Fprintln(w, v.Name)
					}
					return nil
				}
				tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
				fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
				for _, v := range vols {
					fmt.Fprintf(tw, "%s\t%s\n", v.Config.Driver, v.Name)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringArrayVarP(&f.filters, "filter", "f", nil, "filter: label=KEY[=VALUE], name=SUBSTRING, dangling=true|false (repeatable)")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print volume names only")
	return cmd
}

func newCmdVolumeInspect(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect VOLUME...",
		Short: "Show volumes in detail (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withVolumes(cmd.Context(), func(vs engine.Volumes) error {
				vols := []engine.Volume{}
				var errs *multierror.Error
				for _, name := range args {
					v, err := vs.Inspect(cmd.Context(), name)
					if err != nil {
						errs = multierror.Append(errs, err)
						continue
					}
					vols = append(vols, v)
				}
				// Like docker: what was found is printed, the rest is an error.
				if err := writeVolumeJSON(cmd.OutOrStdout(), vols); err != nil {
					return err
				}
				return volumeErrors(errs)
			})
		},
	}
}

func newCmdVolumeRemove(o *Options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm VOLUME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes and their data",
		Long: `Remove volumes and their data. A volume a container mounts (running or
not) is refused; remove the container first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withVolumes(cmd.Context(), func(vs engine.Volumes) error {
				removed := []string{}
				var errs *multierror.Error
				for _, name := range args {
					err := vs.Remove(cmd.Context(), name)
					if force && errors.Is(err, engine.ErrNotFound) {
						continue
					}
					if err != nil {
						errs = multierror.Append(errs, err)
						continue
					}
					removed = append(removed, name)
					if !o.JSON() {
						fmt.Fprintln(cmd.OutOrStdout(), name)
					}
				}
				if o.JSON() {
					if err := writeVolumeJSON(cmd.OutOrStdout(), removed); err != nil {
						return err
					}
				}
				return volumeErrors(errs)
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not fail on volumes that do not exist")
	return cmd
}

func newCmdVolumePrune(o *Options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove every volume no container uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if !force {
				fmt.Fprint(w, "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ")
				if !volumeConfirm(cmd.InOrStdin()) {
					return nil
				}
			}
			return o.withVolumes(cmd.Context(), func(vs engine.Volumes) error {
				rep, err := vs.Prune(cmd.Context())
				if err != nil {
					return err
				}
				if o.JSON() {
					return writeVolumeJSON(w, rep)
				}
				if len(rep.Deleted) > 0 {
					fmt.Fprintln(w, "Deleted Volumes:")
					for _, name := range rep.Deleted {
						fmt.Fprintln(w, name)
					}
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "Total reclaimed space: %s\n", formatVolumeSize(rep.SpaceReclaimed))
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}

// volumeConfirm reads one answer line: y or yes, in any case.
func volumeConfirm(in io.Reader) bool {
	if in == nil {
		return false
	}
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// volumeErrors reports the failures of a verb on several volumes one per
// line, as docker does, rather than as a bulleted count.
func volumeErrors(errs *multierror.Error) error {
	if errs == nil {
		return nil
	}
	errs.ErrorFormat = func(es []error) string {
		lines := make([]string, len(es))
		for i, err := range es {
			lines[i] = err.Error()
		}
		return strings.Join(lines, "\n")
	}
	return errs.ErrorOrNil()
}

func parseVolumeLabels(in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(in))
	for _, s := range in {
		k, v, _ := strings.Cut(s, "=")
		if k == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE: %w", s, engine.ErrInvalid)
		}
		labels[k] = v
	}
	return labels, nil
}

func writeVolumeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatVolumeSize formats bytes as docker does: decimal units, 4 significant
// digits ("1.5kB", "0B").
func formatVolumeSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	f, i := float64(n), 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return strconv.FormatFloat(f, 'g', 4, 64) + units[i]
}
