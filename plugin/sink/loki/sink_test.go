package loki

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/test/lokifake"
)

func deliver(t testing.TB, s *Sink, items []sink.Item) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	if err := s.Deliver(ctx, items); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
}

// storedLines maps line → count over the tenant's streams.
func storedLines(f *lokifake.Server, tenant string) map[string]int {
	m := map[string]int{}
	for _, st := range f.Streams(tenant) {
		for _, e := range st.Entries {
			m[e.Line]++
		}
	}
	return m
}

func TestDeliverStoresEveryEntryWithLabelsAndMetadata(t *testing.T) {
	for _, format := range []string{"protobuf", "json"} {
		t.Run(format, func(t *testing.T) {
			f := lokifake.New(t, lokifake.Options{})
			s, _ := newTestSink(t, map[string]string{"url": f.URL, "format": format})
			docs := testDocs(t, 300, 1)
			items := itemsOf(docs)
			deliver(t, s, items)
			if o := outcomes(items); o[sink.Delivered] != len(items) {
				t.Fatalf("outcomes %v", o)
			}
			if n := f.Count("fake"); n != len(docs) {
				t.Fatalf("stored %d, want %d", n, len(docs))
			}
			lines := storedLines(f, "fake")
			for _, d := range docs {
				if lines[string(d.Body)] != 1 {
					t.Fatalf("line of %s stored %d times", d.ID, lines[string(d.Body)])
				}
			}
			byID := map[string]filter.Document{}
			for _, d := range docs {
				byID[string(d.Event.AuditID)+string(d.Body)] = d
			}
			for _, st := range f.Streams("fake") {
				if st.Pairs["job"] != "kaudit" || st.Pairs["cluster"] != "test" || st.Pairs["node"] != "node-1" {
					t.Fatalf("stream labels %s", st.Labels)
				}
				for _, bad := range []string{"audit_id", "user", "source_ip", "name"} {
					if _, ok := st.Pairs[bad]; ok {
						t.Fatalf("high-cardinality label %s in %s", bad, st.Labels)
					}
				}
				var last time.Time
				for _, e := range st.Entries {
					d, ok := byID[e.Metadata["audit_id"]+e.Line]
					if !ok {
						t.Fatalf("entry with metadata %v matches no document", e.Metadata)
					}
					ev := d.Event
					want := map[string]string{"verb": ev.Verb, "level": string(ev.Level), "critical": fmt.Sprint(len(ev.Kaudit.Critical) > 0)}
					if ev.ObjectRef != nil {
						want["resource"], want["namespace"] = ev.ObjectRef.Resource, ev.ObjectRef.Namespace
					}
					for k, v := range want {
						if st.Pairs[k] != v {
							t.Fatalf("label %s=%q, want %q (%s)", k, st.Pairs[k], v, st.Labels)
						}
					}
					if e.Metadata["user"] != ev.User.Username || e.Metadata["source_ip"] != ev.Kaudit.Source.IP {
						t.Fatalf("metadata %v for user %q ip %q", e.Metadata, ev.User.Username, ev.Kaudit.Source.IP)
					}
					if !e.Timestamp.Equal(ev.StageTimestamp.Time) {
						t.Fatalf("timestamp %v, want stageTimestamp %v", e.Timestamp, ev.StageTimestamp.Time)
					}
					if e.Timestamp.Before(last) {
						t.Fatalf("stream %s not in time order", st.Labels)
					}
					last = e.Timestamp
				}
			}
		})
	}
}

