package shim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// AvailableCaps returns the capabilities in this process's bounding set: the
// most a container can be given.
func AvailableCaps() (map[string]bool, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("capabilities: %w", err)
		}
		out := map[string]bool{}
		for i := range capNames {
			if mask&(1<<uint(i)) != 0 {
				out[capNames[i]] = true
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("capabilities: no CapBnd in /proc/self/status")
}

func lastCap() int {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return n
		}
	}
	return len(capNames) - 1
}

// capMask turns names into the two 32-bit words the kernel uses.
func capMask(names []string) (mask [2]uint32, err error) {
	for _, n := range names {
		c, ok := CapNumber(n)
		if !ok {
			return mask, fmt.Errorf("unknown capability %q", n)
		}
		mask[c/32] |= 1 << uint(c%32)
	}
	return mask, nil
}

// dropBounding removes from this thread's bounding set every capability not
// in keep.
func dropBounding(keep [2]uint32) error {
	last := lastCap()
	for c := 0; c <= last; c++ {
		if keep[c/32]&(1<<uint(c%32)) != 0 {
			continue
		}
		if err := prctl(prCapbsetDrop, uintptr(c), 0, 0, 0); err != nil && err != syscall.EINVAL {
			return fmt.Errorf("drop %s from bounding set: %w", CapName(c), err)
		}
	}
	return nil
}

// setCaps sets this thread's effective, permitted and inheritable sets to
// mask and clears the ambient set.
func setCaps(mask [2]uint32) error {
	if err := capset(mask); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := prctl(prCapAmbient, prCapAmbientClearAll, 0, 0, 0); err != nil && err != syscall.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	return nil
}
