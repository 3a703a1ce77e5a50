package schemas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"

	"berth.dev/berth/spec"
)

// JSON is the checked-in schema, berth.schema.json.
//
//go:embed berth.schema.json
var JSON []byte

// ID is the schema's $id.
const ID = "https://berth.dev/schemas/berth.schema.json"

// NamePattern is the pattern of resource names (spec.ValidName).
const NamePattern = `^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$`

// Generate builds the JSON Schema of one manifest document from the spec
// types. specDir is the source directory of package spec: field comments
// become descriptions, which editors show on hover.
func Generate(specDir string) ([]byte, error) {
	g := &generator{defs: jsonschema.Definitions{}, expanding: map[reflect.Type]bool{}}
	g.r = &jsonschema.Reflector{
		Anonymous: true,
		Mapper:    g.mapper,
		Namer:     func(t reflect.Type) string { return t.Name() },
	}
	// AddGoComments joins base with the directory's path to name the
	// package: from schemas/, "../spec" under "berth.dev/berth/schemas" is
	// "berth.dev/berth/spec".
	if err := g.r.AddGoComments("berth.dev/berth/schemas", specDir); err != nil {
		return nil, fmt.Errorf("read comments of %s: %w", specDir, err)
	}
	if len(g.r.CommentMap) == 0 {
		return nil, fmt.Errorf("no comments found in %s", specDir)
	}

	kinds := []struct {
		kind spec.Kind
		typ  reflect.Type
	}{
		{spec.KindImage, reflect.TypeFor[spec.ImageSpec]()},
		{spec.KindContainer, reflect.TypeFor[spec.ContainerSpec]()},
		{spec.KindNetwork, reflect.TypeFor[spec.NetworkSpec]()},
		{spec.KindVolume, reflect.TypeFor[spec.VolumeSpec]()},
	}
	for _, t := range append([]reflect.Type{reflect.TypeFor[spec.Metadata]()}, typesOf(kinds)...) {
		g.reflect(t)
	}
	seen := map[reflect.Type]bool{}
	for _, k := range kinds {
		g.applyDefaults(k.typ, seen)
	}
	g.defs["Name"] = &jsonschema.Schema{
		Type: "string", Pattern: NamePattern, MaxLength: ptr(uint64(63)),
		Description: "A resource name: lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters.",
	}
	if meta := g.defs["Metadata"]; meta != nil {
		if name, ok := meta.Properties.Get("name"); ok {
			meta.Properties.Set("name", &jsonschema.Schema{Ref: "#/$defs/Name", Description: name.Description})
		}
		if labels, ok := meta.Properties.Get("labels"); ok {
			labels.PropertyNames = &jsonschema.Schema{Not: &jsonschema.Schema{Pattern: `^dev\.berth\.`}, MinLength: ptr(uint64(1))}
		}
	}

	root := &jsonschema.Schema{
		Version:     jsonschema.Version,
		ID:          ID,
		Title:       "berth manifest",
		Description: "One document of a berth manifest stream: an Image, Container, Network or Volume (" + spec.APIVersion + ").",
		Type:        "object",
		Required:    []string{"apiVersion", "kind", "metadata"},
		Properties:  jsonschema.NewProperties(),
		Definitions: g.defs,
	}
	root.AdditionalProperties = jsonschema.FalseSchema
	root.Properties.Set("apiVersion", &jsonschema.Schema{Const: spec.APIVersion, Description: "The manifest format version."})
	var kindNames []any
	for _, k := range kinds {
		kindNames = append(kindNames, string(k.kind))
	}
	root.Properties.Set("kind", &jsonschema.Schema{Enum: kindNames, Description: "What the document describes."})
	root.Properties.Set("metadata", &jsonschema.Schema{Ref: "#/$defs/Metadata"})
	root.Properties.Set("spec", &jsonschema.Schema{Description: "The kind's specification; see the definition of each kind."})
	for _, k := range kinds {
		then := &jsonschema.Schema{Properties: jsonschema.NewProperties()}
		then.Properties.Set("spec", &jsonschema.Schema{Ref: "#/$defs/" + k.typ.Name()})
		if k.kind == spec.KindContainer || k.kind == spec.KindImage {
			then.Required = []string{"spec"}
		}
		cond := &jsonschema.Schema{Properties: jsonschema.NewProperties(), Required: []string{"kind"}}
		cond.Properties.Set("kind", &jsonschema.Schema{Const: string(k.kind)})
		root.AllOf = append(root.AllOf, &jsonschema.Schema{If: cond, Then: then})
	}

	tidy(root, map[*jsonschema.Schema]bool{})

	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func typesOf(kinds []struct {
	kind spec.Kind
	typ  reflect.Type
}) []reflect.Type {
	var out []reflect.Type
	for _, k := range kinds {
		out = append(out, k.typ)
	}
	return out
}

type generator struct {
	r    *jsonschema.Reflector
	defs jsonschema.Definitions
	// expanding holds the union types whose object form is being
	// reflected, for which the mapper must step aside.
	expanding map[reflect.Type]bool
}

// reflect adds t and everything it refers to to the definitions.
func (g *generator) reflect(t reflect.Type) {
	s := g.r.ReflectFromType(t)
	for name, def := range s.Definitions {
		if _, done := g.defs[name]; !done {
			g.defs[name] = def
		}
	}
}

func (g *generator) comment(t reflect.Type) string {
	return g.r.CommentMap[t.PkgPath()+"."+t.Name()]
}

// mapper gives the spec types whose YAML form is not their Go shape their
// schema: a string with a pattern, or a string or an object. Each is a
// definition of its own, so editors show its name and description.
func (g *generator) mapper(t reflect.Type) *jsonschema.Schema {
	if g.expanding[t] {
		return nil
	}
	def, ok := g.custom(t)
	if !ok {
		return nil
	}
	if _, done := g.defs[t.Name()]; !done {
		if def.Description == "" {
			def.Description = g.comment(t)
		}
		g.defs[t.Name()] = def
	}
	return &jsonschema.Schema{Ref: "#/$defs/" + t.Name()}
}

func (g *generator) custom(t reflect.Type) (*jsonschema.Schema, bool) {
	str := func(pattern string, examples ...any) *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Pattern: pattern, Examples: examples}
	}
	switch t {
	case reflect.TypeFor[spec.Quantity]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: "0"},
			str(QuantityPattern),
		}, Examples: []any{"256Mi", "1Gi", "500M"},
			Description: "A size in bytes: a number with an optional suffix, binary (Ki, Mi, Gi, Ti, Pi, Ei: powers of 1024) or decimal (k, M, G, T, P, E: powers of 1000), e.g. 256Mi; a bare integer is bytes."}, true
	case reflect.TypeFor[spec.CPUs]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			{Type: "number", Minimum: "0"},
			str(CPUsPattern),
		}, Examples: []any{"0.5", 2, "500m"},
			Description: `A number of CPUs ("0.5", 2) or of millicpus ("500m").`}, true
	case reflect.TypeFor[spec.Duration]():
		return desc(str(DurationPattern, "30s", "1m30s", "500ms"),
			"A length of time: a number with a unit (ns, us, ms, s, m, h), several concatenated: 30s, 1m30s, 500ms."), true
	case reflect.TypeFor[spec.PortMapping]():
		return desc(str(PortPattern, "8080:80", "127.0.0.1:8080:80", "53:53/udp", "8000-8010:8000-8010"),
			"A published port: [IP:]HOST:CONTAINER[/tcp|/udp]; IPv6 addresses in brackets; ranges of equal length (8000-8010:8000-8010)."), true
	case reflect.TypeFor[spec.RestartPolicy]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			{Type: "string", Enum: []any{spec.RestartNo, spec.RestartOnFailure, spec.RestartAlways, spec.RestartUnlessStopped}},
			str(`^on-failure:[0-9]+$`),
		}, Examples: []any{"always", "on-failure:3"},
			Description: "What happens when the command exits: no, on-failure[:N] (at most N restarts), always, or unless-stopped."}, true
	case reflect.TypeFor[spec.Signal]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			str(SignalPattern),
			{Type: "integer", Minimum: "1", Maximum: "64"},
		}, Examples: []any{"SIGTERM", "SIGKILL", "QUIT"},
			Description: "A signal name (SIGTERM, TERM, term) or number (15)."}, true
	case reflect.TypeFor[spec.Capability]():
		names := []any{string(spec.CapabilityAll)}
		for _, c := range spec.Capabilities() {
			names = append(names, string(c))
		}
		// The enum lets editors complete canonical names; the pattern
		// accepts the other spellings the loader normalizes.
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			{Type: "string", Enum: names},
			str(`^([Cc][Aa][Pp]_)?[A-Za-z_]+$`),
		}, Description: "A Linux capability (NET_ADMIN, CAP_NET_ADMIN or net_admin), or ALL."}, true
	case reflect.TypeFor[spec.Platform]():
		return desc(str(`^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?$`, "linux/amd64", "linux/arm64/v8"),
			"A platform: os/arch[/variant]."), true
	case reflect.TypeFor[spec.StringList]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			{Type: "string"},
			{Type: "array", Items: &jsonschema.Schema{Type: "string"}},
		}, Description: "A string or a list of strings."}, true
	case reflect.TypeFor[spec.HealthCommand]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
			{Type: "string", MinLength: ptr(uint64(1))},
			{Type: "array", Items: &jsonschema.Schema{Type: "string"}, MinItems: ptr(uint64(1))},
		}, Description: `A list runs as is (exec form; a leading "CMD" is dropped, "CMD-SHELL" runs the rest in a shell); a string runs as /bin/sh -c STRING.`}, true
	case reflect.TypeFor[spec.NetworkAttachment](),
		reflect.TypeFor[spec.Mount](),
		reflect.TypeFor[spec.Dependency]():
		return g.union(t), true
	}
	return nil, false
}

