package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/reconciler"
)

func init() { register("destroy", NewCmdDestroy) }

// DestroyFlags are `berth destroy`'s flags.
type DestroyFlags struct {
	projectFlags
	Volumes     bool
	LockTimeout time.Duration
}

// NewCmdDestroy builds `berth destroy`.
func NewCmdDestroy(o *Options) *cobra.Command {
	var f DestroyFlags
	cmd := &cobra.Command{
		Use:   "destroy [DIR]",
		Short: "Remove everything a project owns",
		Long: `Remove every container and network that berth created for the project of
DIR (default: the current directory; the project is DIR's name unless -p
names it). The manifests are not read: DIR only names the project. Named
volumes are kept unless --volumes; images are never removed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDestroy(cmd, o, &f, args)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&f.Volumes, "volumes", false, "also remove the project's named volumes and their data")
	cmd.Flags().DurationVar(&f.LockTimeout, "lock-timeout", time.Minute, "how long to wait for another apply of the project to finish")
	return cmd
}

func runDestroy(cmd *cobra.Command, o *Options, f *DestroyFlags, args []string) error {
	w := cmd.OutOrStdout()
	pp := &progressPrinter{w: w}
	opts := reconciler.ApplyOptions{
		PlanOptions: reconciler.PlanOptions{Target: f.target(args), PruneVolumes: f.Volumes},
		LockTimeout: f.LockTimeout,
		OnLockWait:  lockWaiter(cmd.ErrOrStderr(), f.LockTimeout),
		Progress:    pp.event,
	}
	var res *reconciler.ApplyResult
	err := withReconciler(cmd.Context(), o, false, nil, func(r *reconciler.Reconciler) error {
		var err error
		res, err = r.Destroy(cmd.Context(), opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	for _, warn := range res.Plan.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
	if !res.Plan.HasChanges() {
		fmt.Fprintf(w, "No changes. Project %s owns nothing to destroy.\n", res.Project)
		return nil
	}
	fmt.Fprintf(w, "\n%s\n", summaryLine("Destroy", res.Plan.Summary()))
	return nil
}
