package shim

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

// initMain is the container init: started by the monitor in new pid, mount,
// uts and ipc namespaces, already in the container's cgroup, it reads its
// InitConfig, builds the container and executes the user's command.
func initMain() {
	// Namespace and credential changes below are per thread: they must all
	// happen on the thread that finally calls execve.
	runtime.LockOSThread()
	sock, err := strconv.Atoi(os.Getenv(EnvInitPipe))
	if err != nil || sock < 3 {
		os.Stderr.WriteString("berth-init: not started by berth\n")
		os.Exit(1)
	}
	var cfg InitConfig
	fds, ok, err := recvJSON(sock, &cfg)
	if err != nil || !ok {
		os.Exit(1)
	}
	netns, ie := takeInitFDs(&cfg, fds)
	if ie != nil {
		_ = sendJSON(sock, syncMsg{Type: "error", Error: ie})
		os.Exit(ie.ExitCode())
	}
	ie = runInit(&cfg, sock, netns)
	_ = sendJSON(sock, syncMsg{Type: "error", Error: ie})
	os.Exit(ie.ExitCode())
}

// initFDs is how many descriptors come with an init's configuration: its
// stdin, stdout and stderr unless it has a tty (the rootfs setup makes
// that), then the network namespace to join, if any. The monitor may have
// started the init before it knew the container, and the namespace's bind
// mount may be younger than the init's mount namespace, where it is then
// not visible: the monitor opens it.
func initFDs(c *InitConfig) int {
	n := 0
	if !c.Proc.Tty {
		n += 3
	}
	if c.NetNS != "" {
		n++
	}
	return n
}

// takeInitFDs installs the stdio that came with the configuration and
// returns the network namespace descriptor (-1 if none).
func takeInitFDs(c *InitConfig, fds []int) (netns int, ie *InitError) {
	netns = -1
	if len(fds) != initFDs(c) {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return -1, &InitError{Op: "start", Msg: fmt.Sprintf("container init: %d descriptors with the configuration, want %d", len(fds), initFDs(c))}
	}
	if !c.Proc.Tty {
		for i, fd := range fds[:3] {
			if err := syscall.Dup3(fd, i, 0); err != nil {
				return -1, initErr("stdio", "", err)
			}
			syscall.Close(fd)
		}
		fds = fds[3:]
	}
	if c.NetNS != "" {
		netns = fds[0]
	}
	return netns, nil
}

func runInit(c *InitConfig, sock, netns int) *InitError {
	syscall.Umask(0)
	// Namespaces the init joins or makes past its clone are this thread's,
	// the one that executes the command.
	if c.NewNet {
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			return initErr("network namespace", "", err)
		}
	}
	if netns >= 0 {
		err := setns(netns, syscall.CLONE_NEWNET)
		syscall.Close(netns)
		if err != nil {
			return initErr("join network namespace", c.NetNS, err)
		}
	}
	// A cgroup namespace rooted at the container's cgroup, which the monitor
	// moved us into before sending the configuration.
	if _, err := os.Stat("/proc/self/ns/cgroup"); err == nil {
		if err := syscall.Unshare(syscall.CLONE_NEWCGROUP); err != nil {
			return initErr("cgroup namespace", "", err)
		}
	}
	populated, err := setupRootfs(c, sock)
	if err != nil {
		return initErr("prepare rootfs", "", err)
	}
	if err := pivotRoot(c.Rootfs); err != nil {
		return initErr("prepare rootfs", "", err)
	}
	if err := finishRootfs(c); err != nil {
		return initErr("prepare rootfs", "", err)
	}
	if c.Hostname != "" {
		if err := syscall.Sethostname([]byte(c.Hostname)); err != nil {
			return initErr("sethostname", c.Hostname, err)
		}
	}
	return execProcess(&c.Proc, sock, populated)
}
