package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/state"
	"berth.dev/berth/reconciler/plan"
)

// Condition types, as Flux and Kubernetes name them.
const (
	// Ready: the resource is as the manifests say (True), or not and why
	// (False).
	ConditionReady = "Ready"
	// Reconciling: a reconcile of the resource is under way.
	ConditionReconciling = "Reconciling"
	// Stalled: the resource cannot progress without a person (an invalid
	// spec, a name taken by someone else); not retried until its manifest
	// changes.
	ConditionStalled = "Stalled"
)

// Condition statuses.
const (
	True    = "True"
	False   = "False"
	Unknown = "Unknown"
)

// Condition is one observation about a resource. Reason is a CamelCase word
// for machines, Message a sentence for people.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason"`
	Message            string    `json:"message,omitempty"`
	ObservedHash       string    `json:"observedHash,omitempty"` // the spec hash this condition is about
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// ResourceStatus is what berth knows of one resource of a project.
type ResourceStatus struct {
	Kind       plan.Kind   `json:"kind"`
	Name       string      `json:"name"`
	ID         string      `json:"id,omitempty"`
	Conditions []Condition `json:"conditions"`
	// Failures counts consecutive failed reconciles (watch's back-off).
	Failures int `json:"failures,omitempty"`
}

// Key returns the resource's key.
func (s *ResourceStatus) Key() plan.Key { return plan.Key{Kind: s.Kind, Name: s.Name} }

// Get returns the condition of type t, if set.
func (s *ResourceStatus) Get(t string) (Condition, bool) {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return Condition{}, false
}

// Set records c, keeping its transition time when its status is unchanged.
func (s *ResourceStatus) Set(c Condition, now time.Time) {
	for i, old := range s.Conditions {
		if old.Type != c.Type {
			continue
		}
		c.LastTransitionTime = old.LastTransitionTime
		if old.Status != c.Status || c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		s.Conditions[i] = c
		return
	}
	c.LastTransitionTime = now
	s.Conditions = append(s.Conditions, c)
	order := map[string]int{ConditionReady: 0, ConditionReconciling: 1, ConditionStalled: 2}
	sort.SliceStable(s.Conditions, func(i, j int) bool { return order[s.Conditions[i].Type] < order[s.Conditions[j].Type] })
}

// Remove drops the condition of type t.
func (s *ResourceStatus) Remove(t string) {
	s.Conditions = slices.DeleteFunc(s.Conditions, func(c Condition) bool { return c.Type == t })
}

// ProjectStatus is a project's status as `berth status` shows it and as
// it is persisted at <data root>/projects/<project>/status.json.
type ProjectStatus struct {
	Project string `json:"project"`
	Dir     string `json:"dir,omitempty"`
	// Watcher is set while `berth watch` runs for the project.
	Watcher   *state.Process   `json:"watcher,omitempty"`
	UpdatedAt time.Time        `json:"updatedAt"`
	Resources []ResourceStatus `json:"resources"`
	// Error is why the manifests could not be read or converted, if so.
	Error string `json:"error,omitempty"`
}

// Resource returns the status of key, adding an empty one if missing.
func (p *ProjectStatus) Resource(key plan.Key) *ResourceStatus {
	for i := range p.Resources {
		if p.Resources[i].Key() == key {
			return &p.Resources[i]
		}
	}
	p.Resources = append(p.Resources, ResourceStatus{Kind: key.Kind, Name: key.Name})
	return &p.Resources[len(p.Resources)-1]
}

func (p *ProjectStatus) sort() {
	sort.SliceStable(p.Resources, func(i, j int) bool { return p.Resources[i].Key().Less(p.Resources[j].Key()) })
}

// applied lists the keys of resources berth has made (they have an ID):
// one missing now was removed outside berth.
func (p *ProjectStatus) applied() []plan.Key {
	if p == nil {
		return nil
	}
	var ks []plan.Key
	for _, r := range p.Resources {
		if r.ID != "" {
			ks = append(ks, r.Key())
		}
	}
	return ks
}

func (r *Reconciler) statusPath(project string) string {
	return filepath.Join(r.projectDir(project), "status.json")
}

// readStatus reads the persisted status; a missing file is an empty one.
func (r *Reconciler) readStatus(project string) (*ProjectStatus, error) {
	var ps ProjectStatus
	err := state.ReadJSON(r.statusPath(project), &ps)
	if errors.Is(err, fs.ErrNotExist) {
		return &ProjectStatus{Project: project}, nil
	}
	if err != nil {
		return &ProjectStatus{Project: project}, fmt.Errorf("status of project %s: %w", project, err)
	}
	return &ps, nil
}

