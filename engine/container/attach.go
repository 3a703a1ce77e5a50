package container

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

// Attach connects streams to a running container's stdio through its
// monitor until the process exits or ctx ends.
func (r *Runtime) Attach(ctx context.Context, ref string, s engine.Streams) error {
	id, err := r.resolve(ref)
	if err != nil {
		return err
	}
	dir := r.cdir(id)
	rec, err := r.readRecord(dir)
	if err != nil {
		return fmt.Errorf("attach %s: %w", ref, engine.ErrNotFound)
	}
	o := r.observe(dir, rec)
	if err := transition(rec.Name, o.Status, opAttach); err != nil {
		return err
	}
	hello := helloFor(s, false)
	conn, err := dialAttach(dir, hello)
	if err != nil {
		return fmt.Errorf("attach %s: %w", rec.Name, engine.ErrNotRunning)
	}
	_, err = relay(ctx, conn, s)
	return err
}

func helloFor(s engine.Streams, owner bool) shim.AttachHello {
	return shim.AttachHello{Stdin: s.Stdin != nil, Stdout: s.Stdout != nil, Stderr: s.Stderr != nil || (s.Tty && s.Stdout != nil), Owner: owner}
}

// errNoExit says the monitor went away without reporting an exit.
var errNoExit = errors.New("attach: the monitor closed the connection without an exit status")

// relay copies between streams and an attach connection until the exit
// frame, and returns it.
func relay(ctx context.Context, conn *net.UnixConn, s engine.Streams) (shim.ExitFrame, error) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if s.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Stdin.Read(buf)
				if n > 0 {
					if shim.WriteFrame(conn, shim.FrameStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					_ = shim.WriteFrame(conn, shim.FrameStdinClose, nil)
					return
				}
			}
		}()
	}
	if s.Tty && s.Resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ws, ok := <-s.Resize:
					if !ok {
						return
					}
					var p [4]byte
					binary.BigEndian.PutUint16(p[:], ws.Rows)
					binary.BigEndian.PutUint16(p[2:], ws.Cols)
					if shim.WriteFrame(conn, shim.FrameResize, p[:]) != nil {
						return
					}
				}
			}
		}()
	}
	var buf []byte
	for {
		typ, p, nb, err := shim.ReadFrame(conn, buf)
		buf = nb
		if err != nil {
			if ctx.Err() != nil {
				return shim.ExitFrame{}, context.Cause(ctx)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return shim.ExitFrame{}, errNoExit
			}
			return shim.ExitFrame{}, fmt.Errorf("attach: %w", err)
		}
		switch typ {
		case shim.FrameStdout:
			if s.Stdout != nil {
				if _, err := s.Stdout.Write(p); err != nil {
					return shim.ExitFrame{}, fmt.Errorf("attach: %w", err)
				}
			}
		case shim.FrameStderr:
			w := s.Stderr
			if w == nil {
				w = s.Stdout
			}
			if w != nil {
				if _, err := w.Write(p); err != nil {
					return shim.ExitFrame{}, fmt.Errorf("attach: %w", err)
				}
			}
		case shim.FrameExit:
			var ef shim.ExitFrame
			_ = json.Unmarshal(p, &ef)
			return ef, nil
		}
	}
}
