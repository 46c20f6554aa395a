package e2e

// The fault-injection matrix (issue 8): the C host drives out_kaudit.so
// as Fluent Bit does, with retries unbounded (Retry_Limit no_limits),
// through a loopback fault proxy in front of each sink's backend (a real
// OpenSearch node for elasticsearch, the Loki fake for loki). After each
// scenario every input event must be in the backend: exactly once in
// OpenSearch (count and ids), at least once with duplicates removed by
// the Loki fake's de-duplication (same stream, timestamp and line).
//
// Scenarios: backend down then back; slow backend beyond the request
// timeout (the backend stores, the client gives up and resends); a 429
// storm; mixed failures (per-item 429s in bulk answers, 503, resets);
// process killed in the middle of a flush and started again with the
// same chunks, as Fluent Bit re-delivers with storage.type filesystem.
//
// The matrix is printed in the test log (go test -v -run TestFaultMatrix
// ./test/e2e/) and reported in docs/reliability.md.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/test/auditgen"
	"github.com/kaudit/kaudit/test/hosttest"
	"github.com/kaudit/kaudit/test/lokifake"
	"github.com/kaudit/kaudit/test/servers"
)

// faultMode is what the proxy does to a data request (bulk or push).
type faultMode int32

const (
	faultPass  faultMode = iota
	faultSlow            // forward, then answer after the delay
	fault429             // answer 429 without forwarding
	faultMixed           // 429, 503, reset, pass in turn
	faultHold            // forward, then hold the answer until released
)

// faultProxy is a loopback HTTP proxy that misbehaves on data requests
// (POST /_bulk, POST /loki/api/v1/push) and can refuse connections.
type faultProxy struct {
	*portSwitch
	t      *testing.T
	target string
	delay  time.Duration

	mode    atomic.Int32
	budget  atomic.Int64 // data requests left to fault; then pass
	dataN   atomic.Int64
	faulted atomic.Int64
	first   chan struct{} // closed at the first data request
	once    sync.Once
	release chan struct{}
}

func faultStartProxy(t *testing.T, target string) *faultProxy {
	p := &faultProxy{t: t, target: target, delay: 2500 * time.Millisecond,
		first: make(chan struct{}), release: make(chan struct{})}
	p.portSwitch = newPortSwitch(t, http.HandlerFunc(p.handle))
	t.Cleanup(func() {
		select {
		case <-p.release:
		default:
			close(p.release)
		}
	})
	return p
}

// fault sets the mode for the next n data requests (n < 0: all).
func (p *faultProxy) fault(m faultMode, n int64) {
	p.mode.Store(int32(m))
	if n < 0 {
		n = 1 << 62
	}
	p.budget.Store(n)
}

