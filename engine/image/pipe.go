package image

import (
	"errors"
	"io"
	"sync"
)

// chunkPipe hands buffers from a producer goroutine (the download) to a
// consumer (the unpacker) with a few chunks of slack, so that the two run
// in parallel; io.Pipe would make each wait for the other. Buffers change
// hands without being copied.
type chunkPipe struct {
	full chan []byte
	free chan []byte
	done chan struct{} // closed by the consumer to stop the producer
	once sync.Once

	err error // the producer's final error, set before full is closed
	cur []byte
	buf []byte // the buffer cur points into, returned to free when used up
}

// errPipeClosed is what the producer gets once the consumer gave up.
var errPipeClosed = errors.New("consumer stopped reading")

func newChunkPipe(depth int) *chunkPipe {
	p := &chunkPipe{
		full: make(chan []byte, depth),
		free: make(chan []byte, depth+1),
		done: make(chan struct{}),
	}
	for range depth + 1 {
		p.free <- getBuffer()
	}
	return p
}

// release returns the pipe's buffers to the pool once both sides are done.
func (p *chunkPipe) release() {
	for {
		select {
		case b := <-p.free:
			putBuffer(b)
		default:
			return
		}
	}
}

// bufferSize is the size of the buffers layers move through. Modest on
// purpose: on some virtual machines every page a process touches for the
// first time costs tens of microseconds, and small layers are the common
// case.
const bufferSize = 64 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

func getBuffer() []byte { return (*buffers.Get().(*[]byte))[:bufferSize] }

func putBuffer(b []byte) {
	if cap(b) == bufferSize {
		b = b[:bufferSize]
		buffers.Put(&b)
	}
}

// get returns an empty buffer for the producer to fill.
func (p *chunkPipe) get() ([]byte, error) {
	select {
	case b := <-p.free:
		return b[:cap(b)], nil
	case <-p.done:
		return nil, errPipeClosed
	}
}

// put passes a filled buffer to the consumer.
func (p *chunkPipe) put(b []byte) error {
	select {
	case p.full <- b:
		return nil
	case <-p.done:
		return errPipeClosed
	}
}

// fill copies r into the pipe until r ends (or fails, or the consumer stops)
// and closes the pipe's writing side with r's error.
func fill(p *chunkPipe, r io.Reader) error {
	for {
		buf, err := p.get()
		if err != nil {
			return err
		}
		n, rerr := 0, error(nil)
		for n < len(buf)/2 && rerr == nil {
			var k int
			k, rerr = r.Read(buf[n:])
			n += k
		}
		if n > 0 {
			if err := p.put(buf[:n]); err != nil {
				return err
			}
		} else {
			p.free <- buf
		}
		if rerr == io.EOF {
			p.closeWrite(nil)
			return nil
		}
		if rerr != nil {
			p.closeWrite(rerr)
			return rerr
		}
	}
}

// closeWrite ends the stream; the consumer sees err, or io.EOF if nil.
func (p *chunkPipe) closeWrite(err error) {
	p.err = err
	close(p.full)
}

// closeRead tells the producer to stop.
func (p *chunkPipe) closeRead() { p.once.Do(func() { close(p.done) }) }

func (p *chunkPipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			p.free <- p.buf
			p.buf = nil
		}
		next, ok := <-p.full
		if !ok {
			if p.err != nil {
				return 0, p.err
			}
			return 0, io.EOF
		}
		p.buf, p.cur = next, next
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}
