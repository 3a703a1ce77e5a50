package shim

import (
	"syscall"

	"berth.dev/berth/engine/reexec/prefault"
)

// trimText drops from this process the pages of the berth binary it only
// touched while starting: the code and read-only data of every package
// initializer the runtime ran (the berth command links hundreds of
// packages), and what package prefault mapped ahead. The pages stay in the
// page cache, shared; the few the monitor's loop uses fault back in. Only
// the binary's read-only segments are touched: discarding a private
// writable mapping would lose its modifications.
func trimText() {
	prefault.ReadOnlySegments(func(start, length uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, length, syscall.MADV_DONTNEED)
	})
}
