package filter

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"
)

const sampleEvent = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"55ffceaa-b7c3-478e-98c6-e509cd2f0dd7","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/web-1","verb":"get","user":{"username":"alice","groups":["system:authenticated"]},"sourceIPs":["10.0.0.7"],"objectRef":{"resource":"pods","namespace":"default","name":"web-1","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2024-07-02T17:01:26.365713Z","stageTimestamp":"2024-07-02T17:01:26.370651Z"}`

func eventTimeExt(sec, nsec uint32) []byte {
	b := []byte{0xd7, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:], sec)
	binary.BigEndian.PutUint32(b[6:], nsec)
	return b
}

// v2 appends [[EventTime, {}], {key: val}].
func v2(b []byte, sec uint32, key, val string) []byte {
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendArrayHeader(b, 2)
	b = append(b, eventTimeExt(sec, 5)...)
	b = msgp.AppendMapHeader(b, 0)
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(b, key)
	return msgp.AppendString(b, val)
}

// legacy appends [ts, {key: val}] with ts written by writeTS.
func legacy(b []byte, writeTS func([]byte) []byte, key, val string) []byte {
	b = msgp.AppendArrayHeader(b, 2)
	b = writeTS(b)
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(b, key)
	return msgp.AppendString(b, val)
}

func decodeAll(t *testing.T, chunk []byte, key string) ([]*Event, []Malformed, ChunkResult, error) {
	t.Helper()
	var evs []*Event
	var bad []Malformed
	res, err := DecodeChunk(chunk, "kube.audit", key, func(e *Event) { evs = append(evs, e) }, func(m Malformed) { bad = append(bad, m) })
	return evs, bad, res, err
}

func TestDecodeChunkTimestampsAndFormats(t *testing.T) {
	cases := []struct {
		name  string
		chunk []byte
		want  time.Time
	}{
		{"v2 eventtime fixext8", v2(nil, 1700000000, "log", sampleEvent), time.Unix(1700000000, 5)},
		{"legacy eventtime ext8", legacy(nil, func(b []byte) []byte {
			b = append(b, 0xc7, 0x08, 0x00)
			return append(b, eventTimeExt(1700000001, 7)[2:]...)
		}, "log", sampleEvent), time.Unix(1700000001, 7)},
		{"legacy int", legacy(nil, func(b []byte) []byte { return msgp.AppendInt64(b, 1700000002) }, "log", sampleEvent), time.Unix(1700000002, 0)},
		{"legacy uint", legacy(nil, func(b []byte) []byte { return msgp.AppendUint64(b, 1700000003) }, "log", sampleEvent), time.Unix(1700000003, 0)},
		{"legacy float", legacy(nil, func(b []byte) []byte { return msgp.AppendFloat64(b, 1700000004.25) }, "log", sampleEvent), time.Unix(1700000004, 250000000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, bad, res, err := decodeAll(t, tc.chunk, "log")
			require.NoError(t, err)
			require.Empty(t, bad)
			require.Len(t, evs, 1)
			assert.Equal(t, 1, res.Records)
			assert.True(t, tc.want.Equal(evs[0].RecordTime), "got %v", evs[0].RecordTime)
			assert.Equal(t, "55ffceaa-b7c3-478e-98c6-e509cd2f0dd7", string(evs[0].AuditID))
			assert.Equal(t, "kube.audit", evs[0].Tag)
			assert.Equal(t, "web-1", evs[0].ObjectRef.Name)
			assert.Equal(t, time.Date(2024, 7, 2, 17, 1, 26, 365713000, time.UTC), evs[0].RequestReceivedTimestamp.Time.UTC())
		})
	}
}

func TestDecodeChunkParsedMapAndRecordKey(t *testing.T) {
	// A record already parsed by a JSON parser: the map is the event.
	var m map[string]any
	require.NoError(t, auditJSON.Unmarshal([]byte(sampleEvent), &m))
	b := msgp.AppendArrayHeader(nil, 2)
	b = msgp.AppendInt64(b, 1700000000)
	b, err := msgp.AppendIntf(b, m)
	require.NoError(t, err)
	evs, bad, _, err := decodeAll(t, b, "log")
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, evs, 1)
	assert.Equal(t, "get", evs[0].Verb)
	assert.Equal(t, []string{"system:authenticated"}, evs[0].User.Groups)

	// A custom record_key.
	evs, bad, _, err = decodeAll(t, v2(nil, 1, "message", sampleEvent), "message")
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, evs, 1)
}

func TestDecodeChunkEventList(t *testing.T) {
	list := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + sampleEvent + `,` +
		`{"level":"Metadata","auditID":"b2","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","user":{"username":"system:anonymous"},"requestReceivedTimestamp":"2024-07-02T17:01:27.000001Z","stageTimestamp":"2024-07-02T17:01:27.000002Z"}]}`
	evs, bad, res, err := decodeAll(t, v2(nil, 1, "log", list), "log")
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, evs, 2)
	assert.Equal(t, 1, res.Records)
	assert.Equal(t, 2, res.Events)
	assert.Equal(t, "b2", string(evs[1].AuditID))
}

func TestDecodeChunkMalformedRecordsDoNotStopTheChunk(t *testing.T) {
	var b []byte
	b = v2(b, 1, "log", sampleEvent)
	b = v2(b, 2, "log", `{"kind":"Event", "auditID": 12`) // truncated JSON
	b = v2(b, 3, "log", `not json at all`)
	b = v2(b, 4, "log", `{"hello":"world"}`) // JSON, not an audit event
	b = v2(b, 5, "other", sampleEvent)       // parsed map without audit fields
	// a log field that is not a string
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendInt64(b, 6)
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(b, "log")
	b = msgp.AppendInt64(b, 42)
	// a record with a string body
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendInt64(b, 7)
	b = msgp.AppendString(b, "body")
	b = v2(b, 8, "log", sampleEvent)
	evs, bad, res, err := decodeAll(t, b, "log")
	require.NoError(t, err)
	assert.Len(t, evs, 2)
	require.Len(t, bad, 6)
	assert.Equal(t, 6, res.Malformed)
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6}, []int{bad[0].Record, bad[1].Record, bad[2].Record, bad[3].Record, bad[4].Record, bad[5].Record})
	assert.Contains(t, bad[0].Err.Error(), "invalid audit JSON")
	assert.Contains(t, bad[1].Err.Error(), "not a JSON object")
	assert.Contains(t, bad[2].Err.Error(), "not an audit event")
	assert.Contains(t, bad[4].Err.Error(), `field "log" is a int`)
	assert.Contains(t, bad[5].Err.Error(), "want a map")
	for _, m := range bad {
		assert.Equal(t, "kube.audit", m.Tag)
	}
}

func TestDecodeChunkTruncatedAndGarbage(t *testing.T) {
	full := v2(v2(nil, 1, "log", sampleEvent), 2, "log", sampleEvent)
	evs, bad, res, err := decodeAll(t, full[:len(full)-20], "log")
	require.NoError(t, err)
	assert.Len(t, evs, 1)
	assert.True(t, res.Truncated)
	require.Len(t, bad, 1)
	assert.Equal(t, 1, bad[0].Record)

	for _, garbage := range [][]byte{[]byte("hello world, not msgpack"), {0xc1}, {0x92}, []byte(sampleEvent)} {
		_, _, _, err = decodeAll(t, garbage, "log")
		assert.ErrorIs(t, err, ErrNotMsgpack, "%q", garbage)
	}
}

func TestDecodeChunkSkipsGroupMarkers(t *testing.T) {
	marker := func(b []byte, sec uint32) []byte {
		b = msgp.AppendArrayHeader(b, 2)
		b = msgp.AppendArrayHeader(b, 2)
		b = append(b, eventTimeExt(sec, 0)...)
		b = msgp.AppendMapHeader(b, 0)
		return msgp.AppendMapHeader(b, 0)
	}
	b := marker(nil, groupStartSec)
	b = v2(b, 1, "log", sampleEvent)
	b = marker(b, groupEndSec)
	evs, bad, res, err := decodeAll(t, b, "log")
	require.NoError(t, err)
	assert.Empty(t, bad)
	assert.Len(t, evs, 1)
	assert.Equal(t, 1, res.Records)
}

func TestParseTime(t *testing.T) {
	cases := map[string]time.Time{
		"2024-07-02T17:01:26.365713Z":    time.Date(2024, 7, 2, 17, 1, 26, 365713000, time.UTC),
		"2024-07-02T17:01:26Z":           time.Date(2024, 7, 2, 17, 1, 26, 0, time.UTC),
		"2024-07-02T17:01:26.3Z":         time.Date(2024, 7, 2, 17, 1, 26, 300000000, time.UTC),
		"2024-07-02T17:01:26.123456789Z": time.Date(2024, 7, 2, 17, 1, 26, 123456789, time.UTC),
		"2024-07-02T19:01:26.5+02:00":    time.Date(2024, 7, 2, 17, 1, 26, 500000000, time.UTC),
	}
	for in, want := range cases {
		got, err := ParseTime([]byte(in))
		require.NoError(t, err, in)
		assert.True(t, want.Equal(got), "%s: got %v", in, got)
	}
	for _, bad := range []string{"", "yesterday", "2024-13-02T17:01:26Z", "2024-07-02T17:01:26.Z"} {
		_, err := ParseTime([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestMalformedRecordNamesItsAuditID(t *testing.T) {
	truncated := sampleEvent[:len(sampleEvent)/2]
	_, bad, _, err := decodeAll(t, v2(nil, 1, "log", truncated), "log")
	require.NoError(t, err)
	require.Len(t, bad, 1)
	assert.Contains(t, bad[0].Err.Error(), "auditID 55ffceaa-b7c3-478e-98c6-e509cd2f0dd7: invalid audit JSON")
	assert.Equal(t, "", sniffAuditID([]byte(`{"auditID":`)))
}
