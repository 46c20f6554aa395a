package elasticsearch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/test/esfake"
)

func init() {
	backoffBase = 5 * time.Millisecond
	backoffMax = 20 * time.Millisecond
}

// logBuf captures a sink's log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// newSink builds a sink on kv (hosts given) with a captured log.
func newSink(t *testing.T, kv ...string) (*Sink, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	log := flblog.NewTo(&lb.buf, &lb.mu, "kaudit.0", flblog.Debug)
	kv = append([]string{"retry_max_wait", "300ms", "timeout", "2s"}, kv...)
	p := props(kv...)
	cfg, err := ParseConfig(p)
	require.NoError(t, err)
	s, err := NewWithConfig(cfg, sink.Env{Instance: "kaudit.0", Log: log})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, lb
}

var baseTime = time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)

// items makes n documents with ids id-<from+i>.
func items(from, n int) []sink.Item {
	out := make([]sink.Item, n)
	for i := range out {
		id := fmt.Sprintf("id-%d-ResponseComplete", from+i)
		ts := baseTime.Add(time.Duration(from+i) * time.Second)
		out[i].Doc = filter.Document{
			ID:   id,
			Time: ts,
			Body: []byte(fmt.Sprintf(`{"auditID":"id-%d","stage":"ResponseComplete","sourceIPs":["10.0.0.1"],"@timestamp":%q}`, from+i, ts.Format(time.RFC3339Nano))),
		}
	}
	return out
}

func outcomes(it []sink.Item) map[sink.Outcome]int {
	m := map[sink.Outcome]int{}
	for _, i := range it {
		m[i.Outcome]++
	}
	return m
}

const day = "kaudit-2026.11.25"

func TestDeliverAndDuplicates(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	s, _ := newSink(t, "hosts", fake.URL)
	require.True(t, s.Ready())
	require.Equal(t, Elasticsearch, s.Info().Product)

	its := items(0, 50)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, map[sink.Outcome]int{sink.Delivered: 50}, outcomes(its))
	require.Equal(t, 50, fake.Count(day))
	docs := fake.Docs(day)
	require.Equal(t, its[7].Doc.Body, docs["id-7-ResponseComplete"], "body shipped byte for byte")

	again := items(25, 50)
	require.NoError(t, s.Deliver(context.Background(), again))
	require.Equal(t, map[sink.Outcome]int{sink.Delivered: 50}, outcomes(again))
	dups := 0
	for _, it := range again {
		if it.Duplicate {
			dups++
		}
	}
	require.Equal(t, 25, dups)
	require.Equal(t, 75, fake.Count(day))
}

func TestTemplatePerProduct(t *testing.T) {
	for _, tc := range []struct {
		opts esfake.Options
		typ  string
		kv   []string
	}{
		{esfake.Options{Product: "opensearch", Version: "2.19.6"}, `"enabled":false`, []string{"body_mapping", "disabled"}},
		{esfake.Options{Product: "elasticsearch", Version: "9.0.1"}, `"flattened"`, nil},
		{esfake.Options{Product: "elasticsearch", Version: "7.17.25"}, `"flattened"`, nil},
		{esfake.Options{Product: "opensearch", Version: "2.19.6"}, `"flat_object"`, nil},
		{esfake.Options{Product: "opensearch", Version: "2.3.0"}, `"enabled":false`, nil},
		{esfake.Options{Product: "elasticsearch", Version: "8.17.0", NoProductHeader: true}, `"enabled":false`, nil},
	} {
		t.Run(tc.opts.Product+tc.opts.Version+strings.Join(tc.kv, "="), func(t *testing.T) {
			fake := esfake.Start(t, tc.opts)
			s, log := newSink(t, append([]string{"hosts", fake.URL, "dead_letter_index", "kaudit-dead-letter"}, tc.kv...)...)
			tpl := string(fake.Template("kaudit"))
			require.Contains(t, tpl, tc.typ)
			require.Contains(t, tpl, `"index_patterns":["kaudit-*.*.*"]`)
			require.Contains(t, tpl, `"priority":200`)
			require.Contains(t, string(fake.Template("kaudit-dead-letter")), `"index_patterns":["kaudit-dead-letter"]`)
			require.Contains(t, log.String(), "engine: ")
			if tc.opts.NoProductHeader {
				require.Contains(t, log.String(), "X-Elastic-Product")
				require.Equal(t, Unknown, s.Info().Product)
			}
		})
	}
}

