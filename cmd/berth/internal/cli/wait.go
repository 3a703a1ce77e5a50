package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("wait", NewCmdWait) }

// NewCmdWait builds `berth wait`.
func NewCmdWait(o *Options) *cobra.Command {
	var condition string
	cmd := &cobra.Command{
		Use:   "wait CONTAINER...",
		Short: "Wait for containers to stop and print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				for _, ref := range args {
					code, err := cs.Wait(cmd.Context(), ref, engine.WaitCondition(condition))
					if err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), code)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&condition, "condition", string(engine.WaitNotRunning), "not-running, next-exit or removed")
	return cmd
}