func (p *faultProxy) forward(w http.ResponseWriter, r *http.Request, body []byte) (int, []byte) {
	req, err := http.NewRequest(r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		w.WriteHeader(502)
		return 0, nil
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(502)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	return resp.StatusCode, b
}

func (p *faultProxy) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	data := r.Method == "POST" && (r.URL.Path == "/_bulk" || strings.HasSuffix(r.URL.Path, "/push"))
	mode := faultPass
	if data {
		n := p.dataN.Add(1)
		p.once.Do(func() { close(p.first) })
		if p.budget.Add(-1) >= 0 {
			mode = faultMode(p.mode.Load())
		}
		if mode == faultMixed {
			mode = []faultMode{fault429, -1, -2, faultPass}[n%4]
		}
		if mode != faultPass {
			p.faulted.Add(1)
		}
	}
	switch mode {
	case fault429:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"type":"es_rejected_execution_exception","reason":"fault proxy: too many requests"},"status":429}`)
		return
	case -1: // 503
		w.WriteHeader(503)
		io.WriteString(w, "fault proxy: unavailable")
		return
	case -2: // connection reset, no answer
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Close()
				return
			}
		}
		w.WriteHeader(502)
		return
	}
	st, b := p.forward(w, r, body)
	if st == 0 {
		return
	}
	switch mode {
	case faultSlow:
		time.Sleep(p.delay)
	case faultHold:
		<-p.release
	}
	w.WriteHeader(st)
	w.Write(b)
}

// faultRow is one line of the matrix.
type faultRow struct {
	Scenario, Sink        string
	In, Out, Unique, Dups int
	Faulted               int64
	Flushes, Retries      int
	Took                  time.Duration
}

var faultMatrix struct {
	mu   sync.Mutex
	rows []faultRow
}

func faultRecord(t *testing.T, r faultRow) {
	t.Logf("%-24s %-13s in=%d out=%d unique=%d duplicates=%d faults=%d flushes=%d retries=%d %v",
		r.Scenario, r.Sink, r.In, r.Out, r.Unique, r.Dups, r.Faulted, r.Flushes, r.Retries, r.Took.Round(time.Millisecond))
	faultMatrix.mu.Lock()
	faultMatrix.rows = append(faultMatrix.rows, r)
	faultMatrix.mu.Unlock()
}

// faultPrintMatrix renders the rows as the Markdown table of
// docs/reliability.md.
func faultPrintMatrix(t *testing.T) {
	faultMatrix.mu.Lock()
	defer faultMatrix.mu.Unlock()
	var b strings.Builder
	b.WriteString("| scenario | sink (backend) | events in | stored | unique | duplicates removed | faults injected | flushes | retries | time |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range faultMatrix.rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %.1fs |\n",
			r.Scenario, r.Sink, r.In, r.Out, r.Unique, r.Dups, r.Faulted, r.Flushes, r.Retries, r.Took.Seconds())
	}
	t.Logf("fault matrix:\n%s", b.String())
	if path := os.Getenv("KAUDIT_FAULT_MATRIX"); path != "" {
		os.WriteFile(path, []byte(b.String()), 0o644)
	}
}

// faultInput writes n generated events (a day's worth ending a day ago,
// so Loki's too-new check passes) as a log file; it returns the file and the ids.
func faultInput(t *testing.T, dir string, seed int64, n int) (string, []string) {
	lines := auditgen.Generate(auditgen.Options{Seed: seed, Events: n, Start: time.Now().Add(-48 * time.Hour).UTC()})
	var buf bytes.Buffer
	ids := make([]string, 0, n)
	for _, l := range lines {
		var ev struct{ AuditID, Stage string }
		require.NoError(t, json.Unmarshal(l, &ev))
		ids = append(ids, ev.AuditID+"-"+ev.Stage)
		buf.Write(l)
		buf.WriteByte('\n')
	}
	sort.Strings(ids)
	return hosttest.WriteFile(t, dir, "audit-*.log", buf.Bytes()), ids
}

var faultExitDup = regexp.MustCompile(`exit: .* duplicate=(\d+)`)

// faultHostArgs: unbounded retries (Retry_Limit no_limits), 200 ms apart.
func faultHostArgs(so, props, log string) []string {
	return []string{"-p", so, "-r", "-1", "-d", "200", "-i", props, "tail", "0", "kube.audit", log, "100"}
}

func faultRun(t *testing.T, args []string) hosttest.Result {
	t.Helper()
	res := hosttest.RunWith(t, hosttest.RunOptions{Timeout: 5 * time.Minute}, args...)
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.NotNil(t, res.Summary, res.Dump())
	require.Zero(t, res.Summary.DroppedChunks, res.Dump())
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, res.Dump())
	require.NotContains(t, res.Stderr, "panic")
	return res
}

// faultKillDuringFlush starts the host, waits for its first data request
// to reach the backend, then kills it (SIGKILL: no exit callbacks).
func faultKillDuringFlush(t *testing.T, proxy *faultProxy, args []string) {
	t.Helper()
	cmd := exec.Command(hosttest.BuildHost(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	select {
	case <-proxy.first:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no data request within 2m\n%s", out.String())
	}
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	t.Logf("host killed during a flush; its output:\n%s", faultTail(out.String(), 8))
}

func faultTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type faultScenario struct {
	name string
	// run drives the host (once or more) against the proxy.
	run func(t *testing.T, proxy *faultProxy, args []string) []hosttest.Result
}

func faultScenarios() []faultScenario {
	one := func(setup func(p *faultProxy)) func(t *testing.T, p *faultProxy, args []string) []hosttest.Result {
		return func(t *testing.T, p *faultProxy, args []string) []hosttest.Result {
			setup(p)
			return []hosttest.Result{faultRun(t, args)}
		}
	}
	return []faultScenario{
		{"no faults", one(func(p *faultProxy) {})},
		{"backend down, then back", one(func(p *faultProxy) {
			p.Off()
			go func() { time.Sleep(3 * time.Second); p.On() }()
		})},
		{"slow beyond timeout", one(func(p *faultProxy) { p.fault(faultSlow, 3) })},
		{"429 storm", one(func(p *faultProxy) { p.fault(fault429, 25) })},
		{"mixed failures", one(func(p *faultProxy) { p.fault(faultMixed, 16) })},
		{"killed mid-flush, restarted", func(t *testing.T, p *faultProxy, args []string) []hosttest.Result {
			p.fault(faultHold, 1) // the first request reaches the backend; its answer never returns
			faultKillDuringFlush(t, p, args)
			close(p.release)
			// Fluent Bit with storage.type filesystem re-delivers every
			// chunk not acknowledged; the host re-runs them all (a
			// superset: chunks acknowledged before the kill come again).
			return []hosttest.Result{faultRun(t, args)}
		}},
	}
}

func faultSum(rs []hosttest.Result) (flushes, retries, dups int) {
	for _, r := range rs {
		flushes += r.Summary.Flushes
		retries += r.Summary.Retry
		if m := faultExitDup.FindStringSubmatch(r.Stderr); m != nil {
			n, _ := strconv.Atoi(m[1])
			dups += n
		}
	}
	return
}

func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end fault matrix")
	}
	p := hosttest.Build(t)
	defer faultPrintMatrix(t)

	t.Run("elasticsearch", func(t *testing.T) {
		node := servers.SharedOpenSearch(t)
		for i, sc := range faultScenarios() {
			t.Run(sc.name, func(t *testing.T) {
				dir := t.TempDir()
				log, ids := faultInput(t, dir, int64(100+i), 600)
				index := fmt.Sprintf("kaudit-fault-%d", i)
				proxy := faultStartProxy(t, node.URL)
				props := esProps(t, dir, proxy.URL(),
					hosttest.KV{Key: "Index", Value: index},
					hosttest.KV{Key: "Timeout", Value: "1s"},
					hosttest.KV{Key: "Retry_Max_Wait", Value: "500ms"},
					hosttest.KV{Key: "Flush_Timeout", Value: "5s"})
				start := time.Now()
				rs := sc.run(t, proxy, faultHostArgs(p.Plugin, props, log))
				took := time.Since(start)
				got := esIDs(t, node, index)
				flushes, retries, dups := faultSum(rs)
				faultRecord(t, faultRow{Scenario: sc.name, Sink: "elasticsearch (OpenSearch 2.19)", In: len(ids), Out: node.Count(index),
					Unique: len(faultUnique(got)), Dups: dups, Faulted: proxy.faulted.Load(), Flushes: flushes, Retries: retries, Took: took})
				assert.Equal(t, len(ids), node.Count(index), "_count")
				if !assert.Equal(t, ids, got, "document ids") {
					for _, r := range rs {
						t.Logf("host stderr:\n%s", faultTail(r.Stderr, 40))
					}
				}
				if sc.name != "no faults" {
					assert.Positive(t, proxy.faulted.Load()+int64(retries), "the scenario injected nothing")
				}
			})
		}
		// Per-item failures inside bulk answers need a proxy that rewrites
		// them: the elasticsearch sink's own fault proxy (es_test.go) does,
		// mixed with delays past the timeout, 429, 503 and resets.
		t.Run("per-item 429s in bulk answers", func(t *testing.T) {
			dir := t.TempDir()
			log, ids := faultInput(t, dir, 99, 600)
			index := "kaudit-fault-items"
			proxy := esStartFaultProxy(t, node.URL, 1500*time.Millisecond)
			props := esProps(t, dir, proxy.URL(),
				hosttest.KV{Key: "Index", Value: index},
				hosttest.KV{Key: "Timeout", Value: "1s"},
				hosttest.KV{Key: "Retry_Max_Wait", Value: "500ms"},
				hosttest.KV{Key: "Flush_Timeout", Value: "5s"})
			start := time.Now()
			rs := []hosttest.Result{faultRun(t, faultHostArgs(p.Plugin, props, log))}
			took := time.Since(start)
			got := esIDs(t, node, index)
			flushes, retries, dups := faultSum(rs)
			var faulted int64
			for _, n := range proxy.Counts() {
				faulted += n
			}
			faultRecord(t, faultRow{Scenario: "per-item 429s + 503/reset/slow", Sink: "elasticsearch (OpenSearch 2.19)", In: len(ids), Out: node.Count(index),
				Unique: len(faultUnique(got)), Dups: dups, Faulted: faulted, Flushes: flushes, Retries: retries, Took: took})
			t.Logf("faults: %v", proxy.Counts())
			assert.Positive(t, proxy.Counts()["item429"])
			assert.Equal(t, len(ids), node.Count(index), "_count")
			assert.Equal(t, ids, got, "document ids")
		})
	})

	t.Run("loki", func(t *testing.T) {
		for i, sc := range faultScenarios() {
			t.Run(sc.name, func(t *testing.T) {
				dir := t.TempDir()
				log, ids := faultInput(t, dir, int64(200+i), 600)
				fake := lokifake.New(t, lokifake.Options{})
				proxy := faultStartProxy(t, fake.URL)
				props := lokiProps(t, dir, proxy.URL()+"/loki/api/v1/push",
					hosttest.KV{Key: "Timeout", Value: "1s"},
					hosttest.KV{Key: "Retry_Max_Wait", Value: "500ms"},
					hosttest.KV{Key: "Flush_Timeout", Value: "5s"})
				start := time.Now()
				rs := sc.run(t, proxy, faultHostArgs(p.Plugin, props, log))
				took := time.Since(start)
				got := faultLokiIDs(t, fake)
				flushes, retries, _ := faultSum(rs)
				st := fake.Stats()
				faultRecord(t, faultRow{Scenario: sc.name, Sink: "loki (Loki fake)", In: len(ids), Out: fake.Count("fake"),
					Unique: len(faultUnique(got)), Dups: st.Duplicates, Faulted: proxy.faulted.Load(), Flushes: flushes, Retries: retries, Took: took})
				if !assert.Equal(t, ids, faultUnique(got), "every event at least once") {
					t.Logf("Loki fake stats: %+v", st)
					for _, r := range rs {
						t.Logf("host stderr:\n%s", faultTail(r.Stderr, 40))
					}
				}
				assert.Equal(t, len(ids), fake.Count("fake"), "stored once after de-duplication")
			})
		}
	})
}

// faultLokiIDs returns auditID-stage of every stored entry.
func faultLokiIDs(t *testing.T, fake *lokifake.Server) []string {
	var ids []string
	for _, st := range fake.Streams("fake") {
		for _, e := range st.Entries {
			var ev struct{ AuditID, Stage string }
			sc := bufio.NewScanner(strings.NewReader(e.Line))
			sc.Buffer(nil, 64<<20)
			if sc.Scan() && json.Unmarshal(sc.Bytes(), &ev) == nil && ev.AuditID != "" {
				ids = append(ids, ev.AuditID+"-"+ev.Stage)
			} else {
				ids = append(ids, "unreadable:"+faultExcerpt(e.Line))
			}
		}
	}
	sort.Strings(ids)
	return ids
}

func faultExcerpt(s string) string {
	if len(s) > 80 {
		return s[:80]
	}
	return s
}

func faultUnique(ids []string) []string {
	var out []string
	for i, id := range ids {
		if i == 0 || ids[i-1] != id {
			out = append(out, id)
		}
	}
	return out
}
