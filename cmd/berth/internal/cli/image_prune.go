package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

// NewCmdImagePrune builds `berth image prune`.
func NewCmdImagePrune(o *Options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove unused images and content",
		Long: `Delete images that have no name left and that no container uses, then every
blob and layer snapshot no image references, and what interrupted pulls left
behind. Reports what it deleted and the space freed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				rep, err := is.Prune(cmd.Context())
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if o.JSON() {
					if rep.Deleted == nil {
						rep.Deleted = []string{}
					}
					return writeImageJSON(out, rep)
				}
				for _, d := range rep.Deleted {
					fmt.Fprintf(out, "Deleted: %s\n", d)
				}
				fmt.Fprintf(out, "Total reclaimed space: %s\n", formatImageSize(rep.SpaceReclaimed))
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never prompts; accepted for compatibility)")
	return cmd
}
