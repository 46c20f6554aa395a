package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Record is one Fluent Bit log record of a chunk, still undecoded.
type Record struct {
	// Index is the record's position in the chunk, from 0.
	Index int
	Time  time.Time
	// Body is the record's msgpack map, a slice of the chunk (no copy).
	Body []byte
}

// ErrNotMsgpack is returned when a chunk does not start with a Fluent Bit
// record at all: nothing in it can ever be decoded.
var ErrNotMsgpack = errors.New("chunk is not a msgpack stream of Fluent Bit records")

// Group-marker timestamps (Fluent Bit V2 log groups): the records carry no
// event and are skipped.
const (
	groupStartSec = 0xFFFFFFFF
	groupEndSec   = 0xFFFFFFFE
)

// RecordError describes a record that could not be read.
type RecordError struct {
	Index int
	Err   error
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

// ReadChunk walks the records of a Fluent Bit chunk: msgpack values back to
// back, each either the classic [ts, body] or the V2 [[ts, metadata], body].
// It calls fn for each record and skips group markers. A record whose
// shape is wrong but whose extent is known is reported to bad and the walk
// goes on; a record that cannot be delimited (truncated or garbage bytes)
// ends the walk with a *RecordError. A chunk whose very first value is
// not a record returns ErrNotMsgpack.
func ReadChunk(data []byte, fn func(Record), bad func(*RecordError)) (records int, err error) {
	b := data
	for i := 0; len(b) > 0; i++ {
		next, skipErr := msgp.Skip(b)
		if skipErr != nil {
			if i == 0 {
				return 0, fmt.Errorf("%w: %v", ErrNotMsgpack, skipErr)
			}
			return records, &RecordError{Index: i, Err: fmt.Errorf("cannot be delimited (%d trailing bytes): %v", len(b), skipErr)}
		}
		raw := b[:len(b)-len(next)]
		b = next
		rec, skip, recErr := parseRecord(raw)
		if recErr != nil {
			if i == 0 && msgp.NextType(raw) != msgp.ArrayType {
				return 0, fmt.Errorf("%w: first value is a %s", ErrNotMsgpack, msgp.NextType(raw))
			}
			bad(&RecordError{Index: i, Err: recErr})
			continue
		}
		if skip {
			continue
		}
		rec.Index = i
		records++
		fn(rec)
	}
	return records, nil
}

func parseRecord(raw []byte) (rec Record, skip bool, err error) {
	n, b, err := msgp.ReadArrayHeaderBytes(raw)
	if err != nil {
		return rec, false, fmt.Errorf("not an array: %v", err)
	}
	if n != 2 {
		return rec, false, fmt.Errorf("array of %d elements, want [timestamp, map]", n)
	}
	if msgp.NextType(b) == msgp.ArrayType {
		// V2: [[ts, metadata], body]
		hn, hb, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil || hn < 1 {
			return rec, false, errors.New("bad V2 header")
		}
		ts, sec, rest, err := readTimestamp(hb)
		if err != nil {
			return rec, false, err
		}
		if sec == groupStartSec || sec == groupEndSec {
			return rec, true, nil
		}
		for k := uint32(1); k < hn; k++ {
			if rest, err = msgp.Skip(rest); err != nil {
				return rec, false, fmt.Errorf("bad V2 metadata: %v", err)
			}
		}
		b = rest
		rec.Time = ts
	} else {
		ts, _, rest, err := readTimestamp(b)
		if err != nil {
			return rec, false, err
		}
		b = rest
		rec.Time = ts
	}
	if msgp.NextType(b) != msgp.MapType {
		return rec, false, fmt.Errorf("body is a %s, want a map", msgp.NextType(b))
	}
	rec.Body = b
	return rec, false, nil
}

// readTimestamp reads an EventTime (ext 0, fixext8 or ext8), a positive
// integer or a float of seconds, as Fluent Bit's decoder accepts them.
func readTimestamp(b []byte) (time.Time, uint32, []byte, error) {
	if len(b) >= 10 && b[0] == 0xd7 && b[1] == 0x00 {
		return eventTime(b[2:10]), binary.BigEndian.Uint32(b[2:6]), b[10:], nil
	}
	if len(b) >= 11 && b[0] == 0xc7 && b[1] == 0x08 && b[2] == 0x00 {
		return eventTime(b[3:11]), binary.BigEndian.Uint32(b[3:7]), b[11:], nil
	}
	switch msgp.NextType(b) {
	case msgp.IntType, msgp.UintType:
		v, rest, err := msgp.ReadInt64Bytes(b)
		if err != nil || v < 0 {
			return time.Time{}, 0, nil, fmt.Errorf("bad integer timestamp")
		}
		return time.Unix(v, 0), uint32(min(v, math.MaxUint32)), rest, nil
	case msgp.Float64Type, msgp.Float32Type:
		v, rest, err := msgp.ReadFloat64Bytes(b)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v > math.MaxUint32 {
			return time.Time{}, 0, nil, fmt.Errorf("bad float timestamp")
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)), uint32(sec), rest, nil
	}
	return time.Time{}, 0, nil, fmt.Errorf("timestamp is a %s, want EventTime, integer or float", msgp.NextType(b))
}

func eventTime(p []byte) time.Time {
	sec := binary.BigEndian.Uint32(p[0:4])
	nsec := binary.BigEndian.Uint32(p[4:8])
	if nsec >= 1e9 {
		nsec = 0
	}
	return time.Unix(int64(sec), int64(nsec))
}
