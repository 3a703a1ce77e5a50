package container_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/engine/container"
)

// TestGCFinishesRemovalWithoutLock: a remover killed in its final RemoveAll,
// after the lock file went, leaves a .removing- directory that the next
// berth command removes at once, while a young .tmp- directory without a
// lock file (a create between its mkdir and its lock) is left alone.
func TestGCFinishesRemovalWithoutLock(t *testing.T) {
	v := newEnv(t)
	id := strings.Repeat("ab", 32)
	removing := filepath.Join(v.root, "containers", ".removing-"+id)
	creating := filepath.Join(v.root, "containers", ".tmp-"+strings.Repeat("cd", 32))
	for _, d := range []string{filepath.Join(removing, "upper", "etc"), creating} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(creating) })
	if err := os.WriteFile(filepath.Join(removing, "state.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := container.New(t.Context(), v.root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(removing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left behind: %v", removing, err)
	}
	if _, err := os.Stat(creating); err != nil {
		t.Errorf("young %s removed: %v", creating, err)
	}
}
