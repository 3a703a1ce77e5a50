package state

import (
	"io/fs"
	"syscall"
)

// readFile is os.ReadFile for the small files berth reads on every command
// (records, states, /proc/PID/stat), in three system calls. os.Open offers
// every file to the network poller first (non-blocking mode on, a failed
// epoll registration, blocking mode back: five more calls, which a regular
// file never needs), and ReadFile adds an fstat to size its buffer: that
// made reading one small file four times slower. Errors are what
// os.ReadFile returns: *fs.PathError wrapping the errno.
func readFile(path string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, 0, 2048)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
