package reconciler

import (
	"errors"
	"fmt"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/reconciler/plan"
	"berth.dev/berth/spec"
)

// terminalError marks an error that retrying cannot fix.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// Terminal marks err as needing a person: an invalid spec, a name taken by
// an object berth does not own. Watch does not retry it until the manifests
// change. Terminal(nil) is nil.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	var t *terminalError
	if errors.As(err, &t) {
		return err
	}
	return &terminalError{err: err}
}

// IsTerminal reports whether err, or an error it wraps, is terminal. Engine
// errors of class ErrInvalid and manifest errors are terminal too.
func IsTerminal(err error) bool {
	var t *terminalError
	var fe *spec.FieldError
	return errors.As(err, &t) || errors.As(err, &fe) || errors.Is(err, engine.ErrInvalid)
}

// WaitingError says a resource cannot progress until something else does (a
// dependency becoming healthy): not a failure, retried after After.
type WaitingError struct {
	Reason string
	After  time.Duration
	// On is the resource waited for, when it is one of the project's.
	On plan.Key
}

func (e *WaitingError) Error() string { return e.Reason }

// IsWaiting returns the WaitingError in err's chain, if any.
func IsWaiting(err error) (*WaitingError, bool) {
	var w *WaitingError
	ok := errors.As(err, &w)
	return w, ok
}

// ErrRefused is the class of Plan's refusals to act on manifests that would
// delete everything (an empty set) or that cannot be read.
var ErrRefused = errors.New("refused")

// ErrStale is the class of a saved plan's refusal: the host or the
// manifests changed since the plan was made.
var ErrStale = errors.New("saved plan is stale")

// ErrLocked is the class of a failure to take the project lock in time.
var ErrLocked = errors.New("project is locked")

// BlockedError reports a change that was not attempted because one it
// depends on failed.
type BlockedError struct {
	On string // the failed resource's address
	// Self: what failed was removing the old object of a replace.
	Self bool
}

func (e *BlockedError) Error() string {
	if e.Self {
		return "not created: removing the old one failed"
	}
	return fmt.Sprintf("not attempted: %s failed", e.On)
}

// ChangeError is the failure of one change of a plan: which resource, which
// operation, and why. Apply returns every ChangeError of a run in one
// *multierror.Error.
type ChangeError struct {
	Key plan.Key
	Op  Op
	Err error
}

func (e *ChangeError) Error() string {
	var b *BlockedError
	if errors.As(e.Err, &b) {
		return fmt.Sprintf("%s: %v", e.Key, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Key, e.Op, e.Err)
}

func (e *ChangeError) Unwrap() error { return e.Err }