func TestResendCreatesNoDuplicates(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{})
	s, _ := newTestSink(t, map[string]string{"url": f.URL, "batch_max_bytes": "8K"})
	docs := testDocs(t, 200, 2)
	deliver(t, s, itemsOf(docs))
	// Fluent Bit re-sends the chunk (an FLB_RETRY after a partial failure),
	// in other batch boundaries and order.
	again := itemsOf(docs)
	for i, j := 0, len(again)-1; i < j; i, j = i+1, j-1 {
		again[i], again[j] = again[j], again[i]
	}
	s2, _ := newTestSink(t, map[string]string{"url": f.URL, "batch_max_bytes": "32K"})
	deliver(t, s2, again)
	if o := outcomes(again); o[sink.Delivered] != len(docs) {
		t.Fatalf("outcomes %v", o)
	}
	if n := f.Count("fake"); n != len(docs) {
		t.Fatalf("stored %d entries after re-send, want %d", n, len(docs))
	}
	if st := f.Stats(); st.Duplicates != len(docs) {
		t.Fatalf("fake dropped %d duplicates, want %d", st.Duplicates, len(docs))
	}
	if st := s.Snapshot(); st.Requests < 2 {
		t.Fatalf("batch_max_bytes 8K made %d requests", st.Requests)
	}
	// The same sink remembers what it pushed: a re-sent chunk is not sent
	// again (servers without de-duplication would keep copies).
	before := f.Stats().Requests
	third := itemsOf(docs)
	deliver(t, s, third)
	for _, it := range third {
		if it.Outcome != sink.Delivered || !it.Duplicate {
			t.Fatalf("re-sent item %v duplicate=%v", it.Outcome, it.Duplicate)
		}
	}
	if f.Stats().Requests != before || s.Snapshot().Skipped != int64(len(docs)) {
		t.Fatalf("re-send pushed again: requests %d→%d skipped %d", before, f.Stats().Requests, s.Snapshot().Skipped)
	}
}

func TestTenantIsolation(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{AuthEnabled: true})
	a, _ := newTestSink(t, map[string]string{"url": f.URL, "tenant_id": "team-a"})
	b, _ := newTestSink(t, map[string]string{"url": f.URL, "tenant_id": "team-b"})
	none, log := newTestSink(t, map[string]string{"url": f.URL})
	da, db := testDocs(t, 50, 3), testDocs(t, 70, 4)
	deliver(t, a, itemsOf(da))
	deliver(t, b, itemsOf(db))
	if f.Count("team-a") != 50 || f.Count("team-b") != 70 {
		t.Fatalf("team-a %d team-b %d", f.Count("team-a"), f.Count("team-b"))
	}
	la, lb := storedLines(f, "team-a"), storedLines(f, "team-b")
	for _, d := range db {
		if la[string(d.Body)] > 0 {
			t.Fatal("team-b's entry visible to team-a")
		}
	}
	for _, d := range da {
		if lb[string(d.Body)] > 0 {
			t.Fatal("team-a's entry visible to team-b")
		}
	}
	// The query endpoint honours the tenant header too.
	req, _ := http.NewRequest("GET", f.URL+`/loki/api/v1/query_range?limit=1000&query={job="kaudit"}`, nil)
	req.Header.Set("X-Scope-OrgID", "team-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var qr struct {
		Data struct {
			Result []struct{ Values [][]any }
		}
	}
	decodeJSON(t, resp, &qr)
	n := 0
	for _, r := range qr.Data.Result {
		n += len(r.Values)
	}
	if n != 50 {
		t.Fatalf("query as team-a returned %d entries", n)
	}
	// Without a tenant an auth-enabled Loki answers 401: kept for retry.
	items := itemsOf(da[:5])
	deliver(t, none, items)
	if o := outcomes(items); o[sink.Retry] != 5 {
		t.Fatalf("401 outcomes %v", o)
	}
	if !strings.Contains(log.String(), "401") {
		t.Fatalf("401 not logged:\n%s", log)
	}
}

func TestRetryOn429And5xxThenSuccess(t *testing.T) {
	for _, status := range []int{429, 500, 502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := lokifake.New(t, lokifake.Options{})
			s, _ := newTestSink(t, map[string]string{"url": f.URL})
			f.FailNext(2, status, "")
			items := itemsOf(testDocs(t, 40, 5))
			deliver(t, s, items)
			if o := outcomes(items); o[sink.Delivered] != 40 {
				t.Fatalf("outcomes %v", o)
			}
			if st := s.Snapshot(); st.Retries != 2 || f.Count("fake") != 40 {
				t.Fatalf("retries %d stored %d", st.Retries, f.Count("fake"))
			}
		})
	}
}

