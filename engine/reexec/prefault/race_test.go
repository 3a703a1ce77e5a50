//go:build race

package prefault

// raceEnabled: the race detector makes its own allocations.
const raceEnabled = true
