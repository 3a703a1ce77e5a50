package cli

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("stop", NewCmdStop) }

// NewCmdStop builds `berth stop`.
func NewCmdStop(o *Options) *cobra.Command {
	var stopTime func() *time.Duration
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER...",
		Short: "Stop running containers",
		Long: `Send each container its stop signal, wait for it to exit (by default its
stop timeout, 10 seconds), then SIGKILL it. A stopped container stays down
whatever its restart policy.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			timeout := stopTime()
			return eachContainer(cmd, o, args, func(cs engine.Containers, ref string) error {
				return cs.Stop(cmd.Context(), ref, timeout)
			})
		},
	}
	stopTime = stopTimeFlag(cmd)
	return cmd
}

// eachContainer runs fn for every reference, prints the ones that worked
// and reports every failure.
func eachContainer(cmd *cobra.Command, o *Options, refs []string, fn func(engine.Containers, string) error) error {
	return o.withContainers(cmd.Context(), func(cs engine.Containers) error {
		var errs *multierror.Error
		for _, ref := range refs {
			if err := fn(cs, ref); err != nil {
				errs = multierror.Append(errs, err)
				continue
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref)
		}
		if errs != nil {
			errs.ErrorFormat = func(es []error) string {
				s := es[0].Error()
				for _, e := range es[1:] {
					s += "\nberth: " + e.Error()
				}
				return s
			}
		}
		return errs.ErrorOrNil()
	})
}

// stopTimeFlag adds -t/--time SECONDS to cmd and returns its value: nil
// when not given, so that each container's own stop timeout applies.
func stopTimeFlag(cmd *cobra.Command) func() *time.Duration {
	var seconds int
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait before killing the container")
	return func() *time.Duration {
		if !cmd.Flags().Changed("time") {
			return nil
		}
		d := time.Duration(seconds) * time.Second
		return &d
	}
}
