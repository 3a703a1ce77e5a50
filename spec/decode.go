package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// yaml.v3's Node.Decode ignores unknown fields and stops at the first error,
// so the loader walks the node tree itself: every problem of a document is
// reported with its position, and positions of every value are kept for the
// checks that come after decoding.

// nodeBudget bounds the values visited per document, aliases expanded and
// port ranges counted port by port: a few lines of anchors and aliases can
// otherwise describe billions of values. fileBudget bounds a whole file.
const (
	nodeBudget = 1 << 18
	fileBudget = 1 << 20
)

// decoder decodes the documents of one file. It is not safe for concurrent
// use; the loader runs one per file.
type decoder struct {
	file string // as shown in errors
	dir  string // absolute; relative paths in the manifest resolve against it
	errs []*FieldError
	// envFiles is shared by the decoders of one load.
	envFiles *envFiles
	fileLeft int // of fileBudget

	// Per document.
	fields    *positions
	ports     []int
	budget    int
	exhausted bool
	depth     int
}

// maxDepth bounds nesting (the spec types nest a few levels; an alias
// cycle nests forever).
const maxDepth = 32

// nodeUnmarshaler is implemented by the spec types whose YAML form differs
// from their Go shape (a string that parses into a struct, a string or a
// list, a string or an object).
type nodeUnmarshaler interface {
	unmarshalNode(d *decoder, n *yaml.Node, path string)
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	d.errs = append(d.errs, &FieldError{File: d.file, Line: n.Line, Column: n.Column, Field: path, Msg: msg})
}

// ok reports whether the manifest wrote path and its value decoded without
// an error: checks of a value's meaning run only then, so that a value of
// the wrong type is not also reported as, say, empty.
func (d *decoder) ok(path string) bool {
	if !d.fields.has(path) {
		return false
	}
	for _, e := range d.errs {
		if e.Field == path && e.File == d.file {
			return false
		}
	}
	return true
}

// errorAt reports a problem at the recorded position of path's value, or
// of its closest recorded parent when the manifest left path out.
func (d *decoder) errorAt(path string, format string, args ...any) {
	p := d.fields.near(path)
	d.errs = append(d.errs, &FieldError{File: d.file, Line: p.Line, Column: p.Column, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// positions records where the value of each field path of one document
// is. A slice, not a map: it is written for every value and read only for
// a few, and appending is much cheaper than hashing.
type positions struct {
	file    string
	entries []fieldPos
}

type fieldPos struct {
	path         string
	line, column int32
}

func (p *positions) add(path string, n *yaml.Node) {
	p.entries = append(p.entries, fieldPos{path: path, line: int32(n.Line), column: int32(n.Column)})
}

// get returns where path's value is; nil-safe.
func (p *positions) get(path string) (Pos, bool) {
	if p == nil {
		return Pos{}, false
	}
	for i := len(p.entries) - 1; i >= 0; i-- {
		if e := &p.entries[i]; e.path == path {
			return Pos{File: p.file, Line: int(e.line), Column: int(e.column)}, true
		}
	}
	return Pos{}, false
}

// long returns path.field when the manifest wrote that field (the long,
// object form of a value), else path (the short form).
func (p *positions) long(path, field string) string {
	if f := join(path, field); p.has(f) {
		return f
	}
	return path
}

func (p *positions) has(path string) bool {
	_, ok := p.get(path)
	return ok
}

// near returns the position of path, or of its closest recorded parent.
func (p *positions) near(path string) Pos {
	for {
		if pos, ok := p.get(path); ok {
			return pos
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			pos, _ := p.get("")
			return pos
		}
		path = path[:i]
	}
}

// decodeFile decodes every document of one manifest stream.
func (d *decoder) decodeFile(data []byte) []*Resource {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	d.fileLeft = fileBudget
	var out []*Resource
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			d.syntaxError(err)
			return out
		}
		if r := d.document(&doc); r != nil {
			out = append(out, r)
		}
	}
}

// syntaxError reports a YAML syntax error. yaml.v3 gives no typed error
// with a position, only "yaml: line N: problem", so the line is read back
// from the message; the column is unknown and reported as 1. yaml.v3 counts
// lines from 1 in scanner errors but from 0 in parser errors (and leaves
// line 0 out), which the fixed set of parser problems below corrects.
func (d *decoder) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	if line == 0 || yamlParserProblems[msg] {
		line++
	}
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Column: 1, Msg: "invalid YAML: " + msg})
}

