package cli

import (
	"fmt"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

type imageRemoveOptions struct {
	force bool
}

// NewCmdImageRemove builds `berth image rm` (use "rm") and `berth rmi`
// (use "rmi").
func NewCmdImageRemove(o *Options, use string) *cobra.Command {
	var f imageRemoveOptions
	cmd := &cobra.Command{
		Use:   use + " [-f] IMAGE...",
		Short: "Remove images",
		Long: `Untag images and delete those left without a name, with the content no other
image shares. IMAGE is a name:tag (untags it), name@digest, or an image ID or
prefix (all its names; with several tags that needs -f). An image a container
uses is refused unless -f, which untags it and keeps it until the container
is removed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				out := cmd.OutOrStdout()
				var errs *multierror.Error
				for _, ref := range args {
					lines, err := is.Remove(cmd.Context(), ref, engine.RemoveImageOptions{Force: f.force})
					for _, l := range lines {
						fmt.Fprintln(out, l)
					}
					if err != nil {
						errs = multierror.Append(errs, err)
					}
				}
				return errs.ErrorOrNil()
			})
		},
	}
	cmd.Flags().BoolVarP(&f.force, "force", "f", false, "remove images with several tags, or in use by containers")
	if use == "rm" {
		cmd.Aliases = []string{"remove"}
	}
	return cmd
}
