package cli

import (
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("restart", NewCmdRestart) }

// NewCmdRestart builds `berth restart`.
func NewCmdRestart(o *Options) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "restart [-t SECONDS] CONTAINER...",
		Short: "Restart containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var timeout *time.Duration
			if cmd.Flags().Changed("time") {
				d := time.Duration(seconds) * time.Second
				timeout = &d
			}
			return eachContainer(cmd, o, args, func(cs engine.Containers, ref string) error {
				return cs.Restart(cmd.Context(), ref, timeout)
			})
		},
	}
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait before killing the container")
	return cmd
}
