package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"berth.dev/berth/reconciler"
)

func init() { register("status", NewCmdStatus) }

// NewCmdStatus builds `berth status`.
func NewCmdStatus(o *Options) *cobra.Command {
	var f projectFlags
	cmd := &cobra.Command{
		Use:   "status [DIR]",
		Short: "Show whether each resource of a project is ready, and why",
		Long: `Show each resource of the project of DIR (default: the current directory)
with its condition: Ready, Reconciling (a watch is working on it) or Stalled
(it needs a person: an invalid spec, a name berth does not own), and why.
The host is observed now; failures come from the last apply or the watcher.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st *reconciler.ProjectStatus
			err := withReconciler(cmd.Context(), o, true, nil, func(r *reconciler.Reconciler) error {
				var err error
				st, err = r.Status(cmd.Context(), f.target(args))
				return err
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.JSON() {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(w, st)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func printStatus(w interface{ Write([]byte) (int, error) }, st *reconciler.ProjectStatus) {
	fmt.Fprintf(w, "Project %s", st.Project)
	if st.Dir != "" {
		fmt.Fprintf(w, " (%s)", st.Dir)
	}
	if st.Watcher != nil {
		fmt.Fprintf(w, ", watched by berth watch (pid %d)", st.Watcher.Pid)
	}
	fmt.Fprintln(w)
	if st.Error != "" {
		fmt.Fprintf(w, "Manifests: %s\n", strings.ReplaceAll(st.Error, "\n", "\n  "))
	}
	if len(st.Resources) == 0 {
		fmt.Fprintln(w, "No resources.")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tSTATUS\tREASON\tMESSAGE")
	for _, rs := range st.Resources {
		status, reason, msg := "Unknown", "", ""
		if c, ok := rs.Get(reconciler.ConditionReady); ok {
			reason, msg = c.Reason, c.Message
			switch c.Status {
			case reconciler.True:
				status = "Ready"
			case reconciler.False:
				status = "NotReady"
			}
		}
		if c, ok := rs.Get(reconciler.ConditionReconciling); ok && c.Status == reconciler.True {
			status = "Reconciling"
		}
		if c, ok := rs.Get(reconciler.ConditionStalled); ok && c.Status == reconciler.True {
			status, reason, msg = "Stalled", c.Reason, c.Message
		}
		if len(msg) > 100 {
			msg = msg[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rs.Key(), status, reason, strings.ReplaceAll(msg, "\n", " "))
	}
	tw.Flush()
}