func TestRetryBudgetThenFlbRetry(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{})
	s, _ := newTestSink(t, map[string]string{"url": f.URL, "retry_max_wait": "600ms", "batch_max_bytes": "4K"})
	f.FailNext(1000, 503, "service unavailable")
	items := itemsOf(testDocs(t, 40, 6))
	start := time.Now()
	deliver(t, s, items)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Deliver took %v with retry_max_wait 600ms", d)
	}
	if o := outcomes(items); o[sink.Retry] != 40 {
		t.Fatalf("outcomes %v", o)
	}
	for _, it := range items {
		if !strings.Contains(it.Reason, "503") {
			t.Fatalf("reason %q", it.Reason)
		}
	}
	if st := s.Snapshot(); st.GaveUp != 1 || st.Retries < 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConnectionRefusedIsRetry(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	s, _ := newTestSink(t, map[string]string{"url": "http://" + addr, "retry_max_wait": "300ms"})
	items := itemsOf(testDocs(t, 10, 7))
	deliver(t, s, items)
	if o := outcomes(items); o[sink.Retry] != 10 {
		t.Fatalf("outcomes %v", o)
	}
}

func TestTooOldEntriesRejectedOthersKept(t *testing.T) {
	docs := testDocs(t, 100, 8) // 24h of events starting 2025-06-02 16:00
	cut := docs[50].StageTime
	now := cut.Add(7 * 24 * time.Hour)
	f := lokifake.New(t, lokifake.Options{RejectOldSamples: true, Now: func() time.Time { return now }})
	s, log := newTestSink(t, map[string]string{"url": f.URL})
	items := itemsOf(docs)
	deliver(t, s, items)
	old := 0
	for i, it := range items {
		// The fake's cutoff is cut; Loki prints it to the second.
		isOld := docs[i].StageTime.Before(cut)
		if isOld {
			old++
		}
		if isOld && it.Outcome != sink.Rejected || !isOld && it.Outcome != sink.Delivered {
			if docs[i].StageTime.Truncate(time.Second).Equal(cut.Truncate(time.Second)) {
				continue // within the printed precision
			}
			t.Fatalf("item %d (%v, cutoff %v): %v %q", i, docs[i].StageTime, cut, it.Outcome, it.Reason)
		}
	}
	st := s.Snapshot()
	if st.TooOld != int64(old) || f.Count("fake") != len(docs)-old {
		t.Fatalf("too old %d (want %d), stored %d", st.TooOld, old, f.Count("fake"))
	}
	if !strings.Contains(log.String(), "refused for good: too old") || !strings.Contains(log.String(), `{cluster="test"`) {
		t.Fatalf("log lacks stream and reason:\n%s", log)
	}
}

func TestOutOfOrderAndTooFarBehind(t *testing.T) {
	docs := testDocs(t, 400, 9)
	late, early := docs[300:], docs[:100] // hours apart
	for _, ordered := range []bool{true, false} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			f := lokifake.New(t, lokifake.Options{OrderedWrites: ordered})
			s, log := newTestSink(t, map[string]string{"url": f.URL, "labels": "job=kaudit"})
			deliver(t, s, itemsOf(late))
			items := itemsOf(early)
			deliver(t, s, items)
			if o := outcomes(items); o[sink.Rejected] != len(early) {
				t.Fatalf("outcomes %v", o)
			}
			reason := "entry too far behind"
			if ordered {
				reason = "out of order"
			}
			if st := s.Snapshot(); st.OutOfOrder != int64(len(early)) || !strings.Contains(log.String(), `entries of stream {job="kaudit"} refused for good: `+reason) {
				t.Fatalf("stats %+v\n%s", st, log)
			}
		})
	}
}

