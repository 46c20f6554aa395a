package plugin

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
)

const ev1 = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},"requestReceivedTimestamp":"2024-07-02T17:01:26.365713Z","stageTimestamp":"2024-07-02T17:01:26.370651Z"}`
const ev2 = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-2","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"bob"},"requestReceivedTimestamp":"2024-07-02T17:01:27.365713Z","stageTimestamp":"2024-07-02T17:01:27.370651Z"}`

func chunk(lines ...string) []byte {
	var b []byte
	for _, l := range lines {
		b = msgp.AppendArrayHeader(b, 2)
		b = msgp.AppendInt64(b, 1700000000)
		b = msgp.AppendMapHeader(b, 1)
		b = msgp.AppendString(b, "log")
		b = msgp.AppendString(b, l)
	}
	return b
}

// fakeSink decides each item's outcome with decide and records batches.
type fakeSink struct {
	mu      sync.Mutex
	batches [][]string
	decide  func(i int, it *sink.Item)
	err     error
	panics  bool
}

func (f *fakeSink) Deliver(_ context.Context, items []sink.Item) error {
	if f.panics {
		panic("boom")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for i := range items {
		ids = append(ids, items[i].Doc.ID)
		if f.decide != nil {
			f.decide(i, &items[i])
		} else {
			items[i].Outcome = sink.Delivered
		}
	}
	f.batches = append(f.batches, ids)
	return f.err
}

func (f *fakeSink) Close() error { return nil }

func newTestInstance(t *testing.T, s sink.Sink) (*Instance, *bytes.Buffer) {
	t.Helper()
	p := config.MapProps("kaudit.t", map[string]string{"stats_interval": "0"})
	cfg, err := config.Parse(p)
	require.NoError(t, err)
	var logs bytes.Buffer
	in, err := NewWithSink(p, cfg, flblog.NewTo(&logs, &sync.Mutex{}, "kaudit.t", flblog.Debug), s)
	require.NoError(t, err)
	t.Cleanup(func() { in.Close() })
	return in, &logs
}

func TestFlushReturnCodes(t *testing.T) {
	t.Run("all delivered is OK", func(t *testing.T) {
		s := &fakeSink{}
		in, _ := newTestInstance(t, s)
		assert.Equal(t, FlbOK, in.Flush(chunk(ev1, ev2), "kube.audit"))
		assert.Equal(t, [][]string{{"id-1-ResponseComplete", "id-2-ResponseComplete"}}, s.batches)
		assert.EqualValues(t, 2, in.Stats.Shipped.Load())
	})
	t.Run("one transient failure retries the chunk", func(t *testing.T) {
		s := &fakeSink{decide: func(i int, it *sink.Item) {
			it.Outcome = sink.Delivered
			if i == 1 {
				it.Outcome, it.Reason = sink.Retry, "429"
			}
		}}
		in, logs := newTestInstance(t, s)
		assert.Equal(t, FlbRetry, in.Flush(chunk(ev1, ev2), "kube.audit"))
		assert.EqualValues(t, 1, in.Stats.Retried.Load())
		assert.Contains(t, logs.String(), "1 of 2 documents not delivered, chunk retried")
	})
	t.Run("whole-batch error retries", func(t *testing.T) {
		in, _ := newTestInstance(t, &fakeSink{err: errors.New("connection refused")})
		assert.Equal(t, FlbRetry, in.Flush(chunk(ev1), "kube.audit"))
	})
	t.Run("permanent rejection is counted, not retried", func(t *testing.T) {
		s := &fakeSink{decide: func(i int, it *sink.Item) { it.Outcome, it.Reason = sink.Rejected, "mapper_parsing_exception" }}
		in, _ := newTestInstance(t, s)
		assert.Equal(t, FlbOK, in.Flush(chunk(ev1), "kube.audit"))
		assert.EqualValues(t, 1, in.Stats.Rejected.Load())
	})
	t.Run("an item left pending is retried", func(t *testing.T) {
		s := &fakeSink{decide: func(i int, it *sink.Item) {}}
		in, _ := newTestInstance(t, s)
		assert.Equal(t, FlbRetry, in.Flush(chunk(ev1), "kube.audit"))
	})
	t.Run("not msgpack is ERROR and logged", func(t *testing.T) {
		in, logs := newTestInstance(t, &fakeSink{})
		assert.Equal(t, FlbError, in.Flush([]byte("definitely not msgpack"), "kube.audit"))
		assert.Contains(t, logs.String(), `chunk of tag "kube.audit" (22 bytes) dropped`)
	})
	t.Run("malformed records are logged and the rest shipped", func(t *testing.T) {
		s := &fakeSink{}
		in, logs := newTestInstance(t, s)
		assert.Equal(t, FlbOK, in.Flush(chunk(ev1, "{oops", ev2, "x", "y", "z"), "kube.audit"))
		assert.EqualValues(t, 4, in.Stats.Malformed.Load())
		assert.EqualValues(t, 2, in.Stats.Shipped.Load())
		assert.Contains(t, logs.String(), `tag "kube.audit": malformed record 1 skipped: invalid audit JSON`)
		assert.Contains(t, logs.String(), `tag "kube.audit": 1 more malformed records in this chunk`)
	})
	t.Run("only malformed is OK (nothing can ever succeed)", func(t *testing.T) {
		s := &fakeSink{}
		in, _ := newTestInstance(t, s)
		assert.Equal(t, FlbOK, in.Flush(chunk("{oops"), "kube.audit"))
		assert.Empty(t, s.batches)
	})
	t.Run("a panic becomes RETRY, never a crash", func(t *testing.T) {
		in, logs := newTestInstance(t, &fakeSink{panics: true})
		assert.Equal(t, FlbRetry, in.Flush(chunk(ev1), "kube.audit"))
		assert.Contains(t, logs.String(), "panic in flush")
	})
	t.Run("flush after close is RETRY", func(t *testing.T) {
		in, _ := newTestInstance(t, &fakeSink{})
		in.Close()
		assert.Equal(t, FlbRetry, in.Flush(chunk(ev1), "kube.audit"))
	})
}

func TestConcurrentFlushesOfOneInstance(t *testing.T) {
	s := &fakeSink{}
	in, _ := newTestInstance(t, s)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				assert.Equal(t, FlbOK, in.Flush(chunk(ev1, ev2), "kube.audit"))
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 800, in.Stats.Shipped.Load())
	assert.EqualValues(t, 400, in.Stats.Flushes.Load())
}

func TestInitFailureNamesTheKey(t *testing.T) {
	_, err := New(config.MapProps("kaudit.9", map[string]string{"output": "stdout", "record_key": "log", "only_critical": "perhaps"}))
	require.Error(t, err)
	assert.Equal(t, `kaudit.9: invalid value for only_critical: "perhaps": allowed: on, off (also true/false, yes/no)`, err.Error())
}
