package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
)

// syncMsg is one message of a child on its configuration socket.
type syncMsg struct {
	Type  string     `json:"type"`          // "pty" (with the master as SCM_RIGHTS), "exec", "error"; "go" to a monitor
	Dir   string     `json:"dir,omitempty"` // "go": the container's directory
	Error *InitError `json:"error,omitempty"`
	// Populated lists the volume targets the init filled from the image.
	Populated []string `json:"populated,omitempty"`
}

// socketPair returns a connected SOCK_SEQPACKET pair: message boundaries are
// kept and descriptors can travel with a message.
func socketPair() (parent, child *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "sync-parent"), os.NewFile(uintptr(fds[1]), "sync-child"), nil
}

func sendJSON(fd int, v any, files ...int) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		oob = syscall.UnixRights(files...)
	}
	return syscall.Sendmsg(fd, data, oob, nil, 0)
}

// recvJSON reads one message into v. It returns the descriptors that came
// with it, and io.EOF-like (false, nil) when the peer closed.
func recvJSON(fd int, v any) (files []int, ok bool, err error) {
	buf := make([]byte, 1<<16)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := syscall.Recvmsg(fd, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if n == 0 && oobn == 0 {
			return nil, false, nil
		}
		if oobn > 0 {
			msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
			if err == nil {
				for _, m := range msgs {
					fds, err := syscall.ParseUnixRights(&m)
					if err == nil {
						files = append(files, fds...)
					}
				}
			}
		}
		if err := json.Unmarshal(buf[:n], v); err != nil {
			for _, f := range files {
				syscall.Close(f)
			}
			return nil, false, fmt.Errorf("sync message: %w", err)
		}
		return files, true, nil
	}
}

// childResult is what a parent learns from a child's sync socket.
type childResult struct {
	Pty       *os.File // the pty master, when the child made one
	Populated []string
}

// readChild follows a child's messages until its socket closes (it exec'd
// or died). An error message becomes the returned error.
func readChild(sock *os.File) (childResult, error) {
	var res childResult
	fd := int(sock.Fd())
	execed := false
	for {
		var m syncMsg
		files, ok, err := recvJSON(fd, &m)
		if err != nil {
			return res, fmt.Errorf("read from child: %w", err)
		}
		if !ok {
			if !execed {
				return res, &InitError{Op: "start", Msg: "container init exited before it ran the command"}
			}
			return res, nil
		}
		switch m.Type {
		case "pty":
			if len(files) == 1 {
				// Non-blocking, so that reads park in the netpoller and Close
				// interrupts them.
				_ = syscall.SetNonblock(files[0], true)
				res.Pty = os.NewFile(uintptr(files[0]), "pty-master")
			}
		case "exec":
			execed = true
			res.Populated = m.Populated
		case "error":
			for _, f := range files {
				syscall.Close(f)
			}
			if res.Pty != nil {
				res.Pty.Close()
				res.Pty = nil
			}
			if m.Error == nil {
				m.Error = &InitError{Op: "start", Msg: "container init failed"}
			}
			return res, m.Error
		}
	}
}
