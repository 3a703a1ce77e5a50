package state

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
)

// Process identifies a process across time: a pid alone can be reused by the
// kernel, a pid plus its start time (in clock ticks since boot) cannot, and a
// reboot resets the boot ID that BootID reads.
type Process struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"startTime"` // field 22 of /proc/PID/stat
	BootID    string `json:"bootID"`
}

// ProcessOf reads the identity of a live process.
func ProcessOf(pid int) (Process, error) {
	st, err := StartTime(pid)
	if err != nil {
		return Process{}, err
	}
	boot, err := BootID()
	if err != nil {
		return Process{}, err
	}
	return Process{Pid: pid, StartTime: st, BootID: boot}, nil
}

// Alive reports whether p still names the same running (not zombie) process.
func (p Process) Alive() bool {
	if p.Pid <= 0 {
		return false
	}
	boot, err := BootID()
	if err != nil || boot != p.BootID {
		return false
	}
	st, state, err := stat(p.Pid)
	if err != nil {
		return false
	}
	return st == p.StartTime && state != 'Z' && state != 'X'
}

// StartTime returns the start time of pid in clock ticks since boot.
func StartTime(pid int) (uint64, error) {
	st, _, err := stat(pid)
	return st, err
}

func stat(pid int) (start uint64, state byte, err error) {
	data, err := readFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, 0, fmt.Errorf("process %d: %w", pid, fs.ErrNotExist)
		}
		return 0, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// comm (field 2) may hold spaces and parentheses: fields after it start
	// after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return 0, 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	// Field 3 (state) and field 22 (start time), without splitting all 52
	// (every observe of a container reads two of these files).
	var fields [20][]byte
	n := 0
	for rest := data[i+2:]; n < len(fields); n++ {
		rest = bytes.TrimLeft(rest, " \n")
		end := bytes.IndexAny(rest, " \n")
		if end < 0 {
			end = len(rest)
		}
		if end == 0 {
			break
		}
		fields[n], rest = rest[:end], rest[end:]
	}
	if n < len(fields) {
		return 0, 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	return start, fields[0][0], nil
}

// BootID returns the kernel's boot ID, which changes on every boot.
func BootID() (string, error) { return bootID() }

var bootID = sync.OnceValues(func() (string, error) {
	data, err := readFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	return string(bytes.TrimSpace(data)), nil
})
