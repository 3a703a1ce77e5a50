package prefault

import (
	"syscall"
	"unsafe"
)

const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23

	// Heap to map ahead: what the berth command's initialization and a
	// typical verb allocate, and a quarter of it for the re-executed roles
	// (a monitor lives as long as its container, and keeps what is mapped).
	commandHeap = 1 << 20
	roleHeap    = 256 << 10
)

// heapProbe is a fresh heap allocation: the heap grows from about there.
var heapProbe *[64]byte

func init() {
	ReadOnlySegments(func(start, length uintptr) {
		madvise(start, length, madvPopulateRead)
	})
	heapProbe = new([64]byte)
	n := uintptr(commandHeap)
	if v, _ := syscall.Getenv("BERTH_REEXEC"); v == "1" { // reexec.EnvGuard, which imports too much
		n = roleHeap
	}
	// A range that runs past what the runtime mapped fails with ENOMEM once
	// the mapped part is populated, which is all there is to do.
	madvise(uintptr(unsafe.Pointer(heapProbe))&^(pageSize-1), n, madvPopulateWrite)
}

const (
	pageSize = 4096
	atFDCWD  = ^uintptr(99) // AT_FDCWD, -100
)

func madvise(addr, n uintptr, advice int) {
	_, _, _ = syscall.RawSyscall(syscall.SYS_MADVISE, addr, n, uintptr(advice))
}

// ReadOnlySegments calls fn with the page-aligned address range of each
// read-only segment of the running berth binary (its code and its read-only
// data), read from the binary's program headers. It allocates nothing on
// the heap: a monitor calls it to drop those pages again (see
// shim.trimText), and an allocation could start a garbage collection, whose
// stack scans would fault much of the read-only data straight back in.
func ReadOnlySegments(fn func(start, length uintptr)) {
	const exe = "/proc/self/exe\x00"
	r, _, e := syscall.Syscall6(syscall.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(unsafe.StringData(exe))), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return
	}
	fd := int(r)
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
	if n, err := syscall.Pread(fd, eh[:], 0); err != nil || n != ehdrSize || string(eh[:4]) != "\x7fELF" || eh[4] != 2 || eh[5] != 1 {
		return // not a 64-bit little-endian ELF file
	}
	// A position-dependent binary (berth's) maps its segments at their
	// link addresses.
	if u16(eh[16:]) != etExec || u16(eh[54:]) != phdrSize {
		return
	}
	phoff, phnum := int64(u64(eh[32:])), int(u16(eh[56:]))
	if phnum > maxPhdrs {
		return
	}
	var ph [maxPhdrs * phdrSize]byte
	if n, err := syscall.Pread(fd, ph[:phnum*phdrSize], phoff); err != nil || n != phnum*phdrSize {
		return
	}
	for i := range phnum {
		h := ph[i*phdrSize : (i+1)*phdrSize]
		if u32(h[0:]) != ptLoad || u32(h[4:])&pfW != 0 {
			continue
		}
		vaddr, memsz := uintptr(u64(h[16:])), uintptr(u64(h[40:]))
		start := vaddr &^ (pageSize - 1)
		fn(start, vaddr+memsz-start)
	}
}

func u16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
func u32(b []byte) uint32 { return uint32(u16(b)) | uint32(u16(b[2:]))<<16 }
func u64(b []byte) uint64 { return uint64(u32(b)) | uint64(u32(b[4:]))<<32 }