func TestDataStream(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	s, _ := newSink(t, "hosts", fake.URL, "data_stream", "logs-kubernetes.audit-default")
	require.True(t, fake.DataStream("logs-kubernetes.audit-default"))
	require.Contains(t, string(fake.Template("logs-kubernetes.audit-default")), `"data_stream":{}`)
	its := items(0, 10)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, 10, fake.Count("logs-kubernetes.audit-default"))
	// A second sink: the data stream exists already, which is fine.
	s2, log := newSink(t, "hosts", fake.URL, "data_stream", "logs-kubernetes.audit-default")
	require.True(t, s2.Ready(), log.String())
}

func TestIDKeyOff(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	s, _ := newSink(t, "hosts", fake.URL, "id_key", "off")
	require.NoError(t, s.Deliver(context.Background(), items(0, 5)))
	require.NoError(t, s.Deliver(context.Background(), items(0, 5)))
	require.Equal(t, 10, fake.Count(day), "without ids a re-send duplicates")
}

func TestPerItemRetryThenSuccess(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	var calls atomic.Int64
	fake.SetHooks(esfake.Hooks{Item: func(n int, op esfake.Op) (int, string, string) {
		calls.Add(1)
		if n <= 2 && strings.HasSuffix(op.ID, "3-ResponseComplete") {
			return 429, "es_rejected_execution_exception", "rejected execution of coordinating operation"
		}
		if n == 1 && strings.HasSuffix(op.ID, "5-ResponseComplete") {
			return 503, "unavailable_shards_exception", "primary shard is not active"
		}
		return 0, "", ""
	}})
	s, _ := newSink(t, "hosts", fake.URL)
	its := items(0, 20)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, map[sink.Outcome]int{sink.Delivered: 20}, outcomes(its))
	require.Equal(t, 20, fake.Count(day))
	bulks := 0
	for _, r := range fake.Requests() {
		if r.Path == "/_bulk" {
			bulks++
		}
	}
	require.Equal(t, 3, bulks, "only failed items re-sent")
}

func TestPerItemRetryGivesUp(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	fake.SetHooks(esfake.Hooks{Item: func(n int, op esfake.Op) (int, string, string) {
		if strings.HasPrefix(op.ID, "id-1-") {
			return 429, "es_rejected_execution_exception", "queue full"
		}
		return 0, "", ""
	}})
	s, _ := newSink(t, "hosts", fake.URL, "retry_max_wait", "100ms")
	its := items(0, 3)
	start := time.Now()
	err := s.Deliver(context.Background(), its)
	require.Error(t, err)
	require.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, sink.Retry, its[1].Outcome)
	require.Contains(t, its[1].Reason, "429")
	require.Equal(t, sink.Delivered, its[0].Outcome)
	require.Equal(t, sink.Delivered, its[2].Outcome)
}

func TestRejectedAndDeadLetter(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	reason := "failed to parse field [sourceIPs] of type [ip]"
	fake.SetHooks(esfake.Hooks{Item: func(n int, op esfake.Op) (int, string, string) {
		if op.Index == day && strings.HasPrefix(op.ID, "id-2-") {
			return 400, "mapper_parsing_exception", reason
		}
		return 0, "", ""
	}})
	s, log := newSink(t, "hosts", fake.URL, "dead_letter_index", "kaudit-dead-letter-%Y")
	its := items(0, 4)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, sink.Rejected, its[2].Outcome)
	require.Contains(t, its[2].Reason, "mapper_parsing_exception")
	require.Contains(t, its[2].Reason, "written to kaudit-dead-letter-2026")
	require.Equal(t, 3, fake.Count(day))
	dl := fake.Docs("kaudit-dead-letter-2026")
	require.Len(t, dl, 1)
	var d struct {
		Index  string
		ID     string
		Status int
		Error  struct{ Type, Reason string }
		Event  string
	}
	require.NoError(t, json.Unmarshal(dl["id-2-ResponseComplete"], &d))
	require.Equal(t, day, d.Index)
	require.Equal(t, 400, d.Status)
	require.Equal(t, "mapper_parsing_exception", d.Error.Type)
	require.Equal(t, reason, d.Error.Reason)
	require.Equal(t, string(its[2].Doc.Body), d.Event)
	require.Contains(t, log.String(), "rejected by the engine")

	// Re-delivery: the dead letter is a duplicate, nothing doubles.
	its = items(0, 4)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Len(t, fake.Docs("kaudit-dead-letter-2026"), 1)
}

