package shim

import (
	"errors"
	"os"

	"berth.dev/berth/engine/reexec"
)

func init() {
	reexec.Register(RoleMonitor, monitorMain)
	reexec.Register(RoleInit, initMain)
	reexec.Register(RoleExec, execMain)
	// Take over now, before the packages that sort after this one (most of
	// the berth command's dependencies) run their initializers: the roles
	// need none of them, and a monitor lives as long as its container.
	if os.Getenv(reexec.EnvGuard) != "1" {
		return
	}
	switch os.Args[0] {
	case RoleMonitor:
		monitorMain()
	case RoleInit:
		initMain()
	case RoleExec:
		execMain()
	default:
		return
	}
	os.Exit(0)
}

func asErrno(err error, target any) bool { return errors.As(err, target) }
