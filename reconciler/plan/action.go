package plan

import "fmt"

// Action is what a change does to one resource. Its value is its display
// symbol, as Terraform's plans.Action.
type Action rune

// Actions.
const (
	NoOp    Action = 0
	Create  Action = '+'
	Update  Action = '~' // in place, without restarting a container
	Replace Action = '±' // delete, then create; displayed as -/+
	Delete  Action = '-'
)

// String returns the action's name as the JSON plan spells it.
func (a Action) String() string {
	switch a {
	case NoOp:
		return "no-op"
	case Create:
		return "create"
	case Update:
		return "update"
	case Replace:
		return "replace"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("Action(%q)", rune(a))
}

// Symbol returns the action as a plan displays it: "+", "~", "-/+", "-", or
// " " for no change.
func (a Action) Symbol() string {
	switch a {
	case NoOp:
		return " "
	case Replace:
		return "-/+"
	}
	return string(a)
}

// IsReplace reports whether the action deletes and re-creates the resource.
func (a Action) IsReplace() bool { return a == Replace }

// MarshalText makes actions appear by name in JSON.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses an action name.
func (a *Action) UnmarshalText(b []byte) error {
	for _, c := range []Action{NoOp, Create, Update, Replace, Delete} {
		if c.String() == string(b) {
			*a = c
			return nil
		}
	}
	return fmt.Errorf("unknown action %q", b)
}

// Drift says how an object departed from what berth last made it, without
// its manifest changing.
type Drift string

// Kinds of drift.
const (
	DriftNone    Drift = ""
	DriftRemoved Drift = "removed" // deleted outside berth
	DriftChanged Drift = "changed" // changed outside berth
	DriftStopped Drift = "stopped" // not running although it should run
)
