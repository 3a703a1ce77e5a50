package render

import (
	"encoding/json"
	"io"

	"berth.dev/berth/reconciler/plan"
)

// JSONPlan is the document `berth plan -o json` prints. Its schema is
// documented in README.md and schemas/plan.schema.json; FormatVersion
// changes its major number on any incompatible change.
type JSONPlan struct {
	FormatVersion string       `json:"format_version"`
	Project       string       `json:"project"`
	HasChanges    bool         `json:"has_changes"`
	Summary       JSONSummary  `json:"summary"`
	Changes       []JSONChange `json:"changes"`
	Warnings      []string     `json:"warnings"`
}

// JSONSummary counts changes by action.
type JSONSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Replace int `json:"replace"`
	Destroy int `json:"destroy"`
}

// JSONChange is one resource's change.
type JSONChange struct {
	Address string      `json:"address"` // kind/name, kind in lower case: container/web
	Kind    string      `json:"kind"`    // Network, Volume, Image, Container
	Name    string      `json:"name"`
	ID      string      `json:"id,omitempty"`
	Action  string      `json:"action"` // no-op, create, update, replace, delete
	Drift   string      `json:"drift,omitempty"`
	Start   bool        `json:"start,omitempty"`
	Reasons []string    `json:"reasons"`
	Fields  []JSONField `json:"fields"`
}

// JSONField is one attribute's difference. Before and After are null when
// the attribute is absent on that side; a string, number, boolean or list of
// strings otherwise; "(sensitive)" for secrets.
type JSONField struct {
	Path              string `json:"path"`
	Before            any    `json:"before"`
	After             any    `json:"after"`
	ForcesReplacement bool   `json:"forces_replacement"`
	Sensitive         bool   `json:"sensitive"`
}

// ToJSON converts a plan into its JSON document.
func ToJSON(pl *plan.Plan) JSONPlan {
	s := pl.Summary()
	doc := JSONPlan{
		FormatVersion: plan.FormatVersion,
		Project:       pl.Project,
		HasChanges:    pl.HasChanges(),
		Summary:       JSONSummary(s),
		Changes:       []JSONChange{},
		Warnings:      append([]string{}, pl.Warnings...),
	}
	for _, c := range pl.Changes {
		jc := JSONChange{
			Address: c.Key.String(),
			Kind:    string(c.Kind),
			Name:    c.Name,
			ID:      c.ID,
			Action:  c.Action.String(),
			Drift:   string(c.Drift),
			Start:   c.Start,
			Reasons: append([]string{}, c.Reasons...),
			Fields:  []JSONField{},
		}
		for _, f := range c.Fields {
			jf := JSONField{Path: f.Path, Before: f.Old, After: f.New, ForcesReplacement: f.ForcesReplace, Sensitive: f.Sensitive}
			if f.Sensitive || sensitivePath(f.Path) {
				jf.Sensitive = true
				if jf.Before != nil {
					jf.Before = plan.Redacted
				}
				if jf.After != nil {
					jf.After = plan.Redacted
				}
			}
			jc.Fields = append(jc.Fields, jf)
		}
		doc.Changes = append(doc.Changes, jc)
	}
	return doc
}

// JSON writes the plan as its JSON document, indented, with a final newline.
func JSON(w io.Writer, pl *plan.Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(ToJSON(pl))
}
