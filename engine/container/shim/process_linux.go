package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"unsafe"
)

// DefaultPath is the PATH a container gets when neither the image nor the
// user sets one (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execProcess finishes the process's setup on this (locked) thread, whose
// root is the container's, and executes the command. It returns only on
// failure.
func execProcess(p *Process, sock int, populated []string) *InitError {
	if len(p.Args) == 0 {
		return &InitError{Op: "exec", Msg: "no command specified"}
	}
	root, err := os.OpenRoot("/")
	if err != nil {
		return initErr("open root", "/", err)
	}
	u, err := ResolveUser(p.User, func(name string) (io.ReadCloser, error) { return root.Open(name) })
	if err != nil {
		root.Close()
		return &InitError{Op: "user", Path: p.User, Msg: err.Error()}
	}
	env := p.Env
	if envGet(env, "HOME") == "" {
		env = append(env, "HOME="+u.Home)
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if rel := strings.TrimPrefix(path.Clean("/"+cwd), "/"); rel != "" {
		// Docker creates a missing working directory.
		if err := root.MkdirAll(rel, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			root.Close()
			return initErr("create working directory", cwd, err)
		}
	}
	root.Close()
	if err := syscall.Chdir(cwd); err != nil {
		return initErr("chdir", cwd, err)
	}
	file, ierr := lookPath(p.Args[0], envGet(env, "PATH"))
	if ierr != nil {
		return ierr
	}
	mask, err := capMask(p.Caps)
	if err != nil {
		return initErr("capabilities", "", err)
	}
	if err := dropBounding(mask); err != nil {
		return initErr("capabilities", "", err)
	}
	if err := prctl(prSetKeepcaps, 1, 0, 0, 0); err != nil {
		return initErr("keepcaps", "", err)
	}
	groups := u.Groups
	if groups == nil {
		groups = []int{}
	}
	// Credentials are per thread in the kernel, and only this thread's
	// matter: it calls execve. (syscall.Setresuid would signal every thread
	// of the runtime to change theirs too.)
	if err := setgroupsThread(groups); err != nil {
		return initErr("setgroups", "", err)
	}
	if err := rawSyscall3(syscall.SYS_SETRESGID, u.GID, u.GID, u.GID); err != nil {
		return initErr("setgid", fmt.Sprint(u.GID), err)
	}
	if err := rawSyscall3(syscall.SYS_SETRESUID, u.UID, u.UID, u.UID); err != nil {
		return initErr("setuid", fmt.Sprint(u.UID), err)
	}
	if err := prctl(prSetKeepcaps, 0, 0, 0, 0); err != nil {
		return initErr("keepcaps", "", err)
	}
	if err := setCaps(mask); err != nil {
		return initErr("capabilities", "", err)
	}
	if p.NoNewPrivs {
		if err := prctl(prSetNoNewPrivs, 1, 0, 0, 0); err != nil {
			return initErr("no_new_privs", "", err)
		}
	}
	// Nothing of ours may leak into the container: every descriptor past
	// stdio closes at exec, the sync socket included (its end of file tells
	// the parent the exec happened).
	if err := closeRangeCloexecFrom(3); err != nil {
		return initErr("close descriptors", "", err)
	}
	syscall.Umask(0o022)
	resetSignals()
	if err := sendJSON(sock, syncMsg{Type: "exec", Populated: populated}); err != nil {
		return initErr("sync", "", err)
	}
	err = syscall.Exec(file, p.Args, env)
	ie := &InitError{Op: "exec", Path: p.Args[0], Msg: fmt.Sprintf("exec: %q: %v", p.Args[0], err)}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		ie.Errno = int(errno)
		if errno == syscall.ENOENT {
			ie.NotFound = true
		}
	}
	return ie
}

// resetSignals makes sure the command starts with default signal
// dispositions. Exec resets caught signals but keeps ignored ones, and the Go
// runtime keeps SIGHUP and SIGINT ignored when they were at start (a berth
// started under nohup): ignored ones are reset here, with rt_sigaction on
// this process rather than through os/signal, whose watcher goroutine would
// need threads started just before the exec that ends them.
func resetSignals() {
	for s := syscall.Signal(1); s < 32; s++ {
		if s == syscall.SIGKILL || s == syscall.SIGSTOP {
			continue
		}
		var old sigaction
		if rtSigaction(s, nil, &old) == nil && old.handler == sigIgn {
			_ = rtSigaction(s, &sigaction{handler: sigDfl}, nil)
		}
	}
}

// lookPath finds name as exec.LookPath does, in the container's PATH, with
// the same messages.
func lookPath(name, pathEnv string) (string, *InitError) {
	check := func(file string) error {
		st, err := os.Stat(file)
		if err != nil {
			return err
		}
		if m := st.Mode(); m.IsDir() || m&0o111 == 0 {
			return fs.ErrPermission
		}
		return nil
	}
	if strings.Contains(name, "/") {
		if err := check(name); err != nil {
			ie := &InitError{Op: "exec", Path: name, Msg: fmt.Sprintf("exec: %q: %v", name, err)}
			if errors.Is(err, fs.ErrNotExist) {
				ie.NotFound = true
				ie.Msg = fmt.Sprintf("exec: %q: stat %s: no such file or directory", name, name)
			} else if errors.Is(err, fs.ErrPermission) {
				ie.Msg = fmt.Sprintf("exec: %q: permission denied", name)
			}
			return "", ie
		}
		return name, nil
	}
	if pathEnv == "" {
		pathEnv = DefaultPath
	}
	denied := false
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		file := path.Join(dir, name)
		err := check(file)
		if err == nil {
			return file, nil
		}
		if errors.Is(err, fs.ErrPermission) {
			denied = true
		}
	}
	if denied {
		return "", &InitError{Op: "exec", Path: name, Msg: fmt.Sprintf("exec: %q: permission denied", name)}
	}
	return "", &InitError{Op: "exec", Path: name, NotFound: true,
		Msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", name)}
}

func envGet(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// openPty makes a pty pair on the devpts instance whose ptmx is at dirfd/name
// and returns the master and the slave.
func openPty(dirfd int, name string) (master, slave int, ptsN uint32, err error) {
	master, err = syscall.Openat(dirfd, name, syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, 0, fmt.Errorf("open ptmx: %w", err)
	}
	unlock := int32(0)
	if _, err := ioctl(master, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); err != nil {
		syscall.Close(master)
		return -1, -1, 0, fmt.Errorf("unlock pty: %w", err)
	}
	if _, err = ioctl(master, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&ptsN))); err != nil {
		syscall.Close(master)
		return -1, -1, 0, fmt.Errorf("pty number: %w", err)
	}
	r, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(master), tiocgptpeer, uintptr(syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC))
	if errno != 0 {
		syscall.Close(master)
		return -1, -1, 0, fmt.Errorf("open pty peer: %w", errno)
	}
	_ = setWinsize(master, 24, 80)
	return master, int(r), ptsN, nil
}

// useTerminal makes slave the stdio and controlling terminal of this
// process (a session leader).
func useTerminal(slave int) error {
	for fd := 0; fd < 3; fd++ {
		if err := syscall.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("dup pty: %w", err)
		}
	}
	if slave > 2 {
		syscall.Close(slave)
	}
	if _, err := ioctl(0, syscall.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}
