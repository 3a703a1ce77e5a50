package shim

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Log rotation defaults: Docker's json-file driver does not rotate by
// default and fills disks; berth keeps 3 files of 10 MiB.
const (
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 3
	// maxLine is the longest line kept in one record; longer lines are split
	// into partial (P) records, as CRI runtimes do.
	maxLine = 16 << 10
)

// logWriter appends CRI-format records to a container's log file, rotating
// it by size. Streams write whole batches under one lock, so records of
// stdout and stderr never interleave mid-line.
type logWriter struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	size     int64
	maxSize  int64
	maxFiles int
}

func openLog(path string, maxSize int64, maxFiles int) (*logWriter, error) {
	if maxSize <= 0 {
		maxSize = DefaultLogMaxSize
	}
	if maxFiles <= 0 {
		maxFiles = DefaultLogMaxFiles
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &logWriter{path: path, f: f, size: st.Size(), maxSize: maxSize, maxFiles: maxFiles}, nil
}

func (w *logWriter) write(p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(p) > 0 && w.f != nil {
		chunk := p
		if w.size+int64(len(p)) > w.maxSize {
			// Fill the file with whole records, then rotate.
			room := max(w.maxSize-w.size, 0)
			i := bytes.LastIndexByte(p[:min(int64(len(p)), room)], '\n')
			if i < 0 {
				if w.size > 0 {
					w.rotate()
					continue
				}
				// One record longer than a file: it gets a file of its own.
				i = bytes.IndexByte(p, '\n')
				if i < 0 {
					i = len(p) - 1
				}
			}
			chunk = p[:i+1]
		}
		n, err := w.f.Write(chunk)
		w.size += int64(n)
		if err != nil {
			return
		}
		p = p[len(chunk):]
		if len(p) > 0 {
			w.rotate()
		}
	}
}

func (w *logWriter) rotate() {
	w.f.Close()
	for i := w.maxFiles - 1; i >= 1; i-- {
		older := w.path + "." + strconv.Itoa(i)
		newer := w.path
		if i > 1 {
			newer = w.path + "." + strconv.Itoa(i-1)
		}
		_ = os.Rename(newer, older)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		w.f = nil
		return
	}
	w.f, w.size = f, 0
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// lineSplitter turns a stream's bytes into CRI records.
type lineSplitter struct {
	stream []byte // " stdout " or " stderr "
	carry  []byte // an incomplete last line
	out    []byte
}

func newLineSplitter(stream string) *lineSplitter {
	return &lineSplitter{stream: []byte(" " + stream + " ")}
}

func (s *lineSplitter) record(ts []byte, tag byte, line []byte) {
	s.out = append(s.out, ts...)
	s.out = append(s.out, s.stream...)
	s.out = append(s.out, tag, ' ')
	s.out = append(s.out, line...)
	s.out = append(s.out, '\n')
}

// feed formats the complete lines of p and returns the records to write.
// The returned slice is valid until the next call.
func (s *lineSplitter) feed(p []byte, now time.Time) []byte {
	var tsBuf [40]byte
	ts := now.UTC().AppendFormat(tsBuf[:0], time.RFC3339Nano)
	s.out = s.out[:0]
	if len(s.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.carry = append(s.carry, p...)
			s.flushLong(ts)
			return s.out
		}
		s.carry = append(s.carry, p[:i]...)
		s.record(ts, 'F', s.carry)
		s.carry = s.carry[:0]
		p = p[i+1:]
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.carry = append(s.carry, p...)
			s.flushLong(ts)
			break
		}
		line := p[:i]
		for len(line) > maxLine {
			s.record(ts, 'P', line[:maxLine])
			line = line[maxLine:]
		}
		s.record(ts, 'F', line)
		p = p[i+1:]
	}
	return s.out
}

func (s *lineSplitter) flushLong(ts []byte) {
	for len(s.carry) >= maxLine {
		s.record(ts, 'P', s.carry[:maxLine])
		s.carry = append(s.carry[:0], s.carry[maxLine:]...)
	}
}

// flush emits an incomplete last line as a partial record.
func (s *lineSplitter) flush(now time.Time) []byte {
	s.out = s.out[:0]
	if len(s.carry) > 0 {
		var tsBuf [40]byte
		s.record(now.UTC().AppendFormat(tsBuf[:0], time.RFC3339Nano), 'P', s.carry)
		s.carry = s.carry[:0]
	}
	return s.out
}
