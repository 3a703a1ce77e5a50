package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"

	"berth.dev/berth/engine"
)

// FingerprintDesired digests the desired state: the converted manifests with
// their images resolved. A saved plan records it, and applying the plan is
// refused when the manifests (or what their tags resolve to) differ since.
// Reformatting a manifest does not change it.
func FingerprintDesired(d *Desired) string {
	return digestJSON(d)
}

// FingerprintObserved digests exactly the observed facts Diff reads for the
// project: owned objects' identities, configurations and run states (not
// health, pids or timestamps, which move without the plan changing), and the
// local images that desired images name. A saved plan records it, and
// applying the plan is refused when the host differs since.
func FingerprintObserved(d *Desired, o *Observed) string {
	type ctr struct {
		ID, Name, ImageID, State string
		Config                   engine.ContainerConfig
	}
	type net struct {
		ID, Name string
		Config   engine.NetworkConfig
	}
	type vol struct {
		Name   string
		Config engine.VolumeConfig
	}
	type img struct {
		ID, Digest        string
		Tags, RepoDigests []string
	}
	var fp struct {
		Containers []ctr
		Networks   []net
		Volumes    []vol
		Images     []img
	}
	mine := func(l map[string]string) bool { return l[engine.LabelProject] == d.Project }
	for _, c := range o.Containers {
		if !mine(c.Config.Labels) {
			continue
		}
		st := string(c.State.Status)
		if c.State.Status == engine.StatusRestarting {
			st = string(engine.StatusRunning) // the monitor is on it either way
		}
		fp.Containers = append(fp.Containers, ctr{c.ID, c.Name, c.ImageID, st, c.Config})
	}
	for _, n := range o.Networks {
		if mine(n.Config.Labels) {
			fp.Networks = append(fp.Networks, net{n.ID, n.Name, n.Config})
		}
	}
	for _, v := range o.Volumes {
		if mine(v.Config.Labels) {
			fp.Volumes = append(fp.Volumes, vol{v.Name, v.Config})
		}
	}
	for _, li := range o.Images {
		relevant := false
		for i := range d.Images {
			im := &d.Images[i]
			if imageIs(&li, im) || slices.Contains(li.RepoTags, im.Ref) {
				relevant = true
				break
			}
		}
		if relevant {
			fp.Images = append(fp.Images, img{li.ID, li.Digest, sortedCopy(li.RepoTags), sortedCopy(li.RepoDigests)})
		}
	}
	sort.Slice(fp.Containers, func(i, j int) bool { return fp.Containers[i].ID < fp.Containers[j].ID })
	sort.Slice(fp.Networks, func(i, j int) bool { return fp.Networks[i].ID < fp.Networks[j].ID })
	sort.Slice(fp.Volumes, func(i, j int) bool { return fp.Volumes[i].Name < fp.Volumes[j].Name })
	sort.Slice(fp.Images, func(i, j int) bool { return fp.Images[i].ID < fp.Images[j].ID })
	return digestJSON(fp)
}

func digestJSON(v any) string {
	// encoding/json sorts map keys, so equal values give equal bytes. Only
	// plain data (strings, numbers, maps, slices) is marshalled: no error.
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
