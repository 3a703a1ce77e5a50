package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The monitor and the exec init manage cgroup membership with plain file
// operations: engine/cgroup (which creates the cgroups and sets limits)
// brings in containerd's library, which these small processes must not load.

// joinCgroup moves pid into every directory of dirs.
func joinCgroup(dirs []string, pid int) error {
	b := []byte(strconv.Itoa(pid))
	for _, d := range dirs {
		if err := os.WriteFile(path.Join(d, "cgroup.procs"), b, 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", d, err)
		}
	}
	return nil
}

// oomKills reads the OOM kill counter of the memory controller among dirs.
func oomKills(dirs []string) uint64 {
	for _, d := range dirs {
		for _, name := range []string{"memory.oom_control", "memory.events"} {
			data, err := os.ReadFile(path.Join(d, name))
			if err != nil {
				continue
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				if v, ok := bytes.CutPrefix(line, []byte("oom_kill ")); ok {
					n, _ := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
					return n
				}
			}
		}
	}
	return 0
}

// removeCgroup removes dirs, waiting briefly for the last processes of a
// dying pid namespace to leave them, then their parents when empty.
func removeCgroup(dirs []string) error {
	var first error
	for _, d := range dirs {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != syscall.EBUSY || time.Now().After(deadline) {
				if first == nil {
					first = fmt.Errorf("remove cgroup %s: %w", d, err)
				}
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if parent := path.Dir(d); strings.HasPrefix(path.Base(parent), "berth") {
			_ = syscall.Rmdir(parent) // the shared /berth parent, if now empty
		}
	}
	return first
}
