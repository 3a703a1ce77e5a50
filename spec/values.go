package spec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// String returns the manifest form: no, on-failure, on-failure:N, always or
// unless-stopped.
func (p RestartPolicy) String() string {
	if p.Name == RestartOnFailure && p.MaxRetries > 0 {
		return p.Name + ":" + strconv.Itoa(p.MaxRetries)
	}
	return p.Name
}

// MarshalText writes the String form.
func (p RestartPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ParseRestartPolicy parses no, on-failure[:N], always or unless-stopped.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	switch s {
	case RestartNo, RestartAlways, RestartUnlessStopped, RestartOnFailure:
		return RestartPolicy{Name: s}, nil
	}
	if n, ok := strings.CutPrefix(s, RestartOnFailure+":"); ok {
		if n == "" || strings.Trim(n, "0123456789") != "" {
			return RestartPolicy{}, fmt.Errorf("invalid restart policy %q: the retry count must be a whole number", s)
		}
		v, err := strconv.Atoi(n)
		if err != nil || v > 1<<30 {
			return RestartPolicy{}, fmt.Errorf("restart policy %q: retry count out of range", s)
		}
		return RestartPolicy{Name: RestartOnFailure, MaxRetries: v}, nil
	}
	return RestartPolicy{}, fmt.Errorf("invalid restart policy %q: want no, on-failure[:N], always or unless-stopped", s)
}

// Signal is a signal name in canonical form, "SIGTERM". Manifests may write
// SIGTERM, TERM, term or 15; real-time signals are SIGRTMIN+N.
type Signal string

// Linux signal numbers 1 to 31 (the generic numbering: x86, arm, arm64,
// riscv, s390x, ppc).
var signalNames = [...]string{1: "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
	"USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
	"VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"}

var signalAliases = map[string]string{"IOT": "ABRT", "POLL": "IO", "CLD": "CHLD"}

const (
	sigRTMin = 34
	sigRTMax = 64
)

// ParseSignal parses a signal name (with or without SIG, any case) or
// number into its canonical name.
func ParseSignal(s string) (Signal, error) {
	bad := func() error { return fmt.Errorf("unknown signal %q", s) }
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return "", bad()
		}
		return signalByNumber(n)
	}
	u := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if a, ok := signalAliases[u]; ok {
		u = a
	}
	for _, n := range signalNames[1:] {
		if n == u {
			return Signal("SIG" + n), nil
		}
	}
	switch {
	case u == "RTMIN":
		return signalByNumber(sigRTMin)
	case u == "RTMAX":
		return signalByNumber(sigRTMax)
	case strings.HasPrefix(u, "RTMIN+"), strings.HasPrefix(u, "RTMAX-"):
		off, err := strconv.Atoi(u[6:])
		if err != nil || off < 0 || u[6:] == "" || u[6] == '+' || u[6] == '-' {
			return "", bad()
		}
		if u[5] == '+' {
			return signalByNumber(sigRTMin + off)
		}
		return signalByNumber(sigRTMax - off)
	}
	return "", bad()
}

func signalByNumber(n int) (Signal, error) {
	switch {
	case n >= 1 && n < len(signalNames):
		return Signal("SIG" + signalNames[n]), nil
	case n == sigRTMin:
		return "SIGRTMIN", nil
	case n > sigRTMin && n <= sigRTMax:
		return Signal("SIGRTMIN+" + strconv.Itoa(n-sigRTMin)), nil
	}
	return "", fmt.Errorf("signal %d out of range", n)
}

// Capability is a Linux capability in canonical form, "CAP_NET_ADMIN", or
// "ALL". Manifests may write NET_ADMIN, net_admin or CAP_NET_ADMIN.
type Capability string

// CapabilityAll stands for every capability in capAdd and capDrop.
const CapabilityAll Capability = "ALL"

// Capabilities lists every Linux capability berth knows, in number order.
func Capabilities() []Capability {
	out := make([]Capability, len(capabilityNames))
	for i, n := range capabilityNames {
		out[i] = Capability("CAP_" + n)
	}
	return out
}

var capabilityNames = [...]string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK",
	"IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT",
	"SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
	"CHECKPOINT_RESTORE"}

// ParseCapability parses a capability name into its canonical form.
func ParseCapability(s string) (Capability, error) {
	u := strings.TrimPrefix(strings.ToUpper(s), "CAP_")
	if u == "ALL" {
		return CapabilityAll, nil
	}
	for _, n := range capabilityNames {
		if n == u {
			return Capability("CAP_" + n), nil
		}
	}
	return "", fmt.Errorf("unknown capability %q", s)
}

// Platform selects one image of a multi-platform index. Manifests write it
// as os/arch[/variant].
type Platform struct {
	OS           string
	Architecture string
	Variant      string
}

// String returns os/arch[/variant], or "" for the zero Platform.
func (p Platform) String() string {
	if p.OS == "" {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// MarshalText writes the String form.
func (p Platform) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ParsePlatform parses os/arch[/variant]; each part is lowercase letters,
// digits and '_'.
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant], e.g. linux/amd64", s)
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant] in lowercase, e.g. linux/amd64", s)
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// ValidName reports whether s is a valid resource name: lowercase letters,
// digits, '-', '_' and '.', starting and ending with a letter or digit, at
// most 63 characters.
func ValidName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

func nameError(s string) string {
	switch {
	case s == "":
		return "name must not be empty"
	case len(s) > 63:
		return fmt.Sprintf("name %q is longer than 63 characters", s)
	case strings.ToLower(s) != s:
		return fmt.Sprintf("invalid name %q: use lowercase (%q)", s, strings.ToLower(s))
	}
	return fmt.Sprintf("invalid name %q: use lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit", s)
}

// validHostname reports whether s is a host name: dot-separated labels of
// letters, digits, '-' and '_' (which RFC 1123 leaves out but resource names
// allow, and hostnames default to), each 1 to 63 characters not starting or
// ending with '-', at most 253 in all.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// NormalizeImageRef returns the fully qualified form of an image reference
// (busybox -> index.docker.io/library/busybox:latest), which is how a
// container's image is matched with an Image resource.
func NormalizeImageRef(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	return r.Name(), nil
}

func checkImageRef(s string) string {
	if s == "" {
		return "image reference must not be empty"
	}
	if strings.TrimSpace(s) != s {
		return fmt.Sprintf("invalid image reference %q: surrounding whitespace", s)
	}
	if _, err := name.ParseReference(s); err != nil {
		// ParseReference only says it could not; the specific parser says why.
		if strings.Contains(s, "@") {
			_, err = name.NewDigest(s)
		} else {
			_, err = name.NewTag(s)
		}
		return fmt.Sprintf("invalid image reference %q: %v", s, err)
	}
	return ""
}
