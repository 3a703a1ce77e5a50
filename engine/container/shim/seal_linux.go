package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// Seal returns a path that executes a sealed copy of the running berth
// binary, for the roles that run next to or inside containers. A container
// that could write to the binary its init was started from (through
// /proc/PID/exe, CVE-2019-5736) could replace berth on the host; through the
// sealed copy it can not.
//
// The copy is runc 1.2's cheap one: the binary's directory is mounted as a
// read-only overlayfs (lower layers only, so it refuses every write) with the
// new mount API, detached, never attached to any mount namespace: there is no
// host mount to leak, and the mount lives exactly as long as descriptors and
// processes use it. Where overlayfs cannot be used, the binary is copied into
// a sealed memfd (runc's original fix), which costs a copy of the binary per
// process. The overlay's second lower layer, which a read-only overlay
// needs, is the empty directory SealEmptyDir.
//
// The result is "/proc/self/fd/N" for a close-on-exec descriptor held by this
// process (children exec it before the descriptor closes) and is computed
// once per process. It lives here, with raw system calls, so that a berth
// command can start a monitor while it initializes (see StartEarlyMonitor).
func Seal() (string, error) { return sealOnce() }

// SealEmptyDir is the empty directory of sealed overlays.
const SealEmptyDir = "/run/berth-empty"

var sealOnce = sync.OnceValues(func() (string, error) {
	fd, err := sealedOverlay(SealEmptyDir)
	if err != nil {
		if fd, err = sealedMemfd(); err != nil {
			return "", fmt.Errorf("seal berth binary: %w", err)
		}
	}
	return "/proc/self/fd/" + strconv.Itoa(fd), nil
})

func escapeLower(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(s)
}

const (
	mountAttrRdonly = 0x1
	mountAttrNosuid = 0x2
	mountAttrNodev  = 0x4
	mfdCloexec      = 0x1
	mfdAllowSealing = 0x2
	fAddSeals       = 1033
	fSealSeal       = 0x1
	fSealShrink     = 0x2
	fSealGrow       = 0x4
	fSealWrite      = 0x8
)

func sealedOverlay(emptyDir string) (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return -1, err
	}
	if strings.HasSuffix(exe, " (deleted)") || !path.IsAbs(exe) {
		return -1, errors.New("binary not reachable by path")
	}
	// overlayfs refuses nested lower layers: an empty directory in the
	// binary's own cannot serve.
	dir, name := path.Split(exe)
	dir = path.Clean(dir)
	if emptyDir == dir || strings.HasPrefix(emptyDir, dir+"/") {
		return -1, errors.New("no empty directory outside the binary's")
	}
	if err := os.MkdirAll(emptyDir, 0o700); err != nil {
		return -1, err
	}
	fsfd, err := fsopen("overlay")
	if err != nil {
		return -1, err
	}
	defer syscall.Close(fsfd)
	if err := fsconfigString(fsfd, "lowerdir", escapeLower(dir)+":"+escapeLower(emptyDir)); err != nil {
		return -1, fmt.Errorf("overlay lowerdir: %w", err)
	}
	_ = fsconfigString(fsfd, "xino", "off")
	if err := fsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("overlay create: %w", err)
	}
	mfd, err := fsmountAttr(fsfd, mountAttrNodev|mountAttrNosuid|mountAttrRdonly)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", err)
	}
	defer syscall.Close(mfd)
	fd, err := syscall.Openat(mfd, name, oPath|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("open sealed binary: %w", err)
	}
	return fd, nil
}

func sealedMemfd() (int, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return -1, err
	}
	defer src.Close()
	name, _ := syscall.BytePtrFromString("berth")
	r, _, e := syscall.Syscall(sysMemfd, uintptr(unsafe.Pointer(name)), mfdCloexec|mfdAllowSealing, 0)
	if e != 0 {
		return -1, e
	}
	fd := int(r)
	dst := os.NewFile(uintptr(fd), "berth-sealed")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return -1, err
	}
	if _, err := fcntl(fd, fAddSeals, fSealSeal|fSealShrink|fSealGrow|fSealWrite); err != nil {
		dst.Close()
		return -1, err
	}
	// Keep the descriptor: the *os.File must not close it when collected.
	nfd, err := fcntl(fd, syscall.F_DUPFD_CLOEXEC, 3)
	dst.Close()
	if err != nil {
		return -1, err
	}
	return nfd, nil
}
