package spec

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// maxFileSize bounds one manifest file.
const maxFileSize = 16 << 20

// input is one manifest stream to decode.
type input struct {
	name string // shown in errors
	dir  string // absolute directory for relative paths
	path string // file to read, or "" when data is given
	data []byte
}

// Load reads the manifests named by paths: files (read whatever their
// extension) and directories (walked recursively for *.yaml and *.yml,
// skipping hidden files and directories such as .git; symlinked files are
// read, symlinked directories are not followed). It decodes every document,
// applies defaults, and validates each resource and the set as a whole.
//
// A file named twice is read once. Errors are every *FieldError found,
// sorted by file, line and column, in one *multierror.Error (see
// FieldErrors). On error the returned Set still holds the resources that
// decoded, for reporting; it must not be acted on.
func Load(paths ...string) (*Set, error) {
	var errs []*FieldError
	inputs := collect(paths, &errs)
	return build(inputs, errs)
}

// LoadReader reads one manifest stream, such as standard input. name is
// used as the file name in errors and positions; dir is the directory
// relative paths in the manifests resolve against ("" for the current one).
func LoadReader(name string, r io.Reader, dir string) (*Set, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, aggregate([]*FieldError{{File: name, Msg: err.Error(), Err: err}})
	}
	if len(data) > maxFileSize {
		return nil, aggregate([]*FieldError{{File: name, Msg: fmt.Sprintf("larger than %d bytes", maxFileSize)}})
	}
	return build([]input{{name: name, dir: abs, data: data}}, nil)
}

// collect lists the manifest files under paths.
func collect(paths []string, errs *[]*FieldError) []input {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "/"
	}
	seen := map[string]bool{}
	var out []input
	add := func(p string) {
		abs := p
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(cwd, abs)
		}
		abs = filepath.Clean(abs)
		if seen[abs] {
			return
		}
		seen[abs] = true
		out = append(out, input{name: p, dir: filepath.Dir(abs), path: p})
	}
	fail := func(p string, err error) {
		*errs = append(*errs, &FieldError{File: p, Msg: fileProblem(err), Err: err})
	}
	for _, root := range paths {
		fi, err := os.Stat(root)
		if err != nil {
			fail(root, err)
			continue
		}
		if !fi.IsDir() {
			add(root)
			continue
		}
		err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				fail(p, err)
				return nil
			}
			if p != root && strings.HasPrefix(de.Name(), ".") {
				if de.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if de.IsDir() || !isManifestName(de.Name()) {
				return nil
			}
			if de.Type()&fs.ModeSymlink != 0 {
				fi, err := os.Stat(p)
				if err != nil {
					fail(p, err)
					return nil
				}
				if !fi.Mode().IsRegular() {
					return nil
				}
			} else if !de.Type().IsRegular() {
				return nil
			}
			add(p)
			return nil
		})
		if err != nil {
			fail(root, err)
		}
	}
	return out
}

func isManifestName(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

type decoded struct {
	resources []*Resource
	errs      []*FieldError
}

// build decodes the inputs, in parallel (files are independent until the
// set is checked as a whole), and assembles the Set.
func build(inputs []input, errs []*FieldError) (*Set, error) {
	results := make([]decoded, len(inputs))
	env := &envFiles{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(inputs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(inputs) {
					return
				}
				results[i] = decodeInput(inputs[i], env)
			}
		})
	}
	wg.Wait()

	var rs []*Resource
	files := make([]string, 0, len(inputs))
	first := map[Key]*Resource{}
	for i, res := range results {
		files = append(files, inputs[i].name)
		errs = append(errs, res.errs...)
		for _, r := range res.resources {
			if o, dup := first[r.Key()]; dup {
				p := r.fields.near("metadata.name")
				errs = append(errs, &FieldError{File: p.File, Line: p.Line, Column: p.Column, Field: "metadata.name",
					Msg: fmt.Sprintf("%s %q is already defined at %s", r.Kind, r.Name(), o.Pos)})
				continue
			}
			first[r.Key()] = r
			rs = append(rs, r)
		}
	}
	for _, r := range rs {
		Default(r)
	}
	s := newSet(rs, files)
	errs = append(errs, validateSet(s)...)
	return s, aggregate(errs)
}

func decodeInput(in input, env *envFiles) decoded {
	data := in.data
	if in.path != "" {
		var err error
		data, err = readSmallFile(in.path, maxFileSize)
		if err != nil {
			return decoded{errs: []*FieldError{{File: in.name, Msg: fileProblem(err), Err: err}}}
		}
	}
	d := &decoder{file: in.name, dir: in.dir, envFiles: env}
	rs := d.decodeFile(data)
	return decoded{resources: rs, errs: d.errs}
}
