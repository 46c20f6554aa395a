package loki

import (
	"slices"
	"strings"
	"time"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/sink"
)

// group turns a Deliver batch into streams: labels from the document,
// entries pushed recently (a re-sent chunk) left out as Delivered,
// entries sorted by timestamp (ties keep the input order), streams sorted
// by their label string so the same input always gives the same request.
func (s *Sink) group(items []sink.Item) []stream {
	byLabels := make(map[string]int, 8)
	var streams []stream
	var scratch []pair
	for i := range items {
		d := &items[i].Doc
		var labels string
		labels, scratch = streamLabels(s.cfg.Labels, d, &s.env, scratch)
		e := entry{ts: s.timestamp(d).UnixNano(), line: s.line(d), item: i}
		if s.sent != nil {
			e.key = s.sent.key(labels, &e)
			if s.sent.has(e.key) {
				items[i].Outcome, items[i].Duplicate = sink.Delivered, true
				s.stats.Skipped.Add(1)
				continue
			}
		}
		e.meta = s.metadata(d)
		si, ok := byLabels[labels]
		if !ok {
			si = len(streams)
			byLabels[labels] = si
			streams = append(streams, stream{labels: labels, pairs: slices.Clone(scratch)})
		}
		streams[si].entries = append(streams[si].entries, e)
	}
	for i := range streams {
		slices.SortStableFunc(streams[i].entries, func(a, b entry) int {
			switch {
			case a.ts < b.ts:
				return -1
			case a.ts > b.ts:
				return 1
			}
			return 0
		})
	}
	slices.SortFunc(streams, func(a, b stream) int { return strings.Compare(a.labels, b.labels) })
	return streams
}

// timestamp is the entry time: timestamp_field, then the other event
// time, then the document's @timestamp. Never "now": the same event must
// get the same timestamp on every re-send.
func (s *Sink) timestamp(d *filter.Document) time.Time {
	if e := d.Event; e != nil {
		a, b := e.StageTimestamp.Time, e.RequestReceivedTimestamp.Time
		if s.cfg.TimestampField == "requestReceivedTimestamp" {
			a, b = b, a
		}
		if !a.IsZero() {
			return a
		}
		if !b.IsZero() {
			return b
		}
	}
	if s.cfg.TimestampField == "stageTimestamp" && !d.StageTime.IsZero() {
		return d.StageTime
	}
	return d.Time
}

func (s *Sink) metadata(d *filter.Document) []pair {
	if len(s.cfg.Metadata) == 0 {
		return nil
	}
	out := make([]pair, 0, len(s.cfg.Metadata))
	for _, f := range s.cfg.Metadata {
		if v := f.get(d, &s.env); v != "" {
			out = append(out, pair{f.name, v})
		}
	}
	return out
}

// line is the log line: the document's exact JSON bytes, or logfmt.
func (s *Sink) line(d *filter.Document) []byte {
	if s.cfg.LineFormat == "logfmt" {
		return appendLogfmt(nil, s.cfg.LogfmtFields, d, &s.env)
	}
	return d.Body
}

// split cuts streams into requests of at most max bytes (protobuf size,
// before compression) in stream, then time order. An entry larger than
// max goes alone.
func split(streams []stream, max int, withMeta bool) [][]stream {
	var out [][]stream
	var cur []stream
	size := 0
	for si := range streams {
		st := &streams[si]
		overhead := 16 + len(st.labels)
		start := 0
		for ei := range st.entries {
			n := entryWireSize(&st.entries[ei], withMeta)
			add := n
			if ei == start {
				add += overhead
			}
			if size+add > max && (len(cur) > 0 || ei > start) {
				if ei > start {
					cur = append(cur, stream{labels: st.labels, pairs: st.pairs, entries: st.entries[start:ei]})
				}
				out = append(out, cur)
				cur, size, start = nil, 0, ei
				add = n + overhead
			}
			size += add
		}
		cur = append(cur, stream{labels: st.labels, pairs: st.pairs, entries: st.entries[start:]})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
