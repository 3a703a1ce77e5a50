package cli

import "github.com/spf13/cobra"

func init() { register("registry", NewCmdRegistry) }

// NewCmdRegistry builds `berth registry`, the group of registry verbs.
func NewCmdRegistry(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run an OCI distribution registry",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(NewCmdRegistryServe(o))
	return cmd
}
