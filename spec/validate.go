package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Checks of one resource run right after it is decoded, where the
// positions of its fields are at hand; checks across resources run on the
// whole Set, after defaults.

// reservedLabelPrefix is the label namespace berth writes itself (project,
// kind, name, spec hash).
const reservedLabelPrefix = "dev.berth."

// minMemory is the smallest memory limit a container can start with (the
// same floor as Docker's).
const minMemory = 6 << 20

// maxEnvFileSize bounds an env file: it is read at load time, and a
// mistaken path (a device, a large file) must not stall the loader.
const maxEnvFileSize = 1 << 20

func (d *decoder) checkResource(r *Resource) {
	for k := range r.Metadata.Labels {
		p := key("metadata.labels", k)
		switch {
		case k == "" || strings.ContainsFunc(k, isSpaceOrControl):
			d.errorAt(p, "label keys must be non-empty and without spaces")
		case strings.HasPrefix(k, reservedLabelPrefix):
			d.errorAt(p, "label keys starting with %s are reserved for berth", reservedLabelPrefix)
		}
	}
	for k := range r.Metadata.Annotations {
		if k == "" || strings.ContainsFunc(k, isSpaceOrControl) {
			d.errorAt(key("metadata.annotations", k), "annotation keys must be non-empty and without spaces")
		}
	}
	switch s := r.Spec.(type) {
	case *ImageSpec:
		if d.ok("spec.ref") {
			if msg := checkImageRef(s.Ref); msg != "" {
				d.errorAt("spec.ref", "%s", msg)
			}
		}
	case *ContainerSpec:
		d.checkContainer(s)
	case *NetworkSpec:
		d.checkNetwork(s)
	}
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

func (d *decoder) checkContainer(c *ContainerSpec) {
	if d.ok("spec.image") {
		if msg := checkImageRef(c.Image); msg != "" {
			d.errorAt("spec.image", "%s", msg)
		}
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			d.errorAt(key("spec.env", k), "invalid variable name %q", k)
		}
	}
	d.readEnvFiles(c)
	if c.WorkingDir != "" {
		if !path.IsAbs(c.WorkingDir) {
			d.errorAt("spec.workingDir", "workingDir %q must be an absolute path", c.WorkingDir)
		} else {
			c.WorkingDir = path.Clean(c.WorkingDir)
		}
	}
	if d.ok("spec.user") {
		u, g, hasGroup := strings.Cut(c.User, ":")
		if u == "" || hasGroup && g == "" || strings.ContainsFunc(c.User, isSpaceOrControl) || strings.Count(c.User, ":") > 1 {
			d.errorAt("spec.user", "invalid user %q: want uid[:gid] or name[:group]", c.User)
		}
	}
	if d.ok("spec.hostname") && !validHostname(c.Hostname) {
		d.errorAt("spec.hostname", "invalid hostname %q", c.Hostname)
	}
	if len(c.Ports) > 0 && len(c.Networks) == 0 {
		d.errorAt("spec.ports", "publishing ports needs the container on a network (spec.networks)")
	}
	for i, a := range c.Networks {
		p := index("spec.networks", i)
		for j := range i {
			if c.Networks[j].Name == a.Name && a.Name != "" {
				d.errorAt(p, "network %q is listed twice", a.Name)
			}
		}
		for k, alias := range a.Aliases {
			if !validHostname(alias) {
				d.errorAt(index(join(p, "aliases"), k), "invalid alias %q: want a host name", alias)
			}
		}
		if a.IPv4 != "" {
			ip, err := netip.ParseAddr(a.IPv4)
			if err != nil || !ip.Is4() {
				d.errorAt(join(p, "ipv4"), "invalid IPv4 address %q", a.IPv4)
			} else {
				c.Networks[i].IPv4 = ip.String()
			}
		}
	}
	for i, m := range c.Volumes {
		for j := range i {
			if c.Volumes[j].Target == m.Target && m.Target != "" {
				d.errorAt(d.fields.long(index("spec.volumes", i), "target"), "target %s is mounted twice", m.Target)
			}
		}
	}
	if c.Resources.Memory != 0 && c.Resources.Memory < minMemory {
		d.errorAt("spec.resources.memory", "memory %s is below the minimum of 6Mi", c.Resources.Memory)
	}
	for i, dep := range c.DependsOn {
		for j := range i {
			if c.DependsOn[j].Name == dep.Name && dep.Name != "" {
				d.errorAt(index("spec.dependsOn", i), "container %q is listed twice", dep.Name)
			}
		}
	}
}

