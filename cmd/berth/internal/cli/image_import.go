package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/image"
)

type imageImportOptions struct {
	changes  []string
	platform string
}

// NewCmdImageImport builds `berth image import`.
func NewCmdImageImport(o *Options) *cobra.Command {
	var f imageImportOptions
	cmd := &cobra.Command{
		Use:   "import ROOTFS.tar|DIR|- NAME[:TAG] [--change INSTRUCTION]...",
		Short: "Make a one-layer image from a root filesystem",
		Long: `Make an image from a root filesystem given as a tar archive (plain, gzip or
zstd; "-" reads standard input) or a directory, with no network. --change
applies Dockerfile instructions to the image config: CMD, ENTRYPOINT, ENV,
WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME, for example

  berth image import ./rootfs app:1 --change 'CMD ["/bin/app"]' --change 'ENV MODE=prod'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.ImportOptions{Changes: f.changes}
			if f.platform != "" {
				p, err := image.ParsePlatform(f.platform)
				if err != nil {
					return err
				}
				opts.Platform = &p
			}
			var src io.Reader
			switch args[0] {
			case "-":
				src = cmd.InOrStdin()
			default:
				fi, err := os.Stat(args[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				if fi.IsDir() {
					rc := image.DirTar(cmd.Context(), args[0])
					defer rc.Close()
					src = rc
				} else {
					file, err := os.Open(args[0])
					if err != nil {
						return fmt.Errorf("import: %w", err)
					}
					defer file.Close()
					src = file
				}
			}
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				img, err := is.Import(cmd.Context(), src, args[1], opts)
				if err != nil {
					return err
				}
				if o.JSON() {
					return writeImageJSON(cmd.OutOrStdout(), img)
				}
				fmt.Fprintln(cmd.OutOrStdout(), img.ID)
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVarP(&f.changes, "change", "c", nil, "Dockerfile instruction to apply to the image config (repeatable)")
	cmd.Flags().StringVar(&f.platform, "platform", "", "platform to record (default: the host's)")
	return cmd
}