func TestStructuredMetadataFallback(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{DisallowStructuredMetadata: true})
	s, log := newTestSink(t, map[string]string{"url": f.URL})
	docs := testDocs(t, 90, 10) // rounds in time order, as Fluent Bit sends them
	for round := 0; round < 3; round++ {
		items := itemsOf(docs[round*30 : (round+1)*30])
		deliver(t, s, items)
		if o := outcomes(items); o[sink.Delivered] != 30 {
			t.Fatalf("round %d outcomes %v", round, o)
		}
	}
	if n := f.Count("fake"); n != 90 {
		t.Fatalf("stored %d", n)
	}
	for _, st := range f.Streams("fake") {
		for _, e := range st.Entries {
			if len(e.Metadata) != 0 {
				t.Fatal("metadata stored")
			}
		}
	}
	if c := log.Count("refuses structured metadata"); c != 1 {
		t.Fatalf("said %d times:\n%s", c, log)
	}
	if !s.Snapshot().MetadataOff {
		t.Fatal("MetadataOff not set")
	}
}

func TestLineTooLongAndOther400(t *testing.T) {
	docs := testDocs(t, 200, 13)
	max := 0
	for _, d := range docs {
		max = max0(max, len(d.Body))
	}
	limit := max - 1
	f := lokifake.New(t, lokifake.Options{MaxLineSize: limit})
	s, log := newTestSink(t, map[string]string{"url": f.URL})
	items := itemsOf(docs)
	deliver(t, s, items)
	long := 0
	for i, it := range items {
		if len(docs[i].Body) > limit {
			long++
			if it.Outcome != sink.Rejected || !strings.Contains(it.Reason, "line too long") {
				t.Fatalf("long line: %v %q", it.Outcome, it.Reason)
			}
		} else if it.Outcome != sink.Delivered {
			t.Fatalf("short line: %v %q", it.Outcome, it.Reason)
		}
	}
	if long == 0 || f.Count("fake") != len(docs)-long {
		t.Fatalf("long %d stored %d", long, f.Count("fake"))
	}

	f.FailNext(1, 400, "error parsing labels '{x' with error: something new")
	items = itemsOf(testDocs(t, 5, 14))
	deliver(t, s, items)
	if o := outcomes(items); o[sink.Rejected] != 5 {
		t.Fatalf("other 400 outcomes %v", o)
	}
	if !strings.Contains(log.String(), "something new") {
		t.Fatalf("server message not logged:\n%s", log)
	}
}

func max0(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func TestTooLargeRequestIsHalved(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{})
	s, _ := newTestSink(t, map[string]string{"url": f.URL})
	f.FailNext(2, 413, "Request body too large")
	items := itemsOf(testDocs(t, 64, 15))
	deliver(t, s, items)
	if o := outcomes(items); o[sink.Delivered] != 64 || f.Count("fake") != 64 {
		t.Fatalf("outcomes %v stored %d", o, f.Count("fake"))
	}
	if st := s.Snapshot(); st.Split < 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrentDeliver(t *testing.T) {
	// The 800 generated events span 24h; real chunks of concurrent workers
	// are seconds apart, so widen Loki's 1h out-of-order window here.
	f := lokifake.New(t, lokifake.Options{MaxChunkAge: 72 * time.Hour})
	s, _ := newTestSink(t, map[string]string{"url": f.URL, "batch_max_bytes": "16K"})
	docs := testDocs(t, 800, 16)
	var wg sync.WaitGroup
	const workers = 8
	all := make([][]sink.Item, workers)
	for w := 0; w < workers; w++ {
		all[w] = itemsOf(docs[w*100 : (w+1)*100])
		wg.Add(1)
		go func(items []sink.Item) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
			defer cancel()
			s.Deliver(ctx, items)
		}(all[w])
	}
	wg.Wait()
	for _, items := range all {
		if o := outcomes(items); o[sink.Delivered] != len(items) {
			t.Fatalf("outcomes %v", o)
		}
	}
	if n := f.Count("fake"); n != len(docs) {
		t.Fatalf("stored %d", n)
	}
}

