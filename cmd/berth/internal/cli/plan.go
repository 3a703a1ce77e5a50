package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/reconciler"
	"berth.dev/berth/reconciler/render"
)

func init() { register("plan", NewCmdPlan) }

// PlanFlags are `berth plan`'s flags.
type PlanFlags struct {
	projectFlags
	DetailedExitCode bool
	Out              string
	PruneVolumes     bool
	AllowEmpty       bool
	Destroy          bool
}

// NewCmdPlan builds `berth plan`.
func NewCmdPlan(o *Options) *cobra.Command {
	var f PlanFlags
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what apply would change",
		Long: `Show what apply would change to make the host match the manifests in DIR
(default: the current directory): + create, ~ update in place, -/+ replace,
- destroy, with the fields that change and why. Changes nothing.

With --detailed-exitcode the exit status is 0 when there is nothing to do,
2 when there are changes, 1 on error. With -out FILE the plan is saved;
"berth apply FILE" applies exactly it, or refuses if the manifests or the
host changed since.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd, o, &f, args)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.DetailedExitCode, "detailed-exitcode", false, "exit 0 when there are no changes, 2 when there are, 1 on error")
	fl.StringVar(&f.Out, "out", "", "save the plan to this file, for berth apply FILE")
	fl.BoolVar(&f.PruneVolumes, "prune-volumes", false, "also delete owned volumes that left the manifests")
	fl.BoolVar(&f.AllowEmpty, "allow-empty", false, "let manifests with no resources delete what the project owns")
	fl.BoolVar(&f.Destroy, "destroy", false, "plan the removal of everything the project owns")
	return cmd
}

func runPlan(cmd *cobra.Command, o *Options, f *PlanFlags, args []string) error {
	opts := reconciler.PlanOptions{Target: f.target(args), PruneVolumes: f.PruneVolumes, AllowEmpty: f.AllowEmpty, Destroy: f.Destroy}
	var res *reconciler.PlanResult
	err := withReconciler(cmd.Context(), o, true, nil, func(r *reconciler.Reconciler) error {
		var err error
		res, err = r.Plan(cmd.Context(), opts)
		return err
	})
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if o.JSON() {
		err = render.JSON(w, res.Plan)
	} else {
		err = render.Human(w, res.Plan, render.Options{Color: o.Color})
	}
	if err != nil {
		return err
	}
	if f.Out != "" {
		if err := reconciler.WritePlanFile(f.Out, res); err != nil {
			return err
		}
		if !o.JSON() {
			fmt.Fprintf(w, "\nSaved the plan to: %s\n\nTo perform exactly these actions, run:\n    berth apply %s\n", f.Out, f.Out)
		}
	}
	if f.DetailedExitCode && res.Plan.HasChanges() {
		return &ExitError{Code: 2}
	}
	return nil
}

// terraformOut lets `berth plan -out FILE` be spelled as Terraform spells
// it: pflag would read "-out" as "-o ut". Only plan's own arguments are
// touched: the verb is the first argument that is neither a flag nor the
// value of a global flag.
func terraformOut(args []string) []string {
	verb := verbIndex(args)
	if verb < 0 || args[verb] != "plan" {
		return args
	}
	out := append([]string(nil), args...)
	for i := verb + 1; i < len(out); i++ {
		if out[i] == "--" {
			break
		}
		if out[i] == "-out" || strings.HasPrefix(out[i], "-out=") {
			out[i] = "-" + out[i]
		}
	}
	return out
}
