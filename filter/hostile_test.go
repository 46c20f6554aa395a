package filter

// Hostile and broken input: each case must decode (or be reported as
// malformed with a clear reason) within a bounded time, without a panic.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"
)

// hostileBound is how long any single hostile case may take; generous
// because the test machines are shared.
const hostileBound = 20 * time.Second

func bounded(t *testing.T, f func()) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(hostileBound):
		t.Fatalf("did not finish within %v", hostileBound)
	}
	return time.Since(start)
}

// eventWith returns sampleEvent with extra members spliced in.
func eventWith(extra string) string {
	return strings.TrimSuffix(sampleEvent, "}") + "," + extra + "}"
}

func processChunk(t *testing.T, p *Pipeline, chunk []byte) ([]*Event, []Malformed, ChunkResult, error, [][]byte) {
	t.Helper()
	var evs []*Event
	var bad []Malformed
	var docs [][]byte
	res, err := DecodeChunk(chunk, "kube.audit", "log", func(ev *Event) {
		if p.Process(ev, nil) == Keep {
			evs = append(evs, ev)
			doc := AppendEvent(nil, ev)
			checkDocument(t, doc)
			docs = append(docs, doc)
		}
	}, func(m Malformed) { bad = append(bad, m) })
	return evs, bad, res, err, docs
}

func TestHostileHugeResponseObject(t *testing.T) {
	p := pipelineFor(t, true, 4<<20)
	big := `{"kind":"ConfigMap","apiVersion":"v1","data":{"blob":"` + strings.Repeat("x", 50<<20) + `"}}`
	chunk := fuzzChunk([]byte(eventWith(`"responseObject":`+big)), []byte(sampleEvent))
	var evs []*Event
	var docs [][]byte
	var res ChunkResult
	d := bounded(t, func() {
		evs, _, res, _, docs = processChunk(t, p, chunk)
	})
	t.Logf("50 MB responseObject: %v", d)
	require.Len(t, evs, 2)
	assert.Equal(t, ChunkResult{Records: 2, Events: 2}, res)
	assert.Equal(t, []string{"responseObject"}, evs[0].Kaudit.Truncated)
	assert.Less(t, len(docs[0]), 4096)
	assert.Contains(t, string(docs[0]), fmt.Sprintf(`"responseObject":{"kaudit_truncated":true,"bytes":%d}`, len(big)))
	assert.Contains(t, string(docs[0]), `"truncated":["responseObject"]`)
}