// readEnvFiles merges the env files into Env (Env wins) and makes their
// paths absolute.
func (d *decoder) readEnvFiles(c *ContainerSpec) {
	if len(c.EnvFile) == 0 {
		return
	}
	list := d.fields.has("spec.envFile[0]")
	fromFiles := map[string]string{}
	for i, name := range c.EnvFile {
		p := "spec.envFile"
		if list {
			p = index(p, i)
		}
		if name == "" {
			d.errorAt(p, "env file name must not be empty")
			continue
		}
		file := name
		if !filepath.IsAbs(file) {
			file = filepath.Join(d.dir, filepath.FromSlash(file))
		}
		c.EnvFile[i] = file
		env, err := d.envFiles.get(file)
		if err != nil {
			d.errorAt(p, "env file %s%s", name, err)
			continue
		}
		maps.Copy(fromFiles, env)
	}
	if len(fromFiles) == 0 {
		return
	}
	if c.Env == nil {
		c.Env = make(map[string]string, len(fromFiles))
	}
	for k, v := range fromFiles {
		if _, set := c.Env[k]; !set {
			c.Env[k] = v
		}
	}
}

// envFiles reads each env file once per load: many containers of a set
// typically share one.
type envFiles struct {
	mu    sync.Mutex
	files map[string]*envFile
}

type envFile struct {
	once sync.Once
	env  map[string]string
	err  error
}

// get returns the variables of an env file; the error reads as the rest
// of a sentence that names the file (": no such file or directory",
// " line 3: want KEY=value"). Callers must not modify the map.
func (c *envFiles) get(file string) (map[string]string, error) {
	c.mu.Lock()
	if c.files == nil {
		c.files = map[string]*envFile{}
	}
	f, ok := c.files[file]
	if !ok {
		f = &envFile{}
		c.files[file] = f
	}
	c.mu.Unlock()
	f.once.Do(func() {
		data, err := readSmallFile(file, maxEnvFileSize)
		if err != nil {
			f.err = errors.New(": " + fileProblem(err))
			return
		}
		f.env = map[string]string{}
		if err := parseEnvFile(data, f.env); err != nil {
			f.err = errors.New(" " + err.Error())
		}
	})
	return f.env, f.err
}

// parseEnvFile reads KEY=value lines into env. Errors name the line but
// never its content, which may be a secret.
func parseEnvFile(data []byte, env map[string]string) error {
	for n, line := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSuffix(string(line), "\r")
		t := strings.TrimSpace(s)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		t = strings.TrimPrefix(t, "export ")
		k, v, ok := strings.Cut(t, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("line %d: want KEY=value", n+1)
		}
		if k == "" || strings.ContainsFunc(k, isSpaceOrControl) {
			return fmt.Errorf("line %d: invalid variable name", n+1)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	return nil
}

// readSmallFile reads a regular file of at most limit bytes.
func readSmallFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	// Read into a buffer of the file's size (plus one byte to see the end)
	// rather than growing one.
	data := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			if int64(len(data)) > limit {
				break
			}
			data = append(data, 0)[:len(data)]
		}
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

var errNotRegular = errors.New("not a regular file")

// fileProblem is the part of an I/O error worth showing next to a path the
// message already names.
func fileProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (d *decoder) checkNetwork(n *NetworkSpec) {
	var subnet netip.Prefix
	if n.Subnet != "" {
		p, err := netip.ParsePrefix(n.Subnet)
		switch {
		case err != nil || !p.Addr().Is4():
			d.errorAt("spec.subnet", "invalid subnet %q: want an IPv4 CIDR such as 10.89.0.0/24", n.Subnet)
		case p.Masked() != p:
			d.errorAt("spec.subnet", "subnet %s has host bits set (did you mean %s?)", n.Subnet, p.Masked())
		case p.Bits() < 8 || p.Bits() > 30:
			d.errorAt("spec.subnet", "subnet %s: the prefix length must be between /8 and /30", n.Subnet)
		default:
			subnet = p
			n.Subnet = p.String()
		}
	}
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		switch {
		case err != nil || !gw.Is4():
			d.errorAt("spec.gateway", "invalid gateway %q: want an IPv4 address", n.Gateway)
		case n.Subnet == "":
			d.errorAt("spec.gateway", "a gateway needs a subnet")
		case !subnet.IsValid():
			// The subnet is invalid and reported.
		default:
			if msg := hostAddrProblem(subnet, gw); msg != "" {
				d.errorAt("spec.gateway", "gateway %s %s subnet %s", gw, msg, subnet)
			}
			n.Gateway = gw.String()
		}
	}
}

