package plan

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/engine"
)

// attr is one attribute of a configuration, flattened for diffing: maps
// become one attribute per key (env.MODE, labels.tier), mounts and network
// attachments one per target.
type attr struct {
	path      string
	val       any // string, bool, int64 or []string
	updatable bool
	sensitive bool
}

// groups are the attribute groups in the order a person reads a container:
// a change lists its fields in this order. (An array, not a map of ranks:
// a package map is built at start-up, by every berth process.)
var groups = [...]string{
	"image", "entrypoint", "command", "env", "workingDir", "user", "hostname",
	"mounts", "networkMode", "networks", "ports", "restart", "resources",
	"healthcheck", "stopSignal", "stopTimeout", "readOnlyRootfs", "capAdd",
	"capDrop", "log", "tty", "openStdin", "autoRemove", "labels",
	"driver", "subnet", "gateway", "internal", "dns", "ref", "digest",
	"state",
}

// groupOrder is the rank of a group; an unknown one ranks first.
func groupOrder(group string) int { return max(slices.Index(groups[:], group), 0) }

func group(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

func lessPath(a, b string) bool {
	ga, gb := groupOrder(group(a)), groupOrder(group(b))
	if ga != gb {
		return ga < gb
	}
	return a < b
}

// berthLabel reports labels berth manages itself; they are compared apart.
func berthLabel(k string) bool { return strings.HasPrefix(k, "dev.berth.") }

func containerAttrs(c engine.ContainerConfig, imageLabels map[string]string) []attr {
	var as []attr
	add := func(path string, v any) { as = append(as, attr{path: path, val: v}) }
	addU := func(path string, v any) { as = append(as, attr{path: path, val: v, updatable: true}) }
	if c.Image != "" {
		add("image", c.Image)
	}
	if c.Entrypoint != nil {
		add("entrypoint", slices.Clone(c.Entrypoint))
	}
	if c.Cmd != nil {
		add("command", slices.Clone(c.Cmd))
	}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		as = append(as, attr{path: "env." + k, val: v, sensitive: Sensitive(k)})
	}
	if c.WorkingDir != "" {
		add("workingDir", c.WorkingDir)
	}
	if c.User != "" {
		add("user", c.User)
	}
	if c.Hostname != "" {
		add("hostname", c.Hostname)
	}
	for k, v := range c.Labels {
		if berthLabel(k) || (imageLabels != nil && imageLabels[k] == v) {
			continue // image labels the engine merged in are not ours to diff
		}
		addU("labels."+k, v)
	}
	for _, m := range c.Mounts {
		add("mounts["+m.Target+"]", mountString(m))
	}
	mode := c.NetworkMode
	if mode == "" {
		mode = engine.NetworkModeNone
		if len(c.Networks) > 0 {
			mode = engine.NetworkModeBridge
		}
	}
	add("networkMode", mode)
	for _, n := range c.Networks {
		add("networks["+n.Network+"]", endpointString(n))
	}
	if len(c.Ports) > 0 {
		ps := make([]string, 0, len(c.Ports))
		for _, p := range c.Ports {
			ps = append(ps, portString(p))
		}
		sort.Strings(ps)
		add("ports", ps)
	}
	addU("restart", restartString(c.Restart))
	if r := c.Resources; r.MemoryBytes != 0 {
		addU("resources.memory", FormatBytes(r.MemoryBytes))
	}
	if r := c.Resources; r.NanoCPUs != 0 {
		addU("resources.cpus", strconv.FormatFloat(float64(r.NanoCPUs)/1e9, 'f', -1, 64))
	}
	if r := c.Resources; r.CPUShares != 0 {
		addU("resources.cpuShares", r.CPUShares)
	}
	if r := c.Resources; r.PidsLimit != 0 {
		addU("resources.pids", r.PidsLimit)
	}
	if h := c.Healthcheck; h != nil {
		add("healthcheck.command", slices.Clone(h.Test))
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"startPeriod", h.StartPeriod}} {
			if d.v != 0 {
				add("healthcheck."+d.name, d.v.String())
			}
		}
		if h.Retries != 0 {
			add("healthcheck.retries", int64(h.Retries))
		}
	}
	if c.StopSignal != "" {
		add("stopSignal", c.StopSignal)
	}
	if c.StopTimeout != 0 {
		add("stopTimeout", c.StopTimeout.String())
	}
	if c.ReadOnlyRootfs {
		add("readOnlyRootfs", true)
	}
	if len(c.CapAdd) > 0 {
		add("capAdd", sortedCopy(c.CapAdd))
	}
	if len(c.CapDrop) > 0 {
		add("capDrop", sortedCopy(c.CapDrop))
	}
	if c.Log.MaxSize != 0 {
		add("log.maxSize", FormatBytes(c.Log.MaxSize))
	}
	if c.Log.MaxFiles != 0 {
		add("log.maxFiles", int64(c.Log.MaxFiles))
	}
	if c.Tty {
		add("tty", true)
	}
	if c.OpenStdin {
		add("openStdin", true)
	}
	if c.AutoRemove {
		add("autoRemove", true)
	}
	return as
}

