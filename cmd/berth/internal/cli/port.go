package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("port", NewCmdPort) }

// NewCmdPort builds `berth port`.
func NewCmdPort(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List a running container's published ports, with the host ports chosen for -p PORT",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var want *engine.PortBinding
			if len(args) == 2 {
				p, err := parsePrivatePort(args[1])
				if err != nil {
					return err
				}
				want = &p
			}
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				c, err := cs.Inspect(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				var out []engine.PortBinding
				for _, p := range c.Ports {
					if want == nil || p.ContainerPort == want.ContainerPort && proto(p.Protocol) == want.Protocol {
						out = append(out, p)
					}
				}
				if o.JSON() {
					return writeJSON(cmd.OutOrStdout(), out)
				}
				if want != nil && len(out) == 0 {
					return fmt.Errorf("no public port %d/%s published for %s: %w", want.ContainerPort, want.Protocol, c.Name, engine.ErrNotFound)
				}
				for _, p := range out {
					host := formatPort(p)
					host = host[:strings.Index(host, "->")]
					if want != nil {
						fmt.Fprintln(cmd.OutOrStdout(), host)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "%d/%s -> %s\n", p.ContainerPort, proto(p.Protocol), host)
					}
				}
				return nil
			})
		},
	}
}

// parsePrivatePort parses "80" or "53/udp".
func parsePrivatePort(s string) (engine.PortBinding, error) {
	port, protocol, _ := strings.Cut(s, "/")
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return engine.PortBinding{}, fmt.Errorf("port %q: want PORT or PORT/tcp or PORT/udp: %w", s, engine.ErrInvalid)
	}
	protocol = proto(protocol)
	if protocol != "tcp" && protocol != "udp" {
		return engine.PortBinding{}, fmt.Errorf("port %q: protocol must be tcp or udp: %w", s, engine.ErrInvalid)
	}
	return engine.PortBinding{ContainerPort: uint16(n), Protocol: protocol}, nil
}

// proto is a port's protocol, tcp when not given.
func proto(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}