// hostAddrProblem says why ip cannot be a host's address in subnet, as
// the words that go before "subnet X" ("is outside", "is the network address
// of"), or "".
func hostAddrProblem(subnet netip.Prefix, ip netip.Addr) string {
	switch {
	case !subnet.Contains(ip):
		return "is outside"
	case ip == subnet.Addr():
		return "is the network address of"
	case ip == lastAddr(subnet):
		return "is the broadcast address of"
	}
	return ""
}

// firstHost returns the first host address of an IPv4 subnet.
func firstHost(p netip.Prefix) netip.Addr { return p.Addr().Next() }

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// validateSet runs the checks that need more than one resource.
func validateSet(s *Set) []*FieldError {
	v := &setValidator{s: s}
	v.images()
	for _, r := range s.byKind(KindContainer) {
		v.container(r)
	}
	v.cycles()
	v.ports()
	return v.errs
}

type setValidator struct {
	s    *Set
	errs []*FieldError
	// staticIPs[network][ip] is the first container claiming ip there.
	staticIPs map[string]map[string]string
}

func (v *setValidator) errorAt(r *Resource, field, format string, args ...any) {
	p := r.fields.near(field)
	v.errs = append(v.errs, &FieldError{File: p.File, Line: p.Line, Column: p.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// images rejects two Image resources for one reference: which pull policy
// would apply would be a guess.
func (v *setValidator) images() {
	first := map[string]*Resource{}
	for _, r := range v.s.byKind(KindImage) {
		ref, err := NormalizeImageRef(r.Image().Ref)
		if err != nil {
			continue
		}
		if o, dup := first[ref]; dup {
			v.errorAt(r, "spec.ref", "image %s is already declared by Image %q (%s)", r.Image().Ref, o.Name(), o.Pos)
			continue
		}
		first[ref] = r
	}
}

func (v *setValidator) container(r *Resource) {
	c := r.Container()
	for i, a := range c.Networks {
		p := index("spec.networks", i)
		np := r.fields.long(p, "name")
		if !ValidName(a.Name) {
			continue // reported while decoding
		}
		nr, ok := v.s.Get(Key{KindNetwork, a.Name})
		if !ok {
			v.errorAt(r, np, "network %q is not defined (no Network resource of that name)%s", a.Name, suggest(a.Name, v.s.names(KindNetwork)))
			continue
		}
		if a.IPv4 == "" {
			continue
		}
		ipPath := join(p, "ipv4")
		ip, err := netip.ParseAddr(a.IPv4)
		if err != nil {
			continue // reported while decoding
		}
		n := nr.Network()
		subnet, err := netip.ParsePrefix(n.Subnet)
		if err != nil {
			v.errorAt(r, ipPath, "a static address needs network %q to declare its subnet", a.Name)
			continue
		}
		if msg := hostAddrProblem(subnet, ip); msg != "" {
			v.errorAt(r, ipPath, "address %s %s subnet %s of network %q", ip, msg, subnet, a.Name)
			continue
		}
		if n.Gateway == ip.String() {
			v.errorAt(r, ipPath, "address %s is the gateway of network %q", ip, a.Name)
			continue
		}
		if v.staticIPs == nil {
			v.staticIPs = map[string]map[string]string{}
		}
		if v.staticIPs[a.Name] == nil {
			v.staticIPs[a.Name] = map[string]string{}
		}
		if other, taken := v.staticIPs[a.Name][ip.String()]; taken {
			v.errorAt(r, ipPath, "address %s on network %q is already taken by container %q", ip, a.Name, other)
			continue
		}
		v.staticIPs[a.Name][ip.String()] = r.Name()
	}
	for i, m := range c.Volumes {
		if m.Type != MountVolume || !ValidName(m.Source) {
			continue
		}
		if _, ok := v.s.Get(Key{KindVolume, m.Source}); !ok {
			p := r.fields.long(index("spec.volumes", i), "source")
			v.errorAt(r, p, "volume %q is not defined (no Volume resource of that name)%s", m.Source, suggest(m.Source, v.s.names(KindVolume)))
		}
	}
	for i, dep := range c.DependsOn {
		p := index("spec.dependsOn", i)
		np := r.fields.long(p, "name")
		if !ValidName(dep.Name) {
			continue // reported while decoding
		}
		if dep.Name == r.Name() {
			v.errorAt(r, np, "a container cannot depend on itself")
			continue
		}
		t, ok := v.s.Get(Key{KindContainer, dep.Name})
		if !ok {
			v.errorAt(r, np, "container %q is not defined (no Container resource of that name)%s", dep.Name, suggest(dep.Name, v.s.names(KindContainer)))
			continue
		}
		cp := join(p, "condition")
		switch tc := t.Container(); dep.Condition {
		case ConditionHealthy:
			if tc.Healthcheck == nil {
				v.errorAt(r, cp, "condition healthy needs a healthcheck on container %q, which has none", dep.Name)
			}
		case ConditionCompleted:
			if tc.Restart.Name == RestartAlways || tc.Restart.Name == RestartUnlessStopped {
				v.errorAt(r, cp, "condition completed waits for container %q to exit, but its restart policy %s restarts it", dep.Name, tc.Restart)
			}
		}
	}
}

// cycles reports each dependsOn cycle once, at the dependency that leaves
// its alphabetically first container.
func (v *setValidator) cycles() {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		state[name] = active
		stack = append(stack, name)
		r, _ := v.s.Get(Key{KindContainer, name})
		for _, dep := range r.Container().DependsOn {
			if _, ok := v.s.Get(Key{KindContainer, dep.Name}); !ok || dep.Name == name {
				continue
			}
			switch state[dep.Name] {
			case unseen:
				visit(dep.Name)
			case active:
				i := slices.Index(stack, dep.Name)
				v.cycle(slices.Clone(stack[i:]), reported)
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, r := range v.s.byKind(KindContainer) {
		if state[r.Name()] == unseen {
			visit(r.Name())
		}
	}
}

func (v *setValidator) cycle(names []string, reported map[string]bool) {
	// Rotate to start at the smallest name, so that each cycle has one
	// spelling however it was found.
	m := 0
	for i, n := range names {
		if n < names[m] {
			m = i
		}
	}
	names = append(names[m:], names[:m]...)
	id := strings.Join(names, " -> ")
	if reported[id] {
		return
	}
	reported[id] = true
	r, _ := v.s.Get(Key{KindContainer, names[0]})
	next := names[1%len(names)]
	field := "spec.dependsOn"
	for i, dep := range r.Container().DependsOn {
		if dep.Name == next {
			field = r.fields.long(index(field, i), "name")
			break
		}
	}
	v.errorAt(r, field, "dependency cycle: %s -> %s", id, names[0])
}

// ports rejects two published ports that would bind the same host port:
// an unspecified host address (all addresses) conflicts with every other.
func (v *setValidator) ports() {
	type use struct {
		r    *Resource
		ip   string
		path string
	}
	seen := map[string][]use{} // "8080/tcp" -> uses
	reported := map[string]bool{}
	for _, r := range v.s.byKind(KindContainer) {
		for i, p := range r.Container().Ports {
			field := "spec.ports"
			if i < len(r.portSrc) {
				field = index(field, r.portSrc[i])
			}
			k := strconv.Itoa(int(p.HostPort)) + "/" + p.Protocol
			for _, u := range seen[k] {
				if !hostIPsOverlap(u.ip, p.HostIP) || reported[r.Name()+" "+field] {
					continue
				}
				reported[r.Name()+" "+field] = true
				where := u.r.fields.near(u.path)
				if u.r == r {
					v.errorAt(r, field, "host port %s is also published by %s of this container", k, u.path)
				} else {
					v.errorAt(r, field, "host port %s is already published by container %q (%s)", k, u.r.Name(), where)
				}
			}
			seen[k] = append(seen[k], use{r, p.HostIP, field})
		}
	}
}

func hostIPsOverlap(a, b string) bool {
	switch {
	case a == b, a == "", b == "":
		return true
	case a == "::":
		return strings.Contains(b, ":")
	case b == "::":
		return strings.Contains(a, ":")
	}
	return false
}
