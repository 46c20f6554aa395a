package filter

import (
	"bytes"
	"sync"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Malformed is a record that yielded no event.
type Malformed struct {
	Tag    string
	Record int
	Err    error
}

// ChunkResult counts what one chunk held.
type ChunkResult struct {
	Records   int
	Events    int
	Malformed int
	// Truncated is set when the chunk ended in bytes that could not be
	// delimited: records after that point are lost to decoding.
	Truncated bool
}

var scratchPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// DecodeChunk decodes a Fluent Bit chunk into audit events. Each record's
// audit JSON is in the string field recordKey or is the record map itself;
// an EventList yields all its items. fn gets each event (it may keep it);
// bad gets each record that yields none. Only a chunk that is not msgpack
// at all returns an error (wrapping ErrNotMsgpack).
func DecodeChunk(data []byte, tag, recordKey string, fn func(*Event), bad func(Malformed)) (ChunkResult, error) {
	var res ChunkResult
	scratch := scratchPool.Get().(*bytes.Buffer)
	defer scratchPool.Put(scratch)
	report := func(m Malformed) {
		res.Malformed++
		if bad != nil {
			bad(m)
		}
	}
	fast := getFastDecoder()
	defer putFastDecoder(fast)
	n, err := ReadChunk(data, func(rec Record) {
		js, err := BodyJSON(rec.Body, recordKey, scratch)
		if err != nil {
			report(Malformed{Tag: tag, Record: rec.Index, Err: err})
			return
		}
		// The fast decoder takes the common Event shape; anything it
		// declines is decoded (or rejected) by DecodeAudit.
		if t := bytes.TrimSpace(js); len(t) > 0 && t[0] == '{' {
			if ev, ok := fast.decode(t, tag, rec.Time); ok {
				res.Events++
				fn(ev)
				return
			}
		}
		err = DecodeAudit(js, func(a *auditv1.Event) {
			res.Events++
			fn(newEvent(a, tag, rec.Time))
		})
		if err != nil {
			report(Malformed{Tag: tag, Record: rec.Index, Err: err})
		}
	}, func(re *RecordError) {
		report(Malformed{Tag: tag, Record: re.Index, Err: re})
	})
	res.Records = n
	if re, ok := err.(*RecordError); ok {
		res.Truncated = true
		report(Malformed{Tag: tag, Record: re.Index, Err: re})
		return res, nil
	}
	return res, err
}

func newEvent(a *auditv1.Event, tag string, ts time.Time) *Event {
	return &Event{Event: *a, Tag: tag, RecordTime: ts}
}
