package container

import (
	"fmt"

	"berth.dev/berth/engine"
)

// op is an operation that needs the container in some states.
type op string

const (
	opStart   op = "start"
	opStop    op = "stop"
	opKill    op = "kill"
	opRemove  op = "remove"
	opExec    op = "exec"
	opAttach  op = "attach"
	opUpdate  op = "update"
	opRestart op = "restart"
	opStats   op = "stats"
)

// allowed lists, per operation, the states it accepts. Stop of a stopped
// container and remove of a running one (with force) are handled by their
// callers before this check.
var allowed = map[op][]engine.Status{
	opStart:   {engine.StatusCreated, engine.StatusExited, engine.StatusDead},
	opStop:    {engine.StatusRunning, engine.StatusRestarting},
	opKill:    {engine.StatusRunning, engine.StatusRestarting},
	opRemove:  {engine.StatusCreated, engine.StatusExited, engine.StatusDead},
	opExec:    {engine.StatusRunning},
	opAttach:  {engine.StatusRunning},
	opStats:   {engine.StatusRunning},
	opUpdate:  {engine.StatusCreated, engine.StatusRunning, engine.StatusRestarting, engine.StatusExited, engine.StatusDead},
	opRestart: {engine.StatusCreated, engine.StatusRunning, engine.StatusRestarting, engine.StatusExited, engine.StatusDead},
}

// transition reports whether o may run on a container in status s, with the
// engine error class that says why not.
func transition(name string, s engine.Status, o op) error {
	for _, a := range allowed[o] {
		if a == s {
			return nil
		}
	}
	switch {
	case s == engine.StatusRemoving:
		return fmt.Errorf("%s container %s: it is being removed: %w", o, name, engine.ErrIllegalState)
	case s == engine.StatusRunning || s == engine.StatusRestarting:
		return fmt.Errorf("%s container %s: %w", o, name, engine.ErrRunning)
	case o == opExec || o == opAttach || o == opStats || o == opKill || o == opStop:
		return fmt.Errorf("%s container %s: %w", o, name, engine.ErrNotRunning)
	}
	return fmt.Errorf("%s container %s in state %s: %w", o, name, s, engine.ErrIllegalState)
}
