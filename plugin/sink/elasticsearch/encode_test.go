package elasticsearch

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendAction(t *testing.T) {
	require.Equal(t, `{"create":{"_index":"kaudit-2026.01.01","_id":"a-b"}}`+"\n", string(appendAction(nil, "kaudit-2026.01.01", "a-b")))
	require.Equal(t, `{"create":{"_index":"x"}}`+"\n", string(appendAction(nil, "x", "")))
	line := appendAction(nil, "x", "q\"\\\n\x01é\xff")
	var v map[string]map[string]string
	require.NoError(t, json.Unmarshal(line, &v))
	require.Equal(t, "q\"\\\n\x01é\uFFFD", v["create"]["_id"])
}

func TestOpSizeMatchesEncoding(t *testing.T) {
	for _, op := range []*bulkOp{
		{index: "i", id: "id", body: []byte(`{"a":1}`)},
		{index: "i", body: []byte(`{}`)},
		{index: "i", id: "é\"x", body: []byte(`{"b":"c"}`)},
	} {
		require.Equal(t, len(appendOp(nil, op)), opSize(op)+boolInt(op.id == "")*-len(`,"_id":""`))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestNextBatch(t *testing.T) {
	mk := func(n int) *bulkOp { return &bulkOp{index: "i", id: "x", body: bytes.Repeat([]byte("a"), n)} }
	ops := []*bulkOp{mk(100), mk(100), mk(100), mk(5000), mk(10)}
	one := opSize(ops[0])
	require.Equal(t, 2, nextBatch(ops, 2*one))
	require.Equal(t, 1, nextBatch(ops, 2*one-1))
	require.Equal(t, 1, nextBatch(ops[3:], 100), "an oversized document goes alone")
	require.Equal(t, 5, nextBatch(ops, 1<<20))
}

func TestDocID(t *testing.T) {
	require.Equal(t, "abc-ResponseComplete", docID("abc-ResponseComplete"))
	long := docID(strings.Repeat("x", 600))
	require.True(t, strings.HasPrefix(long, "sha256-"))
	require.Len(t, long, 7+64)
	require.Equal(t, long, docID(strings.Repeat("x", 600)), "stable")
}

func TestGzipBody(t *testing.T) {
	body := bytes.Repeat([]byte(`{"create":{}}`+"\n"+`{"a":1}`+"\n"), 100)
	gz := gzipBody(body)
	defer putGzBuf(gz)
	require.Less(t, gz.Len(), len(body))
	zr, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
	require.NoError(t, err)
	got, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, body, got)
}

// BenchmarkEncode: the sink's own cost per document (action line and
// body into a pooled buffer), without the network.
func BenchmarkEncode(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1300)
	ops := make([]*bulkOp, 500)
	for i := range ops {
		ops[i] = &bulkOp{index: "kaudit-2026.11.25", id: "5b2e0f6e-1f0c-4a55-9d43-7c0e3b1f4a21-ResponseComplete", body: body}
	}
	b.SetBytes(int64(len(encodeBatch(nil, ops))))
	b.ReportAllocs()
	for b.Loop() {
		buf := getBuf()
		n := nextBatch(ops, DefaultBulkMaxBytes)
		*buf = encodeBatch(*buf, ops[:n])
		putBuf(buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ops)), "ns/doc")
}
