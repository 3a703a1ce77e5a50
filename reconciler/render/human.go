package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"berth.dev/berth/reconciler/plan"
)

// Options tune the text output.
type Options struct {
	// Color adds ANSI colours (only on a terminal, never under NO_COLOR;
	// the CLI decides).
	Color bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

type printer struct {
	w     io.Writer
	color bool
	err   error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) paint(code, s string) string {
	if !p.color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (p *printer) symbol(a plan.Action) string {
	switch a {
	case plan.Create:
		return p.paint(ansiGreen, "+")
	case plan.Update:
		return p.paint(ansiYellow, "~")
	case plan.Delete:
		return p.paint(ansiRed, "-")
	case plan.Replace:
		return p.paint(ansiRed, "-") + "/" + p.paint(ansiGreen, "+")
	}
	return " "
}

// Human writes the plan as text for a person, as `berth plan` prints it.
func Human(w io.Writer, pl *plan.Plan, opts Options) error {
	p := &printer{w: w, color: opts.Color}
	pending := pl.Pending()
	if len(pending) == 0 {
		p.printf("%s The host matches the manifests of project %s.\n", p.paint(ansiBold+ansiGreen, "No changes."), pl.Project)
		warnings(p, pl.Warnings)
		return p.err
	}
	legend(p, pending)
	p.printf("berth will perform the following actions on project %s:\n", pl.Project)
	for _, c := range pending {
		p.printf("\n")
		change(p, c)
	}
	warnings(p, pl.Warnings)
	s := pl.Summary()
	p.printf("\n%s %d to add, %d to change, %d to replace, %d to destroy.\n",
		p.paint(ansiBold, "Plan:"), s.Add, s.Change, s.Replace, s.Destroy)
	return p.err
}

func legend(p *printer, pending []plan.Change) {
	used := map[plan.Action]bool{}
	for _, c := range pending {
		used[c.Action] = true
	}
	p.printf("Resource actions are indicated with the following symbols:\n")
	for _, l := range []struct {
		a    plan.Action
		text string
	}{
		{plan.Create, "create"},
		{plan.Update, "update in place"},
		{plan.Replace, "destroy and then create replacement"},
		{plan.Delete, "destroy"},
	} {
		if used[l.a] {
			p.printf("%s%s %s\n", strings.Repeat(" ", 3-len(l.a.Symbol())), p.symbol(l.a), l.text)
		}
	}
	p.printf("\n")
}

func warnings(p *printer, ws []string) {
	for _, w := range ws {
		p.printf("\n%s %s\n", p.paint(ansiBold+ansiYellow, "Warning:"), w)
	}
}

func headline(c plan.Change) string {
	addr := c.Key.String()
	switch c.Action {
	case plan.Create:
		if c.Drift == plan.DriftRemoved {
			return addr + " was removed outside berth and will be created again"
		}
		return addr + " will be created"
	case plan.Update:
		switch c.Drift {
		case plan.DriftChanged:
			return addr + " was changed outside berth and will be updated in place"
		case plan.DriftStopped:
			return addr + " is not running and will be started"
		}
		if c.Start {
			return addr + " will be updated in place and started"
		}
		return addr + " will be updated in place"
	case plan.Replace:
		if c.Drift == plan.DriftChanged {
			return addr + " was changed outside berth and must be replaced"
		}
		return addr + " must be replaced"
	case plan.Delete:
		return addr + " will be destroyed"
	}
	return addr
}

func change(p *printer, c plan.Change) {
	p.printf("  %s\n", p.paint(ansiBold, "# "+headline(c)))
	for _, r := range c.Reasons {
		p.printf("  # (%s)\n", r)
	}
	kind := strings.ToLower(string(c.Kind))
	sym := p.symbol(c.Action)
	pad := strings.Repeat(" ", 3-len(c.Action.Symbol()))
	fields := c.Fields
	if c.Action == plan.Delete || len(fields) == 0 {
		p.printf("%s%s %s %q", pad, sym, kind, c.Name)
		if c.ID != "" && c.Action == plan.Delete {
			p.printf(" %s", p.paint(ansiCyan, "[id="+shortID(c.ID)+"]"))
		}
		p.printf("\n")
		return
	}
	p.printf("%s%s %s %q {\n", pad, sym, kind, c.Name)
	width := 0
	for _, f := range fields {
		width = max(width, len(f.Path))
	}
	for _, f := range fields {
		fa := fieldAction(c.Action, f)
		line := fmt.Sprintf("      %s %-*s = ", p.symbol(fa), width, f.Path)
		switch fa {
		case plan.Create:
			line += value(f, f.New)
		case plan.Delete:
			line += value(f, f.Old) + " -> null"
		default:
			line += value(f, f.Old) + " -> " + value(f, f.New)
		}
		if f.ForcesReplace && c.Action == plan.Replace {
			line += p.paint(ansiRed, " # forces replacement")
		}
		p.printf("%s\n", line)
	}
	p.printf("    }\n")
}

// fieldAction is how one field changes: added, removed or changed.
func fieldAction(a plan.Action, f plan.Field) plan.Action {
	switch {
	case a == plan.Create || f.Old == nil:
		return plan.Create
	case f.New == nil:
		return plan.Delete
	}
	return plan.Update
}

// value formats one side of a field. Strings are quoted, lists are
// bracketed, secrets are (sensitive) whatever the field holds.
func value(f plan.Field, v any) string {
	if v == nil {
		return "null"
	}
	if f.Sensitive || sensitivePath(f.Path) {
		return plan.Redacted
	}
	switch list := v.(type) {
	case []string:
		return formatList(len(list), func(i int) any { return list[i] })
	case []any: // a plan read back from JSON
		return formatList(len(list), func(i int) any { return list[i] })
	}
	return jsonText(v)
}

func formatList(n int, at func(int) any) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = jsonText(at(i))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// jsonText writes a scalar as JSON does, without escaping <, > and &.
func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// sensitivePath re-checks env fields by name, so that a plan assembled
// elsewhere cannot leak a secret through the renderer.
func sensitivePath(path string) bool {
	name, ok := strings.CutPrefix(path, "env.")
	return ok && plan.Sensitive(name)
}

func shortID(id string) string {
	if strings.HasPrefix(id, "sha256:") {
		return id
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
