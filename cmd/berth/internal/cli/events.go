package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("events", NewCmdEvents) }

// NewCmdEvents builds `berth events`.
func NewCmdEvents(o *Options) *cobra.Command {
	var filters []string
	cmd := &cobra.Command{
		Use:   "events [--filter KEY=VALUE]",
		Short: "Stream engine events as they happen",
		Long: `Print events (container create, start, die, oom, health_status, destroy...)
as they happen, until interrupted. Filters: type=, event= (action),
container= (ID or name), label=KEY[=VALUE]. With -o json, one JSON object per
line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			match, err := eventFilter(filters)
			if err != nil {
				return err
			}
			e, err := o.Engine(cmd.Context())
			if err != nil {
				return err
			}
			defer e.Close()
			ch, err := e.Events(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for ev := range ch {
				if !match(ev) {
					continue
				}
				if o.JSON() {
					if err := writeJSONLine(w, ev); err != nil {
						return err
					}
					continue
				}
				keys := make([]string, 0, len(ev.Attrs))
				for k := range ev.Attrs {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				attrs := make([]string, 0, len(keys))
				for _, k := range keys {
					attrs = append(attrs, k+"="+ev.Attrs[k])
				}
				if _, err := fmt.Fprintf(w, "%s %s %s %s (%s)\n", ev.Time.Format(time.RFC3339Nano), ev.Type, ev.Action, ev.ID, strings.Join(attrs, ", ")); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: type=, event=, container=, label=KEY[=VALUE] (repeatable)")
	return cmd
}

func eventFilter(filters []string) (func(engine.Event) bool, error) {
	want := map[string][]string{}
	labels := map[string]string{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--filter %q: want KEY=VALUE: %w", f, engine.ErrInvalid)
		}
		switch k {
		case "type", "event", "container":
			want[k] = append(want[k], v)
		case "label":
			lk, lv, _ := strings.Cut(v, "=")
			labels[lk] = lv
		default:
			return nil, fmt.Errorf("--filter %q: known filters are type, event, container and label: %w", f, engine.ErrInvalid)
		}
	}
	in := func(s string, list []string) bool {
		if len(list) == 0 {
			return true
		}
		for _, l := range list {
			if s == l {
				return true
			}
		}
		return false
	}
	return func(ev engine.Event) bool {
		if !in(ev.Type, want["type"]) || !in(ev.Action, want["event"]) {
			return false
		}
		if c := want["container"]; len(c) > 0 {
			ok := false
			for _, ref := range c {
				if ref == ev.Name || (len(ref) >= 4 && strings.HasPrefix(ev.ID, ref)) {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return engine.MatchLabels(ev.Attrs, labels)
	}, nil
}
