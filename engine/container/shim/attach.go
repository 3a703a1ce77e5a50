package shim

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Frame types of the attach protocol. A frame is one type byte, a big-endian
// uint32 length and the payload. After connecting, a client sends an
// AttachHello as the payload of a FrameHello.
const (
	FrameHello      byte = 'h' // client: AttachHello (JSON)
	FrameStdin      byte = '0' // client: bytes for the container's stdin
	FrameStdinClose byte = 'c' // client: close the container's stdin
	FrameResize     byte = 'r' // client: rows and cols, two big-endian uint16
	FrameStdout     byte = '1' // monitor: container output (all of it with a tty)
	FrameStderr     byte = '2' // monitor: container stderr
	FrameExit       byte = 'x' // monitor: ExitFrame (JSON); the connection closes after it
)

// MaxFrame bounds a frame's payload.
const MaxFrame = 1 << 20

// AttachHello says what an attach client wants.
type AttachHello struct {
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
	// Owner marks the client that started the container in the foreground
	// (berth run without -d): it removes an AutoRemove container itself.
	Owner bool   `json:"owner,omitempty"`
	Rows  uint16 `json:"rows,omitempty"`
	Cols  uint16 `json:"cols,omitempty"`
}

// ExitFrame reports the end of the container's process.
type ExitFrame struct {
	ExitCode  int    `json:"exitCode"`
	OOMKilled bool   `json:"oomKilled,omitempty"`
	Error     string `json:"error,omitempty"`
	// Restarting says the restart policy will start the process again.
	Restarting bool `json:"restarting,omitempty"`
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if len(payload) <= 4096 {
		// One write keeps small frames in one segment.
		buf := make([]byte, 0, 5+len(payload))
		buf = append(append(buf, hdr[:]...), payload...)
		_, err := w.Write(buf)
		return err
	}
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame into buf (grown as needed) and returns its type
// and payload, which aliases buf.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, buf, fmt.Errorf("attach: frame of %d bytes", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	p := buf[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, buf, err
	}
	return hdr[0], p, buf, nil
}
