package e2e

// End-to-end tests of `output loki`: out_kaudit.so driven by the C host
// pushes the sample audit log into a real VictoriaLogs (Apache-2.0, speaks
// Loki's push protocol), directly and through a loopback fault proxy, and
// the entries are read back with LogsQL. No Grafana Loki code is used.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/plugin/sink/loki"
	"github.com/kaudit/kaudit/test/auditgen"
	"github.com/kaudit/kaudit/test/hosttest"
	"github.com/kaudit/kaudit/test/servers"
)

// lokiSampleLog is the sample audit log every e2e test pushes.
func lokiSampleLog(t *testing.T) string {
	return filepath.Join(hosttest.RepoRoot(t), "test", "testdata", "audit.log")
}

// lokiCommon are the pipeline keys both runs (loki and stdout) share, so
// their documents are the same.
var lokiCommon = []hosttest.KV{{Key: "Name", Value: "kaudit"}, {Key: "Match", Value: "*"},
	{Key: "Stats_Interval", Value: "0"}, {Key: "Cluster", Value: "e2e"}, {Key: "Node", Value: "node-a"}}

func lokiProps(t *testing.T, dir, pushURL string, extra ...hosttest.KV) string {
	kv := append(append([]hosttest.KV{}, lokiCommon...), hosttest.KV{Key: "Output", Value: "loki"}, hosttest.KV{Key: "Url", Value: pushURL})
	return hosttest.WriteProps(t, dir, append(kv, extra...))
}

// lokiStdoutLines runs the sample log through the stdout sink and returns
// the lines it printed: what the loki sink must ship, byte for byte.
func lokiStdoutLines(t *testing.T, so string) []string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "stdout.jsonl")
	kv := append(append([]hosttest.KV{}, lokiCommon...), hosttest.KV{Key: "Output", Value: "stdout"}, hosttest.KV{Key: "Path", Value: out})
	props := hosttest.WriteProps(t, dir, kv)
	res := hosttest.Run(t, "-q", "-p", so, "-i", props, "tail", "0", "kube.audit", lokiSampleLog(t), "250")
	require.Equal(t, 0, res.ExitCode, res.Dump())
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, lines)
	return lines
}

// lokiCheckStored compares what VictoriaLogs holds with the stdout lines:
// exact count, line bytes, stream labels, structured metadata, time. With
// exact false lines are matched by auditID and stage only: with several
// workers the detection stage's correlations (e.g. a burst rule) see the
// chunks in another order than a single-threaded stdout run, so a few
// events carry different alerts.
func lokiCheckStored(t *testing.T, vl *servers.VictoriaLogs, want []string, exact bool) {
	t.Helper()
	n, err := vl.Count(`{job="kaudit"}`)
	require.NoError(t, err)
	require.Equal(t, len(want), n, "entries stored")
	rows, err := vl.Query(`{job="kaudit"} | sort by (_time)`, 0)
	require.NoError(t, err)
	require.Len(t, rows, len(want))
	key := func(line string) string {
		if exact {
			return line
		}
		var id struct{ AuditID, Stage string }
		require.NoError(t, json.Unmarshal([]byte(line), &id))
		return id.AuditID + "/" + id.Stage
	}
	wantSet := map[string]int{}
	for _, l := range want {
		wantSet[key(l)]++
	}
	for _, row := range rows {
		line := row["_msg"]
		require.Positive(t, wantSet[key(line)], "stored line is not a stdout line (or stored twice): %.200s", line)
		wantSet[key(line)]--
		var doc struct {
			AuditID   string   `json:"auditID"`
			Verb      string   `json:"verb"`
			Level     string   `json:"level"`
			StageTS   string   `json:"stageTimestamp"`
			SourceIPs []string `json:"sourceIPs"`
			User      struct{ Username string }
			ObjectRef *struct{ Resource, Namespace string }
			Kaudit    struct {
				Cluster, Node    string
				Source           struct{ IP string }
				CriticalWorkload bool `json:"critical_workload"`
			}
		}
		require.NoError(t, json.Unmarshal([]byte(line), &doc))
		labels := map[string]string{"job": "kaudit", "cluster": "e2e", "node": "node-a", "verb": doc.Verb,
			"level": doc.Level, "critical": fmt.Sprint(doc.Kaudit.CriticalWorkload)}
		if doc.ObjectRef != nil {
			labels["resource"], labels["namespace"] = doc.ObjectRef.Resource, doc.ObjectRef.Namespace
		}
		var parts []string
		for k, v := range labels {
			if v != "" {
				parts = append(parts, fmt.Sprintf("%s=%q", k, v))
			}
		}
		sort.Strings(parts)
		require.Equal(t, "{"+strings.Join(parts, ",")+"}", row["_stream"], "stream labels of %s", doc.AuditID)
		require.Equal(t, doc.AuditID, row["audit_id"], "structured metadata audit_id")
		require.Equal(t, doc.User.Username, row["user"], "structured metadata user")
		ip := doc.Kaudit.Source.IP
		if ip == "" && len(doc.SourceIPs) > 0 {
			ip = doc.SourceIPs[0]
		}
		require.Equal(t, ip, row["source_ip"], "structured metadata source_ip")
		st, err := time.Parse(time.RFC3339Nano, doc.StageTS)
		require.NoError(t, err)
		got, err := time.Parse(time.RFC3339Nano, row["_time"])
		require.NoError(t, err)
		require.True(t, st.Equal(got), "entry time %s, stageTimestamp %s", row["_time"], doc.StageTS)
	}
}

