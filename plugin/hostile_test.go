package plugin

// Hostile input through a whole flush: each case is counted in Stats and
// reported in one clear log line, and the good records of the same chunk
// are still delivered.

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"

	"github.com/kaudit/kaudit/plugin/sink"
)

func TestHostileFlushCountedAndReported(t *testing.T) {
	withBody := func(body string) string {
		return strings.TrimSuffix(ev1, "}") + `,"objectRef":{"resource":"configmaps","namespace":"x","name":"y","apiVersion":"v1"},"responseObject":` + body + "}"
	}
	rec := func(b []byte, ts func([]byte) []byte, logVal func([]byte) []byte) []byte {
		b = msgp.AppendArrayHeader(b, 2)
		b = ts(b)
		b = msgp.AppendMapHeader(b, 1)
		b = msgp.AppendString(b, "log")
		return logVal(b)
	}
	now := func(b []byte) []byte { return msgp.AppendInt64(b, 1700000000) }
	str := func(s string) func([]byte) []byte { return func(b []byte) []byte { return msgp.AppendString(b, s) } }
	good := chunk(ev2)
	n := 100_000
	cases := []struct {
		name      string
		chunk     []byte
		malformed int64
		truncated int64
		log       string
	}{
		{"50 MB responseObject", append(chunk(withBody(`{"kind":"ConfigMap","data":{"x":"`+strings.Repeat("a", 50<<20)+`"}}`)), good...), 0, 1, ""},
		{"100k nesting", append(chunk(withBody(strings.Repeat("[", n)+strings.Repeat("]", n))), good...), 1, 0, "exceeded max depth"},
		{"invalid UTF-8", append(chunk(strings.Replace(ev1, "alice", "al\xffice", 1)), good...), 0, 0, ""},
		{"log not a string", append(rec(nil, now, func(b []byte) []byte { return msgp.AppendInt(b, 7) }), good...), 1, 0, `field "log" is a int, want a string holding audit JSON`},
		{"timestamp out of range", append(rec(nil, func(b []byte) []byte { return msgp.AppendInt64(b, -1) }, str(ev1)), good...), 1, 0, "bad integer timestamp"},
		{"non-audit JSON", append(chunk(`{"msg":"hello"}`), good...), 1, 0, "not an audit event"},
		{"truncated chunk", append(append([]byte(nil), good...), chunk(ev1)[:40]...), 1, 0, "chunk truncated after 1 records"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := &fakeSink{}
			in, log := metricsInstance(t, "kaudit.h", map[string]string{"stats_interval": "0"}, fs)
			defer in.Close()
			start := time.Now()
			rc := in.Flush(c.chunk, "kube.audit")
			took := time.Since(start)
			assert.Less(t, took, 30*time.Second)
			assert.Equal(t, FlbOK, rc, log.String())
			assert.Equal(t, c.malformed, in.Stats.Malformed.Load(), "malformed")
			assert.Equal(t, c.truncated, in.Stats.Truncated.Load(), "truncated")
			require.NotEmpty(t, fs.batches)
			assert.Contains(t, fs.batches[0], "id-2-ResponseComplete", "the good record was not delivered")
			if c.log != "" {
				assert.Contains(t, log.String(), c.log)
			}
			for _, line := range strings.Split(log.String(), "\n") {
				assert.Less(t, len(line), 2000, "log line too long: %.200s", line)
			}
			t.Logf("%v\n%s", took, log.String())
		})
	}
	// A chunk that is not msgpack at all is dropped with FLB_ERROR and said so.
	fs := &fakeSink{}
	in, log := metricsInstance(t, "kaudit.h", map[string]string{"stats_interval": "0"}, fs)
	defer in.Close()
	assert.Equal(t, FlbError, in.Flush([]byte(`{"not":"msgpack"}`), "kube.audit"))
	assert.Equal(t, int64(1), in.Stats.Errors.Load())
	assert.Contains(t, log.String(), "dropped")
	_ = sink.Delivered
}
