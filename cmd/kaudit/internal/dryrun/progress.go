package dryrun

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// progress writes "N events, X of Y read (P%), R events/s" to w at most
// once per period, starting after the first period (small inputs print
// nothing). On a terminal the line is rewritten in place.
type progress struct {
	w       io.Writer
	every   time.Duration
	read    *atomic.Int64
	total   int64
	start   time.Time
	next    time.Time
	tty     bool
	printed bool
}

func newProgress(w io.Writer, every time.Duration, read *atomic.Int64, total int64, start time.Time) *progress {
	if every <= 0 {
		every = time.Second
	}
	p := &progress{w: w, every: every, read: read, total: total, start: start, next: start.Add(every)}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) line(events int64) string {
	el := time.Since(p.start).Seconds()
	s := fmt.Sprintf("dryrun: %d events, %s", events, Size(p.read.Load()))
	if p.total > 0 {
		s += fmt.Sprintf(" of %s (%.0f%%)", Size(p.total), 100*float64(p.read.Load())/float64(p.total))
	}
	if el > 0 {
		s += fmt.Sprintf(", %.0f events/s", float64(events)/el)
	}
	return s
}

func (p *progress) tick(events int64) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Before(p.next) {
		return
	}
	p.next = now.Add(p.every)
	p.printed = true
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(events))
	} else {
		fmt.Fprintln(p.w, p.line(events))
	}
}

func (p *progress) done(events int64) {
	if p.w == nil || !p.printed {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", p.line(events))
	} else {
		fmt.Fprintln(p.w, p.line(events))
	}
}
