package enginetest

import (
	"bufio"
	"os"
	"strings"
	"sync"
	"testing"
)

// EnvRoot, when "1", turns skips of root-only tests into failures. make test
// sets it when it runs as root, so CI can never go green by skipping the
// kernel tests.
const EnvRoot = "BERTH_TEST_ROOT"

// RequireRoot skips the test unless it runs as root, and fails it instead of
// skipping when BERTH_TEST_ROOT=1.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(EnvRoot) == "1" {
		t.Fatal("BERTH_TEST_ROOT=1 but tests are not running as root")
	}
	t.Skip("requires root")
}

// RequireFeature skips the test unless the kernel has feature, with the same
// skip-or-fail rule as RequireRoot. Features: "cgroup2" (a unified cgroup
// hierarchy), "cgroup1" (v1 or hybrid), "overlay", "userns", "nftables", or a
// cgroup controller name ("memory", "cpu", "pids").
func RequireFeature(t testing.TB, feature string) {
	t.Helper()
	RequireRoot(t)
	if HasFeature(feature) {
		return
	}
	if os.Getenv(EnvRoot) == "1" && !optional[feature] {
		t.Fatalf("BERTH_TEST_ROOT=1 but this kernel lacks %q", feature)
	}
	t.Skipf("requires %s", feature)
}

// optional features may be missing even in CI: these machines are cgroup v1
// hybrids, so v2-only tests skip there.
var optional = map[string]bool{"cgroup2": true, "cgroup1": true, "userns": true}

// HasFeature probes the kernel for feature (see RequireFeature).
func HasFeature(feature string) bool {
	switch feature {
	case "cgroup2":
		return isUnified()
	case "cgroup1":
		return !isUnified()
	case "overlay":
		return hasFilesystem("overlay")
	case "userns":
		_, err := os.Stat("/proc/self/ns/user")
		return err == nil
	case "nftables":
		_, err := os.Stat("/proc/net/netfilter") // nf_tables lives in the netfilter core
		return err == nil
	default:
		return hasController(feature)
	}
}

func isUnified() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

var filesystems = sync.OnceValue(func() string {
	data, _ := os.ReadFile("/proc/filesystems")
	return string(data)
})

func hasFilesystem(name string) bool {
	for _, line := range strings.Split(filesystems(), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

func hasController(name string) bool {
	if isUnified() {
		data, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		return err == nil && strings.Contains(" "+strings.TrimSpace(string(data))+" ", " "+name+" ")
	}
	f, err := os.Open("/proc/cgroups")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 4 && fields[0] == name && fields[3] == "1" {
			return true
		}
	}
	return false
}
