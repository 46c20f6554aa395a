package loki

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/timestamppb" // registers google/protobuf/timestamp.proto
)

// pushDescriptor declares Loki's documented push.proto in the test, so the
// encoder's bytes are read by the protobuf runtime (dynamic messages), not
// by code that shares anything with the encoder.
func pushDescriptor(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	s := func(v string) *string { return &v }
	n := func(v int32) *int32 { return &v }
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	u64 := descriptorpb.FieldDescriptorProto_TYPE_UINT64.Enum()
	f := func(name string, num int32, l *descriptorpb.FieldDescriptorProto_Label, ty *descriptorpb.FieldDescriptorProto_Type, tn string) *descriptorpb.FieldDescriptorProto {
		fd := &descriptorpb.FieldDescriptorProto{Name: s(name), Number: n(num), Label: l, Type: ty, JsonName: s(name)}
		if tn != "" {
			fd.TypeName = s(tn)
		}
		return fd
	}
	file := &descriptorpb.FileDescriptorProto{
		Name:       s("kaudit_test/push.proto"),
		Package:    s("logproto"),
		Syntax:     s("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: s("PushRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				f("streams", 1, rep, msg, ".logproto.StreamAdapter")}},
			{Name: s("StreamAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				f("labels", 1, opt, str, ""), f("entries", 2, rep, msg, ".logproto.EntryAdapter"), f("hash", 3, opt, u64, "")}},
			{Name: s("LabelPairAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				f("name", 1, opt, str, ""), f("value", 2, opt, str, "")}},
			{Name: s("EntryAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				f("timestamp", 1, opt, msg, ".google.protobuf.Timestamp"), f("line", 2, opt, str, ""),
				f("structuredMetadata", 3, rep, msg, ".logproto.LabelPairAdapter")}},
		},
	}
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("PushRequest")
}

func testStreams() []stream {
	return []stream{
		{labels: `{job="kaudit", verb="get"}`, pairs: []pair{{"job", "kaudit"}, {"verb", "get"}}, entries: []entry{
			{ts: time.Date(2025, 6, 2, 16, 0, 0, 123456000, time.UTC).UnixNano(), line: []byte(`{"kind":"Event","a":"é\u2028\n"}`),
				meta: []pair{{"audit_id", "0f7c-…"}, {"user", "system:serviceaccount:kube-system:x"}, {"source_ip", "10.0.0.1"}}},
			{ts: time.Date(2025, 6, 2, 16, 0, 1, 0, time.UTC).UnixNano(), line: []byte(`{"b":2}`)},                            // nanos 0
			{ts: 999, line: []byte("x"), meta: []pair{{"k", ""}}},                                                             // seconds 0, empty value
			{ts: time.Date(2262, 1, 1, 0, 0, 0, 1, time.UTC).UnixNano(), line: make([]byte, 70000), meta: []pair{{"n", "v"}}}, // long line
		}},
		{labels: `{job="kaudit", namespace="a\"b\\c"}`, pairs: []pair{{"job", "kaudit"}, {"namespace", `a"b\c`}}, entries: []entry{
			{ts: 1, line: []byte(`{}`)},
		}},
	}
}

func TestProtobufEncoderDecodesWithDescriptor(t *testing.T) {
	desc := pushDescriptor(t)
	for _, withMeta := range []bool{true, false} {
		want := testStreams()
		b := appendPush([]byte("prefix"), want, withMeta)[len("prefix"):]
		m := dynamicpb.NewMessage(desc)
		if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b, m); err != nil {
			t.Fatalf("withMeta=%v: unmarshal: %v", withMeta, err)
		}
		if len(m.GetUnknown()) != 0 {
			t.Fatalf("unknown bytes %x", m.GetUnknown())
		}
		fd := desc.Fields()
		streams := m.Get(fd.ByName("streams")).List()
		if streams.Len() != len(want) {
			t.Fatalf("%d streams, want %d", streams.Len(), len(want))
		}
		size := 0
		for i := range want {
			size += protowire.SizeTag(1) + protowire.SizeBytes(streamSize(&want[i], withMeta))
			sm := streams.Get(i).Message()
			sd := sm.Descriptor().Fields()
			if got := sm.Get(sd.ByName("labels")).String(); got != want[i].labels {
				t.Errorf("stream %d labels %q, want %q", i, got, want[i].labels)
			}
			if sm.Has(sd.ByName("hash")) {
				t.Errorf("stream %d: hash set", i)
			}
			entries := sm.Get(sd.ByName("entries")).List()
			if entries.Len() != len(want[i].entries) {
				t.Fatalf("stream %d: %d entries, want %d", i, entries.Len(), len(want[i].entries))
			}
			for j, we := range want[i].entries {
				em := entries.Get(j).Message()
				ed := em.Descriptor().Fields()
				ts := em.Get(ed.ByName("timestamp")).Message()
				sec := ts.Get(ts.Descriptor().Fields().ByName("seconds")).Int()
				nanos := ts.Get(ts.Descriptor().Fields().ByName("nanos")).Int()
				if got := time.Unix(sec, nanos).UnixNano(); got != we.ts {
					t.Errorf("stream %d entry %d: ts %d, want %d", i, j, got, we.ts)
				}
				if got := em.Get(ed.ByName("line")).String(); got != string(we.line) {
					t.Errorf("stream %d entry %d: line differs (%d vs %d bytes)", i, j, len(got), len(we.line))
				}
				md := em.Get(ed.ByName("structuredMetadata")).List()
				wantMeta := we.meta
				if !withMeta {
					wantMeta = nil
				}
				if md.Len() != len(wantMeta) {
					t.Fatalf("stream %d entry %d: %d metadata pairs, want %d", i, j, md.Len(), len(wantMeta))
				}
				for k, wp := range wantMeta {
					pm := md.Get(k).Message()
					pd := pm.Descriptor().Fields()
					if n, v := pm.Get(pd.ByName("name")).String(), pm.Get(pd.ByName("value")).String(); n != wp.name || v != wp.value {
						t.Errorf("stream %d entry %d pair %d: %q=%q, want %q=%q", i, j, k, n, v, wp.name, wp.value)
					}
				}
			}
		}
		if size != len(b) {
			t.Errorf("size accounting: computed %d, encoded %d", size, len(b))
		}
		// The runtime re-encodes it to the same bytes (canonical field order).
		again, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(b) {
			t.Errorf("withMeta=%v: re-marshalled bytes differ", withMeta)
		}
	}
}

func TestJSONPushBody(t *testing.T) {
	want := testStreams()
	b := appendJSONPush(nil, want, true)
	var got struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values [][]json.RawMessage
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b[:200])
	}
	if len(got.Streams) != len(want) {
		t.Fatalf("%d streams", len(got.Streams))
	}
	for i, ws := range want {
		gs := got.Streams[i]
		for _, p := range ws.pairs {
			if gs.Stream[p.name] != p.value {
				t.Errorf("stream %d label %s=%q, want %q", i, p.name, gs.Stream[p.name], p.value)
			}
		}
		for j, we := range ws.entries {
			v := gs.Values[j]
			var ts, line string
			json.Unmarshal(v[0], &ts)
			json.Unmarshal(v[1], &line)
			if ts != strconv.FormatInt(we.ts, 10) || line != string(we.line) {
				t.Errorf("stream %d entry %d: ts %s line %.40q", i, j, ts, line)
			}
			if len(we.meta) > 0 {
				var md map[string]string
				json.Unmarshal(v[2], &md)
				for _, p := range we.meta {
					if md[p.name] != p.value {
						t.Errorf("stream %d entry %d meta %s=%q", i, j, p.name, md[p.name])
					}
				}
			} else if len(v) != 2 {
				t.Errorf("stream %d entry %d: metadata element without metadata", i, j)
			}
		}
	}
}