func TestDeadLetterFailureRetries(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	fake.SetHooks(esfake.Hooks{Item: func(n int, op esfake.Op) (int, string, string) {
		if op.Index == day && strings.HasPrefix(op.ID, "id-0-") {
			return 400, "mapper_parsing_exception", "bad"
		}
		if op.Index == "dl" {
			return 503, "unavailable_shards_exception", "no"
		}
		return 0, "", ""
	}})
	s, _ := newSink(t, "hosts", fake.URL, "dead_letter_index", "dl", "retry_max_wait", "50ms")
	its := items(0, 2)
	s.Deliver(context.Background(), its)
	require.Equal(t, sink.Retry, its[0].Outcome, "a dead letter that cannot be written keeps the event")
	require.Contains(t, its[0].Reason, "dead letter not written")
}

func TestWholeRequestRetries(t *testing.T) {
	for _, st := range []int{429, 500, 502, 503} {
		t.Run(fmt.Sprint(st), func(t *testing.T) {
			fake := esfake.Start(t, esfake.Options{})
			fake.SetHooks(esfake.Hooks{Bulk: func(n int, _ []esfake.Op) (int, string) {
				if n <= 2 {
					return st, ""
				}
				return 0, ""
			}})
			s, _ := newSink(t, "hosts", fake.URL)
			its := items(0, 10)
			require.NoError(t, s.Deliver(context.Background(), its))
			require.Equal(t, 10, fake.Count(day))
		})
	}
	t.Run("persistent 503 → Retry", func(t *testing.T) {
		fake := esfake.Start(t, esfake.Options{})
		fake.SetHooks(esfake.Hooks{Bulk: func(int, []esfake.Op) (int, string) { return 503, "" }})
		s, _ := newSink(t, "hosts", fake.URL, "retry_max_wait", "60ms")
		its := items(0, 3)
		err := s.Deliver(context.Background(), its)
		require.ErrorContains(t, err, "HTTP 503")
		require.Equal(t, map[sink.Outcome]int{sink.Retry: 3}, outcomes(its))
	})
}

func TestAuthFailureLogsOnce(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{User: "elastic", Password: "right"})
	s, log := newSink(t, "hosts", fake.URL, "http_user", "elastic", "http_passwd", "wrong-pass")
	require.False(t, s.Ready())
	for range 3 {
		its := items(0, 2)
		err := s.Deliver(context.Background(), its)
		require.ErrorContains(t, err, "HTTP 401")
		require.Equal(t, map[sink.Outcome]int{sink.Retry: 2}, outcomes(its))
	}
	out := log.String()
	require.Equal(t, 1, strings.Count(out, "refused user \"elastic\""), out)
	require.Contains(t, out, strings.TrimPrefix(fake.URL, "http://"))
	require.NotContains(t, out, "wrong-pass")
	require.NotContains(t, out, base64.StdEncoding.EncodeToString([]byte("elastic:wrong-pass")))
	// Only one bulk request per flush: no in-flush retries on 401.
	n := 0
	for _, r := range fake.Requests() {
		if r.Path == "/_bulk" {
			n++
		}
	}
	require.Equal(t, 3, n)
}

