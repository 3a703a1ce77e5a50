package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"berth.dev/berth/engine"
	"berth.dev/berth/engine/container/shim"
)

// Logs streams captured output: every rotated file oldest first, then the
// current one; with opts.Follow it then follows the current file across
// rotations until ctx ends or the container stops for good.
func (r *Runtime) Logs(ctx context.Context, ref string, opts engine.LogOptions, fn func(engine.LogEntry) error) error {
	id, err := r.resolve(ref)
	if err != nil {
		return err
	}
	dir := r.cdir(id)
	rec, err := r.readRecord(dir)
	if err != nil {
		return fmt.Errorf("logs %s: %w", ref, engine.ErrNotFound)
	}
	maxFiles := rec.Config.Log.MaxFiles
	if maxFiles <= 0 {
		maxFiles = shim.DefaultLogMaxFiles
	}
	current := filepath.Join(dir, shim.LogFile)
	emit := func(e engine.LogEntry) error {
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return nil
		}
		if !opts.Until.IsZero() && e.Time.After(opts.Until) {
			return nil
		}
		return fn(e)
	}
	var ring []engine.LogEntry
	collect := emit
	if opts.Tail >= 0 {
		collect = func(e engine.LogEntry) error {
			if (!opts.Since.IsZero() && e.Time.Before(opts.Since)) || (!opts.Until.IsZero() && e.Time.After(opts.Until)) {
				return nil
			}
			if opts.Tail == 0 {
				return nil
			}
			if len(ring) == opts.Tail {
				copy(ring, ring[1:])
				ring = ring[:len(ring)-1]
			}
			ring = append(ring, e)
			return nil
		}
	}
	for i := maxFiles - 1; i >= 1; i-- {
		f, err := os.Open(current + "." + strconv.Itoa(i))
		if err != nil {
			continue
		}
		lr := newLogReader(f)
		err = lr.each(collect)
		f.Close()
		if err != nil {
			return err
		}
	}
	f, err := os.Open(current)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("logs %s: %w", ref, err)
	}
	var lr *logReader
	if f != nil {
		defer func() { lr.f.Close() }()
		lr = newLogReader(f)
		if err := lr.each(collect); err != nil {
			return err
		}
	}
	for _, e := range ring {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if lr == nil {
			if f, err := os.Open(current); err == nil {
				lr = newLogReader(f)
			}
		}
		if lr != nil {
			if err := lr.each(emit); err != nil {
				return err
			}
			// Rotated: finish the old file, then go on with the new one.
			if st, err := os.Stat(current); err == nil && !sameFile(st, lr.f) {
				if err := lr.each(emit); err != nil {
					return err
				}
				lr.f.Close()
				nf, err := os.Open(current)
				if err != nil {
					lr = nil
				} else {
					lr = newLogReader(nf)
				}
				continue
			}
		}
		if !opts.Until.IsZero() && time.Now().After(opts.Until) {
			return nil
		}
		if r.stoppedForGood(dir) {
			if lr != nil {
				return lr.each(emit)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// stoppedForGood reports whether no monitor will write to the log any more.
func (r *Runtime) stoppedForGood(dir string) bool {
	rec, err := r.readRecord(dir)
	if err != nil {
		return true
	}
	o := r.observe(dir, rec)
	return !o.monitorAlive && o.Status != engine.StatusRunning && o.Status != engine.StatusRestarting
}

func sameFile(st os.FileInfo, f *os.File) bool {
	fst, err := f.Stat()
	if err != nil {
		return false
	}
	a, ok1 := st.Sys().(*syscall.Stat_t)
	b, ok2 := fst.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Ino == b.Ino && a.Dev == b.Dev
}

// logReader parses CRI records from a file that may still be growing: an
// incomplete last line waits for the rest.
type logReader struct {
	f       *os.File
	br      *bufio.Reader
	pending []byte
}

func newLogReader(f *os.File) *logReader {
	return &logReader{f: f, br: bufio.NewReaderSize(f, 64<<10)}
}

func (lr *logReader) each(fn func(engine.LogEntry) error) error {
	for {
		line, err := lr.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			lr.pending = append(lr.pending, line...)
			continue
		}
		if err != nil {
			lr.pending = append(lr.pending, line...)
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read log: %w", err)
		}
		if len(lr.pending) > 0 {
			line = append(lr.pending, line...)
			lr.pending = lr.pending[:0]
		}
		e, ok := parseCRI(line)
		if !ok {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// parseCRI parses "<RFC3339Nano> <stream> <F|P> <content>\n".
func parseCRI(line []byte) (engine.LogEntry, bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	ts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return engine.LogEntry{}, false
	}
	stream, rest, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return engine.LogEntry{}, false
	}
	tag, content, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		// An empty line is "F" with nothing after it.
		tag, content = rest, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return engine.LogEntry{}, false
	}
	n := len(content)
	full := len(tag) > 0 && tag[0] == 'F'
	if full {
		n++
	}
	// A copy: callers may keep entries, and line is the reader's buffer.
	out := make([]byte, n)
	copy(out, content)
	if full {
		out[n-1] = '\n'
	}
	return engine.LogEntry{Time: t, Stream: string(stream), Line: out}, true
}
