package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container"
)

func init() { register("run", NewCmdRun) }

// NewCmdRun builds `berth run`.
func NewCmdRun(o *Options) *cobra.Command {
	var f containerFlags
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container",
		Long: `Create a container from IMAGE and start it, as docker run does. In the
foreground berth attaches to the container's output (and input with -i, a
terminal with -t), forwards signals to it and exits with its exit code; with
-d it prints the container ID and leaves it running. A start that fails exits
with 127 (command not found), 126 (not executable) or 125 (anything else).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(cmd.Flags(), args[0], commandArgs(args), os.LookupEnv)
			if err != nil {
				return err
			}
			if detach && f.rm && cfg.Restart.Name != "" && cfg.Restart.Name != "no" {
				return fmt.Errorf("--rm and --restart: %w", engine.ErrInvalid)
			}
			return runContainer(cmd, o, cfg, detach)
		},
	}
	f.add(cmd.Flags())
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background and print the container ID")
	return cmd
}

func runContainer(cmd *cobra.Command, o *Options, cfg engine.ContainerConfig, detach bool) error {
	ctx := cmd.Context()
	e, err := o.Engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	cs := e.Containers()
	rn, ok := cs.(runner)
	if !ok {
		return fmt.Errorf("run: this engine cannot attach at start: %w", engine.ErrUnsupported)
	}
	out := cmd.OutOrStdout()
	if detach {
		c, _, err := rn.Run(ctx, cfg, nil)
		if err != nil {
			return &ExitError{Code: startExitCode(err), Err: err}
		}
		_, err = fmt.Fprintln(out, c.ID)
		return err
	}
	s := engine.Streams{Stdout: out, Stderr: cmd.ErrOrStderr(), Tty: cfg.Tty}
	if cfg.OpenStdin {
		s.Stdin = cmd.InOrStdin()
	}
	restore := func() {}
	if cfg.Tty {
		s.Resize, restore = terminal(cmd.InOrStdin(), out)
	}
	defer restore()
	c, wait, err := rn.Run(ctx, cfg, &s)
	if err != nil {
		return &ExitError{Code: startExitCode(err), Err: err}
	}
	// The foreground run lives until the container exits, whatever signal
	// berth gets: those go to the container instead.
	runCtx := context.WithoutCancel(ctx)
	if !cfg.Tty {
		stop := forwardSignals(cs, c.ID)
		defer stop()
	}
	ex, err := wait(runCtx)
	restore()
	if err != nil {
		return err
	}
	return exitStatus(ex)
}

func exitStatus(ex container.Exit) error {
	if ex.Code != 0 {
		return &ExitError{Code: ex.Code}
	}
	return nil
}
