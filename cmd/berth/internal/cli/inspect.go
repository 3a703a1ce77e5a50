package cli

import (
	"errors"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("inspect", NewCmdInspect) }

// NewCmdInspect builds `berth inspect`.
func NewCmdInspect(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers in detail (JSON)",
		Long: `Print, as a JSON array, each container's configuration and its state as
re-checked against the kernel: status, pid, exit code, start and finish
times, OOM kill, restart count, health, mounts and limits. A name that is no
container is looked up as an image.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := o.Engine(cmd.Context())
			if err != nil {
				return err
			}
			defer e.Close()
			out := []any{}
			var errs *multierror.Error
			for _, ref := range args {
				c, err := e.Containers().Inspect(cmd.Context(), ref)
				if errors.Is(err, engine.ErrNotFound) && e.Images() != nil {
					if img, ierr := e.Images().Inspect(cmd.Context(), ref); ierr == nil {
						out = append(out, img)
						continue
					}
				}
				if err != nil {
					errs = multierror.Append(errs, err)
					continue
				}
				out = append(out, c)
			}
			if err := writeJSON(cmd.OutOrStdout(), out); err != nil {
				return err
			}
			return errs.ErrorOrNil()
		},
	}
}
