package reconciler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"berth.dev/berth/engine/state"
	"berth.dev/berth/reconciler/plan"
)

// planFileKind marks a saved plan file.
const planFileKind = "berth-plan"

// PlanFile is a saved plan (`berth plan -out FILE`): the plan, what it was
// computed from (the manifest directory, the options) and fingerprints of
// the desired and observed states, so that `berth apply FILE` applies
// exactly this plan and refuses when either changed since. It holds the
// configurations to apply, secrets included: it is written with mode 0600.
type PlanFile struct {
	Kind          string `json:"kind"`
	FormatVersion string `json:"format_version"`
	Project       string `json:"project"`
	// Dir is the manifest directory (absolute); empty for a destroy plan.
	Dir                 string     `json:"dir,omitempty"`
	Created             time.Time  `json:"created"`
	PruneVolumes        bool       `json:"prune_volumes,omitempty"`
	AllowEmpty          bool       `json:"allow_empty,omitempty"`
	Destroy             bool       `json:"destroy,omitempty"`
	DesiredFingerprint  string     `json:"desired_fingerprint"`
	ObservedFingerprint string     `json:"observed_fingerprint"`
	Plan                *plan.Plan `json:"plan"`
}

// WritePlanFile saves res to path atomically, mode 0600.
func WritePlanFile(path string, res *PlanResult) error {
	pf := PlanFile{
		Kind:                planFileKind,
		FormatVersion:       plan.FormatVersion,
		Project:             res.Project,
		Dir:                 res.Dir,
		Created:             time.Now().UTC(),
		PruneVolumes:        res.Options.PruneVolumes,
		AllowEmpty:          res.Options.AllowEmpty,
		Destroy:             res.Options.Destroy,
		DesiredFingerprint:  res.DesiredFingerprint(),
		ObservedFingerprint: res.ObservedFingerprint(),
		Plan:                res.Plan,
	}
	data, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return state.WriteFile(path, append(data, '\n'), 0o600)
}

// ReadPlanFile reads a saved plan. ok is false (and err nil) when path is
// not a plan file at all (a manifest directory, say).
func ReadPlanFile(path string) (pf *PlanFile, ok bool, err error) {
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() {
		return nil, false, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	if !bytes.Contains(data[:min(len(data), 256)], []byte(`"`+planFileKind+`"`)) {
		return nil, false, nil
	}
	pf = &PlanFile{}
	if err := json.Unmarshal(data, pf); err != nil {
		return nil, true, Terminal(fmt.Errorf("plan file %s: %w", path, err))
	}
	if pf.Kind != planFileKind || pf.Plan == nil {
		return nil, false, nil
	}
	if major(pf.FormatVersion) != major(plan.FormatVersion) {
		return nil, true, Terminal(fmt.Errorf("plan file %s has format %s; this berth reads %s", path, pf.FormatVersion, plan.FormatVersion))
	}
	return pf, true, nil
}

func major(v string) string {
	for i, c := range v {
		if c == '.' {
			return v[:i]
		}
	}
	return v
}
