package e2e

// End-to-end tests of the elasticsearch sink: out_kaudit.so driven by the
// C host (as Fluent Bit drives it) against a real OpenSearch 2.19 node,
// directly and through a loopback fault proxy. Helpers are prefixed es.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/plugin/sink/elasticsearch"
	"github.com/kaudit/kaudit/test/auditgen"
	"github.com/kaudit/kaudit/test/esfake"
	"github.com/kaudit/kaudit/test/hosttest"
	"github.com/kaudit/kaudit/test/servers"
)

// esProps writes an [OUTPUT] section for the elasticsearch sink.
func esProps(t *testing.T, dir, hosts string, extra ...hosttest.KV) string {
	t.Helper()
	kv := []hosttest.KV{
		{Key: "Name", Value: "kaudit"}, {Key: "Match", Value: "*"},
		{Key: "Output", Value: "elasticsearch"}, {Key: "Hosts", Value: hosts},
		{Key: "Stats_Interval", Value: "0"},
	}
	return hosttest.WriteProps(t, dir, append(kv, extra...))
}

// esLines generates n audit events as JSON lines and writes them to a
// log file; it returns the file and the distinct document ids.
func esLines(t *testing.T, dir string, seed int64, n int) (string, map[string]bool) {
	t.Helper()
	lines := auditgen.Generate(auditgen.Options{Seed: seed, Events: n, Profile: "mix"})
	ids := map[string]bool{}
	var buf bytes.Buffer
	for _, l := range lines {
		ids[esIDOf(t, l)] = true
		buf.Write(l)
		buf.WriteByte('\n')
	}
	return hosttest.WriteFile(t, dir, "audit-*.log", buf.Bytes()), ids
}

func esIDOf(t *testing.T, line []byte) string {
	var ev struct{ AuditID, Stage string }
	require.NoError(t, json.Unmarshal(line, &ev))
	return ev.AuditID + "-" + ev.Stage
}

// esWriteLog writes lines to a new log file.
func esWriteLog(t *testing.T, dir string, lines ...[]byte) string {
	return hosttest.WriteFile(t, dir, "audit-*.log", append(bytes.Join(lines, []byte("\n")), '\n'))
}

// esEdit returns line with fields replaced (top-level keys).
func esEdit(t *testing.T, line []byte, set map[string]any) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(line, &m))
	for k, v := range set {
		m[k] = v
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// esGet does a request against the node and decodes the JSON answer.
func esGet(t *testing.T, os *servers.OpenSearch, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		b, err = json.Marshal(body)
		require.NoError(t, err)
	}
	st, resp, err := os.Do(method, path, b)
	require.NoError(t, err)
	var m map[string]any
	json.Unmarshal(resp, &m)
	return st, m
}

// esIDs returns every document id in index (a pattern), by scrolling.
func esIDs(t *testing.T, node *servers.OpenSearch, index string) []string {
	t.Helper()
	require.NoError(t, node.Refresh(index))
	st, m := esGet(t, node, "POST", "/"+index+"/_search?scroll=1m", map[string]any{"size": 5000, "_source": false, "sort": []string{"_doc"}})
	require.Equal(t, 200, st, "%v", m)
	var ids []string
	for {
		hits := m["hits"].(map[string]any)["hits"].([]any)
		if len(hits) == 0 {
			break
		}
		for _, h := range hits {
			ids = append(ids, h.(map[string]any)["_id"].(string))
		}
		st, m = esGet(t, node, "POST", "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": m["_scroll_id"]})
		require.Equal(t, 200, st, "%v", m)
	}
	sort.Strings(ids)
	return ids
}

func esSorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// esRun runs the host and checks nothing was dropped.
func esRun(t *testing.T, args ...string) hosttest.Result {
	t.Helper()
	res := hosttest.RunWith(t, hosttest.RunOptions{Timeout: 5 * time.Minute}, args...)
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.NotNil(t, res.Summary, res.Dump())
	require.Zero(t, res.Summary.DroppedChunks, res.Dump())
	require.NotContains(t, res.Stderr, "panic")
	return res
}

// esMappingType digs the type of a dotted field out of a _mapping answer.
func esMappingType(m map[string]any, index, field string) string {
	var cur any = m[index].(map[string]any)["mappings"]
	for _, part := range strings.Split(field, ".") {
		props, _ := cur.(map[string]any)["properties"].(map[string]any)
		if props == nil {
			return ""
		}
		cur = props[part]
		if cur == nil {
			return ""
		}
	}
	mm := cur.(map[string]any)
	if e, ok := mm["enabled"].(bool); ok && !e {
		return "disabled"
	}
	if t, ok := mm["type"].(string); ok {
		return t
	}
	return "object"
}

