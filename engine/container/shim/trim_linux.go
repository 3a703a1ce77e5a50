package shim

import (
	"encoding/binary"
	"syscall"
)

// trimText drops from this process the pages of the berth binary it only
// touched while starting: the code and read-only data of every package
// initializer the runtime ran (the berth command links hundreds of packages).
// The pages stay in the page cache, shared; the few the monitor's loop uses
// fault back in. Only the binary's read-only segments are touched:
// discarding a private writable mapping would lose its modifications.
//
// It reads the segments from the binary's program headers, with no heap
// allocation: an allocation could start a garbage collection, whose stack
// scans would fault much of the read-only data straight back in.
func trimText() {
	fd, err := syscall.Open("/proc/self/exe", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer syscall.Close(fd)
	const (
		ehdrSize = 64
		phdrSize = 56
		maxPhdrs = 16
		etExec   = 2
		ptLoad   = 1
		pfW      = 2
	)
	var eh [ehdrSize]byte
	if n, err := syscall.Pread(fd, eh[:], 0); err != nil || n != ehdrSize || string(eh[:4]) != "\x7fELF" || eh[4] != 2 {
		return
	}
	le := binary.LittleEndian
	// A position-dependent binary (berth's) maps its segments at their
	// link addresses.
	if le.Uint16(eh[16:]) != etExec || le.Uint16(eh[54:]) != phdrSize {
		return
	}
	phoff, phnum := int64(le.Uint64(eh[32:])), int(le.Uint16(eh[56:]))
	if phnum > maxPhdrs {
		return
	}
	var ph [maxPhdrs * phdrSize]byte
	if n, err := syscall.Pread(fd, ph[:phnum*phdrSize], phoff); err != nil || n != phnum*phdrSize {
		return
	}
	page := uint64(syscall.Getpagesize())
	for i := range phnum {
		h := ph[i*phdrSize : (i+1)*phdrSize]
		if le.Uint32(h[0:]) != ptLoad || le.Uint32(h[4:])&pfW != 0 {
			continue
		}
		start := le.Uint64(h[16:]) &^ (page - 1)
		end := le.Uint64(h[16:]) + le.Uint64(h[40:])
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
