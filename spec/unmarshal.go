package spec

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML forms of the spec types that are not plain structs, lists and
// maps. Each reports its own problems at the node.

func (q *Quantity) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		if i, ok := d.int(n, p); ok {
			*q = Quantity(i)
		}
		return
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.typeError(n, p, "a quantity such as 256Mi")
		return
	}
	parsed(d, n, p, q, ParseQuantity)
}

func (c *CPUs) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if n.Kind != yaml.ScalarNode {
		d.typeError(n, p, `a number of CPUs such as "0.5"`)
		return
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float":
	default:
		d.typeError(n, p, `a number of CPUs such as "0.5"`)
		return
	}
	parsed(d, n, p, c, ParseCPUs)
}

func (v *Duration) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		d.errorf(n, p, "duration %s needs a unit (ns, us, ms, s, m, h), e.g. %ss", n.Value, n.Value)
		return
	}
	if _, ok := d.string(n, p); ok {
		parsed(d, n, p, v, ParseDuration)
	}
}

// maxPorts bounds the ports one container publishes, ranges expanded.
const maxPorts = 1 << 16

func (ps *Ports) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, p, `a list of port mappings such as "8080:80"`)
		return
	}
	var out Ports
	for i, c := range n.Content {
		ip := index(p, i)
		c, ok := d.enter(c, ip)
		if !ok {
			return
		}
		if c.Kind != yaml.ScalarNode || c.ShortTag() != "!!str" {
			if c.Kind == yaml.ScalarNode && c.ShortTag() == "!!int" {
				d.errorf(c, ip, "host port required: write HOST:CONTAINER as a string, e.g. \"%s:%s\"", c.Value, c.Value)
				continue
			}
			d.typeError(c, ip, `a port mapping such as "8080:80"`)
			continue
		}
		m, err := ParsePort(c.Value)
		if err != nil {
			d.errorf(c, ip, "%s", err.Error())
			continue
		}
		if len(out)+len(m) > maxPorts {
			d.errorf(c, ip, "more than %d published ports", maxPorts)
			return
		}
		if d.budget -= len(m); d.budget < 0 {
			d.enter(c, ip) // reports the exhausted budget
			return
		}
		for range m {
			d.ports = append(d.ports, i)
		}
		out = append(out, m...)
	}
	*ps = out
}

func (r *RestartPolicy) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if _, ok := d.string(n, p); ok {
		parsed(d, n, p, r, ParseRestartPolicy)
	}
}

func (s *Signal) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int") {
		d.typeError(n, p, "a signal name or number such as SIGTERM")
		return
	}
	parsed(d, n, p, s, ParseSignal)
}

func (c *Capability) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if _, ok := d.string(n, p); ok {
		parsed(d, n, p, c, ParseCapability)
	}
}

func (pl *Platform) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if _, ok := d.string(n, p); ok {
		parsed(d, n, p, pl, ParsePlatform)
	}
}

// parsed sets *out to the scalar's value as parse reads it, or reports
// parse's error at the node. The caller has checked the scalar's type.
func parsed[T any](d *decoder, n *yaml.Node, p string, out *T, parse func(string) (T, error)) {
	v, err := parse(n.Value)
	if err != nil {
		d.errorf(n, p, "%s", err.Error())
		return
	}
	*out = v
}

// StringList is one or more strings: manifests write a string or a list.
type StringList []string

func (l *StringList) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if n.Kind == yaml.ScalarNode {
		if s, ok := d.string(n, p); ok {
			*l = StringList{s}
		}
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, p, "a string or a list of strings")
		return
	}
	if s, ok := d.strings(n, p); ok {
		*l = s
	}
}

// HealthCommand is a healthcheck's command in exec form. Manifests write a
// list (exec form; Docker's ["CMD", ...] and ["CMD-SHELL", "..."] are
// understood) or a string, which runs as /bin/sh -c STRING.
type HealthCommand []string

// MarshalJSON writes the exec form; a command whose first word is one of
// Docker's markers (CMD, CMD-SHELL, NONE) gets a leading "CMD", so that it
// reads back as itself.
func (h HealthCommand) MarshalJSON() ([]byte, error) {
	if len(h) > 0 && (h[0] == "CMD" || h[0] == "CMD-SHELL" || h[0] == "NONE") {
		return json.Marshal(append([]string{"CMD"}, h...))
	}
	return json.Marshal([]string(h))
}

func (h *HealthCommand) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	if n.Kind == yaml.ScalarNode {
		s, ok := d.string(n, p)
		if !ok {
			return
		}
		if strings.TrimSpace(s) == "" {
			d.errorf(n, p, "must not be empty")
			return
		}
		*h = HealthCommand{"/bin/sh", "-c", s}
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, p, "a list (exec form) or a string (shell form)")
		return
	}
	s, ok := d.strings(n, p)
	if !ok {
		return
	}
	if len(s) > 0 {
		switch s[0] {
		case "CMD":
			s = s[1:]
		case "CMD-SHELL":
			s = []string{"/bin/sh", "-c", strings.Join(s[1:], " ")}
			if strings.TrimSpace(s[2]) == "" {
				s = nil
			}
		case "NONE":
			d.errorf(n, p, "NONE is not supported: leave the healthcheck out instead")
			return
		}
	}
	if len(s) == 0 || s[0] == "" {
		d.errorf(n, p, "must name a command")
		return
	}
	*h = s
}