// union is a string or the object form of t (reflected as a struct under
// the name TObject).
func (g *generator) union(t reflect.Type) *jsonschema.Schema {
	g.expanding[t] = true
	s := g.r.ReflectFromType(t)
	delete(g.expanding, t)
	for name, def := range s.Definitions {
		if name == t.Name() {
			name += "Object"
			if name, ok := def.Properties.Get("name"); ok {
				def.Properties.Set("name", &jsonschema.Schema{Ref: "#/$defs/Name", Description: name.Description})
			}
		}
		if _, done := g.defs[name]; !done {
			g.defs[name] = def
		}
	}
	short := &jsonschema.Schema{Ref: "#/$defs/Name"}
	if t == reflect.TypeFor[spec.Mount]() {
		short = &jsonschema.Schema{Type: "string", Pattern: MountPattern, Examples: []any{"data:/var/lib/data", "./conf:/etc/app:ro"}}
	}
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{short, {Ref: "#/$defs/" + t.Name() + "Object"}}, Description: unionDescriptions[t]}
}

var unionDescriptions = map[reflect.Type]string{
	reflect.TypeFor[spec.NetworkAttachment](): "A network's name, or {name, aliases, ipv4}.",
	reflect.TypeFor[spec.Mount]():             "SOURCE:TARGET[:ro], where SOURCE is a Volume's name or a host path starting with / or . (relative to the manifest); or {type, source, target, readOnly, size}.",
	reflect.TypeFor[spec.Dependency]():        "A container's name, or {name, condition}.",
}

