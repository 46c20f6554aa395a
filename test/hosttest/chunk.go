package hosttest

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// TSKind selects how a record's timestamp is encoded.
type TSKind int

const (
	// TSEventTime is Fluent Bit's EventTime as FB writes it: fixext8
	// d7 00 <sec u32 BE> <nsec u32 BE>.
	TSEventTime TSKind = iota
	// TSEventTimeExt8 is the same EventTime as ext8: c7 08 00 <sec> <nsec>.
	TSEventTimeExt8
	// TSInt is whole seconds as a positive msgpack int, in an unsigned
	// encoding (uint32 0xce) as msgpack-c packs it.
	TSInt
	// TSFloat is seconds with fraction as float64.
	TSFloat
)

// Bin is a value encoded as msgpack bin (not str).
type Bin []byte

// Raw is a value that is already msgpack and is copied as is.
type Raw []byte

// Record is one log event. Body and Meta are ordered maps; a value may be
// string, []byte/Bin (bin), Raw, bool, nil, any Go integer, float32/64,
// time.Time (EventTime), []KV or map[string]any (nested map, the latter in
// key order), []any or []string (array).
type Record struct {
	Time  time.Time
	TS    TSKind
	RawTS any  // when non-nil, encoded as the timestamp instead of Time/TS (e.g. -1, "x")
	Meta  []KV // V2 metadata; nil is an empty map
	Body  []KV // nil is an empty map
}

// Group marker timestamps (seconds of EventTime) per Fluent Bit V2.
const (
	GroupStartSec = 0xFFFFFFFF
	GroupEndSec   = 0xFFFFFFFE
)

// GroupStart is a V2 group start marker:
// [[EventTime(0xFFFFFFFF, 0), metadata], attributes].
func GroupStart(metadata, attributes []KV) Record {
	return Record{Time: time.Unix(GroupStartSec, 0), Meta: metadata, Body: attributes}
}

// GroupEnd is a V2 group end marker: [[EventTime(0xFFFFFFFE, 0), {}], {}].
func GroupEnd() Record {
	return Record{Time: time.Unix(GroupEndSec, 0)}
}

// Log is a record like Fluent Bit's tail input produces: {"log": line}.
func Log(t time.Time, line string) Record {
	return Record{Time: t, Body: []KV{{"log", line}}}
}

// ChunkV2 encodes records back to back in Fluent Bit's V2 shape
// [[timestamp, metadata], body], as FB hands chunks to outputs.
func ChunkV2(records ...Record) []byte {
	var b []byte
	for _, r := range records {
		b = msgp.AppendArrayHeader(b, 2)
		b = msgp.AppendArrayHeader(b, 2)
		b = appendTS(b, r)
		b = appendMap(b, r.Meta)
		b = appendMap(b, r.Body)
	}
	return b
}

// ChunkLegacy encodes records in the legacy/forward shape [timestamp, body]
// (metadata is not written).
func ChunkLegacy(records ...Record) []byte {
	var b []byte
	for _, r := range records {
		b = msgp.AppendArrayHeader(b, 2)
		b = appendTS(b, r)
		b = appendMap(b, r.Body)
	}
	return b
}

// AppendEventTime appends EventTime t as fixext8 (ext8 when long is true).
func AppendEventTime(b []byte, t time.Time, long bool) []byte {
	if long {
		b = append(b, 0xc7, 0x08, 0x00)
	} else {
		b = append(b, 0xd7, 0x00)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func appendTS(b []byte, r Record) []byte {
	if r.RawTS != nil {
		return AppendValue(b, r.RawTS)
	}
	switch r.TS {
	case TSEventTime:
		return AppendEventTime(b, r.Time, false)
	case TSEventTimeExt8:
		return AppendEventTime(b, r.Time, true)
	case TSInt:
		return msgp.AppendUint64(b, uint64(r.Time.Unix()))
	case TSFloat:
		return msgp.AppendFloat64(b, float64(r.Time.UnixNano())/1e9)
	}
	panic(fmt.Sprintf("hosttest: unknown TSKind %d", r.TS))
}

func appendMap(b []byte, kvs []KV) []byte {
	b = msgp.AppendMapHeader(b, uint32(len(kvs)))
	for _, kv := range kvs {
		b = msgp.AppendString(b, kv.Key)
		b = AppendValue(b, kv.Value)
	}
	return b
}

// AppendValue appends one value (types as documented on Record) as msgpack.
func AppendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return msgp.AppendNil(b)
	case string:
		return msgp.AppendString(b, x)
	case []byte:
		return msgp.AppendBytes(b, x)
	case Bin:
		return msgp.AppendBytes(b, x)
	case Raw:
		return append(b, x...)
	case bool:
		return msgp.AppendBool(b, x)
	case int:
		return msgp.AppendInt64(b, int64(x))
	case int8:
		return msgp.AppendInt64(b, int64(x))
	case int16:
		return msgp.AppendInt64(b, int64(x))
	case int32:
		return msgp.AppendInt64(b, int64(x))
	case int64:
		return msgp.AppendInt64(b, x)
	case uint:
		return msgp.AppendUint64(b, uint64(x))
	case uint8:
		return msgp.AppendUint64(b, uint64(x))
	case uint16:
		return msgp.AppendUint64(b, uint64(x))
	case uint32:
		return msgp.AppendUint64(b, uint64(x))
	case uint64:
		return msgp.AppendUint64(b, x)
	case float32:
		return msgp.AppendFloat32(b, x)
	case float64:
		return msgp.AppendFloat64(b, x)
	case time.Time:
		return AppendEventTime(b, x, false)
	case []KV:
		return appendMap(b, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kvs := make([]KV, len(keys))
		for i, k := range keys {
			kvs[i] = KV{k, x[k]}
		}
		return appendMap(b, kvs)
	case []any:
		b = msgp.AppendArrayHeader(b, uint32(len(x)))
		for _, e := range x {
			b = AppendValue(b, e)
		}
		return b
	case []string:
		b = msgp.AppendArrayHeader(b, uint32(len(x)))
		for _, e := range x {
			b = msgp.AppendString(b, e)
		}
		return b
	}
	panic(fmt.Sprintf("hosttest: cannot encode %T", v))
}