// yamlParserProblems are the messages of yaml.v3's parser (parserc.go), as
// opposed to its scanner.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// document decodes one document into a Resource; it returns nil for an
// empty document and for one whose kind or name is unusable.
func (d *decoder) document(doc *yaml.Node) *Resource {
	if len(doc.Content) == 0 {
		return nil
	}
	d.fields = &positions{file: d.file, entries: make([]fieldPos, 0, 64)}
	d.ports = nil
	d.budget = min(nodeBudget, d.fileLeft)
	d.exhausted = false
	defer func(budget int) { d.fileLeft -= budget - max(d.budget, 0) }(d.budget)

	root, ok := d.enter(doc.Content[0], "")
	if !ok {
		return nil
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "", "a manifest must be a mapping of apiVersion, kind, metadata and spec, got %s", describe(root))
		return nil
	}
	r := &Resource{Pos: Pos{File: d.file, Line: root.Line, Column: root.Column}, Dir: d.dir, fields: d.fields}
	var apiNode, kindNode, metaNode, specNode *yaml.Node
	for _, p := range d.pairs(root, "", false) {
		switch p.name {
		case "apiVersion":
			apiNode = p.val
		case "kind":
			kindNode = p.val
		case "metadata":
			metaNode = p.val
		case "spec":
			specNode = p.val
		default:
			d.errorf(p.key, p.name, "unknown field %q%s", p.name, suggest(p.name, []string{"apiVersion", "kind", "metadata", "spec"}))
		}
	}

	if apiNode == nil {
		d.errorf(root, "", "missing required field %q", "apiVersion")
	} else if n, ok := d.enter(apiNode, "apiVersion"); ok {
		if s, ok := d.string(n, "apiVersion"); ok && s != APIVersion {
			d.errorf(n, "apiVersion", "unsupported apiVersion %q: want %s", s, APIVersion)
		}
	}

	var sp Spec
	if kindNode == nil {
		d.errorf(root, "", "missing required field %q", "kind")
	} else if n, ok := d.enter(kindNode, "kind"); ok {
		if s, ok := d.string(n, "kind"); ok {
			r.Kind = Kind(s)
			if sp = newSpec(r.Kind); sp == nil {
				kinds := []string{string(KindImage), string(KindContainer), string(KindNetwork), string(KindVolume)}
				d.errorf(n, "kind", "unknown kind %q: want %s%s", s, orList(kinds), suggest(s, kinds))
			}
		}
	}

	if metaNode == nil {
		d.errorf(root, "", "missing required field %q", "metadata")
	} else {
		d.value(metaNode, reflect.ValueOf(&r.Metadata).Elem(), "metadata")
		if d.ok("metadata.name") && !ValidName(r.Metadata.Name) {
			d.errorAt("metadata.name", "%s", nameError(r.Metadata.Name))
		}
	}

	if sp != nil {
		switch {
		case specNode != nil:
			d.value(specNode, reflect.ValueOf(sp).Elem(), "spec")
		case r.Kind == KindContainer || r.Kind == KindImage:
			d.errorf(root, "", "missing required field %q", "spec")
		}
		r.Spec = sp
		d.checkResource(r)
	}
	r.portSrc = d.ports
	if sp == nil || !ValidName(r.Metadata.Name) {
		return nil
	}
	return r
}

func newSpec(k Kind) Spec {
	switch k {
	case KindImage:
		return &ImageSpec{}
	case KindContainer:
		return &ContainerSpec{}
	case KindNetwork:
		return &NetworkSpec{}
	case KindVolume:
		return &VolumeSpec{}
	}
	return nil
}

// enter resolves aliases, charges the node budget and records where the
// value of path is. ok is false when the document is too large to go on.
func (d *decoder) enter(n *yaml.Node, path string) (*yaml.Node, bool) {
	if d.budget <= 0 {
		if !d.exhausted {
			d.exhausted = true
			d.errorf(n, path, "too large: more than %d values in a document (%d in a file), aliases expanded", nodeBudget, fileBudget)
		}
		return nil, false
	}
	d.budget--
	d.fields.add(path, n)
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, path, "unresolved alias")
			return nil, false
		}
		n = n.Alias
		d.budget--
	}
	// Application tags (!secret, !include) would mean something berth does
	// not do; better an error than a silent plain value.
	if n.Tag != "" && !strings.HasPrefix(n.Tag, "!!") && !strings.HasPrefix(n.ShortTag(), "!!") {
		d.errorf(n, path, "unsupported YAML tag %s", n.Tag)
		return nil, false
	}
	return n, true
}

// value decodes n into v, which must be addressable.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n, ok := d.enter(n, path)
	if !ok {
		return
	}
	if d.depth >= maxDepth {
		d.errorf(n, path, "nested too deeply")
		return
	}
	d.depth++
	d.into(n, v, path)
	d.depth--
}

