// Package prestart starts the monitor of the container a berth command is
// about to start while the command is still initializing (see
// shim.StartEarlyMonitor): a monitor is a process start-up of its own, and
// the command's start-up (flags, configuration, engine) is long enough to
// hide most of it. The cli package takes the monitor when it starts the
// container; a command that fails before that leaves it to exit on its own.
//
// It works from an init function, which runs right after the shim's (its
// only heavy dependency) and long before the cli package's, so it reads the
// command line itself: the verb is the first argument that is neither a flag
// nor the value of a global flag, as cobra will find it.
package prestart

import (
	"os"
	"strings"

	"berth.dev/berth/engine/container/shim"
)

func init() {
	// Only root runs containers: anyone else would pay for a monitor (and a
	// copy of the binary, with no overlay to seal it) for an error.
	if os.Geteuid() == 0 && startsContainer(os.Args[1:]) {
		shim.StartEarlyMonitor()
	}
}

// startsContainer reports whether args are those of a berth command that
// starts a container.
func startsContainer(args []string) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return false
		case a == "--data-root" || a == "--log-level" || a == "--output" || a == "-o" || a == "--config" || a == "--insecure-registries":
			i++ // a global flag's value
		case strings.HasPrefix(a, "-"):
		default:
			switch a {
			case "run", "start", "restart":
				return !helpAsked(args[i+1:])
			}
			return false
		}
	}
	return false
}

// helpAsked reports whether a verb's arguments ask for its help.
func helpAsked(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" {
			return true
		}
		if !strings.HasPrefix(a, "-") {
			return false // the image or container: what follows is its own
		}
	}
	return false
}
