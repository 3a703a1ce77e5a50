//go:build !linux

package cgroup

import (
	"fmt"

	"berth.dev/berth/engine"
)

// HostMode reports Unavailable: cgroups are a Linux facility.
func HostMode() Mode { return Unavailable }

// New validates its arguments, then fails with engine.ErrUnsupported.
func New(p string, r engine.Resources) (Cgroup, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	if _, err := limitsOf(r); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	return nil, fmt.Errorf("cgroup %s: %w", p, engine.ErrUnsupported)
}

// Load validates p, then fails with engine.ErrUnsupported.
func Load(p string) (Cgroup, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("cgroup %s: %w", p, engine.ErrUnsupported)
}

// List validates prefix and finds nothing.
func List(prefix string) ([]string, error) {
	return nil, checkPath(prefix)
}
