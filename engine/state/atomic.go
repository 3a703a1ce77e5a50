package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// WriteFile replaces path with data atomically: readers see the old content
// or the new, never a mix, and after a crash the file is one or the other.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return writeFile(path, data, perm, true)
}

// WriteFileNoSync is WriteFile without its two fsyncs (2 ms on ext4):
// readers still see the old content or the new, never a mix, and so does
// the next process after a crash of this one; only a crash of the machine
// may lose the write (or, on a file system that does not order data before
// a rename, leave the file empty). For what berth can do without, such as
// a status that the next reconcile recomputes.
func WriteFileNoSync(path string, data []byte, perm fs.FileMode) error {
	return writeFile(path, data, perm, false)
}

func writeFile(file string, data []byte, perm fs.FileMode, sync bool) error {
	// path, not path/filepath: the shim's roles link this package and must
	// initialize early (see engine/container/shim/doc.go).
	dir := path.Dir(file)
	f, err := os.CreateTemp(dir, "."+path.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: sync: %w", file, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	ok = true
	if !sync {
		return nil
	}
	return SyncDir(dir)
}

// WriteJSON marshals v and writes it atomically to path.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteFile(path, append(data, '\n'), 0o600)
}

// ReadJSON reads path into v. A missing file is reported as fs.ErrNotExist
// (check with errors.Is).
func ReadJSON(path string, v any) error {
	data, err := readFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory so that a rename or create in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