// attachmentFields, mountFields and dependencyFields have the fields of the
// types they convert from but none of their methods: decoding into them
// decodes the long (object) form.
type (
	attachmentFields NetworkAttachment
	mountFields      Mount
	dependencyFields Dependency
)

func (a *NetworkAttachment) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	d.nameOrObject(n, p, &a.Name, reflect.ValueOf((*attachmentFields)(a)).Elem(), "a network name or a mapping {name, aliases, ipv4}")
}

func (dep *Dependency) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	d.nameOrObject(n, p, &dep.Name, reflect.ValueOf((*dependencyFields)(dep)).Elem(), "a container name or a mapping {name, condition}")
}

// nameOrObject decodes the two forms of a reference to another resource:
// its name, or a mapping with a name field and options, into obj.
func (d *decoder) nameOrObject(n *yaml.Node, p string, name *string, obj reflect.Value, want string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if s, ok := d.string(n, p); ok {
			*name = s
		}
	case yaml.MappingNode:
		d.structure(n, obj, p)
	default:
		d.typeError(n, p, want)
		return
	}
	if np := d.fields.long(p, "name"); d.fields.has(np) && !ValidName(*name) {
		d.errorAt(np, "%s", nameError(*name))
	}
}

func (m *Mount) unmarshalNode(d *decoder, n *yaml.Node, p string) {
	sourcePath, targetPath := p, p
	switch n.Kind {
	case yaml.ScalarNode:
		s, ok := d.string(n, p)
		if !ok {
			return
		}
		v, msg := parseMount(s)
		if msg != "" {
			d.errorf(n, p, "%s", msg)
			return
		}
		*m = v
	case yaml.MappingNode:
		d.structure(n, reflect.ValueOf((*mountFields)(m)).Elem(), p)
		sourcePath, targetPath = join(p, "source"), join(p, "target")
		if m.Type == "" {
			return // missing or invalid type, already reported
		}
	default:
		d.typeError(n, p, `a volume such as "data:/var/lib/data" or a mapping {type, source, target, readOnly, size}`)
		return
	}

	if d.fields.has(targetPath) {
		if !path.IsAbs(m.Target) {
			d.errorAt(targetPath, "target %q must be an absolute path", m.Target)
		} else if m.Target = path.Clean(m.Target); m.Target == "/" {
			d.errorAt(targetPath, "target must not be /")
		}
	}
	switch m.Type {
	case MountVolume:
		if m.Source == "" {
			d.errorAt(sourcePath, "a volume mount needs the name of a Volume resource as source")
		} else if !ValidName(m.Source) {
			d.errorAt(sourcePath, "%s", nameError(m.Source))
		}
	case MountBind:
		switch {
		case m.Source == "":
			d.errorAt(sourcePath, "a bind mount needs a host path as source")
		case strings.HasPrefix(m.Source, "~"):
			d.errorAt(sourcePath, "source %q: ~ is not expanded; use an absolute path or one relative to the manifest", m.Source)
		case !filepath.IsAbs(m.Source) && !path.IsAbs(m.Source):
			m.Source = filepath.Join(d.dir, filepath.FromSlash(m.Source))
		default:
			m.Source = filepath.Clean(m.Source)
		}
	case MountTmpfs:
		if m.Source != "" {
			d.errorAt(sourcePath, "a tmpfs mount has no source")
		}
	}
	if m.Size != 0 && m.Type != MountTmpfs {
		d.errorAt(join(p, "size"), "size applies only to tmpfs mounts")
	}
}

// parseMount parses the short volume syntax SOURCE:TARGET[:OPTIONS]: a
// source starting with / or . is a host path (bind), anything else names a
// Volume resource. The only options are ro and rw.
func parseMount(s string) (Mount, string) {
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 1:
		return Mount{}, "a volume needs a source: write SOURCE:TARGET (anonymous volumes are not supported)"
	case 2, 3:
	default:
		return Mount{}, fmt.Sprintf("invalid volume %q: want SOURCE:TARGET[:ro]", s)
	}
	m := Mount{Type: MountVolume, Source: parts[0], Target: parts[1]}
	if strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "~") {
		m.Type = MountBind
	}
	if m.Source == "" {
		return Mount{}, fmt.Sprintf("invalid volume %q: empty source", s)
	}
	if m.Target == "" {
		return Mount{}, fmt.Sprintf("invalid volume %q: empty target", s)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			default:
				return Mount{}, fmt.Sprintf("invalid volume option %q: want ro or rw", o)
			}
		}
	}
	return m, ""
}
