package reconciler

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth.dev/berth/engine"
	"berth.dev/berth/reconciler/plan"
)

// ProjectName turns a directory's base name into a project name: a DNS
// label (lower case letters, digits and '-', at most 63 characters, starting
// and ending with a letter or digit). "My App_2" becomes "my-app-2".
func ProjectName(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("project of %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		abs = filepath.Dir(abs)
	}
	name := SanitizeProject(filepath.Base(abs))
	if name == "" {
		return "", Terminal(fmt.Errorf("project of %s: the directory name %q has no letters or digits: name the project with -p", dir, filepath.Base(abs)))
	}
	return name, nil
}

// SanitizeProject maps s to a DNS label, or "" when nothing is left.
func SanitizeProject(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	out := b.String()
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}

// ValidProject reports whether name is usable as a project name.
func ValidProject(name string) bool { return name != "" && SanitizeProject(name) == name }

// objectName is the engine name of a project's resource.
func objectName(project, name string) string { return project + "-" + name }

// ownerLabels are the labels that make an object the project's.
func ownerLabels(project string, kind plan.Kind, name, hash string) map[string]string {
	return map[string]string{
		engine.LabelProject:  project,
		engine.LabelKind:     string(kind),
		engine.LabelName:     name,
		engine.LabelSpecHash: hash,
	}
}
