package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// seal returns a path that executes a sealed copy of the running berth
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
// process. emptyDir is an empty directory that serves as the second lower
// layer overlayfs needs for read-only mode.
//
// The result is "/proc/self/fd/N" for a close-on-exec descriptor held by this
// process (children exec it before the descriptor closes) and is computed
// once per process.
func sealBinary(emptyDir string) (string, error) {
	sealOnce.Do(func() { sealPath, sealErr = seal(emptyDir) })
	return sealPath, sealErr
}

var (
	sealOnce sync.Once
	sealPath string
	sealErr  error
)

func seal(emptyDir string) (string, error) {
	fd, err := sealedOverlay(emptyDir)
	if err != nil {
		if fd, err = sealedMemfd(); err != nil {
			return "", fmt.Errorf("seal berth binary: %w", err)
		}
	}
	return "/proc/self/fd/" + strconv.Itoa(fd), nil
}

func escapeLower(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(s)
}

func sealedOverlay(emptyDir string) (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return -1, err
	}
	if strings.HasSuffix(exe, " (deleted)") || !filepath.IsAbs(exe) {
		return -1, errors.New("binary not reachable by path")
	}
	// overlayfs refuses nested lower layers: an empty directory below the
	// binary's own (a data root under the binary's directory) cannot serve.
	if dir := filepath.Dir(exe); emptyDir == dir || strings.HasPrefix(emptyDir, dir+"/") {
		emptyDir = "/run/berth-empty"
		if emptyDir == dir || strings.HasPrefix(emptyDir, dir+"/") {
			return -1, errors.New("no empty directory outside the binary's")
		}
	}
	if err := os.MkdirAll(emptyDir, 0o700); err != nil {
		return -1, err
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fsfd)
	dir, name := filepath.Split(exe)
	if err := unix.FsconfigSetString(fsfd, "lowerdir", escapeLower(filepath.Clean(dir))+":"+escapeLower(emptyDir)); err != nil {
		return -1, fmt.Errorf("overlay lowerdir: %w", err)
	}
	_ = unix.FsconfigSetString(fsfd, "xino", "off")
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("overlay create: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, name, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
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
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, err
	}
	dst := os.NewFile(uintptr(fd), "berth-sealed")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return -1, err
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return -1, err
	}
	// Keep the descriptor: the *os.File must not close it when collected.
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	dst.Close()
	if err != nil {
		return -1, err
	}
	return nfd, nil
}
