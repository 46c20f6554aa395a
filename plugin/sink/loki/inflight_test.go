package loki

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/test/lokifake"
)

// max_in_flight bounds the push requests in flight across concurrent
// flushes; within one flush requests go one after another.
func TestMaxInFlight(t *testing.T) {
	for _, limit := range []int{1, 2} {
		t.Run(fmt.Sprint("max_in_flight=", limit), func(t *testing.T) {
			// Concurrent flushes push a stream's entries out of order, which
			// Loki's unordered writes accept within max_chunk_age/2; the test
			// data spans a day, so the window is widened.
			f := lokifake.New(t, lokifake.Options{MaxChunkAge: 96 * time.Hour})
			target, _ := url.Parse(f.URL)
			proxy := httputil.NewSingleHostReverseProxy(target)
			var now, peak atomic.Int64
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := now.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(30 * time.Millisecond)
				proxy.ServeHTTP(w, r)
				now.Add(-1)
			}))
			t.Cleanup(front.Close)
			s, _ := newTestSink(t, map[string]string{"url": front.URL, "batch_max_bytes": "8K", "max_in_flight": fmt.Sprint(limit)})
			docs := testDocs(t, 120, 3)
			var wg sync.WaitGroup
			for w := 0; w < 3; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					its := itemsOf(docs[w*40 : (w+1)*40])
					deliver(t, s, its)
					if o := outcomes(its); o[sink.Delivered] != 40 {
						t.Errorf("outcomes %v", o)
					}
				}()
			}
			wg.Wait()
			if n := f.Count("fake"); n != len(docs) {
				t.Fatalf("stored %d entries, want %d", n, len(docs))
			}
			if got := peak.Load(); got != int64(limit) {
				t.Fatalf("%d push requests in flight at once, want %d", got, limit)
			}
		})
	}
}