// TestESTemplateMappingAndDataStream: the template is installed at init,
// documents land with the mapping intended, bodies of conflicting shapes
// are both taken, and data_stream mode creates the data stream.
func TestESTemplateMappingAndDataStream(t *testing.T) {
	p := hosttest.Build(t)
	node := servers.SharedOpenSearch(t)
	dir := t.TempDir()

	base := auditgen.Generate(auditgen.Options{Seed: 3, Events: 40, Profile: "mix"})
	set := func(i int, id string, obj any) []byte {
		return esEdit(t, base[i], map[string]any{"auditID": id, "level": "RequestResponse", "requestObject": obj})
	}
	huge := strings.Repeat("x", 40000)
	log := esWriteLog(t, dir, append(base,
		set(0, "shape-string", map[string]any{"kind": "ConfigMap", "spec": "a string"}),
		set(1, "shape-object", map[string]any{"kind": "ConfigMap", "spec": map[string]any{"a": map[string]any{"b": 1}}}),
		set(2, "shape-array", map[string]any{"kind": "ConfigMap", "spec": []any{1, "two", map[string]any{"three": 3.5}}}),
		set(3, "shape-huge", map[string]any{"kind": "ConfigMap", "data": map[string]any{"big": huge}}),
	)...)
	props := esProps(t, dir, node.URL, hosttest.KV{Key: "Index", Value: "kaudit-e2e-map-%Y.%m.%d"},
		hosttest.KV{Key: "Dead_Letter_Index", Value: "kaudit-e2e-map-dead-letter"})
	res := esRun(t, "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", log, "20")
	assert.Contains(t, res.Stderr, "engine: OpenSearch 2.19", res.Dump())
	assert.Contains(t, res.Stderr, "bodies mapped as flat_object")
	assert.Contains(t, res.Stderr, `installed index template "kaudit-e2e-map"`)
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, res.Dump())

	// OpenSearch 2.19's flat_object has no ignore_above: a leaf value over
	// Lucene's 32766-byte term limit fails the document. It is not lost:
	// it lands in the dead-letter index with the engine's reason.
	require.Equal(t, len(base)+3, node.Count("kaudit-e2e-map-*.*.*"), res.Dump())
	require.Equal(t, 1, node.Count("kaudit-e2e-map-dead-letter"))
	st, dl := esGet(t, node, "POST", "/kaudit-e2e-map-dead-letter/_search", nil)
	require.Equal(t, 200, st)
	dlSrc := dl["hits"].(map[string]any)["hits"].([]any)[0].(map[string]any)["_source"].(map[string]any)
	assert.Contains(t, dlSrc["error"].(map[string]any)["reason"], "immense term")
	assert.Contains(t, dlSrc["event"], `"auditID":"shape-huge"`)

	st, tpl := esGet(t, node, "GET", "/_index_template/kaudit-e2e-map", nil)
	require.Equal(t, 200, st, "%v", tpl)

	st, mapping := esGet(t, node, "GET", "/kaudit-e2e-map-*.*.*/_mapping", nil)
	require.Equal(t, 200, st)
	require.NotEmpty(t, mapping)
	for index := range mapping {
		for field, want := range map[string]string{
			"auditID": "keyword", "verb": "keyword", "user.username": "keyword", "user.groups": "keyword",
			"objectRef.namespace": "keyword", "objectRef.resource": "keyword", "sourceIPs": "ip",
			"requestReceivedTimestamp": "date", "stageTimestamp": "date", "@timestamp": "date",
			"requestObject": "flat_object", "responseObject": "flat_object", "annotations": "flat_object",
			"responseStatus.code": "integer", "kaudit.latency_ms": "float", "kaudit.source.ip": "ip",
			"kaudit.actor.name": "keyword", "kaudit.slow": "boolean", "kaudit.object.namespace": "keyword",
		} {
			assert.Equal(t, want, esMappingType(mapping, index, field), "%s in %s", field, index)
		}
	}
	// The conflicting shapes all arrived.
	for _, id := range []string{"shape-string", "shape-object", "shape-array"} {
		st, m := esGet(t, node, "POST", "/kaudit-e2e-map-*/_search", map[string]any{"query": map[string]any{"term": map[string]any{"auditID": id}}})
		require.Equal(t, 200, st)
		assert.EqualValues(t, 1, m["hits"].(map[string]any)["total"].(map[string]any)["value"], id)
	}
	// flat_object answers a dotted query inside a body.
	st, m := esGet(t, node, "POST", "/kaudit-e2e-map-*/_search", map[string]any{"query": map[string]any{"term": map[string]any{"requestObject.spec.a.b": "1"}}})
	require.Equal(t, 200, st, "%v", m)
	assert.EqualValues(t, 1, m["hits"].(map[string]any)["total"].(map[string]any)["value"])

	t.Run("body_mapping disabled takes any value", func(t *testing.T) {
		props := esProps(t, dir, node.URL, hosttest.KV{Key: "Index", Value: "kaudit-e2e-nobody-%Y.%m.%d"},
			hosttest.KV{Key: "Body_Mapping", Value: "disabled"})
		res := esRun(t, "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", log, "20")
		require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, res.Dump())
		assert.NotContains(t, res.Stderr, "rejected by the engine")
		require.Equal(t, len(base)+4, node.Count("kaudit-e2e-nobody-*"), res.Dump())
		st, mapping := esGet(t, node, "GET", "/kaudit-e2e-nobody-*/_mapping", nil)
		require.Equal(t, 200, st)
		for index := range mapping {
			assert.Equal(t, "disabled", esMappingType(mapping, index, "requestObject"), index)
			assert.Equal(t, "ip", esMappingType(mapping, index, "sourceIPs"), index)
		}
	})

	t.Run("data stream", func(t *testing.T) {
		ds := "logs-kaudit.e2e-default"
		props := esProps(t, dir, node.URL, hosttest.KV{Key: "Data_Stream", Value: ds})
		log, ids := esLines(t, dir, 11, 300)
		res := esRun(t, "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", log, "100")
		assert.Contains(t, res.Stderr, `data stream "`+ds+`"`, res.Dump())
		st, m := esGet(t, node, "GET", "/_data_stream/"+ds, nil)
		require.Equal(t, 200, st, "%v", m)
		require.Len(t, m["data_streams"], 1)
		assert.Equal(t, len(ids), node.Count(ds))
		assert.Equal(t, esSorted(ids), esIDs(t, node, ds))
		st, mapping := esGet(t, node, "GET", "/"+ds+"/_mapping", nil)
		require.Equal(t, 200, st)
		for index := range mapping {
			assert.Equal(t, "ip", esMappingType(mapping, index, "sourceIPs"), index)
			assert.Equal(t, "flat_object", esMappingType(mapping, index, "requestObject"), index)
		}
	})
}

