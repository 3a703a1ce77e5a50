package spec

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// ErrUnknownHashVersion is returned by HashWith for a version this build of
// berth cannot compute.
var ErrUnknownHashVersion = errors.New("unknown spec hash version")

// FieldError is one problem in the manifests, placed at a file, line, column
// and field path. Load returns every FieldError of the whole set at once,
// sorted, in a *multierror.Error; get them with FieldErrors, or the first
// with errors.As.
type FieldError struct {
	File   string // the manifest as named when loading ("<stdin>" for a reader)
	Line   int    // 1-based; 0 when the problem concerns the whole file
	Column int    // 1-based; 0 when unknown
	// Field is the path of the field, e.g. "spec.ports[1]", "metadata.name";
	// empty for syntax errors and problems of a whole file or document.
	Field string
	Msg   string
	// Err is the underlying cause when there is one (reading the file), so
	// that errors.Is(err, fs.ErrNotExist) works through Load's error.
	Err error
}

// Error returns "file:line:col: field: message".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *FieldError) Unwrap() error { return e.Err }

func compareFieldErrors(a, b *FieldError) int {
	return cmp.Or(
		cmp.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Column, b.Column),
		cmp.Compare(a.Field, b.Field),
		cmp.Compare(a.Msg, b.Msg),
	)
}

// FieldErrors returns every FieldError in err, which may be Load's
// aggregate, a single *FieldError, or either wrapped.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *FieldError:
			out = append(out, e)
		case *multierror.Error:
			for _, x := range e.Errors {
				walk(x)
			}
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		default:
			walk(errors.Unwrap(err))
		}
	}
	walk(err)
	return out
}

// aggregate sorts errs by position and returns them as one error, nil when
// there are none.
func aggregate(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, compareFieldErrors)
	errs = slices.CompactFunc(errs, func(a, b *FieldError) bool { return compareFieldErrors(a, b) == 0 })
	m := &multierror.Error{ErrorFormat: listFormat, Errors: make([]error, len(errs))}
	for i, e := range errs {
		m.Errors[i] = e
	}
	return m
}

// listFormat prints one error per line, as a compiler does.
func listFormat(errs []error) string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
