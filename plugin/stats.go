package plugin

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kaudit/kaudit/filter"
)

// Stats are an instance's counters, safe for concurrent flushes.
type Stats struct {
	Flushes   atomic.Int64 // flush calls
	Records   atomic.Int64 // Fluent Bit records received
	Events    atomic.Int64 // audit events decoded
	Malformed atomic.Int64 // records that yielded no event
	Shipped   atomic.Int64 // documents the backend stored (or had)
	Duplicate atomic.Int64 // of Shipped, those the backend already had
	Retried   atomic.Int64 // flushes returned as FLB_RETRY
	Rejected  atomic.Int64 // documents the backend will never take
	Errors    atomic.Int64 // flushes returned as FLB_ERROR
	Truncated atomic.Int64 // events whose bodies were cut to max_event_bytes
	Redacted  atomic.Int64 // events with credentials removed from their bodies

	// LastOK is when a flush last returned FLB_OK (Unix nanoseconds, 0
	// before the first): a stalled pipeline stops moving it.
	LastOK atomic.Int64

	mu      sync.Mutex
	dropped map[filter.Drop]int64
}

// event counts what the redaction stage did to a kept event.
func (s *Stats) event(ev *filter.Event) {
	if len(ev.Kaudit.Truncated) > 0 {
		s.Truncated.Add(1)
	}
	if len(ev.Kaudit.Redacted) > 0 {
		s.Redacted.Add(1)
	}
}

func (s *Stats) drop(d filter.Drop, n int64) {
	s.mu.Lock()
	if s.dropped == nil {
		s.dropped = map[filter.Drop]int64{}
	}
	s.dropped[d] += n
	s.mu.Unlock()
}

// Dropped returns the count of events dropped for reason d.
func (s *Stats) Dropped(d filter.Drop) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped[d]
}

// DroppedAll returns a copy of the dropped counts by reason.
func (s *Stats) DroppedAll() map[filter.Drop]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[filter.Drop]int64, len(s.dropped))
	for k, v := range s.dropped {
		out[k] = v
	}
	return out
}

// String is the one-line summary logged every stats_interval and at exit.
func (s *Stats) String() string {
	d := s.DroppedAll()
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, d[filter.Drop(k)]))
	}
	return fmt.Sprintf("flushes=%d records=%d events=%d malformed=%d dropped={%s} shipped=%d duplicate=%d rejected=%d retried_flushes=%d error_flushes=%d truncated=%d redacted=%d",
		s.Flushes.Load(), s.Records.Load(), s.Events.Load(), s.Malformed.Load(), strings.Join(parts, " "),
		s.Shipped.Load(), s.Duplicate.Load(), s.Rejected.Load(), s.Retried.Load(), s.Errors.Load(),
		s.Truncated.Load(), s.Redacted.Load())
}
