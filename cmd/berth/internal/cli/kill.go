package cli

import (
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("kill", NewCmdKill) }

// NewCmdKill builds `berth kill`.
func NewCmdKill(o *Options) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [-s SIGNAL] CONTAINER...",
		Short: "Send a signal to running containers",
		Long: `Send SIGNAL (default KILL) to each container's main process. A container
killed with KILL, TERM, INT or its stop signal stays down whatever its
restart policy, as with Docker.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachContainer(cmd, o, args, func(cs engine.Containers, ref string) error {
				return cs.Kill(cmd.Context(), ref, signal)
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "signal name or number")
	return cmd
}
