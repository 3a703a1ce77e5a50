package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("push", NewCmdPush) }

type pushOptions struct {
	quiet bool
}

// NewCmdPush builds `berth push`.
func NewCmdPush(o *Options) *cobra.Command {
	var f pushOptions
	cmd := &cobra.Command{
		Use:   "push [-q] NAME[:TAG]",
		Short: "Push an image to a registry",
		Long: `Push a local image to the registry its name points at. Blobs the registry
has are skipped, blobs it holds in another repository are mounted, the rest
is uploaded. The manifest goes byte for byte, so the digest printed is the
image's digest wherever it is pushed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			opts := engine.PushOptions{}
			var prog *layerProgress
			if !f.quiet && !o.JSON() {
				prog = newLayerProgress(out, isTerminal(out), true)
				opts.Progress = prog.update
			}
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				err := is.Push(cmd.Context(), args[0], opts)
				if prog != nil {
					prog.finish()
				}
				if err != nil {
					return err
				}
				img, err := is.Inspect(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return writeImageResult(out, o, f.quiet, img, fmt.Sprintf("%s: digest: %s size: %d\n", args[0], img.Digest, img.Size))
			})
		},
	}
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only the digest")
	return cmd
}