func TestAuthMethods(t *testing.T) {
	encoded := base64.StdEncoding.EncodeToString([]byte("keyid:keysecret"))
	tok := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tok, []byte("tok-1\n"), 0o600))
	for _, tc := range []struct {
		name string
		opts esfake.Options
		kv   []string
	}{
		{"basic", esfake.Options{User: "u", Password: "p:w"}, []string{"http_user", "u", "http_passwd", "p:w"}},
		{"api key encoded", esfake.Options{APIKey: encoded}, []string{"api_key", encoded}},
		{"api key id:key", esfake.Options{APIKey: encoded}, []string{"api_key", "keyid:keysecret"}},
		{"bearer", esfake.Options{Bearer: "tok-1"}, []string{"bearer_token_file", tok}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := esfake.Start(t, tc.opts)
			s, log := newSink(t, append([]string{"hosts", fake.URL}, tc.kv...)...)
			require.True(t, s.Ready(), log.String())
			its := items(0, 3)
			require.NoError(t, s.Deliver(context.Background(), its))
			require.Equal(t, 3, fake.Count(day))
			require.NotContains(t, log.String(), "keysecret")
		})
	}
	t.Run("bearer rotation", func(t *testing.T) {
		fake := esfake.Start(t, esfake.Options{Bearer: "tok-1"})
		s, _ := newSink(t, "hosts", fake.URL, "bearer_token_file", tok)
		require.NoError(t, s.Deliver(context.Background(), items(0, 1)))
		fake2 := esfake.Start(t, esfake.Options{Bearer: "tok-2"})
		s.client.hosts[0] = mustURL(t, fake2.URL)
		require.NoError(t, os.WriteFile(tok, []byte("tok-2"), 0o600))
		future := time.Now().Add(time.Hour)
		os.Chtimes(tok, future, future)
		s.client.auth.(*bearerAuth).checked = time.Time{}
		require.NoError(t, s.Deliver(context.Background(), items(1, 1)))
		require.Equal(t, 1, fake2.Count(day))
	})
}

func TestAPIKeyWho(t *testing.T) {
	a := newAuthorizer(&Config{APIKey: base64.StdEncoding.EncodeToString([]byte("myid:s3cr3t"))})
	require.Equal(t, `api_key id "myid"`, a.who())
	require.NotContains(t, a.who(), "s3cr3t")
}

func Test413SplitsInHalves(t *testing.T) {
	its := items(0, 16)
	one := len(appendOp(nil, &bulkOp{index: day, id: its[0].Doc.ID, body: its[0].Doc.Body}))
	fake := esfake.Start(t, esfake.Options{MaxBodyBytes: 4*one + 10})
	s, _ := newSink(t, "hosts", fake.URL)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, 16, fake.Count(day))
	var st []int
	for _, r := range fake.Requests() {
		if r.Path == "/_bulk" {
			st = append(st, r.Status)
		}
	}
	// 16 → 413; 8 → 413 (×2); 4 → 201 (×4)
	require.Equal(t, []int{413, 413, 200, 200, 413, 200, 200}, st)

	t.Run("single document too large is rejected", func(t *testing.T) {
		fake := esfake.Start(t, esfake.Options{MaxBodyBytes: 50})
		s, _ := newSink(t, "hosts", fake.URL)
		its := items(0, 1)
		require.NoError(t, s.Deliver(context.Background(), its))
		require.Equal(t, sink.Rejected, its[0].Outcome)
		require.Contains(t, its[0].Reason, "413")
	})
}

func TestBulkMaxBytesSplits(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	s, _ := newSink(t, "hosts", fake.URL, "bulk_max_bytes", "4K")
	its := items(0, 200)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, 200, fake.Count(day))
	n := 0
	for _, r := range fake.Requests() {
		if r.Path == "/_bulk" {
			n++
			require.LessOrEqual(t, r.BodyBytes, 4096)
		}
	}
	require.Greater(t, n, 5)
}

func TestGzip(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	s, _ := newSink(t, "hosts", fake.URL, "compress", "gzip")
	its := items(0, 100)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, 100, fake.Count(day))
	c := s.Counters()
	require.Less(t, c.WireBytes.Load()*3, c.RawBytes.Load())
	for _, r := range fake.Requests() {
		if r.Path == "/_bulk" {
			require.Equal(t, "gzip", r.Header.Get("Content-Encoding"))
			require.Equal(t, "application/x-ndjson", r.Header.Get("Content-Type"))
		}
	}
}