func desc(s *jsonschema.Schema, d string) *jsonschema.Schema {
	s.Description = d
	return s
}

// tidy joins the lines of Go comments in descriptions (an editor wraps
// them itself), keeping paragraph breaks, throughout the schema.
func tidy(s *jsonschema.Schema, seen map[*jsonschema.Schema]bool) {
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	paras := strings.Split(s.Description, "\n\n")
	for i, p := range paras {
		paras[i] = strings.Join(strings.Fields(p), " ")
	}
	s.Description = strings.Join(paras, "\n\n")
	for _, sub := range append(append(append([]*jsonschema.Schema{s.Items, s.AdditionalProperties, s.If, s.Then, s.PropertyNames}, s.AnyOf...), s.AllOf...), s.OneOf...) {
		tidy(sub, seen)
	}
	for _, d := range s.Definitions {
		tidy(d, seen)
	}
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			tidy(p.Value, seen)
		}
	}
}

// Patterns of the string forms. The loader is the authority (it explains
// what is wrong); these approximate it for editors, and the schemas tests
// check that they agree on samples.
const (
	QuantityPattern = `^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[kMGTPE]|[eE][+-]?[0-9]+)?$`
	CPUsPattern     = `^(([0-9]+(\.[0-9]{0,9})?|\.[0-9]{1,9})|[0-9]+m)$`
	DurationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
	PortPattern     = `^((\[[0-9A-Fa-f:.]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}):)?[0-9]{1,5}(-[0-9]{1,5})?:[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp))?$`
	SignalPattern   = `^([Ss][Ii][Gg])?[A-Za-z0-9]+([+-][0-9]+)?$`
	MountPattern    = `^[^:]+:/[^:]*(:(ro|rw)(,(ro|rw))*)?$`
)

func ptr[T any](v T) *T { return &v }

// applyDefaults sets "default" on the properties of struct t (and the
// structs it contains) from their jsonschema tags, where the reflector left
// it out: it handles defaults only for plain strings, numbers and booleans,
// not for the types this package maps.
func (g *generator) applyDefaults(t reflect.Type, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	def := g.defs[t.Name()]
	if def == nil || def.Properties == nil {
		def = g.defs[t.Name()+"Object"]
	}
	for i := range t.NumField() {
		f := t.Field(i)
		g.applyDefaults(f.Type, seen)
		if def == nil || def.Properties == nil {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		prop, ok := def.Properties.Get(name)
		if !ok || prop.Default != nil {
			continue
		}
		for _, kv := range strings.Split(f.Tag.Get("jsonschema"), ",") {
			if v, ok := strings.CutPrefix(kv, "default="); ok {
				prop.Default = v
			}
		}
	}
}
