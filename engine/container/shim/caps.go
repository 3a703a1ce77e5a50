package shim

import (
	"fmt"
	"strings"
)

// capNames are the kernel's capability names by number.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// DefaultCaps is Docker's default capability set.
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// CapNumber returns the number of a capability name ("NET_ADMIN" or
// "CAP_NET_ADMIN", any case).
func CapNumber(name string) (int, bool) {
	n := NormalizeCap(name)
	for i, c := range capNames {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// NormalizeCap returns the CAP_-prefixed upper-case form of name.
func NormalizeCap(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n
}

// CapName returns the name of capability number n.
func CapName(n int) string {
	if n >= 0 && n < len(capNames) {
		return capNames[n]
	}
	return fmt.Sprintf("CAP_%d", n)
}

// Caps computes a container's capability set from Docker's default, capAdd
// and capDrop ("ALL" allowed in either, as Docker). available limits "ALL"
// and is checked for explicit additions: a capability the host's root lacks
// cannot be granted.
func Caps(capAdd, capDrop []string, available map[string]bool) ([]string, error) {
	set := map[string]bool{}
	for _, c := range DefaultCaps {
		set[c] = true
	}
	for _, c := range capDrop {
		if strings.EqualFold(strings.TrimSpace(c), "ALL") {
			clear(set)
			continue
		}
		if _, ok := CapNumber(c); !ok {
			return nil, fmt.Errorf("unknown capability %q", c)
		}
		delete(set, NormalizeCap(c))
	}
	for _, c := range capAdd {
		if strings.EqualFold(strings.TrimSpace(c), "ALL") {
			for n := range available {
				set[n] = true
			}
			continue
		}
		if _, ok := CapNumber(c); !ok {
			return nil, fmt.Errorf("unknown capability %q", c)
		}
		n := NormalizeCap(c)
		if available != nil && !available[n] {
			return nil, fmt.Errorf("capability %s is not available on this host", n)
		}
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for _, c := range capNames { // kernel order, stable output
		if set[c] {
			out = append(out, c)
		}
	}
	return out, nil
}