func TestLogfmtAndRequestReceivedTimestamp(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{})
	s, _ := newTestSink(t, map[string]string{"url": f.URL, "line_format": "logfmt",
		"timestamp_field": "requestReceivedTimestamp", "structured_metadata": "none", "labels": "job=audit, verb"})
	docs := testDocs(t, 20, 17)
	deliver(t, s, itemsOf(docs))
	want := map[string]time.Time{}
	for _, d := range docs {
		want[string(appendLogfmt(nil, s.cfg.LogfmtFields, &d, &s.env))] = d.Event.RequestReceivedTimestamp.Time
	}
	n := 0
	for _, st := range f.Streams("fake") {
		if st.Pairs["job"] != "audit" || len(st.Pairs) != 2 {
			t.Fatalf("labels %s", st.Labels)
		}
		for _, e := range st.Entries {
			n++
			ts, ok := want[e.Line]
			if !ok || !ts.Equal(e.Timestamp) || len(e.Metadata) != 0 {
				t.Fatalf("entry %q at %v (want %v) metadata %v", e.Line, e.Timestamp, ts, e.Metadata)
			}
			if !strings.Contains(e.Line, "audit_id=") || !strings.Contains(e.Line, "verb=") {
				t.Fatalf("logfmt line %q", e.Line)
			}
		}
	}
	if n != 20 {
		t.Fatalf("stored %d", n)
	}
}

func TestAuthHeadersAndTLS(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{})
	srv := httptest.NewTLSServer(f.Config.Handler)
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("s3cret-token\n"), 0o600)

	s, _ := newTestSink(t, map[string]string{"url": srv.URL, "tls_ca_file": ca, "tls_server_name": "example.com", "bearer_token_file": tok})
	deliver(t, s, itemsOf(testDocs(t, 3, 18)))
	s2, _ := newTestSink(t, map[string]string{"url": srv.URL, "tls_verify": "off", "http_user": "u", "http_passwd": "p"})
	deliver(t, s2, itemsOf(testDocs(t, 3, 19)))
	// Verification on and no CA: the push fails (kept for retry).
	s3, _ := newTestSink(t, map[string]string{"url": srv.URL, "retry_max_wait": "0"})
	items := itemsOf(testDocs(t, 3, 20))
	deliver(t, s3, items)
	if o := outcomes(items); o[sink.Retry] != 3 {
		t.Fatalf("unverified TLS outcomes %v", o)
	}
	p := f.Pushes()
	if len(p) != 2 {
		t.Fatalf("%d pushes", len(p))
	}
	if got := p[0].Header.Get("Authorization"); got != "Bearer s3cret-token" {
		t.Fatalf("bearer header %q", got)
	}
	if got := p[1].Header.Get("Authorization"); got != "Basic dTpw" {
		t.Fatalf("basic header %q", got)
	}
	if p[0].ContentType != "application/x-protobuf" || p[0].Encoding != "" {
		t.Fatalf("content type %q encoding %q", p[0].ContentType, p[0].Encoding)
	}
	_ = tls.VersionTLS12
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := jsonDecode(resp, v); err != nil {
		t.Fatal(err)
	}
}

// TestLostResponseResendIsDeduplicated: Loki stores a request but the
// answer is lost (a 503 from a proxy after forwarding); the sink sends the
// same bytes again and Loki drops the copies.
func TestLostResponseResendIsDeduplicated(t *testing.T) {
	f := lokifake.New(t, lokifake.Options{})
	var n atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			f.Config.Handler.ServeHTTP(httptest.NewRecorder(), r)              // stored…
			http.Error(w, "upstream timed out", http.StatusServiceUnavailable) // …answer lost
			return
		}
		f.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	s, _ := newTestSink(t, map[string]string{"url": front.URL})
	items := itemsOf(testDocs(t, 50, 21))
	deliver(t, s, items)
	if o := outcomes(items); o[sink.Delivered] != 50 {
		t.Fatalf("outcomes %v", o)
	}
	p := f.Pushes()
	if len(p) != 2 || len(p[0].Streams) != len(p[1].Streams) {
		t.Fatalf("%d pushes", len(p))
	}
	for i := range p[0].Streams {
		for j := range p[0].Streams[i].Entries {
			if p[0].Streams[i].Entries[j].Line != p[1].Streams[i].Entries[j].Line {
				t.Fatal("re-sent line differs")
			}
		}
	}
	if f.Count("fake") != 50 || f.Stats().Duplicates != 50 {
		t.Fatalf("stored %d duplicates dropped %d", f.Count("fake"), f.Stats().Duplicates)
	}
}