// TestESExactlyOnce: 10,000 events, then the same chunks again (as after
// a Fluent Bit restart): _count equals the distinct events, ids match.
func TestESExactlyOnce(t *testing.T) {
	p := hosttest.Build(t)
	node := servers.SharedOpenSearch(t)
	dir := t.TempDir()
	log, ids := esLines(t, dir, 21, 10000)
	props := esProps(t, dir, node.URL, hosttest.KV{Key: "Index", Value: "kaudit-e2e-once-%Y.%m.%d"}, hosttest.KV{Key: "Compress", Value: "gzip"})

	first := esRun(t, "-p", p.Plugin, "-w", "2", "-i", props, "tail", "0", "kube.audit", log, "500")
	require.Equal(t, first.Summary.Chunks, first.Summary.OKChunks, first.Dump())
	require.Equal(t, len(ids), node.Count("kaudit-e2e-once-*"))

	again := esRun(t, "-p", p.Plugin, "-w", "2", "-i", props, "tail", "0", "kube.audit", log, "500")
	require.Equal(t, again.Summary.Chunks, again.Summary.OKChunks, again.Dump())
	require.Equal(t, len(ids), node.Count("kaudit-e2e-once-*"))
	require.Equal(t, esSorted(ids), esIDs(t, node, "kaudit-e2e-once-*"))
	t.Logf("%d lines, %d distinct events; first run %v, re-delivery %v", 10000, len(ids), first.Duration, again.Duration)
}

