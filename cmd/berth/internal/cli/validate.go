package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/spec"
)

func init() { register("validate", NewCmdValidate) }

// validateOptions are the flags and arguments of berth validate.
type validateOptions struct {
	Paths []string // files, directories, or "-" for standard input
}

// ValidateReport is what `berth validate -o json` prints.
type ValidateReport struct {
	Valid     bool                `json:"valid"`
	Resources int                 `json:"resources"`
	Errors    []ValidateReportErr `json:"errors"`
}

// ValidateReportErr is one problem, at a position in a manifest.
type ValidateReportErr struct {
	File    string `json:"file"`
	Line    int    `json:"line"`   // 0 when the problem concerns the whole file
	Column  int    `json:"column"` // 0 when unknown
	Field   string `json:"field"`  // e.g. "spec.ports[1]"; "" for syntax and file problems
	Message string `json:"message"`
}

// NewCmdValidate builds `berth validate`.
func NewCmdValidate(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check manifests without touching the host",
		Long: `Validate reads manifests the way plan and apply do and reports every problem
at once, one line each: file:line:col: field: message.

PATH is a manifest file, a directory (read recursively for *.yaml and *.yml,
hidden entries skipped), or - for standard input. The default is the current
directory. All paths are checked together: names must be unique across them
and references must resolve.

Exit status: 0 when the manifests are valid, 1 when they are not.`,
		Example: `  berth validate examples/
  berth validate -o json manifests/
  kustomize build overlays/prod | berth validate -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(o, cmd.OutOrStdout(), validateOptions{Paths: args})
		},
	}
}

func runValidate(o *Options, w io.Writer, opts validateOptions) error {
	paths := opts.Paths
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var (
		set *spec.Set
		err error
	)
	switch {
	case len(paths) == 1 && paths[0] == "-":
		set, err = spec.LoadReader("<stdin>", o.In, "")
	case containsDash(paths):
		return errors.New(`"-" (standard input) cannot be combined with other paths`)
	default:
		set, err = spec.Load(paths...)
	}
	problems := spec.FieldErrors(err)
	if err != nil && len(problems) == 0 {
		return err
	}
	if set != nil && len(set.Files()) == 0 && len(problems) == 0 {
		for _, p := range paths {
			problems = append(problems, &spec.FieldError{File: p, Msg: "no manifests (*.yaml or *.yml files)"})
		}
	}
	resources, files := 0, 0
	if set != nil {
		resources, files = set.Len(), len(set.Files())
	}

	if o.JSON() {
		report := ValidateReport{Valid: len(problems) == 0, Resources: resources, Errors: []ValidateReportErr{}}
		for _, p := range problems {
			report.Errors = append(report.Errors, ValidateReportErr{File: p.File, Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Msg})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		writeValidateText(w, o.Color, paths, problems, resources, files)
	}
	if len(problems) > 0 {
		// The report is the output; there is nothing more to say on stderr.
		return &ExitError{Code: 1}
	}
	return nil
}

func containsDash(paths []string) bool {
	for _, p := range paths {
		if p == "-" {
			return true
		}
	}
	return false
}

const (
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[31m"
	ansiReset = "\x1b[0m"
)

func writeValidateText(w io.Writer, color bool, paths []string, problems []*spec.FieldError, resources, files int) {
	style := func(s, codes string) string {
		if !color {
			return s
		}
		return codes + s + ansiReset
	}
	if len(problems) == 0 {
		label := make([]string, len(paths))
		for i, p := range paths {
			switch p {
			case ".":
				label[i] = "./"
			case "-":
				label[i] = "<stdin>"
			default:
				label[i] = p
			}
		}
		verb := "are"
		if resources == 1 {
			verb = "is"
		}
		fmt.Fprintf(w, "%s: %s in %s %s valid\n", strings.Join(label, ", "), plural(resources, "resource"), plural(files, "file"), verb)
		return
	}
	inFiles := map[string]bool{}
	for _, p := range problems {
		inFiles[p.File] = true
		where := p.File
		if p.Line > 0 {
			where += fmt.Sprintf(":%d", p.Line)
			if p.Column > 0 {
				where += fmt.Sprintf(":%d", p.Column)
			}
		}
		field := ""
		if p.Field != "" {
			field = p.Field + ": "
		}
		fmt.Fprintf(w, "%s %s%s\n", style(where+":", ansiBold), field, style(p.Msg, ansiRed))
	}
	fmt.Fprintln(w, style(fmt.Sprintf("%s in %s", plural(len(problems), "error"), plural(len(inFiles), "file")), ansiBold+ansiRed))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
