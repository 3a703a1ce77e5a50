package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func init() { register("create", NewCmdCreate) }

// NewCmdCreate builds `berth create`.
func NewCmdCreate(o *Options) *cobra.Command {
	var f containerFlags
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container without starting it",
		Long:  `Create a container from IMAGE and print its ID. It takes the flags of berth run.`,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(cmd.Flags(), args[0], commandArgs(args), os.LookupEnv)
			if err != nil {
				return err
			}
			e, err := o.Engine(cmd.Context())
			if err != nil {
				return err
			}
			defer e.Close()
			c, err := e.Containers().Create(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if o.JSON() {
				return writeJSON(cmd.OutOrStdout(), c)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), c.ID)
			return err
		},
	}
	f.add(cmd.Flags())
	return cmd
}
