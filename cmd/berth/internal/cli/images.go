package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("images", NewCmdImages) }

type imagesOptions struct {
	quiet bool
	all   bool
}

// NewCmdImages builds `berth images` (also `berth image ls`).
func NewCmdImages(o *Options) *cobra.Command {
	var f imagesOptions
	cmd := &cobra.Command{
		Use:   "images [REPOSITORY[:TAG]]",
		Short: "List images",
		Long: `List local images, one line per tag: repository, tag, the digest the image
was pulled or pushed as, image ID, when it was created and its size
(compressed layers). With -o json, the images as the engine describes them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				imgs, err := is.List(cmd.Context())
				if err != nil {
					return err
				}
				if len(args) == 1 {
					imgs = filterImages(imgs, args[0])
				}
				out := cmd.OutOrStdout()
				if o.JSON() {
					if imgs == nil {
						imgs = []engine.Image{}
					}
					return writeImageJSON(out, imgs)
				}
				if f.quiet {
					for _, img := range imgs {
						fmt.Fprintln(out, shortDigest(img.ID))
					}
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
				now := time.Now()
				for _, img := range imgs {
					digest := img.Digest
					if digest == "" {
						digest = "<none>"
					}
					for _, row := range imageRows(img) {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row[0], row[1], digest, shortDigest(img.ID), formatImageAge(img.Created, now), formatImageSize(img.Size))
					}
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only image IDs")
	cmd.Flags().BoolVarP(&f.all, "all", "a", false, "show all images (berth keeps no intermediate images; accepted for compatibility)")
	return cmd
}

// imageRows returns the (repository, tag) pairs to print for an image.
func imageRows(img engine.Image) [][2]string {
	var rows [][2]string
	for _, t := range img.RepoTags {
		i := strings.LastIndex(t, ":")
		rows = append(rows, [2]string{t[:i], t[i+1:]})
	}
	if len(rows) == 0 {
		repo := "<none>"
		if len(img.RepoDigests) > 0 {
			repo, _, _ = strings.Cut(img.RepoDigests[0], "@")
		}
		rows = append(rows, [2]string{repo, "<none>"})
	}
	return rows
}

// filterImages keeps images with a tag in repository ref (or exactly ref
// when it has a tag).
func filterImages(imgs []engine.Image, ref string) []engine.Image {
	var out []engine.Image
	for _, img := range imgs {
		for _, t := range img.RepoTags {
			repo := t[:strings.LastIndex(t, ":")]
			if t == ref || repo == ref {
				out = append(out, img)
				break
			}
		}
	}
	return out
}
