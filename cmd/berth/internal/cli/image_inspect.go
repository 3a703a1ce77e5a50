package cli

import (
	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

// NewCmdImageInspect builds `berth image inspect`.
func NewCmdImageInspect(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show images in detail (JSON)",
		Long: `Print, as a JSON array, what berth knows of each image: ID, digest, names,
size, platform, config and layers. IMAGE is a name, name@digest, digest, image
ID or unique ID prefix.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				imgs := []engine.Image{}
				var errs *multierror.Error
				for _, ref := range args {
					img, err := is.Inspect(cmd.Context(), ref)
					if err != nil {
						errs = multierror.Append(errs, err)
						continue
					}
					imgs = append(imgs, img)
				}
				if err := writeImageJSON(cmd.OutOrStdout(), imgs); err != nil {
					return err
				}
				return errs.ErrorOrNil()
			})
		},
	}
}
