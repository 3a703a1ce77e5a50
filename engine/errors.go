package engine

import "errors"

// Error classes. Implementations wrap one of these (fmt.Errorf("container %s: %w",
// id, ErrNotFound)) so that callers decide with errors.Is, never by reading text.
var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: an object with that name or identity already exists.
	ErrExists = errors.New("already exists")
	// ErrRunning: the operation needs a stopped container and it is running.
	ErrRunning = errors.New("container is running")
	// ErrNotRunning: the operation needs a running container and it is not.
	ErrNotRunning = errors.New("container is not running")
	// ErrInUse: the object is referenced (an image by a container, a volume or
	// network by a container) and the operation would break that reference.
	ErrInUse = errors.New("in use")
	// ErrInvalid: the request itself is malformed (a bad reference, a bad
	// configuration value); retrying it unchanged cannot succeed.
	ErrInvalid = errors.New("invalid argument")
	// ErrConflict: a port, address or lock another object holds.
	ErrConflict = errors.New("conflict")
	// ErrUnsupported: this host or platform cannot do what was asked.
	ErrUnsupported = errors.New("not supported")
	// ErrIllegalState: a state-machine transition that is not allowed
	// (for example starting a container that is being removed).
	ErrIllegalState = errors.New("illegal state transition")
)