// writeStatus persists ps unless it equals what is on disk but for times,
// so that a no-op apply writes nothing. The write is atomic but not synced:
// the status is what berth status shows and words drift with, and the next
// reconcile recomputes it, so a crash of the machine that loses the last
// write costs nothing, while syncing cost every apply and every reconcile
// of berth watch 2 ms.
func (r *Reconciler) writeStatus(ps *ProjectStatus, old *ProjectStatus) error {
	ps.sort()
	if old != nil && sameStatus(ps, old) {
		return nil
	}
	ps.UpdatedAt = time.Now().UTC()
	if err := os.MkdirAll(r.projectDir(ps.Project), 0o700); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	data, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return state.WriteFileNoSync(r.statusPath(ps.Project), append(data, '\n'), 0o600)
}

func sameStatus(a, b *ProjectStatus) bool {
	strip := func(p *ProjectStatus) ProjectStatus {
		c := *p
		c.UpdatedAt = time.Time{}
		c.Resources = make([]ResourceStatus, len(p.Resources))
		for i, r := range p.Resources {
			r.Conditions = slices.Clone(r.Conditions)
			for j := range r.Conditions {
				r.Conditions[j].LastTransitionTime = time.Time{}
			}
			c.Resources[i] = r
		}
		return c
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// observedCondition says how the resource of a NoOp change is doing, from
// what the engine reports.
func observedCondition(ch plan.Change, o *plan.Observed) Condition {
	hash := desiredHash(ch)
	if ch.Kind != plan.KindContainer {
		return Condition{Type: ConditionReady, Status: True, Reason: "Present", Message: "as the manifests say", ObservedHash: hash}
	}
	for _, ct := range o.Containers {
		if ct.ID != ch.ID {
			continue
		}
		st := ct.State
		switch st.Status {
		case engine.StatusRunning:
			if st.Health != nil {
				switch st.Health.Status {
				case "healthy":
					return Condition{Type: ConditionReady, Status: True, Reason: "Healthy", Message: "running and healthy", ObservedHash: hash}
				case "unhealthy":
					return Condition{Type: ConditionReady, Status: False, Reason: "Unhealthy", Message: fmt.Sprintf("running, healthcheck failed %d times in a row", st.Health.FailingStreak), ObservedHash: hash}
				}
				return Condition{Type: ConditionReady, Status: False, Reason: "Starting", Message: "running, health is starting", ObservedHash: hash}
			}
			return Condition{Type: ConditionReady, Status: True, Reason: "Running", Message: "running", ObservedHash: hash}
		case engine.StatusRestarting:
			return Condition{Type: ConditionReady, Status: False, Reason: "Restarting", Message: fmt.Sprintf("exited with code %d; its restart policy restarts it (%d restarts)", st.ExitCode, st.RestartCount), ObservedHash: hash}
		case engine.StatusExited:
			if st.ExitCode == 0 {
				return Condition{Type: ConditionReady, Status: True, Reason: "Completed", Message: "exited with code 0", ObservedHash: hash}
			}
			return Condition{Type: ConditionReady, Status: False, Reason: "Failed", Message: fmt.Sprintf("exited with code %d; its restart policy %q does not restart it", st.ExitCode, ct.Config.Restart.Name), ObservedHash: hash}
		}
		return Condition{Type: ConditionReady, Status: False, Reason: "NotRunning", Message: string(st.Status), ObservedHash: hash}
	}
	return Condition{Type: ConditionReady, Status: Unknown, Reason: "NotObserved", ObservedHash: hash}
}

// pendingCondition says why a resource with a pending change is not ready.
func pendingCondition(ch plan.Change) Condition {
	reason := "ChangesPending"
	switch {
	case ch.Action == plan.Delete:
		reason = "NotInManifests"
	case ch.Drift != "":
		reason = "Drifted"
	case ch.Action == plan.Create:
		reason = "Pending"
	}
	msg := ch.Action.String()
	if len(ch.Reasons) > 0 {
		msg += ": " + joinReasons(ch.Reasons)
	}
	return Condition{Type: ConditionReady, Status: False, Reason: reason, Message: msg, ObservedHash: desiredHash(ch)}
}

func joinReasons(rs []string) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += "; "
		}
		s += r
	}
	return s
}

// desiredHash is the spec hash a change is about.
func desiredHash(ch plan.Change) string {
	switch {
	case ch.Container != nil:
		return ch.Container.Hash.Current
	case ch.Network != nil:
		return ch.Network.Hash.Current
	case ch.Volume != nil:
		return ch.Volume.Hash.Current
	case ch.Image != nil:
		return ch.Image.Pin
	}
	return ""
}
