package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"berth.dev/berth/engine"
)

// Options tune Diff.
type Options struct {
	// PruneVolumes deletes owned volumes that left the manifests, and
	// replaces volumes whose manifest changed. Without it a volume's data is
	// never deleted: such volumes are kept and reported as warnings.
	PruneVolumes bool
}

// differ holds one Diff's indexes.
type differ struct {
	d    *Desired
	o    *Observed
	opts Options

	containers map[Key][]*engine.Container
	networks   map[Key][]*engine.Network
	volumes    map[Key][]*engine.Volume
	applied    map[Key]bool
	// netKey and volKey map engine object names (and network IDs) back to
	// the keys of owned objects.
	netKey map[string]Key
	volKey map[string]Key
	// replaced networks and volumes force their containers to be replaced,
	// and so do networks about to be created that observed containers
	// still reference (it was removed under them).
	replaced map[Key]bool
	created  map[Key]bool
	warnings []string
}

// Diff computes the plan that makes observed match desired. It is pure:
// the same inputs always give the same plan, in the same order.
func Diff(d *Desired, o *Observed, opts Options) *Plan {
	if d == nil {
		d = &Desired{}
	}
	if o == nil {
		o = &Observed{}
	}
	df := &differ{
		d: d, o: o, opts: opts,
		containers: map[Key][]*engine.Container{},
		networks:   map[Key][]*engine.Network{},
		volumes:    map[Key][]*engine.Volume{},
		applied:    map[Key]bool{},
		netKey:     map[string]Key{},
		volKey:     map[string]Key{},
		replaced:   map[Key]bool{},
		created:    map[Key]bool{},
	}
	df.index()
	p := &Plan{Project: d.Project}
	for i := range d.Networks {
		p.Changes = append(p.Changes, df.network(&d.Networks[i])...)
	}
	for i := range d.Volumes {
		p.Changes = append(p.Changes, df.volume(&d.Volumes[i])...)
	}
	for i := range d.Images {
		p.Changes = append(p.Changes, df.image(&d.Images[i]))
	}
	for _, c := range topoContainers(d.Containers) {
		p.Changes = append(p.Changes, df.container(c)...)
	}
	p.Changes = append(p.Changes, df.deletions()...)
	sortChanges(p.Changes)
	p.Warnings = df.warnings
	return p
}

func (df *differ) owned(labels map[string]string) (Key, bool) {
	if df.d.Project != "" && labels[engine.LabelProject] != df.d.Project {
		return Key{}, false
	}
	return keyOf(labels)
}

