package shim

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"syscall"
	"time"
)

// attachWriteTimeout drops an attach client that stops reading, so it cannot
// stall the container's output for long.
const attachWriteTimeout = 5 * time.Second

// acceptPending takes the connections made before the monitor started (the
// foreground client of berth run connects before the container starts, so
// that it misses no output), then makes lfd the listener of acceptLoop:
// non-blocking before os.NewFile, so that its accepts park in the netpoller.
func (m *monitor) acceptPending(lfd int) {
	defer func() { m.ln = os.NewFile(uintptr(lfd), "attach") }()
	if err := syscall.SetNonblock(lfd, true); err != nil {
		return
	}
	for {
		fd, _, err := syscall.Accept4(lfd, syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if cl := m.hello(os.NewFile(uintptr(fd), "attach-conn")); cl != nil {
			go m.serveClient(cl)
		}
	}
}

// acceptLoop serves attach clients until the listener is closed. The
// listener is a non-blocking *os.File: its accepts park in the netpoller
// (the net package is not linked into the shim, see sys_linux.go).
func (m *monitor) acceptLoop() {
	rc, err := m.ln.SyscallConn()
	if err != nil {
		return
	}
	for {
		var nfd int
		var aerr error
		err := rc.Read(func(fd uintptr) bool {
			nfd, _, aerr = syscall.Accept4(int(fd), syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK)
			return aerr != syscall.EAGAIN && aerr != syscall.EINTR
		})
		if err != nil {
			return
		}
		if aerr != nil {
			continue
		}
		c := os.NewFile(uintptr(nfd), "attach-conn")
		go func() {
			if cl := m.hello(c); cl != nil {
				m.serveClient(cl)
			}
		}()
	}
}

// hello reads a client's AttachHello and registers it.
func (m *monitor) hello(c *os.File) *client {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	typ, p, _, err := ReadFrame(c, nil)
	if err != nil || typ != FrameHello {
		c.Close()
		return nil
	}
	cl := &client{conn: c}
	if json.Unmarshal(p, &cl.hello) != nil {
		c.Close()
		return nil
	}
	_ = c.SetReadDeadline(time.Time{})
	m.mu.Lock()
	m.clients[cl] = true
	pty := m.pty
	m.mu.Unlock()
	if pty != nil && cl.hello.Rows > 0 {
		_ = setWinsize(int(pty.Fd()), cl.hello.Rows, cl.hello.Cols)
	}
	return cl
}

// serveClient relays a client's stdin and resizes until it goes away.
func (m *monitor) serveClient(cl *client) {
	// The pty may appear later (the client connected before the start).
	if cl.hello.Rows > 0 {
		go func() {
			for i := 0; i < 100; i++ {
				m.mu.Lock()
				pty := m.pty
				m.mu.Unlock()
				if pty != nil {
					_ = setWinsize(int(pty.Fd()), cl.hello.Rows, cl.hello.Cols)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	var buf []byte
	for {
		typ, p, nb, err := ReadFrame(cl.conn, buf)
		buf = nb
		if err != nil {
			break
		}
		switch typ {
		case FrameStdin:
			if !cl.hello.Stdin {
				continue
			}
			if in := m.waitStdin(); in != nil {
				_, _ = in.Write(p)
			}
		case FrameStdinClose:
			if !cl.hello.Stdin {
				continue
			}
			m.mu.Lock()
			if m.pty != nil {
				_, _ = m.pty.Write([]byte{4}) // ^D: end of input on a terminal
			} else if m.stdin != nil {
				m.stdin.Close()
				m.stdin = nil
			}
			m.mu.Unlock()
		case FrameResize:
			if len(p) == 4 {
				m.mu.Lock()
				pty := m.pty
				m.mu.Unlock()
				if pty != nil {
					_ = setWinsize(int(pty.Fd()), binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]))
				}
			}
		}
	}
	m.mu.Lock()
	delete(m.clients, cl)
	m.mu.Unlock()
	cl.conn.Close()
}

// waitStdin returns the container's stdin, waiting a little for a starting
// container to have one.
func (m *monitor) waitStdin() *os.File {
	for i := 0; i < 250; i++ {
		m.mu.Lock()
		in, status := m.stdin, m.st.Status
		m.mu.Unlock()
		if in != nil || (status != "created" && status != "restarting") {
			return in
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (m *monitor) broadcast(frame byte, p []byte) {
	m.mu.Lock()
	if len(m.clients) == 0 {
		m.mu.Unlock()
		return
	}
	var targets []*client
	for cl := range m.clients {
		h := cl.hello
		if (frame == FrameStdout && h.Stdout) || (frame == FrameStderr && h.Stderr) {
			targets = append(targets, cl)
		}
	}
	m.mu.Unlock()
	for _, cl := range targets {
		cl.wmu.Lock()
		_ = cl.conn.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
		err := WriteFrame(cl.conn, frame, p)
		cl.wmu.Unlock()
		if err != nil {
			m.mu.Lock()
			delete(m.clients, cl)
			m.mu.Unlock()
			cl.conn.Close()
		}
	}
}

// exitClients sends the exit to every client and disconnects them. It
// reports whether an owner client received it.
func (m *monitor) exitClients(res runResult, restarting bool) (owner bool) {
	ef := ExitFrame{ExitCode: res.exitCode, OOMKilled: res.oom, Restarting: restarting}
	if res.startErr != nil {
		ef.Error = res.startErr.Error()
	}
	data, _ := json.Marshal(ef)
	m.mu.Lock()
	clients := m.clients
	m.clients = map[*client]bool{}
	m.mu.Unlock()
	for cl := range clients {
		cl.wmu.Lock()
		_ = cl.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if WriteFrame(cl.conn, FrameExit, data) == nil && cl.hello.Owner {
			owner = true
		}
		cl.wmu.Unlock()
		cl.conn.Close()
	}
	return owner
}
