package loki

import (
	"strconv"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kaudit/kaudit/filter"
)

// The PushRequest schema, as documented by Loki (pkg/push/push.proto):
//
//	message PushRequest   { repeated StreamAdapter streams = 1; }
//	message StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//	message EntryAdapter  { google.protobuf.Timestamp timestamp = 1; string line = 2;
//	                        repeated LabelPairAdapter structuredMetadata = 3; }
//	message LabelPairAdapter { string name = 1; string value = 2; }
//	google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; }
//
// hash is left out (servers compute their own).
const (
	fieldPushStreams   protowire.Number = 1
	fieldStreamLabels  protowire.Number = 1
	fieldStreamEntries protowire.Number = 2
	fieldEntryTime     protowire.Number = 1
	fieldEntryLine     protowire.Number = 2
	fieldEntryMeta     protowire.Number = 3
	fieldPairName      protowire.Number = 1
	fieldPairValue     protowire.Number = 2
	fieldTSSeconds     protowire.Number = 1
	fieldTSNanos       protowire.Number = 2
)

// entry is one log line of a stream.
type entry struct {
	ts   int64 // unix nanoseconds
	line []byte
	meta []pair
	item int // index into the Deliver batch
	key  sentKey
}

// stream is one label set with its entries, sorted by timestamp.
type stream struct {
	labels  string
	pairs   []pair
	entries []entry
}

func splitTime(ns int64) (sec int64, nanos int32) {
	sec, rem := ns/1e9, ns%1e9
	if rem < 0 {
		sec, rem = sec-1, rem+1e9
	}
	return sec, int32(rem)
}

func timestampSize(ns int64) int {
	sec, nanos := splitTime(ns)
	n := 0
	if sec != 0 {
		n += protowire.SizeTag(fieldTSSeconds) + protowire.SizeVarint(uint64(sec))
	}
	if nanos != 0 {
		n += protowire.SizeTag(fieldTSNanos) + protowire.SizeVarint(uint64(nanos))
	}
	return n
}

func pairSize(p *pair) int {
	n := 0
	if p.name != "" {
		n += protowire.SizeTag(fieldPairName) + protowire.SizeBytes(len(p.name))
	}
	if p.value != "" {
		n += protowire.SizeTag(fieldPairValue) + protowire.SizeBytes(len(p.value))
	}
	return n
}

// entrySize is the size of the EntryAdapter message body.
func entrySize(e *entry, withMeta bool) int {
	n := protowire.SizeTag(fieldEntryTime) + protowire.SizeBytes(timestampSize(e.ts))
	if len(e.line) > 0 {
		n += protowire.SizeTag(fieldEntryLine) + protowire.SizeBytes(len(e.line))
	}
	if withMeta {
		for i := range e.meta {
			n += protowire.SizeTag(fieldEntryMeta) + protowire.SizeBytes(pairSize(&e.meta[i]))
		}
	}
	return n
}

// entryWireSize is what one entry adds to its StreamAdapter.
func entryWireSize(e *entry, withMeta bool) int {
	return protowire.SizeTag(fieldStreamEntries) + protowire.SizeBytes(entrySize(e, withMeta))
}

func streamSize(s *stream, withMeta bool) int {
	n := 0
	if s.labels != "" {
		n += protowire.SizeTag(fieldStreamLabels) + protowire.SizeBytes(len(s.labels))
	}
	for i := range s.entries {
		n += entryWireSize(&s.entries[i], withMeta)
	}
	return n
}

// appendPush appends the PushRequest of streams to b.
func appendPush(b []byte, streams []stream, withMeta bool) []byte {
	for si := range streams {
		s := &streams[si]
		b = protowire.AppendTag(b, fieldPushStreams, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(streamSize(s, withMeta)))
		if s.labels != "" {
			b = protowire.AppendTag(b, fieldStreamLabels, protowire.BytesType)
			b = protowire.AppendString(b, s.labels)
		}
		for ei := range s.entries {
			e := &s.entries[ei]
			b = protowire.AppendTag(b, fieldStreamEntries, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(entrySize(e, withMeta)))
			b = protowire.AppendTag(b, fieldEntryTime, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(timestampSize(e.ts)))
			sec, nanos := splitTime(e.ts)
			if sec != 0 {
				b = protowire.AppendTag(b, fieldTSSeconds, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(sec))
			}
			if nanos != 0 {
				b = protowire.AppendTag(b, fieldTSNanos, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(nanos))
			}
			if len(e.line) > 0 {
				b = protowire.AppendTag(b, fieldEntryLine, protowire.BytesType)
				b = protowire.AppendBytes(b, e.line)
			}
			if withMeta {
				for mi := range e.meta {
					p := &e.meta[mi]
					b = protowire.AppendTag(b, fieldEntryMeta, protowire.BytesType)
					b = protowire.AppendVarint(b, uint64(pairSize(p)))
					if p.name != "" {
						b = protowire.AppendTag(b, fieldPairName, protowire.BytesType)
						b = protowire.AppendString(b, p.name)
					}
					if p.value != "" {
						b = protowire.AppendTag(b, fieldPairValue, protowire.BytesType)
						b = protowire.AppendString(b, p.value)
					}
				}
			}
		}
	}
	return b
}

// appendJSONPush appends the JSON push body:
// {"streams":[{"stream":{"job":"kaudit"},"values":[["<ns>","<line>",{"k":"v"}]]}]}.
func appendJSONPush(b []byte, streams []stream, withMeta bool) []byte {
	b = append(b, `{"streams":[`...)
	for si := range streams {
		s := &streams[si]
		if si > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"stream":`...)
		b = appendJSONPairs(b, s.pairs)
		b = append(b, `,"values":[`...)
		for ei := range s.entries {
			e := &s.entries[ei]
			if ei > 0 {
				b = append(b, ',')
			}
			b = append(b, `["`...)
			b = strconv.AppendInt(b, e.ts, 10)
			b = append(b, `",`...)
			b = filter.AppendString(b, string(e.line))
			if withMeta && len(e.meta) > 0 {
				b = append(b, ',')
				b = appendJSONPairs(b, e.meta)
			}
			b = append(b, ']')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

func appendJSONPairs(b []byte, ps []pair) []byte {
	b = append(b, '{')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = filter.AppendString(b, p.name)
		b = append(b, ':')
		b = filter.AppendString(b, p.value)
	}
	return append(b, '}')
}

// bufPool recycles request buffers (encoded and compressed bodies).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 16<<20 { // do not pin huge buffers
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}
