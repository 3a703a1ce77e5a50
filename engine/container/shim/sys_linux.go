package shim

import (
	"syscall"
	"unsafe"
)

// The shim uses the standard syscall package and these few wrappers rather
// than golang.org/x/sys/unix: that module's path sorts after github.com/*,
// and depending on it would let dozens of the berth command's heavy
// dependencies initialize before the roles dispatch (see doc.go).

// System call numbers shared by every architecture (the unified table).
const (
	sysPidfdOpen  = 434
	sysCloseRange = 436
	sysFsopen     = 430
	sysFsconfig   = 431
	sysFsmount    = 432
	sysMoveMount  = 429
)

const (
	prSetKeepcaps        = 8
	prCapbsetDrop        = 24
	prSetChildSubreaper  = 36
	prSetNoNewPrivs      = 38
	prCapAmbient         = 47
	prCapAmbientClearAll = 4

	oPath              = 0x200000
	fSetPipeSz         = 1031
	tiocgptpeer        = 0x5441
	closeRangeCloexec  = 4
	capabilityVersion3 = 0x20080522

	fsopenCloexec       = 1
	fsconfigSetFlag     = 0
	fsconfigSetString   = 1
	fsconfigCmdCreate   = 6
	fsmountCloexec      = 1
	moveMountFEmptyPath = 4
)

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func prctl(op, a2, a3, a4, a5 uintptr) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, op, a2, a3, a4, a5, 0)
	return errnoErr(e)
}

func setns(fd, nstype int) error {
	_, _, e := syscall.RawSyscall(sysSetns, uintptr(fd), uintptr(nstype), 0)
	return errnoErr(e)
}

func pidfdOpen(pid int) (int, error) {
	r, _, e := syscall.RawSyscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func closeRangeCloexecFrom(first int) error {
	_, _, e := syscall.RawSyscall(sysCloseRange, uintptr(first), ^uintptr(0), closeRangeCloexec)
	return errnoErr(e)
}

func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, arg)
	if e != 0 {
		return 0, e
	}
	return r, nil
}

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// winsize is struct winsize.
type winsize struct {
	Row, Col, Xpixel, Ypixel uint16
}

func setWinsize(fd int, rows, cols uint16) error {
	ws := winsize{Row: rows, Col: cols}
	_, err := ioctl(fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	return err
}

type capHeader struct {
	version uint32
	pid     int32
}

type capData struct {
	effective, permitted, inheritable uint32
}

func capset(mask [2]uint32) error {
	hdr := capHeader{version: capabilityVersion3}
	data := [2]capData{
		{mask[0], mask[0], mask[0]},
		{mask[1], mask[1], mask[1]},
	}
	_, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	return errnoErr(e)
}

func symlinkat(target string, dirfd int, name string) error {
	p1, err := syscall.BytePtrFromString(target)
	if err != nil {
		return err
	}
	p2, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall(syscall.SYS_SYMLINKAT, uintptr(unsafe.Pointer(p1)), uintptr(dirfd), uintptr(unsafe.Pointer(p2)))
	return errnoErr(e)
}

func mkdev(major, minor uint32) int {
	return int(uint64(minor&0xff) | uint64(major&0xfff)<<8 | uint64(minor&^0xff)<<12 | uint64(major&^0xfff)<<32)
}

func fsopen(name string) (int, error) {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	r, _, e := syscall.Syscall(sysFsopen, uintptr(unsafe.Pointer(p)), fsopenCloexec, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func fsconfigString(fd int, key, value string) error {
	k, err := syscall.BytePtrFromString(key)
	if err != nil {
		return err
	}
	v, err := syscall.BytePtrFromString(value)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(sysFsconfig, uintptr(fd), fsconfigSetString, uintptr(unsafe.Pointer(k)), uintptr(unsafe.Pointer(v)), 0, 0)
	return errnoErr(e)
}

func fsconfigFlag(fd int, key string) error {
	k, err := syscall.BytePtrFromString(key)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(sysFsconfig, uintptr(fd), fsconfigSetFlag, uintptr(unsafe.Pointer(k)), 0, 0, 0)
	return errnoErr(e)
}

func fsconfigCreate(fd int) error {
	_, _, e := syscall.Syscall6(sysFsconfig, uintptr(fd), fsconfigCmdCreate, 0, 0, 0, 0)
	return errnoErr(e)
}

func fsmount(fd int) (int, error) { return fsmountAttr(fd, 0) }

func fsmountAttr(fd int, attrs uintptr) (int, error) {
	r, _, e := syscall.Syscall(sysFsmount, uintptr(fd), fsmountCloexec, attrs)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

var atFDCWD = -100

func moveMountTo(fromfd int, to string) error {
	empty, _ := syscall.BytePtrFromString("")
	t, err := syscall.BytePtrFromString(to)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(sysMoveMount, uintptr(fromfd), uintptr(unsafe.Pointer(empty)), uintptr(atFDCWD), uintptr(unsafe.Pointer(t)), moveMountFEmptyPath, 0)
	return errnoErr(e)
}

func rawSyscall3(trap uintptr, a, b, c int) error {
	_, _, e := syscall.RawSyscall(trap, uintptr(a), uintptr(b), uintptr(c))
	return errnoErr(e)
}

func setgroupsThread(gids []int) error {
	g := make([]uint32, len(gids)+1) // +1: a valid pointer when empty
	for i, v := range gids {
		g[i] = uint32(v)
	}
	_, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(gids)), uintptr(unsafe.Pointer(&g[0])), 0)
	return errnoErr(e)
}

// sigaction is the kernel's struct sigaction on amd64 and arm64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDfl = 0
	sigIgn = 1
)

// rtSigaction changes (act) or reads (old) a signal's disposition.
func rtSigaction(sig syscall.Signal, act, old *sigaction) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), unsafe.Sizeof(sigaction{}.mask), 0, 0)
	return errnoErr(e)
}
