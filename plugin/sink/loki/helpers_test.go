package loki

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/test/auditgen"
)

// testDocs turns n generated audit events into documents, with the
// enrichment the labels read.
func testDocs(t testing.TB, n int, seed int64) []filter.Document {
	t.Helper()
	lines := auditgen.Generate(auditgen.Options{Seed: seed, Events: n, Profile: auditgen.ProfileMix})
	docs := make([]filter.Document, 0, len(lines))
	for i, l := range lines {
		var a auditv1.Event
		if err := json.Unmarshal(l, &a); err != nil {
			t.Fatal(err)
		}
		ev := &filter.Event{Event: a}
		ev.Kaudit.Cluster = "test"
		ev.Kaudit.Node = "node-1"
		if len(a.SourceIPs) > 0 {
			ev.Kaudit.Source.IP = a.SourceIPs[0]
		}
		if i%7 == 0 {
			ev.Kaudit.Critical = []filter.CriticalMatch{{Name: "etcd", Severity: "high"}}
		}
		docs = append(docs, filter.NewDocument(ev, nil))
	}
	return docs
}

func itemsOf(docs []filter.Document) []sink.Item {
	items := make([]sink.Item, len(docs))
	for i := range docs {
		items[i] = sink.Item{Doc: docs[i]}
	}
	return items
}

// logBuf captures an instance log.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { return l.b.Write(p) }
func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
func (l *logBuf) Count(sub string) int { return strings.Count(l.String(), sub) }

func newTestSink(t testing.TB, props map[string]string) (*Sink, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	log := flblog.NewTo(lb, &lb.mu, "kaudit.0", flblog.Debug)
	s, err := NewSink(config.MapProps("kaudit.0", props), sink.Env{Instance: "kaudit.0", Log: log, Cluster: "env-cluster", Node: "env-node"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, lb
}

func outcomes(items []sink.Item) map[sink.Outcome]int {
	m := map[sink.Outcome]int{}
	for _, it := range items {
		m[it.Outcome]++
	}
	return m
}

var testDeadline = 20 * time.Second

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