// into decodes an entered node.
func (d *decoder) into(n *yaml.Node, v reflect.Value, path string) {
	if u, ok := v.Addr().Interface().(nodeUnmarshaler); ok {
		u.unmarshalNode(d, n, path)
		return
	}
	switch v.Kind() {
	case reflect.String:
		if s, ok := d.string(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.typeError(n, path, "a boolean (true or false)")
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			d.typeError(n, path, "a boolean (true or false)")
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		if i, ok := d.int(n, path); ok {
			if v.OverflowInt(i) {
				d.errorf(n, path, "%s out of range", n.Value)
				return
			}
			v.SetInt(i)
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.into(n, p.Elem(), path)
		v.Set(p)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.typeError(n, path, "a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, s.Index(i), index(path, i))
		}
		v.Set(s)
	case reflect.Map:
		if v.Type() != reflect.TypeFor[map[string]string]() {
			d.errorf(n, path, "internal error: cannot decode %s", v.Type())
			return
		}
		if m, ok := d.stringMap(n, path); ok {
			v.Set(reflect.ValueOf(m))
		}
	case reflect.Struct:
		d.structure(n, v, path)
	default:
		d.errorf(n, path, "internal error: cannot decode %s", v.Type())
	}
}

// string decodes a string scalar.
func (d *decoder) string(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.typeError(n, path, "a string")
		return "", false
	}
	return n.Value, true
}

// int decodes a non-negative integer scalar.
func (d *decoder) int(n *yaml.Node, path string) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.typeError(n, path, "an integer")
		return 0, false
	}
	i, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil {
		d.errorf(n, path, "%s out of range", n.Value)
		return 0, false
	}
	if i < 0 {
		d.errorf(n, path, "must not be negative, got %d", i)
		return 0, false
	}
	return i, true
}

// strings decodes a list of strings.
func (d *decoder) strings(n *yaml.Node, path string) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, path, "a list of strings")
		return nil, false
	}
	out := make([]string, len(n.Content))
	ok := true
	for i, c := range n.Content {
		p := index(path, i)
		c, entered := d.enter(c, p)
		if !entered {
			return nil, false
		}
		s, good := d.string(c, p)
		out[i], ok = s, ok && good
	}
	return out, ok
}

// stringMap decodes a mapping of strings to strings.
func (d *decoder) stringMap(n *yaml.Node, path string) (map[string]string, bool) {
	if n.Kind != yaml.MappingNode {
		d.typeError(n, path, "a mapping of strings")
		return nil, false
	}
	ps := d.pairs(n, path, true)
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		kp := key(path, p.name)
		v, ok := d.enter(p.val, kp)
		if !ok {
			return m, false
		}
		if s, ok := d.string(v, kp); ok {
			m[p.name] = s
		}
	}
	return m, true
}

// structure decodes a mapping into a struct, by the fields' json names.
// Fields without omitempty or omitzero are required, as in the generated
// JSON Schema.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.typeError(n, path, "a mapping")
		return
	}
	info := structInfoOf(v.Type())
	var seen uint64
	for _, p := range d.pairs(n, path, false) {
		fp := join(path, p.name)
		i := info.lookup(p.name)
		if i < 0 {
			d.errorf(p.key, fp, "unknown field %q%s", p.name, suggest(p.name, info.names))
			continue
		}
		seen |= 1 << i
		f := &info.fields[i]
		if f.enum != nil {
			d.enum(p.val, v.Field(f.index), fp, f.enum)
			continue
		}
		d.value(p.val, v.Field(f.index), fp)
	}
	for i, f := range info.fields {
		if f.required && seen&(1<<i) == 0 {
			d.errorf(n, path, "missing required field %q", f.name)
		}
	}
}

// enum decodes a string that must be one of values.
func (d *decoder) enum(n *yaml.Node, v reflect.Value, path string, values []string) {
	n, ok := d.enter(n, path)
	if !ok {
		return
	}
	s, ok := d.string(n, path)
	if !ok {
		return
	}
	if !slices.Contains(values, s) {
		d.errorf(n, path, "invalid value %q: want %s%s", s, orList(values), suggest(s, values))
		return
	}
	v.SetString(s)
}

type pair struct {
	key, val *yaml.Node
	name     string
}

