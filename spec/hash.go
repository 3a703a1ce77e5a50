package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// HashVersion is the version of the canonical form Hash computes. Hashes
// look like "v1:<64 hex digits>".
//
// The reconciler stores a resource's hash on what it creates. When a later
// berth changes normalization (a new default written out, a new canonical
// spelling), it adds a version here and keeps computing the old ones in
// HashWith, so that an object labelled with an old hash is compared in its
// own version (see HashMatches) and is not recreated merely because berth
// was upgraded.
const HashVersion = "v1"

// Hash returns the canonical hash of r's normalized spec in the current
// version. r must have had its defaults applied (Load does that).
//
// What is hashed: the kind, metadata (name, labels, annotations) and the
// spec with defaults written out and values in canonical form (durations,
// quantities, signals, capabilities, image references, shell-form
// healthchecks as exec form, port ranges expanded). Key order, formatting,
// comments and writing a default out explicitly do not change it; lists
// whose order means nothing (ports, dependsOn, capAdd, capDrop, aliases) are
// sorted. Env files are hashed by their content, merged into env.
func Hash(r *Resource) string {
	h, _ := HashWith(HashVersion, r)
	return h
}

// HashWith returns r's hash in the given version of the canonical form, or
// an error wrapping ErrUnknownHashVersion.
func HashWith(version string, r *Resource) (string, error) {
	switch version {
	case "v1":
		e := canonicalPool.Get().(*canonicalV1)
		e.b = e.b[:0]
		e.resource(r)
		sum := sha256.Sum256(e.b)
		canonicalPool.Put(e)
		return "v1:" + hex.EncodeToString(sum[:]), nil
	}
	return "", fmt.Errorf("spec hash version %q: %w", version, ErrUnknownHashVersion)
}

// HashMatches reports whether h, a hash made by any supported version of
// Hash, is r's hash in that version.
func HashMatches(h string, r *Resource) bool {
	version, _, ok := strings.Cut(h, ":")
	if !ok {
		return false
	}
	mine, err := HashWith(version, r)
	return err == nil && mine == h
}

var canonicalPool = sync.Pool{New: func() any { return &canonicalV1{b: make([]byte, 0, 4096)} }}

// canonicalV1 writes the v1 canonical form: JSON with object keys sorted,
// zero-valued fields left out (so that adding an optional field to the spec
// types does not change existing hashes), integers for durations and
// quantities, and a string escaping that depends on no Unicode tables (so
// that a Go upgrade cannot change it).
//
// v1 is frozen: a change that would alter its output for any manifest
// valid today needs a new version instead.
type canonicalV1 struct {
	b []byte
}

func (e *canonicalV1) resource(r *Resource) {
	e.b = append(e.b, `{"kind":`...)
	e.string(string(r.Kind))
	e.b = append(e.b, `,"metadata":`...)
	e.value(reflect.ValueOf(r.Metadata), "")
	e.b = append(e.b, `,"spec":`...)
	if r.Spec != nil {
		e.value(reflect.ValueOf(r.Spec).Elem(), "")
	} else {
		e.b = append(e.b, "null"...)
	}
	e.b = append(e.b, '}')
}

func (e *canonicalV1) value(v reflect.Value, flag string) {
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if flag == "ref" {
			if n, err := NormalizeImageRef(s); err == nil {
				s = n
			}
		}
		e.string(s)
	case reflect.Bool:
		e.b = strconv.AppendBool(e.b, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b = strconv.AppendInt(e.b, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		e.b = strconv.AppendUint(e.b, v.Uint(), 10)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			e.b = append(e.b, "null"...)
			return
		}
		e.value(v.Elem(), flag)
	case reflect.Slice:
		if flag == "set" {
			e.set(v)
			return
		}
		e.b = append(e.b, '[')
		for i := range v.Len() {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.value(v.Index(i), "")
		}
		e.b = append(e.b, ']')
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		e.b = append(e.b, '{')
		for i, k := range keys {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.string(k.String())
			e.b = append(e.b, ':')
			e.value(v.MapIndex(k), "")
		}
		e.b = append(e.b, '}')
	case reflect.Struct:
		e.b = append(e.b, '{')
		first := true
		for _, f := range canonicalFieldsOf(v.Type()) {
			fv := v.Field(f.index)
			if fv.IsZero() || (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0 {
				continue
			}
			if !first {
				e.b = append(e.b, ',')
			}
			first = false
			e.string(f.name)
			e.b = append(e.b, ':')
			e.value(fv, f.flag)
		}
		e.b = append(e.b, '}')
	default:
		// Floats, channels and funcs are not in the spec types; a canonical
		// form for them would be a new version.
		e.b = append(e.b, "null"...)
	}
}

// set writes a list whose order means nothing: elements sorted by their
// canonical form, duplicates dropped.
func (e *canonicalV1) set(v reflect.Value) {
	// Elements are written one after another, then sorted as slices of
	// that one buffer.
	start := len(e.b)
	ends := make([]int, v.Len())
	for i := range v.Len() {
		e.value(v.Index(i), "")
		ends[i] = len(e.b)
	}
	all := slices.Clone(e.b[start:])
	e.b = e.b[:start]
	elems := make([][]byte, len(ends))
	prev := 0
	for i, end := range ends {
		elems[i] = all[prev : end-start]
		prev = end - start
	}
	slices.SortFunc(elems, bytes.Compare)
	elems = slices.CompactFunc(elems, bytes.Equal)
	e.b = append(e.b, '[')
	e.b = append(e.b, bytes.Join(elems, []byte{','})...)
	e.b = append(e.b, ']')
}

const hexDigits = "0123456789abcdef"

// string writes s as a JSON string, escaping only '"', '\\' and control
// characters.
func (e *canonicalV1) string(s string) {
	e.b = append(e.b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			e.b = append(e.b, '\\', c)
		case c < 0x20 || c == 0x7f:
			e.b = append(e.b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			e.b = append(e.b, c)
		}
	}
	e.b = append(e.b, '"')
}

type canonicalField struct {
	name  string
	index int
	flag  string // "", "set" or "ref"
}

var canonicalFields sync.Map // reflect.Type -> []canonicalField

// canonicalFieldsOf lists a struct's hashed fields sorted by name: the json
// name, else the Go name; fields tagged hash:"-" are left out.
func canonicalFieldsOf(t reflect.Type) []canonicalField {
	if v, ok := canonicalFields.Load(t); ok {
		return v.([]canonicalField)
	}
	var fs []canonicalField
	for i := range t.NumField() {
		f := t.Field(i)
		flag := f.Tag.Get("hash")
		if !f.IsExported() || flag == "-" {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		fs = append(fs, canonicalField{name: name, index: i, flag: flag})
	}
	slices.SortFunc(fs, func(a, b canonicalField) int { return strings.Compare(a.name, b.name) })
	v, _ := canonicalFields.LoadOrStore(t, fs)
	return v.([]canonicalField)
}
