package cli

import (
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("tag", NewCmdTag) }

// NewCmdTag builds `berth tag`.
func NewCmdTag(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Long: `Make TARGET (NAME[:TAG]) name the image SOURCE names (a name, digest, or
image ID or prefix). A tag that named another image moves.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withImages(cmd.Context(), func(is engine.Images) error {
				return is.Tag(cmd.Context(), args[0], args[1])
			})
		},
	}
}