// pairs returns the entries of mapping n, merge keys (<<) applied: keys
// written in n win over merged ones, earlier merged mappings over later.
// Duplicate and non-string keys are reported and left out.
func (d *decoder) pairs(n *yaml.Node, path string, isMap bool) []pair {
	out := make([]pair, 0, len(n.Content)/2)
	var merges []*yaml.Node
	var seen map[string]int // only for large mappings; small ones scan out
	if len(n.Content) > 64 {
		seen = make(map[string]int, len(n.Content)/2)
	}
	find := func(name string) int {
		if seen != nil {
			if i, ok := seen[name]; ok {
				return i
			}
			return -1
		}
		for i := range out {
			if out[i].name == name {
				return i
			}
		}
		return -1
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kr := k
		for kr.Kind == yaml.AliasNode && kr.Alias != nil {
			kr = kr.Alias
		}
		if kr.Kind == yaml.ScalarNode && kr.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if kr.Kind != yaml.ScalarNode || kr.ShortTag() != "!!str" {
			d.errorf(k, path, "keys must be strings, got %s", describe(kr))
			continue
		}
		kp := join(path, kr.Value)
		if isMap {
			kp = key(path, kr.Value)
		}
		if j := find(kr.Value); j >= 0 {
			d.errorf(k, kp, "duplicate key %q (first at line %d)", kr.Value, out[j].key.Line)
			continue
		}
		if seen != nil {
			seen[kr.Value] = len(out)
		}
		out = append(out, pair{key: k, val: v, name: kr.Value})
	}
	if len(merges) > 0 {
		if d.depth >= maxDepth {
			d.errorf(n, path, "merges (<<) nested too deeply")
			return out
		}
		d.depth++
		defer func() { d.depth-- }()
	}
	for _, m := range merges {
		m, ok := d.enter(m, path)
		if !ok {
			return out
		}
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, src := range sources {
			src, ok := d.enter(src, path)
			if !ok {
				return out
			}
			if src.Kind != yaml.MappingNode {
				d.errorf(src, path, "a merge (<<) needs a mapping or a list of mappings, got %s", describe(src))
				continue
			}
			d.budget -= len(src.Content)
			for _, p := range d.pairs(src, path, isMap) {
				if find(p.name) < 0 {
					if seen != nil {
						seen[p.name] = len(out)
					}
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func (d *decoder) typeError(n *yaml.Node, path, want string) {
	hint := ""
	if strings.HasPrefix(want, "a string") && n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int", "!!float", "!!bool", "!!timestamp":
			hint = fmt.Sprintf(" (quote it: %q)", n.Value)
		}
	}
	d.errorf(n, path, "must be %s, got %s%s", want, describe(n), hint)
}

// describe names what a node is, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		switch t := n.ShortTag(); t {
		case "!!str":
			return fmt.Sprintf("a string (%q)", v)
		case "!!int":
			return "an integer (" + v + ")"
		case "!!float":
			return "a number (" + v + ")"
		case "!!bool":
			return "a boolean (" + v + ")"
		case "!!null":
			return "null"
		case "!!timestamp":
			return "a timestamp (" + v + ")"
		default:
			return "a value tagged " + t
		}
	}
	return "an alias"
}

// Field paths: "spec.ports[1]", "metadata.labels.tier",
// "metadata.labels["app.kubernetes.io/name"]".

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// key is the path of a map entry: keys that are not identifiers are quoted.
func key(path, k string) string {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '-')) {
			return path + "[" + strconv.Quote(k) + "]"
		}
	}
	if k == "" {
		return path + `[""]`
	}
	return join(path, k)
}

type fieldInfo struct {
	name     string
	index    int
	required bool
	enum     []string
}

type structInfo struct {
	fields []fieldInfo
	names  []string
}

func (s *structInfo) lookup(name string) int {
	for i := range s.fields {
		if s.fields[i].name == name {
			return i
		}
	}
	return -1
}

var structInfos sync.Map // reflect.Type -> *structInfo

// structInfoOf reads the json and jsonschema tags of a struct type once.
func structInfoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	info := &structInfo{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fi := fieldInfo{name: name, index: i, required: !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero")}
		for _, kv := range strings.Split(f.Tag.Get("jsonschema"), ",") {
			if v, ok := strings.CutPrefix(kv, "enum="); ok {
				fi.enum = append(fi.enum, v)
			}
		}
		info.fields = append(info.fields, fi)
		info.names = append(info.names, name)
	}
	v, _ := structInfos.LoadOrStore(t, info)
	return v.(*structInfo)
}

// orList writes "a, b or c".
func orList(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// suggest returns ` (did you mean "x"?)` for the closest of candidates, if
// one is close enough to be a typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
		if dist := editDistance(strings.ToLower(s), strings.ToLower(c)); dist < bestDist && dist < len(c)/2+1 {
			best, bestDist = c, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, for suggestions only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
