package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("network", NewCmdNetwork) }

// NewCmdNetwork builds `berth network` and its subcommands.
func NewCmdNetwork(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage bridge networks",
		Long: `A network is a Linux bridge with a subnet. Containers on one network reach
each other (by name when DNS is on, the default for networks made here);
containers on different networks do not, except through published ports.

berth run joins the network "bridge" when no --network is given; it is made
on first use, like Docker's default bridge, without name resolution.
Networks without --subnet get a free /24 of 172.18.0.0 - 172.31.255.0 (then
10.89.0.0 - 10.99.255.0) that no host route overlaps; "bridge" gets
172.17.0.0/16 when it is free. A network a container uses (running or not)
cannot be removed.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		newCmdNetworkCreate(o),
		newCmdNetworkList(o),
		newCmdNetworkInspect(o),
		newCmdNetworkRemove(o),
		newCmdNetworkPrune(o),
	)
	return cmd
}

// withNetworks runs fn with the engine's network manager, closing the engine
// afterwards.
func (o *Options) withNetworks(ctx context.Context, fn func(engine.Networks) error) error {
	e, err := o.Engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	if e.Networks() == nil {
		return fmt.Errorf("networks: %w", engine.ErrUnsupported)
	}
	return fn(e.Networks())
}

type networkCreateOptions struct {
	driver     string
	subnet     string
	gateway    string
	internal   bool
	disableDNS bool
	labels     []string
}

func newCmdNetworkCreate(o *Options) *cobra.Command {
	var f networkCreateOptions
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a bridge network",
		Long: `Create a bridge network. Containers on it resolve each other's names and
aliases (unless --disable-dns), reach the outside through NAT (unless
--internal) and nothing on other berth networks.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseVolumeLabels(f.labels)
			if err != nil {
				return err
			}
			cfg := engine.NetworkConfig{
				Name:     args[0],
				Driver:   f.driver,
				Subnet:   f.subnet,
				Gateway:  f.gateway,
				Internal: f.internal,
				DNS:      !f.disableDNS,
				Labels:   labels,
			}
			return o.withNetworks(cmd.Context(), func(ns engine.Networks) error {
				n, err := ns.Create(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				if o.JSON() {
					return writeVolumeJSON(cmd.OutOrStdout(), n)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), n.ID)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.driver, "driver", "d", "bridge", "network driver (bridge is the only one)")
	fl.StringVar(&f.subnet, "subnet", "", "subnet in CIDR form (default: a free /24 of the pool)")
	fl.StringVar(&f.gateway, "gateway", "", "gateway address (default: the subnet's first address)")
	fl.BoolVar(&f.internal, "internal", false, "no way out of the network, and no way in from outside the host")
	fl.BoolVar(&f.disableDNS, "disable-dns", false, "do not resolve container names on this network")
	fl.StringArrayVar(&f.labels, "label", nil, "set a label, KEY=VALUE (repeatable)")
	return cmd
}

type networkListOptions struct {
	filters []string
	quiet   bool
}

func newCmdNetworkList(o *Options) *cobra.Command {
	var f networkListOptions
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			labels, names, err := parseNetworkFilters(f.filters)
			if err != nil {
				return err
			}
			return o.withNetworks(cmd.Context(), func(ns engine.Networks) error {
				all, err := ns.List(cmd.Context(), engine.ListOptions{Labels: labels})
				if err != nil {
					return err
				}
				nets := []engine.Network{}
				for _, n := range all {
					if len(names) == 0 || slices.ContainsFunc(names, func(s string) bool { return strings.Contains(n.Name, s) }) {
						nets = append(nets, n)
					}
				}
				w := cmd.OutOrStdout()
				switch {
				case o.JSON():
					return writeVolumeJSON(w, nets)
				case f.quiet:
					for _, n := range nets {
						fmt.Fprintln(w, truncID(n.ID, false))
					}
					return nil
				}
				tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
				fmt.Fprintln(tw, "NETWORK ID\tNAME\tDRIVER\tSUBNET\tGATEWAY\tOPTIONS")
				for _, n := range nets {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", truncID(n.ID, false), n.Name, n.Config.Driver, n.Config.Subnet, n.Config.Gateway, networkOptions(n.Config))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringArrayVarP(&f.filters, "filter", "f", nil, "filter: label=KEY[=VALUE], name=SUBSTRING (repeatable)")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print network IDs only")
	return cmd
}

func networkOptions(c engine.NetworkConfig) string {
	var opts []string
	if c.DNS {
		opts = append(opts, "dns")
	}
	if c.Internal {
		opts = append(opts, "internal")
	}
	if len(opts) == 0 {
		return "-"
	}
	return strings.Join(opts, ",")
}

func parseNetworkFilters(in []string) (labels map[string]string, names []string, err error) {
	for _, s := range in {
		key, value, ok := strings.Cut(s, "=")
		switch {
		case !ok:
			return nil, nil, fmt.Errorf("--filter %q: want KEY=VALUE: %w", s, engine.ErrInvalid)
		case key == "label":
			k, v, _ := strings.Cut(value, "=")
			if k == "" {
				return nil, nil, fmt.Errorf("--filter %q: empty label: %w", s, engine.ErrInvalid)
			}
			if labels == nil {
				labels = map[string]string{}
			}
			labels[k] = v
		case key == "name":
			names = append(names, value)
		default:
			return nil, nil, fmt.Errorf("--filter %q: unknown filter %q (label, name): %w", s, key, engine.ErrInvalid)
		}
	}
	return labels, names, nil
}

func newCmdNetworkInspect(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks in detail (JSON), with their containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withNetworks(cmd.Context(), func(ns engine.Networks) error {
				nets := []engine.Network{}
				var errs *multierror.Error
				for _, ref := range args {
					n, err := ns.Inspect(cmd.Context(), ref)
					if err != nil {
						errs = multierror.Append(errs, err)
						continue
					}
					nets = append(nets, n)
				}
				if err := writeVolumeJSON(cmd.OutOrStdout(), nets); err != nil {
					return err
				}
				return volumeErrors(errs)
			})
		},
	}
}

func newCmdNetworkRemove(o *Options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks, their bridges and rules",
		Long: `Remove networks. A network a container uses (running or not) is refused;
remove the container first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withNetworks(cmd.Context(), func(ns engine.Networks) error {
				removed := []string{}
				var errs *multierror.Error
				for _, ref := range args {
					err := ns.Remove(cmd.Context(), ref)
					if force && errors.Is(err, engine.ErrNotFound) {
						continue
					}
					if err != nil {
						errs = multierror.Append(errs, err)
						continue
					}
					removed = append(removed, ref)
					if !o.JSON() {
						fmt.Fprintln(cmd.OutOrStdout(), ref)
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
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not fail on networks that do not exist")
	return cmd
}

func newCmdNetworkPrune(o *Options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: `Remove every network no container uses (except "bridge")`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if !force {
				fmt.Fprint(w, "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ")
				if !volumeConfirm(cmd.InOrStdin()) {
					return nil
				}
			}
			return o.withNetworks(cmd.Context(), func(ns engine.Networks) error {
				removed, err := ns.Prune(cmd.Context())
				if err != nil {
					return err
				}
				if o.JSON() {
					if removed == nil {
						removed = []string{}
					}
					return writeVolumeJSON(w, removed)
				}
				if len(removed) > 0 {
					fmt.Fprintln(w, "Deleted Networks:")
					for _, name := range removed {
						fmt.Fprintln(w, name)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}