// TestESDeadLetter: a document the engine rejects lands in the
// dead-letter index with the engine's own reason; the rest arrive.
func TestESDeadLetter(t *testing.T) {
	p := hosttest.Build(t)
	node := servers.SharedOpenSearch(t)
	dir := t.TempDir()
	base := auditgen.Generate(auditgen.Options{Seed: 5, Events: 10, Profile: "mix"})
	bad := esEdit(t, base[0], map[string]any{"auditID": "bad-ip", "sourceIPs": []string{"not-an-ip"}})
	log := esWriteLog(t, dir, append([][]byte{bad}, base[1:]...)...)
	props := esProps(t, dir, node.URL,
		hosttest.KV{Key: "Index", Value: "kaudit-e2e-dl-%Y.%m.%d"},
		hosttest.KV{Key: "Dead_Letter_Index", Value: "kaudit-e2e-dead-letter"})
	res := esRun(t, "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", log)
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, "a rejected document does not hold the chunk back: %s", res.Dump())
	assert.Contains(t, res.Stderr, "rejected by the engine")
	assert.Equal(t, len(base)-1, node.Count("kaudit-e2e-dl-*"))

	require.Equal(t, 1, node.Count("kaudit-e2e-dead-letter"))
	st, m := esGet(t, node, "POST", "/kaudit-e2e-dead-letter/_search", nil)
	require.Equal(t, 200, st)
	src := m["hits"].(map[string]any)["hits"].([]any)[0].(map[string]any)["_source"].(map[string]any)
	assert.EqualValues(t, 400, src["status"])
	errObj := src["error"].(map[string]any)
	assert.Equal(t, "mapper_parsing_exception", errObj["type"])
	assert.Contains(t, errObj["reason"], "failed to parse field [sourceIPs] of type [ip]")
	assert.Contains(t, errObj["reason"], "not-an-ip")
	assert.True(t, strings.HasPrefix(src["index"].(string), "kaudit-e2e-dl-"))
	var orig map[string]any
	require.NoError(t, json.Unmarshal([]byte(src["event"].(string)), &orig), "the original event, as a string")
	assert.Equal(t, "bad-ip", orig["auditID"])
	assert.Equal(t, []any{"not-an-ip"}, orig["sourceIPs"])
	st, mapping := esGet(t, node, "GET", "/kaudit-e2e-dead-letter/_mapping", nil)
	require.Equal(t, 200, st)
	assert.Equal(t, "text", esMappingType(mapping, "kaudit-e2e-dead-letter", "event"))

	// Sent again: nothing doubles, in either index.
	esRun(t, "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", log)
	assert.Equal(t, len(base)-1, node.Count("kaudit-e2e-dl-*"))
	assert.Equal(t, 1, node.Count("kaudit-e2e-dead-letter"))
}

// esFaultProxy sits between the plugin and the node and misbehaves on a
// schedule of bulk requests: delays past the client's timeout (after the
// node has indexed), whole-request 429 and 503, connections reset, and
// per-item 429s synthesised into the real response for items it did not
// forward. While Refuse is set, its port refuses connections.
type esFaultProxy struct {
	*portSwitch
	t      *testing.T
	target string
	delay  time.Duration

	bulkN  atomic.Int64
	counts sync.Map // fault → *atomic.Int64
}

func esStartFaultProxy(t *testing.T, target string, delay time.Duration) *esFaultProxy {
	p := &esFaultProxy{t: t, target: target, delay: delay}
	p.portSwitch = newPortSwitch(t, http.HandlerFunc(p.handle))
	return p
}

func (p *esFaultProxy) count(fault string) {
	v, _ := p.counts.LoadOrStore(fault, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Counts reports how often each fault was applied.
func (p *esFaultProxy) Counts() map[string]int64 {
	out := map[string]int64{}
	p.counts.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Int64).Load(); return true })
	return out
}

