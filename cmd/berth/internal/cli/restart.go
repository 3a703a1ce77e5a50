package cli

import (
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("restart", NewCmdRestart) }

// NewCmdRestart builds `berth restart`.
func NewCmdRestart(o *Options) *cobra.Command {
	var stopTime func() *time.Duration
	cmd := &cobra.Command{
		Use:   "restart [-t SECONDS] CONTAINER...",
		Short: "Restart containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			timeout := stopTime()
			return eachContainer(cmd, o, args, func(cs engine.Containers, ref string) error {
				return cs.Restart(cmd.Context(), ref, timeout)
			})
		},
	}
	stopTime = stopTimeFlag(cmd)
	return cmd
}
