package cli

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

func init() { register("exec", NewCmdExec) }

type execOptions struct {
	interactive bool
	tty         bool
	env         []string
	user        string
	workdir     string
	privileged  bool
}

// NewCmdExec builds `berth exec`.
func NewCmdExec(o *Options) *cobra.Command {
	var f execOptions
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] [-e K=V] [-u USER] [-w DIR] CONTAINER [--] COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run COMMAND in the namespaces and cgroup of a running container, with its
capabilities, user (or -u) and environment (plus -e), and exit with its exit
code. A command that cannot start exits with 127 or 126.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd0 := commandArgs(args)
			if len(cmd0) == 0 {
				return errors.New("exec: no command given")
			}
			cfg := engine.ExecConfig{Cmd: cmd0, User: f.user, WorkingDir: f.workdir, Privileged: f.privileged}
			for _, e := range f.env {
				if kv, ok := envValue(e, os.LookupEnv); ok {
					cfg.Env = append(cfg.Env, kv)
				}
			}
			s := engine.Streams{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(), Tty: f.tty}
			if f.interactive {
				s.Stdin = cmd.InOrStdin()
			}
			restore := func() {}
			if f.tty {
				s.Resize, restore = terminal(cmd.InOrStdin(), cmd.OutOrStdout())
			}
			defer restore()
			return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
				code, err := cs.Exec(context.WithoutCancel(cmd.Context()), args[0], cfg, s)
				restore()
				if err != nil {
					var ie *shim.InitError
					if errors.As(err, &ie) {
						return &ExitError{Code: ie.ExitCode(), Err: err}
					}
					return err
				}
				if code != 0 {
					return &ExitError{Code: code}
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "attach stdin")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (repeatable)")
	fl.StringVarP(&f.user, "user", "u", "", "user: name|uid[:group|gid]")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory")
	fl.BoolVar(&f.privileged, "privileged", false, "every capability, no no_new_privs")
	return cmd
}