func (p *esFaultProxy) forward(method, path string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, p.target+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		ct := "application/json"
		if strings.Contains(path, "_bulk") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func (p *esFaultProxy) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(p.t, err)
		body, err = io.ReadAll(zr)
		require.NoError(p.t, err)
	}
	path := r.URL.RequestURI()
	if r.URL.Path != "/_bulk" {
		st, h, b, err := p.forward(r.Method, path, body)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		for _, k := range []string{"Content-Type", "X-Elastic-Product"} {
			if v := h.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(st)
		w.Write(b)
		return
	}
	n := p.bulkN.Add(1)
	switch n % 8 {
	case 1: // indexed by the node, but answered after the client gave up
		st, _, b, err := p.forward("POST", path, body)
		time.Sleep(p.delay)
		p.count("delay")
		if err == nil {
			w.WriteHeader(st)
			w.Write(b)
		}
		return
	case 2:
		p.count("429")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"type":"es_rejected_execution_exception","reason":"fault proxy: queue full"},"status":429}`)
		return
	case 3:
		p.count("503")
		w.WriteHeader(503)
		io.WriteString(w, "fault proxy: unavailable")
		return
	case 4: // reset the connection without an answer
		p.count("reset")
		if hj, ok := w.(http.Hijacker); ok {
			c, _, err := hj.Hijack()
			if err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Close()
				return
			}
		}
		w.WriteHeader(502)
		return
	case 5, 6: // forward every other item; synthesise 429 for the rest
		p.partial(w, path, body)
		return
	}
	st, h, b, err := p.forward("POST", path, body)
	if err != nil {
		w.WriteHeader(502)
		return
	}
	w.Header().Set("Content-Type", h.Get("Content-Type"))
	w.WriteHeader(st)
	w.Write(b)
}

func (p *esFaultProxy) partial(w http.ResponseWriter, path string, body []byte) {
	half, fwd, err := newBulkHalf(body)
	require.NoError(p.t, err)
	st, _, b, err := p.forward("POST", path, fwd)
	if err != nil || st != 200 {
		w.WriteHeader(502)
		return
	}
	out, n, err := half.answer(b)
	require.NoError(p.t, err)
	for ; n > 0; n-- {
		p.count("item429")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// TestESFaultProxyNothingLost: refused connections, answers later than
// the timeout, whole-request 429/503, resets and per-item 429s; with
// Fluent Bit's retries (no limit) every event arrives exactly once.
func TestESFaultProxyNothingLost(t *testing.T) {
	p := hosttest.Build(t)
	node := servers.SharedOpenSearch(t)
	dir := t.TempDir()
	proxy := esStartFaultProxy(t, node.URL, 1500*time.Millisecond)
	log, ids := esLines(t, dir, 31, 3000)
	props := esProps(t, dir, proxy.URL(),
		hosttest.KV{Key: "Index", Value: "kaudit-e2e-fault-%Y.%m.%d"},
		hosttest.KV{Key: "Timeout", Value: "1s"},
		hosttest.KV{Key: "Retry_Max_Wait", Value: "1s"},
		hosttest.KV{Key: "Compress", Value: "gzip"},
		hosttest.KV{Key: "Bulk_Max_Bytes", Value: "256K"})

	// Refused at start-up and for the first flushes; the port opens later.
	proxy.Off()
	go func() {
		time.Sleep(3 * time.Second)
		proxy.On()
	}()
	res := esRun(t, "-p", p.Plugin, "-r", "-1", "-d", "300", "-w", "2", "-i", props, "tail", "0", "kube.audit", log, "250")
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, res.Dump())
	assert.Greater(t, res.Summary.Retry, 0, "the faults made Fluent Bit retry")
	assert.Contains(t, res.Stderr, "connection refused")
	assert.NotContains(t, res.Stderr, "rejected by the engine", "the template was in place before the first document")
	counts := proxy.Counts()
	t.Logf("faults applied: %v; flushes %d (retry %d); %v", counts, res.Summary.Flushes, res.Summary.Retry, res.Duration)
	for _, f := range []string{"delay", "429", "503", "reset", "item429"} {
		assert.Positive(t, counts[f], f)
	}
	require.Equal(t, len(ids), node.Count("kaudit-e2e-fault-*"), res.Stderr)
	require.Equal(t, esSorted(ids), esIDs(t, node, "kaudit-e2e-fault-*"))
}

// TestESFakeElasticsearch: what OpenSearch cannot show, through the C
// host: an Elasticsearch 9 answer with X-Elastic-Product, TLS with a
// client certificate and an API key, and a 401 that names host and user
// but never the password.
func TestESFakeElasticsearch(t *testing.T) {
	p := hosttest.Build(t)
	dir := t.TempDir()
	ca := esfake.NewCA(t)
	_, crt, key := ca.Issue(t, true, "kaudit")
	apiKey := "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
	fake := esfake.Start(t, esfake.Options{Version: "9.1.2", APIKey: apiKey, TLS: ca.ServerTLS(t, true, "127.0.0.1")})
	log, ids := esLines(t, dir, 41, 200)
	props := esProps(t, dir, fake.URL,
		hosttest.KV{Key: "Api_Key", Value: apiKey},
		hosttest.KV{Key: "Tls_Ca_File", Value: ca.CAFile},
		hosttest.KV{Key: "Tls_Crt_File", Value: crt},
		hosttest.KV{Key: "Tls_Key_File", Value: key})
	res := esRun(t, "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", log, "50")
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, res.Dump())
	assert.Contains(t, res.Stderr, "engine: Elasticsearch 9.1.2")
	assert.Contains(t, res.Stderr, "bodies mapped as flattened")
	assert.NotContains(t, res.Stderr, apiKey)
	assert.Contains(t, string(fake.Template("kaudit")), `"flattened"`)
	got := map[string]bool{}
	for _, idx := range fake.Indices() {
		for id := range fake.Docs(idx) {
			got[id] = true
		}
	}
	assert.Equal(t, ids, got)

	t.Run("wrong password", func(t *testing.T) {
		fake := esfake.Start(t, esfake.Options{User: "kaudit-writer", Password: "right"})
		props := esProps(t, dir, fake.URL, hosttest.KV{Key: "Http_User", Value: "kaudit-writer"}, hosttest.KV{Key: "Http_Passwd", Value: "s3cret-wrong"})
		log := esWriteLog(t, dir, auditgen.Generate(auditgen.Options{Seed: 1, Events: 5, Profile: "mix"})...)
		res := hosttest.Run(t, "-p", p.Plugin, "-r", "2", "-i", props, "tail", "0", "kube.audit", log)
		require.Equal(t, 0, res.ExitCode, res.Dump())
		require.NotNil(t, res.Summary)
		assert.Equal(t, 3, res.Summary.Retry, "FLB_RETRY each time: %s", res.Dump())
		assert.Contains(t, res.Stderr, `refused user "kaudit-writer" with HTTP 401`)
		assert.Contains(t, res.Stderr, strings.TrimPrefix(fake.URL, "http://"))
		assert.NotContains(t, res.Stderr, "s3cret-wrong")
	})
	t.Run("bad settings fail init naming the key", func(t *testing.T) {
		props := esProps(t, dir, fake.URL, hosttest.KV{Key: "Index", Value: "Kaudit-%Y"})
		res := hosttest.Run(t, "-p", p.Plugin, "-i", props)
		assert.Equal(t, hosttest.ExitStartup, res.ExitCode, res.Dump())
		assert.Contains(t, res.Stderr, "invalid value for index")
	})
}

// BenchmarkESBulkOpenSearch: events/s through encode + bulk into the real
// node, and bytes per event on the wire, with and without gzip.
func BenchmarkESBulkOpenSearch(b *testing.B) {
	node := servers.SharedOpenSearch(b)
	lines := auditgen.Generate(auditgen.Options{Seed: 51, Events: 2000, Profile: "mix"})
	var docs []filter.Document
	var chunk []hosttest.Record
	for _, l := range lines {
		chunk = append(chunk, hosttest.Log(time.Now(), string(l)))
	}
	_, err := filter.DecodeChunk(hosttest.ChunkV2(chunk...), "kube.audit", "log", func(ev *filter.Event) {
		docs = append(docs, filter.NewDocument(ev, nil))
	}, func(filter.Malformed) {})
	require.NoError(b, err)
	require.NotEmpty(b, docs)

	for _, comp := range []string{"none", "gzip"} {
		b.Run("compress="+comp, func(b *testing.B) {
			idx := fmt.Sprintf("kaudit-bench-%s-%d", comp, time.Now().UnixNano())
			cfg, err := elasticsearch.ParseConfig(config.MapProps("bench", map[string]string{
				"hosts": node.URL, "index": idx, "compress": comp, "install_template": "on",
			}))
			require.NoError(b, err)
			s, err := elasticsearch.NewWithConfig(cfg, sink.Env{Instance: "bench"})
			require.NoError(b, err)
			defer s.Close()
			const batch = 500
			b.ResetTimer()
			events := 0
			for i := 0; i < b.N; i++ {
				items := make([]sink.Item, batch)
				for j := range items {
					d := docs[(i*batch+j)%len(docs)]
					d.ID = fmt.Sprintf("%s-%d", d.ID, i) // fresh ids: no 409 shortcut
					items[j].Doc = d
				}
				require.NoError(b, s.Deliver(context.Background(), items))
				events += batch
			}
			b.StopTimer()
			c := s.Counters()
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(c.WireBytes.Load())/float64(c.Docs.Load()), "wire-bytes/event")
			b.ReportMetric(float64(c.RawBytes.Load())/float64(c.Docs.Load()), "ndjson-bytes/event")
		})
	}
}
