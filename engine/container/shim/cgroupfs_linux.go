package shim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The monitor and the exec init manage cgroup membership with plain file
// operations: engine/cgroup (which creates the cgroups and sets limits)
// brings in containerd's library, which these small processes must not load.

// CgroupDirs returns the directories of cgroup path (like "/berth/ID") in
// every mounted hierarchy where it exists, and whether the hierarchy is v2
// only (unified mode).
func CgroupDirs(cgPath string) (dirs []string, v2 bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, false, fmt.Errorf("cgroup dirs: %w", err)
	}
	defer f.Close()
	var v1dirs []string
	var v2dir string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre := strings.Fields(line[:sep])
		post := strings.Fields(line[sep+3:])
		if len(pre) < 5 || len(post) < 1 {
			continue
		}
		mp := pre[4]
		switch post[0] {
		case "cgroup":
			d := filepath.Join(mp, cgPath)
			if _, err := os.Stat(d); err == nil {
				v1dirs = append(v1dirs, d)
			}
		case "cgroup2":
			d := filepath.Join(mp, cgPath)
			if _, err := os.Stat(d); err == nil {
				v2dir = d
			}
		}
	}
	if len(v1dirs) > 0 {
		return v1dirs, false, s.Err()
	}
	if v2dir != "" {
		return []string{v2dir}, true, s.Err()
	}
	return nil, false, s.Err()
}

// joinCgroup moves pid into every directory of dirs.
func joinCgroup(dirs []string, pid int) error {
	b := []byte(strconv.Itoa(pid))
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), b, 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", d, err)
		}
	}
	return nil
}

// oomKills reads the OOM kill counter of the memory controller among dirs.
func oomKills(dirs []string) uint64 {
	for _, d := range dirs {
		for _, name := range []string{"memory.oom_control", "memory.events"} {
			data, err := os.ReadFile(filepath.Join(d, name))
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
		if parent := filepath.Dir(d); strings.HasPrefix(filepath.Base(parent), "berth") {
			_ = syscall.Rmdir(parent) // the shared /berth parent, if now empty
		}
	}
	return first
}
