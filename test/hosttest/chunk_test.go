package hosttest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

var t0 = time.Unix(1700000000, 123456789)

// readHeader checks the [[ts, meta], body] / [ts, body] framing and returns
// the timestamp bytes' kind and the rest after the timestamp.
func readTS(t *testing.T, b []byte) (msgp.Type, []byte) {
	t.Helper()
	typ := msgp.NextType(b)
	if typ == msgp.ExtensionType {
		// fixext8 d7 00 or ext8 c7 08 00, then 8 bytes
		switch {
		case bytes.HasPrefix(b, []byte{0xd7, 0x00}):
			return typ, b[10:]
		case bytes.HasPrefix(b, []byte{0xc7, 0x08, 0x00}):
			return typ, b[11:]
		}
		t.Fatalf("unexpected ext header % x", b[:3])
	}
	rest, err := msgp.Skip(b)
	if err != nil {
		t.Fatal(err)
	}
	return typ, rest
}

func TestChunkV2Layout(t *testing.T) {
	b := ChunkV2(Log(t0, "hello"))
	want := []byte{0x92, 0x92, 0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15, 0x80,
		0x81, 0xa3, 'l', 'o', 'g', 0xa5, 'h', 'e', 'l', 'l', 'o'}
	if !bytes.Equal(b, want) {
		t.Fatalf("got  % x\nwant % x", b, want)
	}
}

func TestChunkV2Decode(t *testing.T) {
	recs := []Record{
		{Time: t0, TS: TSEventTime, Meta: []KV{{"m", "v"}}, Body: []KV{
			{"s", "str"}, {"i", -5}, {"u", uint64(1 << 40)}, {"f", 1.5}, {"b", true}, {"n", nil},
			{"bin", Bin{1, 2, 3}}, {"arr", []any{"a", 1}}, {"map", []KV{{"x", "y"}}},
			{"gomap", map[string]any{"k2": 2, "k1": 1}}, {"raw", Raw{0xc3}},
		}},
		{Time: t0, TS: TSEventTimeExt8, Body: []KV{{"log", "x"}}},
		{Time: t0, TS: TSInt, Body: []KV{{"log", "y"}}},
		{Time: t0, TS: TSFloat, Body: []KV{{"log", "z"}}},
		GroupStart([]KV{{"schema", "otlp"}}, []KV{{"resource", "r"}}),
		GroupEnd(),
	}
	b := ChunkV2(recs...)
	wantTS := []msgp.Type{msgp.ExtensionType, msgp.ExtensionType, msgp.UintType, msgp.Float64Type,
		msgp.ExtensionType, msgp.ExtensionType}
	for i := range recs {
		n, rest, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil || n != 2 {
			t.Fatalf("record %d: outer array %d %v", i, n, err)
		}
		n, rest, err = msgp.ReadArrayHeaderBytes(rest)
		if err != nil || n != 2 {
			t.Fatalf("record %d: header array %d %v", i, n, err)
		}
		typ, rest := readTS(t, rest)
		if typ != wantTS[i] {
			t.Fatalf("record %d: ts type %v, want %v", i, typ, wantTS[i])
		}
		meta, rest, err := msgp.ReadIntfBytes(rest)
		if err != nil {
			t.Fatalf("record %d: meta: %v", i, err)
		}
		if len(meta.(map[string]any)) != len(recs[i].Meta) {
			t.Fatalf("record %d: meta %v", i, meta)
		}
		body, rest2, err := msgp.ReadIntfBytes(rest)
		if err != nil {
			t.Fatalf("record %d: body: %v", i, err)
		}
		if i == 0 {
			m := body.(map[string]any)
			if m["s"] != "str" || m["i"] != int64(-5) || m["u"] != uint64(1<<40) || m["f"] != 1.5 ||
				m["b"] != true || m["n"] != nil || !bytes.Equal(m["bin"].([]byte), []byte{1, 2, 3}) ||
				m["raw"] != true {
				t.Fatalf("body %#v", m)
			}
			if a := m["arr"].([]any); a[0] != "a" || a[1] != int64(1) {
				t.Fatalf("arr %#v", a)
			}
			if m["map"].(map[string]any)["x"] != "y" || m["gomap"].(map[string]any)["k2"] != int64(2) {
				t.Fatalf("maps %#v", m)
			}
			// body keys keep their order
			if !bytes.Contains(rest, []byte("\xa1s\xa3str\xa1i")) {
				t.Fatalf("order lost: % x", rest)
			}
		}
		b = rest2
	}
	if len(b) != 0 {
		t.Fatalf("%d trailing bytes", len(b))
	}
}

func TestChunkTimestamps(t *testing.T) {
	b := ChunkLegacy(Record{Time: t0, TS: TSEventTimeExt8})
	if want := []byte{0x92, 0xc7, 0x08, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15, 0x80}; !bytes.Equal(b, want) {
		t.Fatalf("ext8: % x", b)
	}
	b = ChunkLegacy(Record{Time: t0, TS: TSInt})
	if _, rest, _ := msgp.ReadArrayHeaderBytes(b); true {
		v, _, err := msgp.ReadUint64Bytes(rest)
		if err != nil || v != 1700000000 {
			t.Fatalf("int ts %d %v", v, err)
		}
	}
	b = ChunkLegacy(Record{Time: t0, TS: TSFloat})
	_, rest, _ := msgp.ReadArrayHeaderBytes(b)
	f, _, err := msgp.ReadFloat64Bytes(rest)
	if err != nil || f < 1700000000.12 || f > 1700000000.13 {
		t.Fatalf("float ts %v %v", f, err)
	}
	b = ChunkLegacy(Record{RawTS: -1})
	if want := []byte{0x92, 0xff, 0x80}; !bytes.Equal(b, want) {
		t.Fatalf("raw ts: % x", b)
	}
	if b := ChunkV2(GroupEnd()); !bytes.Equal(b[:12], []byte{0x92, 0x92, 0xd7, 0x00, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0}) {
		t.Fatalf("group end: % x", b)
	}
}

func TestChunkStringSizes(t *testing.T) {
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		b := ChunkV2(Log(t0, strings.Repeat("a", n)))
		s, _, err := msgp.ReadStringBytes(b[18:])
		if err != nil || len(s) != n {
			t.Fatalf("len %d: got %d %v", n, len(s), err)
		}
		var hdr byte
		switch {
		case n < 32:
			hdr = 0xa0 | byte(n)
		case n < 256:
			hdr = 0xd9
		case n < 65536:
			hdr = 0xda
		default:
			hdr = 0xdb
		}
		if b[18] != hdr {
			t.Fatalf("len %d: header %x want %x", n, b[18], hdr)
		}
	}
}
