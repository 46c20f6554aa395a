// Package stdout is the sink that needs no backend: one JSON document per
// line on standard output (or a file), the exact bytes the other sinks
// ship.
package stdout

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/sink"
)

func init() { sink.Register("stdout", New) }

// Sink writes documents as JSON lines.
type Sink struct {
	mu   sync.Mutex
	w    io.Writer
	file *os.File
}

// New builds the stdout sink. Key `path` (optional) appends to a file
// instead of standard output.
func New(p *config.Props, _ sink.Env) (sink.Sink, error) {
	s := &Sink{w: os.Stdout}
	if path := p.Raw("path"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, p.Invalid("path", "a file that can be opened for appending (%v)", err)
		}
		s.w, s.file = f, f
	}
	return s, nil
}

// NewWriter returns a sink writing to w (tests, the CLI).
func NewWriter(w io.Writer) *Sink { return &Sink{w: w} }

// Deliver writes the batch in one write, holding the lock so lines of
// concurrent flushes never interleave.
func (s *Sink) Deliver(_ context.Context, items []sink.Item) error {
	n := 0
	for i := range items {
		n += len(items[i].Doc.Body) + 1
	}
	buf := make([]byte, 0, n)
	for i := range items {
		buf = append(buf, items[i].Doc.Body...)
		buf = append(buf, '\n')
	}
	s.mu.Lock()
	_, err := s.w.Write(buf)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for i := range items {
		items[i].Outcome = sink.Delivered
	}
	return nil
}

// Close closes the file, if any.
func (s *Sink) Close() error {
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}