func networkAttrs(n engine.NetworkConfig, desired *engine.NetworkConfig) []attr {
	var as []attr
	driver := n.Driver
	if driver == "" {
		driver = "bridge"
	}
	as = append(as, attr{path: "driver", val: driver})
	// The engine fills in an allocated subnet and gateway; they differ only
	// when the manifest names one.
	if n.Subnet != "" && (desired == nil || desired.Subnet != "") {
		as = append(as, attr{path: "subnet", val: n.Subnet})
	}
	if n.Gateway != "" && (desired == nil || desired.Gateway != "") {
		as = append(as, attr{path: "gateway", val: n.Gateway})
	}
	if n.Internal {
		as = append(as, attr{path: "internal", val: true})
	}
	as = append(as, attr{path: "dns", val: n.DNS})
	for k, v := range n.Labels {
		if !berthLabel(k) {
			as = append(as, attr{path: "labels." + k, val: v})
		}
	}
	return as
}

func volumeAttrs(v engine.VolumeConfig) []attr {
	driver := v.Driver
	if driver == "" {
		driver = "local"
	}
	as := []attr{{path: "driver", val: driver}}
	for k, val := range v.Labels {
		if !berthLabel(k) {
			as = append(as, attr{path: "labels." + k, val: val})
		}
	}
	return as
}

// diffAttrs compares old (observed) and new (desired) attributes and returns
// the differing ones as fields, ordered as a person reads them.
func diffAttrs(old, new []attr) []Field {
	type pair struct{ o, n *attr }
	m := map[string]*pair{}
	for i := range old {
		a := &old[i]
		m[a.path] = &pair{o: a}
	}
	for i := range new {
		a := &new[i]
		if p, ok := m[a.path]; ok {
			p.n = a
		} else {
			m[a.path] = &pair{n: a}
		}
	}
	var fs []Field
	for path, p := range m {
		var ov, nv any
		var updatable, sensitive bool
		if p.o != nil {
			ov, updatable, sensitive = p.o.val, p.o.updatable, p.o.sensitive
		}
		if p.n != nil {
			nv, updatable, sensitive = p.n.val, p.n.updatable, sensitive || p.n.sensitive
		}
		if equal(ov, nv) {
			continue
		}
		fs = append(fs, makeField(path, ov, nv, !updatable, sensitive))
	}
	sort.Slice(fs, func(i, j int) bool { return lessPath(fs[i].Path, fs[j].Path) })
	return fs
}

// createFields lists every attribute of a new resource.
func createFields(as []attr) []Field {
	fs := make([]Field, 0, len(as))
	for _, a := range as {
		fs = append(fs, makeField(a.path, nil, a.val, false, a.sensitive))
	}
	sort.Slice(fs, func(i, j int) bool { return lessPath(fs[i].Path, fs[j].Path) })
	return fs
}

func makeField(path string, ov, nv any, forces, sensitive bool) Field {
	if sensitive {
		if ov != nil {
			ov = Redacted
		}
		if nv != nil {
			nv = Redacted
		}
	}
	return Field{Path: path, Old: ov, New: nv, ForcesReplace: forces, Sensitive: sensitive}
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok || bok {
		return aok && bok && slices.Equal(as, bs)
	}
	return a == b
}

// secretWords mark an environment variable as a secret when its name
// contains one of them (case-insensitive).
var secretWords = []string{"PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH", "PRIVATE", "CERT"}

// Sensitive reports whether an environment variable's name looks like it
// holds a secret; its value is never shown in a plan.
func Sensitive(name string) bool {
	u := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(u, w) {
			return true
		}
	}
	return false
}

func mountString(m engine.Mount) string {
	var s string
	switch m.Type {
	case engine.MountTmpfs:
		s = "tmpfs"
		if m.TmpfsSize > 0 {
			s += " size=" + FormatBytes(m.TmpfsSize)
		}
	default:
		s = string(m.Type) + " " + m.Source
	}
	if m.ReadOnly {
		s += " (ro)"
	}
	return s
}

func endpointString(e engine.EndpointConfig) string {
	var parts []string
	if len(e.Aliases) > 0 {
		parts = append(parts, "aliases="+strings.Join(sortedCopy(e.Aliases), ","))
	}
	if e.IPv4 != "" {
		parts = append(parts, "ipv4="+e.IPv4)
	}
	if len(parts) == 0 {
		return "attached"
	}
	return strings.Join(parts, " ")
}

func portString(p engine.PortBinding) string {
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	s := fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, proto)
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	return s
}

func restartString(r engine.RestartPolicy) string {
	name := r.Name
	if name == "" {
		name = "no"
	}
	if name == "on-failure" && r.MaximumRetryCount > 0 {
		return fmt.Sprintf("on-failure:%d", r.MaximumRetryCount)
	}
	return name
}

// FormatBytes prints a byte count with the largest binary unit that divides
// it exactly (256Mi), as manifests write it.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return c
}
