package plan

// FormatVersion is the version of the saved-plan and JSON plan formats. It
// changes only in a major, documented way (see reconciler/render/README.md).
const FormatVersion = "1.0"

// Plan is an ordered list of changes for one project. Changes lists every
// desired and owned resource, NoOps included, in the order they are applied:
// networks, volumes, images, containers (in dependsOn order), then
// deletions in reverse (containers in reverse dependsOn order, volumes,
// networks).
type Plan struct {
	Project string   `json:"project"`
	Changes []Change `json:"changes"`
	// Warnings are things a person should know that are not changes: owned
	// volumes kept although they left the manifests, volumes that differ from
	// their manifest but hold data.
	Warnings []string `json:"warnings,omitempty"`
}

// Change is what happens to one resource.
type Change struct {
	Key
	// ID is the engine's ID of the observed object (a container or network
	// ID, a volume name, an image ID); empty when nothing is observed.
	ID     string `json:"id,omitempty"`
	Action Action `json:"action"`
	Drift  Drift  `json:"drift,omitempty"`
	// Reasons say why, in words a person reads: "spec changed: env.MODE",
	// "image web:1 now resolves to sha256:…", "no longer in the manifests".
	Reasons []string `json:"reasons,omitempty"`
	// Fields are the field-level differences: every attribute for a create,
	// the changed ones for an update or a replace.
	Fields []Field `json:"fields,omitempty"`
	// Start says that an existing container must be started (it was created
	// and never started, or stopped although its restart policy keeps it
	// running). Creates and replaces start their container anyway.
	Start bool `json:"start,omitempty"`

	// The desired resource, exactly one of them set unless Action is Delete.
	Network   *Network   `json:"network,omitempty"`
	Volume    *Volume    `json:"volume,omitempty"`
	Image     *Image     `json:"image,omitempty"`
	Container *Container `json:"container,omitempty"`

	// Uses are the networks, volumes and image the desired container needs:
	// their changes come first.
	Uses []Key `json:"uses,omitempty"`
	// ObservedUses are the networks and volumes the observed container holds:
	// it is removed before they are.
	ObservedUses []Key `json:"observedUses,omitempty"`
	// ObservedDependsOn are the containers the observed one depended on, from
	// its label: it is removed before they are.
	ObservedDependsOn []string `json:"observedDependsOn,omitempty"`
}

// Field is one attribute's difference. Old and New are nil when the
// attribute is absent on that side; otherwise a string, bool, int64 or
// []string (after a JSON round trip: float64 and []any).
type Field struct {
	Path string `json:"path"`
	Old  any    `json:"old"`
	New  any    `json:"new"`
	// ForcesReplace: this difference cannot be applied in place.
	ForcesReplace bool `json:"forcesReplace,omitempty"`
	// Sensitive: the values are secrets and Old/New hold only the marker
	// [Redacted]; the real values never enter a plan's fields.
	Sensitive bool `json:"sensitive,omitempty"`
}

// Redacted stands for a sensitive value in fields.
const Redacted = "(sensitive)"

// Summary counts a plan's changes by action.
type Summary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Replace int `json:"replace"`
	Destroy int `json:"destroy"`
}

// Summary counts the changes.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			s.Add++
		case Update:
			s.Change++
		case Replace:
			s.Replace++
		case Delete:
			s.Destroy++
		}
	}
	return s
}

// HasChanges reports whether applying the plan would do anything.
func (p *Plan) HasChanges() bool {
	for _, c := range p.Changes {
		if c.Action != NoOp {
			return true
		}
	}
	return false
}

// Pending returns the changes that do something, in plan order.
func (p *Plan) Pending() []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.Action != NoOp {
			out = append(out, c)
		}
	}
	return out
}

// Get returns the non-delete change for key (the one that makes the desired
// resource), or else the first change of key.
func (p *Plan) Get(key Key) (Change, bool) {
	var found *Change
	for i := range p.Changes {
		c := &p.Changes[i]
		if c.Key != key {
			continue
		}
		if c.Action != Delete {
			return *c, true
		}
		if found == nil {
			found = c
		}
	}
	if found == nil {
		return Change{}, false
	}
	return *found, true
}