func lokiRequireNoDrops(t *testing.T, res hosttest.Result) {
	t.Helper()
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.Empty(t, res.Drops, res.Dump())
	require.NotNil(t, res.Summary)
	require.Equal(t, 0, res.Summary.DroppedChunks, res.Dump())
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, res.Dump())
}

func TestLokiSampleLogIntoVictoriaLogs(t *testing.T) {
	vl := servers.StartVictoriaLogs(t)
	p := hosttest.Build(t)
	want := lokiStdoutLines(t, p.Plugin)

	for _, format := range []string{"protobuf", "json"} {
		t.Run(format, func(t *testing.T) {
			// One VictoriaLogs tenant per format keeps the two runs apart.
			tenant := map[string]string{"protobuf": "0:0", "json": "7:0"}[format]
			dir := t.TempDir()
			props := lokiProps(t, dir, vl.PushURL(), hosttest.KV{Key: "Format", Value: format},
				hosttest.KV{Key: "Tenant_ID", Value: tenant})
			res := hosttest.Run(t, "-q", "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", lokiSampleLog(t), "250")
			lokiRequireNoDrops(t, res)
			require.Zero(t, res.Summary.Retry, res.Dump())
			if tenant == "0:0" {
				lokiCheckStored(t, vl, want, true)
			} else {
				n, err := vl.CountTenant(tenant, `{job="kaudit"}`)
				require.NoError(t, err)
				require.Equal(t, len(want), n)
				rows, err := vl.QueryTenant(tenant, `{job="kaudit"}`, 0)
				require.NoError(t, err)
				got := map[string]bool{}
				for _, r := range rows {
					got[r["_msg"]] = true
				}
				for _, l := range want {
					require.True(t, got[l], "json push lost or altered %.200s", l)
				}
			}
		})
	}
}

// lokiFaultProxy is a loopback HTTP proxy in front of a server that can
// refuse connections (its listener closed), delay requests and answer
// 429/503 instead of forwarding.
type lokiFaultProxy struct {
	*portSwitch
	target *url.URL
	rp     *httputil.ReverseProxy

	mu     sync.Mutex
	script []lokiFault // consumed one per request

	requests, forwarded, faulted atomic.Int64
}

type lokiFault struct {
	status int           // 0: forward
	delay  time.Duration // before answering / forwarding
}

func lokiStartProxy(t *testing.T, target string) *lokiFaultProxy {
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &lokiFaultProxy{target: u, rp: httputil.NewSingleHostReverseProxy(u)}
	p.portSwitch = newPortSwitch(t, http.HandlerFunc(p.handle))
	return p
}

func (p *lokiFaultProxy) setScript(s ...lokiFault) {
	p.mu.Lock()
	p.script = s
	p.mu.Unlock()
}

func (p *lokiFaultProxy) handle(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	var f lokiFault
	if len(p.script) > 0 {
		f, p.script = p.script[0], p.script[1:]
	}
	p.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.status != 0 {
		p.faulted.Add(1)
		io.Copy(io.Discard, r.Body)
		if f.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		http.Error(w, http.StatusText(f.status), f.status)
		return
	}
	p.forwarded.Add(1)
	p.rp.ServeHTTP(w, r)
}

