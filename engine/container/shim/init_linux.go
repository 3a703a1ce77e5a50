package shim

import (
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
	if _, ok, err := recvJSON(sock, &cfg); err != nil || !ok {
		os.Exit(1)
	}
	ie := runInit(&cfg, sock)
	_ = sendJSON(sock, syncMsg{Type: "error", Error: ie})
	os.Exit(ie.ExitCode())
}

func runInit(c *InitConfig, sock int) *InitError {
	syscall.Umask(0)
	if c.NetNS != "" {
		fd, err := syscall.Open(c.NetNS, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return initErr("open network namespace", c.NetNS, err)
		}
		err = setns(fd, syscall.CLONE_NEWNET)
		syscall.Close(fd)
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
