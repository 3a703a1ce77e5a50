package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenGC checks when Open collects what a killed command left behind
// (here a create that died before taking its lock, a minute ago).
func TestOpenGC(t *testing.T) {
	tests := []struct {
		name string
		gc   GCMode
		kept bool
	}{
		{"on open", GCOnOpen, false},
		{"in the background", GCBackground, false},
		{"never", GCNever, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			leftover := filepath.Join(root, "containers", ".tmp-"+strings.Repeat("a", 64))
			if err := os.MkdirAll(leftover, 0o700); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(leftover, old, old); err != nil {
				t.Fatal(err)
			}
			e, err := Open(t.Context(), Config{DataRoot: root, GC: tc.gc})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = os.Stat(leftover)
			if kept := err == nil; kept != tc.kept {
				t.Errorf("leftover kept = %v, want %v (stat: %v)", kept, tc.kept, err)
			}
		})
	}
}
