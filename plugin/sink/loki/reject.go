package loki

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Reasons an entry is rejected for good (Loki's discard reasons).
const (
	ReasonTooOld       = "too old"
	ReasonOutOfOrder   = "out of order"
	ReasonTooFarBehind = "entry too far behind"
	ReasonTooNew       = "too new"
	ReasonLineTooLong  = "line too long"
	ReasonOther        = "rejected"
)

// rejection is one entry-level complaint parsed from a 400 body. Loki
// keeps the other entries of the request (a 400 with per-entry reasons is a
// partial success), so each rejection names what it is about: a stream and
// a timestamp, a cutoff (everything older is refused), or a line length.
type rejection struct {
	reason  string
	stream  string    // canonical labels; "" = any stream
	ts      time.Time // exact entry time (to the printed precision)
	prec    time.Duration
	cutoff  time.Time // entries before it are refused
	lineLen int
	msg     string
}

var (
	// entry for stream '{…}' has timestamp too old: T, oldest acceptable timestamp is: T
	reTooOld = regexp.MustCompile(`entry for stream '(\{.*?\})' has timestamp too old: (\S+), oldest acceptable timestamp is: (\S+)`)
	// entry for stream '{…}' has timestamp too new: T
	reTooNew = regexp.MustCompile(`entry for stream '(\{.*?\})' has timestamp too new: (\S+)`)
	// entry with timestamp T ignored, reason: 'entry out of order' for stream: {…},
	reOutOfOrder = regexp.MustCompile(`entry with timestamp (.+?) ignored, reason: 'entry out of order' for stream: (\{.*\})`)
	// entry with timestamp T ignored, reason: 'entry too far behind, entry timestamp is: T, oldest acceptable timestamp is: T',  for stream: {…},
	reTooFarBehind = regexp.MustCompile(`entry with timestamp (.+?) ignored, reason: 'entry too far behind, entry timestamp is: (\S+), oldest acceptable timestamp is: ([^',]+)',?\s*for stream: (\{.*\})`)
	// max entry size 'N' bytes exceeded for stream '{…}' while adding an entry with length 'N' bytes
	reLineTooLong = regexp.MustCompile(`max entry size '?(\d+)'? bytes exceeded for stream '?(\{.*?\})'? while adding an entry with length '?(\d+)'? bytes`)
)

// structuredMetadataDisallowed tells whether a 400 says the tenant does
// not take structured metadata.
func structuredMetadataDisallowed(body string) bool {
	return strings.Contains(body, "structured metadata, but this feature is disallowed") ||
		strings.Contains(body, "structured metadata is disabled")
}

// parseRejections reads the entry-level reasons of a 400 body, one per
// line. It returns nil when none is recognised.
func parseRejections(body string) []rejection {
	var out []rejection
	for _, ln := range strings.Split(body, "\n") {
		ln = strings.TrimSpace(ln)
		if ln == "" {
			continue
		}
		if m := reTooFarBehind.FindStringSubmatch(ln); m != nil {
			r := rejection{reason: ReasonTooFarBehind, stream: canonicalLabels(trimStream(m[4])), msg: ln}
			r.cutoff, _ = time.Parse(time.RFC3339Nano, strings.TrimSpace(m[3]))
			r.ts, r.prec = parseLokiTime(m[1])
			out = append(out, r)
		} else if m := reOutOfOrder.FindStringSubmatch(ln); m != nil {
			r := rejection{reason: ReasonOutOfOrder, stream: canonicalLabels(trimStream(m[2])), msg: ln}
			r.ts, r.prec = parseLokiTime(m[1])
			out = append(out, r)
		} else if m := reTooOld.FindStringSubmatch(ln); m != nil {
			// The cutoff is the tenant's: every stream's older entries go.
			r := rejection{reason: ReasonTooOld, msg: ln}
			r.cutoff, _ = time.Parse(time.RFC3339Nano, m[3])
			r.ts, r.prec = parseLokiTime(m[2])
			if r.cutoff.IsZero() {
				r.stream = canonicalLabels(m[1])
			}
			out = append(out, r)
		} else if m := reTooNew.FindStringSubmatch(ln); m != nil {
			r := rejection{reason: ReasonTooNew, stream: canonicalLabels(m[1]), msg: ln}
			r.ts, r.prec = parseLokiTime(m[2])
			out = append(out, r)
		} else if m := reLineTooLong.FindStringSubmatch(ln); m != nil {
			n, _ := strconv.Atoi(m[3])
			out = append(out, rejection{reason: ReasonLineTooLong, stream: canonicalLabels(m[2]), lineLen: n, msg: ln})
		}
	}
	return out
}

func trimStream(s string) string { return strings.TrimRight(strings.TrimSpace(s), ",") }

// parseLokiTime reads the times Loki prints: Go's time.String form or
// RFC 3339; it returns the precision the text carries.
func parseLokiTime(s string) (time.Time, time.Duration) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " m="); i > 0 { // monotonic clock reading
		s = s[:i]
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999 -0700 MST", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, precisionOf(s)
		}
	}
	return time.Time{}, 0
}

// precisionOf is the unit of the last fractional digit printed.
func precisionOf(s string) time.Duration {
	dot := strings.IndexByte(s, '.')
	if dot < 0 {
		return time.Second
	}
	n := 0
	for i := dot + 1; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n++
	}
	p := time.Second
	for ; n > 0; n-- {
		p /= 10
	}
	return p
}

// match tells whether the rejection covers an entry of the stream.
func (r *rejection) match(labels string, e *entry) bool {
	if r.stream != "" && r.stream != labels {
		return false
	}
	ts := time.Unix(0, e.ts)
	switch {
	case r.lineLen > 0:
		return len(e.line) == r.lineLen
	case !r.cutoff.IsZero() && ts.Before(r.cutoff):
		return true
	case !r.ts.IsZero():
		return ts.Truncate(r.prec).Equal(r.ts.Truncate(r.prec)) || ts.Equal(r.ts)
	}
	return false
}