func (df *differ) index() {
	for i := range df.o.Containers {
		c := &df.o.Containers[i]
		if k, ok := df.owned(c.Config.Labels); ok {
			df.containers[k] = append(df.containers[k], c)
		}
	}
	for i := range df.o.Networks {
		n := &df.o.Networks[i]
		if k, ok := df.owned(n.Config.Labels); ok {
			df.networks[k] = append(df.networks[k], n)
			df.netKey[n.Name] = k
			df.netKey[n.ID] = k
		}
	}
	for i := range df.o.Volumes {
		v := &df.o.Volumes[i]
		if k, ok := df.owned(v.Config.Labels); ok {
			df.volumes[k] = append(df.volumes[k], v)
			df.volKey[v.Name] = k
		}
	}
	// Desired engine names map to keys too, for containers whose networks
	// do not exist yet.
	for _, n := range df.d.Networks {
		df.netKey[n.Config.Name] = Key{KindNetwork, n.Name}
	}
	for _, v := range df.d.Volumes {
		df.volKey[v.Config.Name] = Key{KindVolume, v.Name}
	}
	for _, k := range df.o.Applied {
		df.applied[k] = true
	}
	// Objects of one key beyond the first (a crash between create and
	// remove can leave two) are deleted; sort so that the survivor is stable.
	for _, cs := range df.containers {
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	}
	for _, ns := range df.networks {
		sort.SliceStable(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
	}
}

// primary picks the observed object that carries the desired engine name,
// and returns the others as extras to delete.
func primary[T any](objs []*T, name func(*T) string, want string) (*T, []*T) {
	var p *T
	var extra []*T
	for _, o := range objs {
		if p == nil && name(o) == want {
			p = o
			continue
		}
		extra = append(extra, o)
	}
	if p == nil && len(extra) > 0 {
		p, extra = extra[0], extra[1:]
	}
	return p, extra
}

func (df *differ) createReason(key Key) (Drift, string) {
	if df.applied[key] {
		return DriftRemoved, "removed outside berth"
	}
	return DriftNone, "not present"
}

// ---------------------------------------------------------------- networks

func (df *differ) network(n *Network) []Change {
	key := Key{KindNetwork, n.Name}
	obs, extra := primary(df.networks[key], func(x *engine.Network) string { return x.Name }, n.Config.Name)
	var out []Change
	for _, x := range extra {
		out = append(out, Change{Key: key, ID: x.ID, Action: Delete, Reasons: []string{"duplicate of " + n.Config.Name}})
	}
	ch := Change{Key: key, Network: n}
	if obs == nil {
		drift, why := df.createReason(key)
		ch.Action, ch.Drift, ch.Reasons = Create, drift, []string{why}
		ch.Fields = createFields(networkAttrs(n.Config, nil))
		df.created[key] = true
		return append(out, ch)
	}
	ch.ID = obs.ID
	same := n.Hash.Matches(obs.Config.Labels[engine.LabelSpecHash])
	fields := diffAttrs(networkAttrs(obs.Config, &n.Config), networkAttrs(n.Config, nil))
	if obs.Name != n.Config.Name {
		fields = append([]Field{{Path: "name", Old: obs.Name, New: n.Config.Name, ForcesReplace: true}}, fields...)
	}
	switch {
	case same && len(fields) == 0:
	case same:
		// The manifest is unchanged but the network is not what it says:
		// something outside berth recreated it.
		ch.Action, ch.Drift, ch.Fields = Replace, DriftChanged, fields
		ch.Reasons = []string{"changed outside berth: " + paths(fields)}
	case len(fields) == 0:
		// Only something without effect on the network changed (or the
		// hash's normalization did): networks cannot be relabelled in place,
		// and a replace would restart its containers for nothing.
	default:
		ch.Action, ch.Fields = Replace, fields
		ch.Reasons = []string{"spec changed: " + paths(fields) + " (networks cannot change in place)"}
	}
	if ch.Action == Replace {
		df.replaced[key] = true
	}
	return append(out, ch)
}

// ----------------------------------------------------------------- volumes

func (df *differ) volume(v *Volume) []Change {
	key := Key{KindVolume, v.Name}
	obs, extra := primary(df.volumes[key], func(x *engine.Volume) string { return x.Name }, v.Config.Name)
	var out []Change
	for _, x := range extra {
		if df.opts.PruneVolumes {
			out = append(out, Change{Key: key, ID: x.Name, Action: Delete, Reasons: []string{"duplicate of " + v.Config.Name}})
		} else {
			df.warnings = append(df.warnings, fmt.Sprintf("volume %s is a duplicate of %s; kept (volumes are deleted only with --prune-volumes)", x.Name, v.Config.Name))
		}
	}
	ch := Change{Key: key, Volume: v}
	if obs == nil {
		drift, why := df.createReason(key)
		ch.Action, ch.Drift, ch.Reasons = Create, drift, []string{why}
		ch.Fields = createFields(volumeAttrs(v.Config))
		return append(out, ch)
	}
	ch.ID = obs.Name
	if v.Hash.Matches(obs.Config.Labels[engine.LabelSpecHash]) {
		return append(out, ch)
	}
	fields := diffAttrs(volumeAttrs(obs.Config), volumeAttrs(v.Config))
	if obs.Name != v.Config.Name {
		fields = append([]Field{{Path: "name", Old: obs.Name, New: v.Config.Name, ForcesReplace: true}}, fields...)
	}
	if len(fields) == 0 {
		return append(out, ch)
	}
	if !df.opts.PruneVolumes {
		df.warnings = append(df.warnings, fmt.Sprintf("volume %s differs from its manifest (%s); kept with its data (apply with --prune-volumes to re-create it empty)", v.Name, paths(fields)))
		return append(out, ch)
	}
	ch.Action, ch.Fields = Replace, fields
	ch.Reasons = []string{"spec changed: " + paths(fields) + " (volumes cannot change in place; its data is deleted)"}
	df.replaced[key] = true
	return append(out, ch)
}

// ------------------------------------------------------------------ images

func (df *differ) image(im *Image) Change {
	key := Key{KindImage, im.Name}
	ch := Change{Key: key, Image: im}
	var tagged *engine.Image
	for i := range df.o.Images {
		li := &df.o.Images[i]
		if imageIs(li, im) {
			ch.ID = li.ID
			return ch
		}
		for _, t := range li.RepoTags {
			if t == im.Ref && tagged == nil {
				tagged = li
			}
		}
	}
	if tagged != nil {
		ch.Action, ch.ID = Update, tagged.ID
		old := tagged.Digest
		if old == "" {
			old = tagged.ID
		}
		ch.Fields = []Field{{Path: "digest", Old: old, New: pinDigest(im)}}
		ch.Reasons = []string{fmt.Sprintf("%s now names %s: it will be pulled", im.Ref, short(pinDigest(im)))}
		return ch
	}
	ch.Action = Create
	ch.Fields = []Field{{Path: "ref", New: im.Ref}, {Path: "digest", New: pinDigest(im)}}
	ch.Reasons = []string{"not present locally: it will be pulled"}
	return ch
}

// imageIs reports whether the local image li is the one im pins.
func imageIs(li *engine.Image, im *Image) bool {
	if im.ID != "" && li.ID == im.ID {
		return true
	}
	if im.Digest == "" {
		return im.Pin != "" && li.ID == im.Pin
	}
	if li.Digest == im.Digest {
		return true
	}
	for _, rd := range li.RepoDigests {
		if rd == im.Pin {
			return true
		}
	}
	return false
}

func pinDigest(im *Image) string {
	if im.Digest != "" {
		return im.Digest
	}
	return im.Pin
}

// short abbreviates a digest for reasons: sha256:0123456789ab.
func short(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// -------------------------------------------------------------- containers

// shouldStart says whether an existing, up-to-date container must be
// started, and why. What an exit means is the restart policy's call: a
// container that ran to completion under "no" or "on-failure" is done.
func shouldStart(st engine.ContainerState, restart engine.RestartPolicy) (bool, string) {
	switch st.Status {
	case engine.StatusCreated:
		return true, "created but never started"
	case engine.StatusExited:
		switch restart.Name {
		case "always", "unless-stopped":
			return true, fmt.Sprintf("exited (code %d) but its restart policy %q keeps it running", st.ExitCode, restart.Name)
		}
	}
	return false, ""
}

// fastPaths are what can differ while the spec hash is unchanged: the image
// digest a tag resolves to, mount sources (a moved manifest directory), and
// what can be changed in place outside berth.
func fastPath(f Field) bool {
	switch g := group(f.Path); g {
	case "image", "mounts", "restart", "resources", "labels":
		return true
	}
	return false
}

func (df *differ) container(c *Container) []Change {
	key := Key{KindContainer, c.Name}
	obs, extra := primary(df.containers[key], func(x *engine.Container) string { return x.Name }, c.Config.Name)
	var out []Change
	for _, x := range extra {
		out = append(out, df.deleteContainer(key, x, "duplicate of "+c.Config.Name))
	}
	ch := Change{Key: key, Container: c, Uses: c.uses()}
	if obs == nil {
		drift, why := df.createReason(key)
		ch.Action, ch.Drift, ch.Reasons = Create, drift, []string{why}
		ch.Fields = createFields(containerAttrs(c.Config, nil))
		return append(out, ch)
	}
	ch.ID = obs.ID
	ch.ObservedUses = df.observedUses(obs)
	ch.ObservedDependsOn = observedDependsOn(obs)

	switch obs.State.Status {
	case engine.StatusDead:
		ch.Action = Replace
		ch.Reasons = []string{"dead: its process and monitor are gone without a recorded exit"}
		return append(out, ch)
	case engine.StatusRemoving:
		ch.Action = Replace
		ch.Reasons = []string{"being removed"}
		return append(out, ch)
	}

	imageLabels := df.imageLabels(obs.ImageID)
	fields := diffAttrs(containerAttrs(obs.Config, imageLabels), containerAttrs(c.Config, nil))
	if obs.Name != c.Config.Name {
		fields = append([]Field{{Path: "name", Old: obs.Name, New: c.Config.Name, ForcesReplace: true}}, fields...)
	}
	same := c.Hash.Matches(obs.Config.Labels[engine.LabelSpecHash])
	if same {
		var kept []Field
		for _, f := range fields {
			if fastPath(f) || f.Path == "name" {
				kept = append(kept, f)
			}
		}
		fields = kept
	}
	replace := false
	for _, f := range fields {
		if f.ForcesReplace {
			replace = true
		}
	}
	switch {
	case same && len(fields) == 0:
	case same:
		ch.Fields = fields
		var imageOnly, outside []Field
		for _, f := range fields {
			if f.Path == "image" {
				imageOnly = append(imageOnly, f)
			} else {
				outside = append(outside, f)
			}
		}
		if len(imageOnly) > 0 {
			ch.Reasons = append(ch.Reasons, fmt.Sprintf("image %s now resolves to %s", c.Image, short(digestOf(c.Config.Image))))
		}
		if len(outside) > 0 {
			ch.Drift = DriftChanged
			ch.Reasons = append(ch.Reasons, "changed outside berth: "+paths(outside))
		}
		ch.Action = Update
		if replace {
			ch.Action = Replace
		}
	default:
		if len(fields) == 0 {
			// Only something with no effect on the container changed (its
			// dependsOn, say): refresh the hash label in place.
			fields = []Field{{Path: "labels." + engine.LabelSpecHash, Old: obs.Config.Labels[engine.LabelSpecHash], New: c.Hash.Current}}
		}
		ch.Fields = fields
		ch.Action = Update
		if replace {
			ch.Action = Replace
			ch.Reasons = []string{"spec changed: " + forcing(fields)}
		} else {
			ch.Reasons = []string{"spec changed: " + paths(fields) + " (in place)"}
		}
	}
	if ch.Action != Replace {
		for _, u := range append(append([]Key(nil), ch.Uses...), ch.ObservedUses...) {
			if df.replaced[u] {
				ch.Action = Replace
				ch.Reasons = append(ch.Reasons, u.String()+" is replaced")
				break
			}
			if df.created[u] && slices.Contains(ch.ObservedUses, u) {
				ch.Action, ch.Drift = Replace, DriftChanged
				ch.Reasons = append(ch.Reasons, u.String()+" was removed under it and is created again")
				break
			}
		}
	}
	if ch.Action != Replace {
		if why := df.staleEndpoint(obs); why != "" {
			ch.Action, ch.Drift = Replace, DriftChanged
			ch.Reasons = append(ch.Reasons, why)
		}
	}
	if ch.Action != Replace {
		if start, why := shouldStart(obs.State, c.Config.Restart); start {
			ch.Start = true
			if ch.Action == NoOp {
				ch.Action, ch.Drift = Update, DriftStopped
			}
			ch.Reasons = append(ch.Reasons, why)
			ch.Fields = append(ch.Fields, Field{Path: "state", Old: string(obs.State.Status), New: string(engine.StatusRunning)})
		}
	}
	return append(out, ch)
}

// staleEndpoint says why a running container's network attachment is to a
// network that is no longer the one of that name (removed and created
// again outside berth), or "".
func (df *differ) staleEndpoint(c *engine.Container) string {
	for _, e := range c.Endpoints {
		k, ok := df.netKey[e.Network]
		if !ok {
			continue
		}
		ns := df.networks[k]
		if len(ns) > 0 && e.NetworkID != "" && ns[0].ID != e.NetworkID {
			return "attached to a network " + k.String() + " that was re-created outside berth"
		}
	}
	return ""
}

func digestOf(pin string) string {
	if _, d, ok := strings.Cut(pin, "@"); ok {
		return d
	}
	return pin
}

func (df *differ) imageLabels(id string) map[string]string {
	for i := range df.o.Images {
		if df.o.Images[i].ID == id {
			return df.o.Images[i].Config.Labels
		}
	}
	return nil
}

func (c *Container) uses() []Key {
	var ks []Key
	for _, n := range c.Networks {
		ks = append(ks, Key{KindNetwork, n})
	}
	for _, v := range c.Volumes {
		ks = append(ks, Key{KindVolume, v})
	}
	if c.Image != "" {
		ks = append(ks, Key{KindImage, c.Image})
	}
	return ks
}

func (df *differ) observedUses(c *engine.Container) []Key {
	var ks []Key
	seen := map[Key]bool{}
	add := func(k Key, ok bool) {
		if ok && !seen[k] {
			seen[k] = true
			ks = append(ks, k)
		}
	}
	for _, n := range c.Config.Networks {
		k, ok := df.netKey[n.Network]
		add(k, ok)
	}
	for _, e := range c.Endpoints {
		k, ok := df.netKey[e.Network]
		add(k, ok)
	}
	for _, m := range c.Config.Mounts {
		if m.Type == engine.MountVolume {
			k, ok := df.volKey[m.Source]
			add(k, ok)
		}
	}
	return ks
}

func observedDependsOn(c *engine.Container) []string {
	s := c.Config.Labels[LabelDependsOn]
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (df *differ) deleteContainer(key Key, c *engine.Container, why string) Change {
	return Change{
		Key: key, ID: c.ID, Action: Delete, Reasons: []string{why},
		ObservedUses: df.observedUses(c), ObservedDependsOn: observedDependsOn(c),
	}
}

// --------------------------------------------------------------- deletions

func (df *differ) deletions() []Change {
	want := map[Key]bool{}
	for _, n := range df.d.Networks {
		want[Key{KindNetwork, n.Name}] = true
	}
	for _, v := range df.d.Volumes {
		want[Key{KindVolume, v.Name}] = true
	}
	for _, c := range df.d.Containers {
		want[Key{KindContainer, c.Name}] = true
	}
	const gone = "no longer in the manifests"
	var out []Change
	for k, cs := range df.containers {
		if want[k] {
			continue
		}
		for _, c := range cs {
			out = append(out, df.deleteContainer(k, c, gone))
		}
	}
	for k, ns := range df.networks {
		if want[k] {
			continue
		}
		for _, n := range ns {
			out = append(out, Change{Key: k, ID: n.ID, Action: Delete, Reasons: []string{gone}})
		}
	}
	for k, vs := range df.volumes {
		if want[k] {
			continue
		}
		for _, v := range vs {
			if df.opts.PruneVolumes {
				out = append(out, Change{Key: k, ID: v.Name, Action: Delete, Reasons: []string{gone + " (--prune-volumes)"}})
			} else {
				df.warnings = append(df.warnings, fmt.Sprintf("volume %s is no longer in the manifests; kept with its data (named volumes are deleted only with --prune-volumes)", v.Name))
			}
		}
	}
	sort.Strings(df.warnings)
	return out
}

// ------------------------------------------------------------------- order

// topoContainers orders containers so that each comes after what it
// dependsOn; ties, and any cycle the spec failed to reject, go by name.
func topoContainers(cs []Container) []*Container {
	byName := map[string]*Container{}
	names := make([]string, 0, len(cs))
	for i := range cs {
		byName[cs[i].Name] = &cs[i]
		names = append(names, cs[i].Name)
	}
	sort.Strings(names)
	deps := map[string][]string{}
	for _, n := range names {
		for _, d := range byName[n].DependsOn {
			if _, ok := byName[d.Name]; ok {
				deps[n] = append(deps[n], d.Name)
			}
		}
	}
	return topo(names, deps, func(n string) *Container { return byName[n] })
}

// topo sorts names (already sorted) so that each comes after its deps,
// picking the smallest ready name first; members of cycles come last, by name.
func topo[T any](names []string, deps map[string][]string, get func(string) T) []T {
	indeg := map[string]int{}
	rdeps := map[string][]string{}
	for _, n := range names {
		indeg[n] += 0
		for _, d := range deps[n] {
			indeg[n]++
			rdeps[d] = append(rdeps[d], n)
		}
	}
	var ready []string
	for _, n := range names {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	var out []T
	done := map[string]bool{}
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		done[n] = true
		out = append(out, get(n))
		for _, r := range rdeps[n] {
			indeg[r]--
			if indeg[r] == 0 {
				ready = append(ready, r)
			}
		}
	}
	for _, n := range names {
		if !done[n] {
			out = append(out, get(n))
		}
	}
	return out
}

// sortChanges puts changes in apply order: non-deletions by kind (their
// relative order within a kind is kept: containers are already in dependsOn
// order), then deletions: containers in reverse dependsOn order, volumes,
// networks.
func sortChanges(chs []Change) {
	// Reverse dependency order of deleted containers, from their labels.
	var delNames []string
	deps := map[string][]string{}
	for _, c := range chs {
		if c.Action == Delete && c.Kind == KindContainer {
			delNames = append(delNames, c.Name)
			deps[c.Name] = c.ObservedDependsOn
		}
	}
	sort.Strings(delNames)
	delNames = dedupe(delNames)
	ord := topo(delNames, deps, func(n string) string { return n })
	delRank := map[string]int{}
	for i, n := range ord {
		delRank[n] = len(ord) - i // dependents first
	}
	idx := make([]int, len(chs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := &chs[idx[a]], &chs[idx[b]]
		xd, yd := x.Action == Delete, y.Action == Delete
		if xd != yd {
			return !xd
		}
		if !xd {
			if x.Kind != y.Kind {
				return x.Kind.rank() < y.Kind.rank()
			}
			return false // keep insertion (dependsOn) order
		}
		if x.Kind != y.Kind {
			return x.Kind.rank() > y.Kind.rank()
		}
		if x.Kind == KindContainer && delRank[x.Name] != delRank[y.Name] {
			return delRank[x.Name] < delRank[y.Name]
		}
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		return x.ID < y.ID
	})
	sorted := make([]Change, len(chs))
	for i, j := range idx {
		sorted[i] = chs[j]
	}
	copy(chs, sorted)
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// paths lists fields' paths for a reason: "env.MODE, command".
func paths(fs []Field) string {
	ps := make([]string, 0, len(fs))
	for _, f := range fs {
		ps = append(ps, f.Path)
	}
	return strings.Join(ps, ", ")
}

// forcing says which fields force replacement: "env.MODE forces
// replacement", "env.MODE and command force replacement".
func forcing(fs []Field) string {
	var ps []string
	for _, f := range fs {
		if f.ForcesReplace {
			ps = append(ps, f.Path)
		}
	}
	switch len(ps) {
	case 0:
		return ""
	case 1:
		return ps[0] + " forces replacement"
	}
	return strings.Join(ps[:len(ps)-1], ", ") + " and " + ps[len(ps)-1] + " force replacement"
}
