package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/image"
)

func init() { register("pull", NewCmdPull) }

type pullOptions struct {
	quiet    bool
	platform string
}

// NewCmdPull builds `berth pull`.
func NewCmdPull(o *Options) *cobra.Command {
	var f pullOptions
	cmd := &cobra.Command{
		Use:   "pull [-q] [--platform OS/ARCH[/VARIANT]] NAME[:TAG|@DIGEST]",
		Short: "Pull an image from a registry",
		Long: `Pull an image. A tag is resolved to the digest of what it names now, and that
digest is what berth records and prints (pinning). From a multi-platform index
the host's platform is chosen unless --platform says otherwise. Layers already
present are not downloaded again; missing ones download and unpack in parallel.
Progress goes to stdout: bars on a terminal, one line per layer otherwise,
nothing with -q (which prints only the digest).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.PullOptions{}
			if f.platform != "" {
				p, err := image.ParsePlatform(f.platform)
				if err != nil {
					return err
				}
				opts.Platform = &p
			}
			out := cmd.OutOrStdout()
			var prog *layerProgress
			if !f.quiet && !o.JSON() {
				prog = newLayerProgress(out, isTerminal(out), false)
				opts.Progress = prog.update
			}
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				img, err := is.Pull(cmd.Context(), args[0], opts)
				if prog != nil {
					prog.finish()
				}
				if err != nil {
					return err
				}
				return writeImageResult(out, o, f.quiet, img, fmt.Sprintf("Digest: %s\nImage: %s (%s)\n", img.Digest, args[0], shortDigest(img.ID)))
			})
		},
	}
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only the pinned digest")
	cmd.Flags().StringVar(&f.platform, "platform", "", "platform to pull from a multi-platform image (default: the host's)")
	return cmd
}