func TestHostileDeepNesting(t *testing.T) {
	p := pipelineFor(t, true, 4<<20)
	n := 100_000
	deepArr := strings.Repeat("[", n) + strings.Repeat("]", n)
	deepObj := strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
	for name, line := range map[string]string{
		"requestObject array":    eventWith(`"requestObject":` + deepArr),
		"responseObject object":  eventWith(`"responseObject":` + deepObj),
		"annotations":            eventWith(`"annotations":` + deepObj),
		"whole record":           deepArr,
		"unterminated":           strings.Repeat("[", n),
		"secret body 9000 deep":  strings.Replace(eventWith(`"requestObject":`+strings.Repeat(`{"kind":"Secret","data":{"k":"v"},"a":`, 9000)+"1"+strings.Repeat("}", 9000)), `"resource":"pods"`, `"resource":"secrets"`, 1),
		"secret body 20000 deep": strings.Replace(eventWith(`"requestObject":`+strings.Repeat(`{"a":`, 20000)+"1"+strings.Repeat("}", 20000)), `"resource":"pods"`, `"resource":"secrets"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			var evs []*Event
			var bad []Malformed
			var err error
			d := bounded(t, func() { evs, bad, _, err, _ = processChunk(t, p, fuzzChunk([]byte(line), []byte(sampleEvent))) })
			t.Logf("%v, %d events, malformed: %v", d, len(evs), bad)
			require.NoError(t, err)
			// the record after the hostile one always survives
			require.NotEmpty(t, evs)
			assert.Equal(t, "55ffceaa-b7c3-478e-98c6-e509cd2f0dd7", string(evs[len(evs)-1].AuditID))
			if len(evs) == 2 {
				// decoded: nothing of it left unredacted
				assert.NotContains(t, string(rawOf(evs[0].RequestObject)), `"k":"v"`)
			} else {
				require.Len(t, bad, 1)
				assert.Equal(t, 0, bad[0].Record)
				assert.NotEmpty(t, bad[0].Err.Error())
				assert.Less(t, len(bad[0].Err.Error()), 600, "error message should be short")
			}
		})
	}
}

func TestHostileInvalidUTF8(t *testing.T) {
	p := pipelineFor(t, true, 4<<20)
	line := strings.Replace(eventWith("\"requestObject\":{\"kind\":\"ConfigMap\",\"data\":{\"k\":\"\xff\xfe\xc3\"}},\"annotations\":{\"a\xff\":\"b\xc0\"}"),
		`"alice"`, "\"al\xffice\"", 1)
	require.False(t, utf8.ValidString(line))
	evs, bad, _, err, docs := processChunk(t, p, fuzzChunk([]byte(line)))
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, evs, 1)
	assert.Contains(t, string(docs[0]), `"username":"al\ufffdice"`)
	assert.Contains(t, string(docs[0]), `"k":"\ufffd\ufffd\ufffd"`)
	// invalid UTF-8 in the chunk's own strings (the "log" key, a bin value)
	c := msgp.AppendArrayHeader(nil, 2)
	c = msgp.AppendInt64(c, 1700000000)
	c = msgp.AppendMapHeader(c, 1)
	c = msgp.AppendString(c, "lo\xffg")
	c = msgp.AppendString(c, sampleEvent)
	_, bad, _, err, _ = processChunk(t, p, c)
	require.NoError(t, err)
	require.Len(t, bad, 1, "record without a log key is converted as a map, which is not an audit event")
	assert.True(t, utf8.ValidString(bad[0].Err.Error()) || strings.Contains(bad[0].Err.Error(), `\x`))
}

func TestHostileLogNotAString(t *testing.T) {
	p := pipelineFor(t, true, 4<<20)
	for name, tc := range map[string]struct {
		val  func([]byte) []byte
		want string // in the error, "" means decoded
	}{
		"int":    {func(b []byte) []byte { return msgp.AppendInt(b, 42) }, `field "log" is a int, want a string holding audit JSON`},
		"float":  {func(b []byte) []byte { return msgp.AppendFloat64(b, 1.5) }, `field "log" is a float64`},
		"nil":    {msgp.AppendNil, `field "log" is a nil`},
		"bool":   {func(b []byte) []byte { return msgp.AppendBool(b, true) }, `field "log" is a bool`},
		"array":  {func(b []byte) []byte { return msgp.AppendString(msgp.AppendArrayHeader(b, 1), sampleEvent) }, `field "log" is a array`},
		"ext":    {func(b []byte) []byte { return append(b, eventTimeExt(1, 2)...) }, `field "log" is a ext`},
		"bin":    {func(b []byte) []byte { return msgp.AppendBytes(b, []byte(sampleEvent)) }, ""},
		"map":    {func(b []byte) []byte { return appendJSONAsMsgpack(t, b, sampleEvent) }, ""},
		"badmap": {func(b []byte) []byte { return msgp.AppendInt(msgp.AppendString(msgp.AppendMapHeader(b, 1), "x"), 1) }, "not an audit event"},
	} {
		t.Run(name, func(t *testing.T) {
			c := msgp.AppendArrayHeader(nil, 2)
			c = msgp.AppendInt64(c, 1700000000)
			c = msgp.AppendMapHeader(c, 1)
			c = msgp.AppendString(c, "log")
			c = tc.val(c)
			c = append(c, fuzzChunk([]byte(sampleEvent))...)
			evs, bad, res, err, _ := processChunk(t, p, c)
			require.NoError(t, err)
			if tc.want == "" {
				assert.Len(t, evs, 2)
				assert.Empty(t, bad)
				return
			}
			require.Len(t, bad, 1)
			assert.Contains(t, bad[0].Err.Error(), tc.want)
			assert.Len(t, evs, 1)
			assert.Equal(t, ChunkResult{Records: 2, Events: 1, Malformed: 1}, res)
		})
	}
}

func appendJSONAsMsgpack(t *testing.T, b []byte, js string) []byte {
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(js), &v))
	out, err := msgp.AppendIntf(b, v)
	require.NoError(t, err)
	return out
}

func TestHostileTimestamps(t *testing.T) {
	p := pipelineFor(t, true, 4<<20)
	t.Run("record timestamps", func(t *testing.T) {
		for name, ts := range map[string]func([]byte) []byte{
			"negative int": func(b []byte) []byte { return msgp.AppendInt64(b, -5) },
			"NaN":          func(b []byte) []byte { return msgp.AppendFloat64(b, math.NaN()) },
			"+Inf":         func(b []byte) []byte { return msgp.AppendFloat64(b, math.Inf(1)) },
			"huge float":   func(b []byte) []byte { return msgp.AppendFloat64(b, 1e300) },
			"string":       func(b []byte) []byte { return msgp.AppendString(b, "2025-01-01") },
			"short ext":    func(b []byte) []byte { return append(b, 0xd6, 0x00, 1, 2, 3, 4) },
			"uint64 max":   func(b []byte) []byte { return msgp.AppendUint64(b, math.MaxUint64) },
		} {
			c := legacy(nil, ts, "log", sampleEvent)
			c = append(c, fuzzChunk([]byte(sampleEvent))...)
			evs, bad, _, err, _ := processChunk(t, p, c)
			require.NoError(t, err, name)
			assert.Len(t, evs, 1, name)
			if assert.Len(t, bad, 1, name) {
				assert.Contains(t, bad[0].Err.Error(), "timestamp", name)
			}
		}
		// Accepted but odd: second 1, EventTime nsec >= 1e9 (taken as 0).
		c := v2(nil, 1, "log", sampleEvent)
		c = append(c, 0x92, 0x92, 0xd7, 0x00, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x80)
		c = msgp.AppendString(msgp.AppendString(msgp.AppendMapHeader(c, 1), "log"), sampleEvent)
		evs, bad, _, err, _ := processChunk(t, p, c)
		require.NoError(t, err)
		assert.Empty(t, bad)
		assert.Len(t, evs, 2)
	})
	t.Run("audit timestamps", func(t *testing.T) {
		for _, ts := range []string{"99999-01-01T00:00:00Z", "2025-13-45T99:99:99Z", "-0001-01-01T00:00:00Z", "1e400", "", "2025-06-02T16:00:00.12345678901234567890Z"} {
			line := strings.Replace(sampleEvent, `"2024-07-02T17:01:26.365713Z"`, `"`+ts+`"`, 1)
			evs, bad, _, err, docs := processChunk(t, p, fuzzChunk([]byte(line)))
			require.NoError(t, err)
			if len(evs) == 1 {
				t.Logf("%q accepted: %s", ts, docs[0][:200])
				continue
			}
			require.Len(t, bad, 1, ts)
			assert.Contains(t, bad[0].Err.Error(), "invalid audit JSON", ts)
		}
		// Year 1 and year 9999 are legal and encode as such.
		line := strings.Replace(sampleEvent, `"2024-07-02T17:01:26.365713Z"`, `"0001-01-01T00:00:00.000001Z"`, 1)
		line = strings.Replace(line, `"2024-07-02T17:01:26.370651Z"`, `"9999-12-31T23:59:59.999999Z"`, 1)
		evs, _, _, err, docs := processChunk(t, p, fuzzChunk([]byte(line)))
		require.NoError(t, err)
		require.Len(t, evs, 1)
		assert.Contains(t, string(docs[0]), `"stageTimestamp":"9999-12-31T23:59:59.999999Z"`)
	})
}

func TestHostileNonAuditJSON(t *testing.T) {
	p := pipelineFor(t, true, 4<<20)
	for _, line := range []string{
		`{"message":"hello","level":"info"}`,
		`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"}}`,
		`{"kind":"EventList","items":[{"kind":"Pod"}]}`,
		`[1,2,3]`, `"just a string"`, `42`, `null`, ``, `   `,
		`{"auditID":"a","stage":"ResponseComplete","verb":"get"`, // truncated JSON
		`not json at all`,
		`{"auditID":1,"stage":[],"verb":{}}`,
	} {
		evs, bad, _, err, _ := processChunk(t, p, fuzzChunk([]byte(line), []byte(sampleEvent)))
		require.NoError(t, err, line)
		assert.Len(t, evs, 1, line)
		if assert.Len(t, bad, 1, line) {
			msg := bad[0].Err.Error()
			assert.True(t, strings.Contains(msg, "audit") || strings.Contains(msg, "JSON") || strings.Contains(msg, "empty"), "%q: %s", line, msg)
		}
	}
}

func TestHostileTruncatedChunk(t *testing.T) {
	p := pipelineFor(t, true, 4<<20)
	secret := []byte(fuzzSeeds()[0])
	full := fuzzChunk([]byte(sampleEvent), secret, []byte(sampleEvent))
	first := len(fuzzChunk([]byte(sampleEvent)))
	firstTwo := fuzzChunk([]byte(sampleEvent), secret)
	d := bounded(t, func() {
		for cut := 1; cut < len(full); cut++ {
			evs, bad, res, err, _ := processChunk(t, p, full[:cut])
			switch {
			case cut < first:
				// the first record itself is cut: nothing decodable
				if err == nil {
					assert.True(t, res.Truncated, "cut %d", cut)
					assert.Len(t, bad, 1, "cut %d", cut)
				}
			default:
				require.NoError(t, err, "cut %d", cut)
				assert.GreaterOrEqual(t, len(evs), 1, "cut %d", cut)
				if cut != first && cut != len(full) && !bytes.Equal(full[:cut], firstTwo) {
					assert.True(t, res.Truncated, "cut %d", cut)
					assert.Equal(t, 1, res.Malformed, "cut %d", cut)
				}
			}
		}
	})
	t.Logf("%d truncations of a %d-byte chunk in %v", len(full)-1, len(full), d)
}
