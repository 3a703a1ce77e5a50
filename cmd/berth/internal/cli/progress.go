package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/engine"
)

// layerProgress renders per-layer progress of a pull or push: one bar per
// layer redrawn in place on a terminal, otherwise one line per layer when it
// is done.
type layerProgress struct {
	mu     sync.Mutex
	out    io.Writer
	tty    bool
	push   bool
	order  []string
	layers map[string]engine.PullProgress
	drawn  int
	last   time.Time
}

func newLayerProgress(out io.Writer, tty, push bool) *layerProgress {
	return &layerProgress{out: out, tty: tty, push: push, layers: map[string]engine.PullProgress{}}
}

func (p *layerProgress) update(ev engine.PullProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, seen := p.layers[ev.Digest]
	if !seen {
		p.order = append(p.order, ev.Digest)
	}
	p.layers[ev.Digest] = ev
	final := isFinalLayerStatus(ev.Status)
	if !p.tty {
		if final && (!seen || !isFinalLayerStatus(prev.Status)) {
			fmt.Fprintf(p.out, "%s: %s\n", shortDigest(ev.Digest), p.label(ev))
		}
		return
	}
	if !final && seen && prev.Status == ev.Status && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.draw()
}

// finish draws the final state.
func (p *layerProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.draw()
	}
}

func (p *layerProgress) draw() {
	p.last = time.Now()
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, d := range p.order {
		ev := p.layers[d]
		fmt.Fprintf(&b, "\x1b[2K%s: %s\n", shortDigest(d), p.label(ev))
	}
	p.drawn = len(p.order)
	io.WriteString(p.out, b.String())
}

func isFinalLayerStatus(s string) bool {
	return s == "done" || s == "exists" || s == "mounted" || s == "skipped"
}

func (p *layerProgress) label(ev engine.PullProgress) string {
	switch ev.Status {
	case "exists":
		if p.push {
			return "Layer already exists"
		}
		return "Already exists"
	case "mounted":
		return "Mounted from another repository"
	case "skipped":
		return "Skipped"
	case "done":
		if p.push {
			return "Pushed " + formatImageSize(ev.Total)
		}
		return "Pull complete " + formatImageSize(ev.Total)
	case "extracting":
		return "Extracting"
	case "downloading", "pushing":
		verb := "Downloading"
		if ev.Status == "pushing" {
			verb = "Pushing"
		}
		return fmt.Sprintf("%-11s %s %s/%s", verb, progressBar(ev.Complete, ev.Total, 30), formatImageSize(ev.Complete), formatImageSize(ev.Total))
	}
	return ev.Status
}

func progressBar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	n := int(float64(width) * float64(min(done, total)) / float64(total))
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return "[" + bar + "]"
}

func shortDigest(d string) string {
	_, h, _ := strings.Cut(d, ":")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
