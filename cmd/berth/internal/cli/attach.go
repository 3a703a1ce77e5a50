package cli

import (
	"context"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("attach", NewCmdAttach) }

// NewCmdAttach builds `berth attach`.
func NewCmdAttach(o *Options) *cobra.Command {
	var noStdin bool
	cmd := &cobra.Command{
		Use:   "attach CONTAINER",
		Short: "Attach to a running container's input and output",
		Long: `Connect this terminal to a running container's stdio (its terminal if it
has one) until the container's process exits.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				c, err := cs.Inspect(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				s := engine.Streams{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), Tty: c.Config.Tty}
				if !noStdin && c.Config.OpenStdin {
					s.Stdin = cmd.InOrStdin()
				}
				restore := func() {}
				if c.Config.Tty {
					s.Resize, restore = terminal(cmd.InOrStdin(), cmd.OutOrStdout())
				}
				defer restore()
				return cs.Attach(context.WithoutCancel(cmd.Context()), c.ID, s)
			})
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach stdin")
	return cmd
}
