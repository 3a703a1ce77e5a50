package cli

import (
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("rm", NewCmdRm) }

// NewCmdRm builds `berth rm`.
func NewCmdRm(o *Options) *cobra.Command {
	var opts engine.RemoveContainerOptions
	cmd := &cobra.Command{
		Use:   "rm [-f] CONTAINER...",
		Short: "Remove containers",
		Long: `Remove containers with their read-write layer, logs, cgroup and network
sandbox. A running container needs -f, which kills it first. Named volumes
are kept.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachContainer(cmd, o, args, func(cs engine.Containers, ref string) error {
				return cs.Remove(cmd.Context(), ref, opts)
			})
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "kill a running container first")
	cmd.Flags().BoolVarP(&opts.Volumes, "volumes", "v", false, "also remove anonymous volumes")
	return cmd
}