func TestTimeoutThenSuccess(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	fake.SetHooks(esfake.Hooks{Delay: func(n int) time.Duration {
		if n == 1 {
			return 400 * time.Millisecond
		}
		return 0
	}})
	s, _ := newSink(t, "hosts", fake.URL, "timeout", "100ms", "retry_max_wait", "2s")
	its := items(0, 5)
	require.NoError(t, s.Deliver(context.Background(), its))
	require.Equal(t, map[sink.Outcome]int{sink.Delivered: 5}, outcomes(its))
	require.Equal(t, 5, fake.Count(day))
	// The timed-out request is stored too once its delay ends: the same
	// ids, so nothing doubles.
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 5, fake.Count(day))
}

func TestTimeoutGivesUp(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	fake.SetHooks(esfake.Hooks{Delay: func(n int) time.Duration { return 300 * time.Millisecond }})
	s, _ := newSink(t, "hosts", fake.URL, "timeout", "50ms", "retry_max_wait", "100ms")
	its := items(0, 2)
	err := s.Deliver(context.Background(), its)
	require.ErrorContains(t, err, "no answer within 50ms (timeout)")
	require.Equal(t, map[sink.Outcome]int{sink.Retry: 2}, outcomes(its))
}

// deadPort is a loopback port nothing listens on.
func deadPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestConnectionRefused(t *testing.T) {
	s, log := newSink(t, "hosts", deadPort(t), "retry_max_wait", "50ms")
	require.False(t, s.Ready())
	require.Contains(t, log.String(), "retrying in the background")
	its := items(0, 2)
	err := s.Deliver(context.Background(), its)
	require.ErrorContains(t, err, "connection refused")
	require.Equal(t, map[sink.Outcome]int{sink.Retry: 2}, outcomes(its))
}

func TestFailoverToNextHost(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	s, _ := newSink(t, "hosts", deadPort(t)+","+fake.URL, "retry_max_wait", "0")
	require.True(t, s.Ready())
	for i := range 4 {
		its := items(i*5, 5)
		require.NoError(t, s.Deliver(context.Background(), its), "round %d", i)
	}
	require.Equal(t, 20, fake.Count(day))
}

func TestRoundRobin(t *testing.T) {
	a := esfake.Start(t, esfake.Options{})
	b := esfake.Start(t, esfake.Options{})
	s, _ := newSink(t, "hosts", a.URL+" "+b.URL, "install_template", "off")
	for i := range 10 {
		require.NoError(t, s.Deliver(context.Background(), items(i, 1)))
	}
	require.Greater(t, a.Count(day), 3)
	require.Greater(t, b.Count(day), 3)
	require.Equal(t, 10, a.Count(day)+b.Count(day))
}

func TestPathPrefix(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	mux := http.NewServeMux()
	mux.Handle("/es/", http.StripPrefix("/es", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = "/" + strings.TrimPrefix(r.URL.Path, "/")
		proxyTo(t, fake.URL, w, r)
	})))
	front := startHTTP(t, mux)
	s, log := newSink(t, "hosts", front, "path_prefix", "/es/")
	require.True(t, s.Ready(), log.String())
	require.NoError(t, s.Deliver(context.Background(), items(0, 3)))
	require.Equal(t, 3, fake.Count(day))
}

func TestTLSWithClientCert(t *testing.T) {
	ca := esfake.NewCA(t)
	fake := esfake.Start(t, esfake.Options{TLS: ca.ServerTLS(t, true, "es.test", "127.0.0.1")})
	_, crt, key := ca.Issue(t, true, "kaudit")
	s, log := newSink(t, "hosts", fake.URL, "tls_ca_file", ca.CAFile, "tls_crt_file", crt, "tls_key_file", key, "tls_server_name", "es.test")
	require.True(t, s.Ready(), log.String())
	require.NoError(t, s.Deliver(context.Background(), items(0, 3)))
	require.Equal(t, 3, fake.Count(day))

	t.Run("no client cert", func(t *testing.T) {
		s, _ := newSink(t, "hosts", fake.URL, "tls_ca_file", ca.CAFile, "retry_max_wait", "0")
		its := items(0, 1)
		require.Error(t, s.Deliver(context.Background(), its))
		require.Equal(t, sink.Retry, its[0].Outcome)
	})
	t.Run("unknown CA", func(t *testing.T) {
		s, _ := newSink(t, "hosts", fake.URL, "tls_crt_file", crt, "tls_key_file", key, "retry_max_wait", "0")
		its := items(0, 1)
		require.ErrorContains(t, s.Deliver(context.Background(), its), "certificate")
	})
	t.Run("tls_verify off warns", func(t *testing.T) {
		s, log := newSink(t, "hosts", fake.URL, "tls_verify", "off", "tls_crt_file", crt, "tls_key_file", key)
		require.True(t, s.Ready())
		require.Contains(t, log.String(), "tls_verify is off")
		require.NoError(t, s.Deliver(context.Background(), items(10, 1)))
	})
	t.Run("bad CA file names the key", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(bad, []byte("not pem"), 0o600)
		_, err := ParseConfig(props("tls_ca_file", bad))
		require.ErrorContains(t, err, `invalid value for tls_ca_file: "`+bad+`": a PEM file holding at least one CA certificate`)
	})
}

