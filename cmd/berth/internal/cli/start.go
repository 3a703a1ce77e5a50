package cli

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("start", NewCmdStart) }

// NewCmdStart builds `berth start`.
func NewCmdStart(o *Options) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [-a] CONTAINER...",
		Short: "Start stopped containers",
		Long: `Start created or exited containers. With -a, attach to the (single)
container's output from its first byte and exit with its exit code.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				if attach {
					if len(args) != 1 {
						return fmt.Errorf("start -a takes one container: %w", engine.ErrInvalid)
					}
					return startAttached(cmd, cs, args[0], interactive)
				}
				var errs *multierror.Error
				for _, ref := range args {
					if err := cs.Start(cmd.Context(), ref); err != nil {
						errs = multierror.Append(errs, err)
						continue
					}
					fmt.Fprintln(cmd.OutOrStdout(), ref)
				}
				return errs.ErrorOrNil()
			})
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach to the output and return the exit code")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin")
	return cmd
}

func startAttached(cmd *cobra.Command, cs engine.Containers, ref string, interactive bool) error {
	c, err := cs.Inspect(cmd.Context(), ref)
	if err != nil {
		return err
	}
	rn, ok := cs.(runner)
	if !ok {
		return fmt.Errorf("start -a: %w", engine.ErrUnsupported)
	}
	s := engine.Streams{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), Tty: c.Config.Tty}
	if interactive && c.Config.OpenStdin {
		s.Stdin = cmd.InOrStdin()
	}
	restore := func() {}
	if c.Config.Tty {
		s.Resize, restore = terminal(cmd.InOrStdin(), cmd.OutOrStdout())
	}
	defer restore()
	wait, err := rn.StartAttach(cmd.Context(), c.ID, s)
	if err != nil {
		return &ExitError{Code: startExitCode(err), Err: err}
	}
	if !c.Config.Tty {
		stop := forwardSignals(cs, c.ID)
		defer stop()
	}
	ex, err := wait(context.WithoutCancel(cmd.Context()))
	restore()
	if err != nil {
		return err
	}
	return exitStatus(ex)
}
