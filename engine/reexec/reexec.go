// Package reexec lets the berth binary start copies of itself in a different
// role: the container init, the per-container monitor, the DNS helper. Each
// role registers an entry point under a name; the child is started with that
// name as argv[0] and BERTH_REEXEC set, and Init, called first thing in main
// (and in TestMain of packages that spawn roles), runs the entry point
// instead of the program.
//
// The environment guard matters: a user who renames the binary to
// "berth-init" must not get the init role.
package reexec

import (
	"fmt"
	"os"
)

// EnvGuard is set in the environment of every re-executed role.
const EnvGuard = "BERTH_REEXEC"

var roles = map[string]func(){}

// Register makes fn the entry point of role name. It panics on a duplicate,
// which is a programming error found at start-up.
func Register(name string, fn func()) {
	if _, ok := roles[name]; ok {
		panic(fmt.Sprintf("reexec: role %q registered twice", name))
	}
	roles[name] = fn
}

// Init runs the registered role named by argv[0] if this process was started
// as one, and reports whether it did. Roles normally exit on their own; if one
// returns, Init returns true and the caller must exit.
func Init() bool {
	if os.Getenv(EnvGuard) != "1" {
		return false
	}
	fn, ok := roles[os.Args[0]]
	if !ok {
		return false
	}
	fn()
	return true
}

// Self returns the path to exec to start a role: the running binary.
func Self() string { return "/proc/self/exe" }