func TestConcurrentDeliver(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	fake.SetHooks(esfake.Hooks{Item: func(n int, op esfake.Op) (int, string, string) {
		if n%3 == 0 {
			return 429, "es_rejected_execution_exception", "busy"
		}
		return 0, "", ""
	}})
	s, _ := newSink(t, "hosts", fake.URL, "compress", "gzip", "bulk_max_bytes", "8K")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 5 {
				its := items((w*5+r)*40, 40)
				if err := s.Deliver(context.Background(), its); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 8*5*40, fake.Count(day))
}

func TestSetupRetriedInBackground(t *testing.T) {
	old := backoffBase
	_ = old
	fake := esfake.Start(t, esfake.Options{})
	var up atomic.Bool
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(503)
			return
		}
		proxyTo(t, fake.URL, w, r)
	})
	front := startHTTP(t, mux)
	s, log := newSink(t, "hosts", front)
	require.False(t, s.Ready())
	require.Contains(t, log.String(), "HTTP 503")
	up.Store(true)
	require.Eventually(t, s.Ready, 10*time.Second, 50*time.Millisecond)
	require.NotEmpty(t, fake.Template("kaudit"))
}

// A sink that started while the engine was down installs the template
// before its first delivery, not after documents created the index.
func TestSetupBeforeFirstDelivery(t *testing.T) {
	fake := esfake.Start(t, esfake.Options{})
	var up atomic.Bool
	front := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(503)
			return
		}
		proxyTo(t, fake.URL, w, r)
	}))
	s, log := newSink(t, "hosts", front)
	require.False(t, s.Ready())
	up.Store(true)
	s.lastSetup.Store(0)
	require.NoError(t, s.Deliver(context.Background(), items(0, 2)))
	require.True(t, s.Ready())
	require.Contains(t, log.String(), "start-up completed before delivery")
	var paths []string
	for _, r := range fake.Requests() {
		paths = append(paths, r.Method+" "+r.Path)
	}
	require.Equal(t, []string{"GET /", "PUT /_index_template/kaudit", "POST /_bulk"}, paths)
}

// A chunk split into many bulk requests sends up to max_in_flight of
// them at once — never more, also across concurrent flushes — and every
// document arrives.
func TestMaxInFlight(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint("max_in_flight=", limit), func(t *testing.T) {
			fake := esfake.Start(t, esfake.Options{})
			var now, peak atomic.Int64
			fake.SetHooks(esfake.Hooks{Delay: func(int) time.Duration {
				n := now.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(30 * time.Millisecond)
				now.Add(-1)
				return 0
			}})
			s, _ := newSink(t, "hosts", fake.URL, "bulk_max_bytes", "4K", "max_in_flight", fmt.Sprint(limit), "index", "inflight")
			var wg sync.WaitGroup
			for f := 0; f < 2; f++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					its := items(f*1000, 200) // ~40 requests of 4 KiB
					assert.NoError(t, s.Deliver(context.Background(), its))
					assert.Equal(t, map[sink.Outcome]int{sink.Delivered: 200}, outcomes(its))
				}()
			}
			wg.Wait()
			assert.Equal(t, 400, fake.Count("inflight"))
			assert.EqualValues(t, limit, peak.Load(), "requests in flight at once")
		})
	}
}
