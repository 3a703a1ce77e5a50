package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/reconciler"
	"berth.dev/berth/reconciler/render"
)

func init() { register("apply", NewCmdApply) }

// ApplyFlags are `berth apply`'s flags.
type ApplyFlags struct {
	projectFlags
	Wait         bool
	Timeout      time.Duration
	LockTimeout  time.Duration
	PruneVolumes bool
	AllowEmpty   bool
}

// NewCmdApply builds `berth apply`.
func NewCmdApply(o *Options) *cobra.Command {
	var f ApplyFlags
	cmd := &cobra.Command{
		Use:   "apply [DIR | PLANFILE]",
		Short: "Make the host match the manifests",
		Long: `Make the host match the manifests in DIR (default: the current directory):
create, update, replace and delete what plan shows, independent changes in
parallel, each container after what it dependsOn. Owned resources that left
the manifests are deleted, except named volumes (--prune-volumes); images are
never deleted.

Given a file saved by "berth plan -out FILE", apply performs exactly that
plan, or refuses when the manifests or the host changed since.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd, o, &f, args)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.Wait, "wait", false, "wait until every container is running and healthy, or has completed")
	fl.DurationVar(&f.Timeout, "timeout", 5*time.Minute, "how long to wait for dependencies and for --wait")
	fl.DurationVar(&f.LockTimeout, "lock-timeout", time.Minute, "how long to wait for another apply of the project to finish")
	fl.BoolVar(&f.PruneVolumes, "prune-volumes", false, "also delete owned volumes that left the manifests")
	fl.BoolVar(&f.AllowEmpty, "allow-empty", false, "let manifests with no resources delete what the project owns")
	return cmd
}

// applyReport is what `berth apply -o json` prints.
type applyReport struct {
	FormatVersion string           `json:"format_version"`
	Plan          *render.JSONPlan `json:"plan,omitempty"`
	OK            bool             `json:"ok"`
	Errors        []string         `json:"errors"`
	ElapsedMS     int64            `json:"elapsed_ms"`
}

func runApply(cmd *cobra.Command, o *Options, f *ApplyFlags, args []string) error {
	w := cmd.OutOrStdout()
	pp := &progressPrinter{w: w}
	opts := reconciler.ApplyOptions{
		PlanOptions: reconciler.PlanOptions{Target: f.target(args), PruneVolumes: f.PruneVolumes, AllowEmpty: f.AllowEmpty},
		Wait:        f.Wait, Timeout: f.Timeout, LockTimeout: f.LockTimeout,
		OnLockWait: lockWaiter(cmd.ErrOrStderr(), f.LockTimeout),
	}
	if !o.JSON() {
		opts.Progress = pp.event
	}
	var res *reconciler.ApplyResult
	err := withReconciler(cmd.Context(), o, false, nil, func(r *reconciler.Reconciler) error {
		var err error
		if len(args) == 1 {
			pf, isPlan, perr := reconciler.ReadPlanFile(args[0])
			if perr != nil {
				return perr
			}
			if isPlan {
				if f.project != "" && f.project != pf.Project {
					return fmt.Errorf("the plan is for project %s, not %s", pf.Project, f.project)
				}
				res, err = r.ApplyPlanFile(cmd.Context(), pf, opts)
				return err
			}
		}
		res, err = r.Apply(cmd.Context(), opts)
		return err
	})
	if o.JSON() {
		rep := applyReport{FormatVersion: "1.0", OK: err == nil, Errors: []string{}}
		if res != nil {
			p := render.ToJSON(res.Plan)
			rep.Plan = &p
			rep.ElapsedMS = res.Elapsed.Milliseconds()
		}
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if eerr := enc.Encode(rep); eerr != nil {
			return eerr
		}
		if err != nil {
			return &ExitError{Code: 1}
		}
		return nil
	}
	if res != nil {
		for _, warn := range res.Plan.Warnings {
			fmt.Fprintf(w, "Warning: %s\n", warn)
		}
	}
	if err != nil {
		if res != nil && res.Plan.HasChanges() {
			fmt.Fprintln(w)
		}
		if errors.Is(err, reconciler.ErrStale) {
			return err // says what to do already
		}
		return fmt.Errorf("apply: %w", err)
	}
	if !res.Plan.HasChanges() {
		fmt.Fprintf(w, "No changes. The host matches the manifests of project %s.\n", res.Project)
		return nil
	}
	fmt.Fprintf(w, "\n%s\n", summaryLine("Apply", res.Plan.Summary()))
	return nil
}
