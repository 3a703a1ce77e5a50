// Package render prints plans: as text a person reviews (Terraform's
// symbols, field-level old -> new, "# forces replacement", a summary line)
// and as JSON with a stable, documented schema (README.md,
// schemas/plan.schema.json). It renders a plan and never computes one: the
// diff lives in reconciler/plan, so a new output format never touches it.
//
// Secrets never appear: environment values whose names look secret are
// shown as (sensitive) in both outputs.
package render