// TestLokiFaultProxyLosesNothing pushes the sample log while the proxy
// refuses connections, then answers 503s and 429s and delays requests:
// every entry arrives exactly once (VictoriaLogs keeps duplicates, so an
// exact count also proves a failed request stored nothing twice).
func TestLokiFaultProxyLosesNothing(t *testing.T) {
	vl := servers.StartVictoriaLogs(t)
	p := hosttest.Build(t)
	want := lokiStdoutLines(t, p.Plugin)
	proxy := lokiStartProxy(t, vl.URL)
	var script []lokiFault
	for i := 0; i < 40; i++ {
		switch i % 5 {
		case 0:
			script = append(script, lokiFault{status: 503})
		case 1:
			script = append(script, lokiFault{status: 429})
		case 2:
			script = append(script, lokiFault{delay: 300 * time.Millisecond})
		case 3:
			script = append(script, lokiFault{status: 502, delay: 100 * time.Millisecond})
		}
	}
	proxy.setScript(script...)
	proxy.Off() // refused until the timer below
	go func() {
		time.Sleep(1500 * time.Millisecond)
		proxy.On()
	}()

	dir := t.TempDir()
	props := lokiProps(t, dir, proxy.URL()+"/insert/loki/api/v1/push",
		hosttest.KV{Key: "Retry_Max_Wait", Value: "400ms"}, hosttest.KV{Key: "Timeout", Value: "2s"},
		hosttest.KV{Key: "Batch_Max_Bytes", Value: "64K"})
	res := hosttest.Run(t, "-q", "-r", "-1", "-d", "200", "-w", "2", "-p", p.Plugin, "-i", props,
		"tail", "0", "kube.audit", lokiSampleLog(t), "250")
	lokiRequireNoDrops(t, res)
	require.Positive(t, res.Summary.Retry, "the faults never reached Fluent Bit's retry path\n%s", res.Dump())
	require.Positive(t, proxy.faulted.Load())
	t.Logf("proxy: %d requests, %d faulted, %d forwarded; host: %d flushes, %d FLB_RETRY",
		proxy.requests.Load(), proxy.faulted.Load(), proxy.forwarded.Load(), res.Summary.Flushes, res.Summary.Retry)
	lokiCheckStored(t, vl, want, false)
}

// lokiDocs are generated events as documents (the sink's input).
func lokiDocs(b testing.TB, n int, profile string) []filter.Document {
	lines := auditgen.Generate(auditgen.Options{Seed: 3, Events: n, Profile: profile})
	docs := make([]filter.Document, len(lines))
	for i, l := range lines {
		var a auditv1.Event
		if err := json.Unmarshal(l, &a); err != nil {
			b.Fatal(err)
		}
		ev := &filter.Event{Event: a}
		ev.Kaudit.Cluster, ev.Kaudit.Node = "bench", "node-a"
		if len(a.SourceIPs) > 0 {
			ev.Kaudit.Source.IP = a.SourceIPs[0]
		}
		docs[i] = filter.NewDocument(ev, nil)
	}
	return docs
}

// BenchmarkLokiPushVictoriaLogs measures encode + push into the real
// server: events/s and bytes per event on the wire (after snappy / as JSON).
// The sent cache is off: the 2000 documents are pushed over and over.
func BenchmarkLokiPushVictoriaLogs(b *testing.B) {
	for _, bc := range []struct{ format, profile string }{{"protobuf", "mix"}, {"json", "mix"}, {"protobuf", "metadata"}} {
		b.Run(bc.format+"/"+bc.profile, func(b *testing.B) {
			vl := servers.StartVictoriaLogs(b)
			docs := lokiDocs(b, 2000, bc.profile)
			log := flblog.NewTo(io.Discard, &sync.Mutex{}, "bench", flblog.Error)
			s, err := loki.NewSink(config.MapProps("bench", map[string]string{"url": vl.PushURL(), "format": bc.format,
				"sent_cache_entries": "0"}),
				sink.Env{Instance: "bench", Log: log})
			require.NoError(b, err)
			defer s.Close()
			const chunk = 500
			items := make([]sink.Item, chunk)
			b.ResetTimer()
			events := 0
			for i := 0; i < b.N; i++ {
				off := (i * chunk) % len(docs)
				for j := range items {
					items[j] = sink.Item{Doc: docs[(off+j)%len(docs)]}
				}
				if err := s.Deliver(context.Background(), items); err != nil {
					b.Fatal(err)
				}
				for j := range items {
					if items[j].Outcome != sink.Delivered {
						b.Fatalf("item %d: %v %s", j, items[j].Outcome, items[j].Reason)
					}
				}
				events += chunk
			}
			b.StopTimer()
			st := s.Snapshot()
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(st.WireBytes)/float64(events), "wire-bytes/event")
			raw := 0
			for _, d := range docs {
				raw += len(d.Body)
			}
			b.ReportMetric(float64(raw)/float64(len(docs)), "line-bytes/event")
		})
	}
}
