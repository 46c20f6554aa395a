package e2e

// End-to-end tests of tamper-evident delivery: the sample log shipped
// through the C host with chain_key_file set (stdout file, OpenSearch,
// VictoriaLogs and the Loki fake), `kaudit verify` clean on what the
// backend holds, then tampering through the backend's own API (or on an
// export) named finding by finding. Helpers are prefixed chain.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/plugin/chain"
	"github.com/kaudit/kaudit/test/auditgen"
	"github.com/kaudit/kaudit/test/hosttest"
	"github.com/kaudit/kaudit/test/lokifake"
	"github.com/kaudit/kaudit/test/servers"
)

var chainCLIState struct {
	once sync.Once
	path string
	err  error
}

// chainCLI builds bin/kaudit into a temporary directory once per test binary.
func chainCLI(t *testing.T) string {
	t.Helper()
	root := hosttest.RepoRoot(t)
	chainCLIState.once.Do(func() {
		dir, err := os.MkdirTemp("", "kaudit-e2e-cli-")
		if err != nil {
			chainCLIState.err = err
			return
		}
		out := filepath.Join(dir, "kaudit")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/kaudit")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			chainCLIState.err = fmt.Errorf("go build ./cmd/kaudit: %v\n%s", err, b)
			return
		}
		chainCLIState.path = out
	})
	require.NoError(t, chainCLIState.err)
	return chainCLIState.path
}

// chainKeys writes a key pair into dir.
func chainKeys(t *testing.T, dir string) (priv, pub string) {
	t.Helper()
	privPEM, pubPEM, err := chain.GenerateKey()
	require.NoError(t, err)
	priv, pub = filepath.Join(dir, "chain.key"), filepath.Join(dir, "chain.pub")
	require.NoError(t, os.WriteFile(priv, privPEM, 0o600))
	require.NoError(t, os.WriteFile(pub, pubPEM, 0o644))
	return priv, pub
}

type chainReport struct {
	chain.Report
	Text string
	Exit int
}

// chainVerify runs `kaudit verify --json` and the text form; it returns
// both with the exit status.
func chainVerify(t *testing.T, pub string, args ...string) chainReport {
	t.Helper()
	run := func(extra ...string) ([]byte, int) {
		cmd := exec.Command(chainCLI(t), append(append([]string{"verify", "--public-key", pub}, args...), extra...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.Contains(t, []int{0, 1}, code, "kaudit verify %q: exit %d\n%s%s", args, code, out, stderr.String())
		return out, code
	}
	js, code := run("--json")
	var r chainReport
	require.NoError(t, json.Unmarshal(js, &r.Report), "%s", js)
	txt, code2 := run()
	require.Equal(t, code, code2)
	r.Text, r.Exit = string(txt), code
	t.Logf("kaudit verify %s:\n%s", strings.Join(args, " "), r.Text)
	return r
}

func chainProps(t *testing.T, dir, priv, state string, kv ...hosttest.KV) string {
	t.Helper()
	base := []hosttest.KV{{Key: "Name", Value: "kaudit"}, {Key: "Match", Value: "*"}, {Key: "Stats_Interval", Value: "0"},
		{Key: "Cluster", Value: "e2e"}, {Key: "Node", Value: "node-a"},
		{Key: "Chain_Key_File", Value: priv}, {Key: "State_Dir", Value: state}}
	return hosttest.WriteProps(t, dir, append(base, kv...))
}

func chainSample(t *testing.T) string {
	return filepath.Join(hosttest.RepoRoot(t), "test", "testdata", "audit.log")
}

// chainRun runs the host over log in chunks of n records, retrying
// without limit, and requires every chunk to end OK.
func chainRun(t *testing.T, props, log string, n int, extra ...string) hosttest.Result {
	t.Helper()
	p := hosttest.Build(t)
	args := append([]string{"-q", "-r", "-1", "-p", p.Plugin}, extra...)
	args = append(args, "-i", props, "tail", "0", "kube.audit", log, fmt.Sprint(n))
	res := hosttest.RunWith(t, hosttest.RunOptions{Timeout: 5 * time.Minute}, args...)
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.NotNil(t, res.Summary, res.Dump())
	require.Zero(t, res.Summary.DroppedChunks, res.Dump())
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, res.Dump())
	require.NotContains(t, res.Stderr, "panic")
	return res
}

// chainFindings indexes findings by kind.
func chainFindings(r chainReport) map[string][]chain.Finding {
	m := map[string][]chain.Finding{}
	for _, f := range r.Findings {
		m[f.Kind] = append(m[f.Kind], f)
	}
	return m
}

// chainLines reads a JSON-lines file.
func chainLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(t, sc.Err())
	return out
}

type chainDoc struct {
	Kind     string `json:"kind"`
	AuditID  string `json:"auditID"`
	Stage    string `json:"stage"`
	Manifest struct {
		Seq   uint64 `json:"seq"`
		Epoch string `json:"epoch"`
	} `json:"manifest"`
}

func chainParse(t *testing.T, line string) chainDoc {
	var d chainDoc
	require.NoError(t, json.Unmarshal([]byte(line), &d), "%.200s", line)
	return d
}

// chainTamperLines applies the four tamperings to exported lines: delete
// every copy of event a, alter one copy of b, insert a forged copy of c,
// delete the manifest of sequence seq. It returns the forged auditID.
func chainTamperLines(t *testing.T, lines []string, a, b, c string, seq uint64) ([]string, string) {
	t.Helper()
	var out []string
	altered, forged := false, "f0f0f0f0-0000-4000-8000-000000000001"
	deletedManifest, inserted := false, false
	for _, l := range lines {
		d := chainParse(t, l)
		switch {
		case d.Kind == chain.Kind && d.Manifest.Seq == seq && !deletedManifest:
			deletedManifest = true
			continue
		case d.AuditID == a:
			continue
		case d.AuditID == b && !altered:
			altered = true
			l = strings.Replace(l, `"verb":"`, `"verb":"x`, 1)
		case d.AuditID == c && !inserted:
			inserted = true
			out = append(out, strings.Replace(l, c, forged, 1))
		}
		out = append(out, l)
	}
	require.True(t, altered && deletedManifest)
	return out, forged
}

// chainCheckTampered checks that verify names each tampering.
func chainCheckTampered(t *testing.T, r chainReport, a, b, forged string, seq uint64, wantIndex bool) {
	t.Helper()
	require.Equal(t, 1, r.Exit, r.Text)
	got := chainFindings(r)
	require.Len(t, got[chain.FindMissingEvent], 1, r.Text)
	assert.Equal(t, a, got[chain.FindMissingEvent][0].AuditID)
	assert.NotZero(t, got[chain.FindMissingEvent][0].Seq)
	require.Len(t, got[chain.FindAlteredEvent], 1, r.Text)
	assert.Equal(t, b, got[chain.FindAlteredEvent][0].AuditID)
	assert.NotZero(t, got[chain.FindAlteredEvent][0].Seq)
	assert.NotEmpty(t, got[chain.FindAlteredEvent][0].Index)
	require.Len(t, got[chain.FindInsertedEvent], 1, r.Text)
	assert.Equal(t, forged, got[chain.FindInsertedEvent][0].AuditID)
	assert.NotEmpty(t, got[chain.FindInsertedEvent][0].Index)
	require.Len(t, got[chain.FindMissingManifest], 1, r.Text)
	assert.Equal(t, seq, got[chain.FindMissingManifest][0].Seq)
	assert.Len(t, r.Findings, 4, r.Text)
	if wantIndex {
		assert.NotEmpty(t, got[chain.FindMissingEvent][0].Index)
	}
	for _, s := range []string{"missing_event", "auditID=" + a, "altered_event", "auditID=" + b,
		"inserted_event", "auditID=" + forged, "missing_manifest", fmt.Sprintf("seq=%d", seq)} {
		assert.Contains(t, r.Text, s)
	}
}

// chainPick returns three auditIDs of events the sample log ships.
func chainPick(t *testing.T, lines []string) (a, b, c string) {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	for _, l := range lines {
		d := chainParse(t, l)
		if d.Kind != chain.Kind && d.AuditID != "" && !seen[d.AuditID] {
			seen[d.AuditID] = true
			ids = append(ids, d.AuditID)
		}
	}
	require.Greater(t, len(ids), 300)
	return ids[100], ids[200], ids[300]
}

func chainWriteLines(t *testing.T, path string, lines []string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
}

// TestChainStdoutFileVerify: the stdout sink's file as the backend. Two
// runs (a restart re-sending everything), then a lost state: verify is
// clean and shows the new epoch; then each tampering of the file is named.
func TestChainStdoutFileVerify(t *testing.T) {
	dir := t.TempDir()
	priv, pub := chainKeys(t, dir)
	state := filepath.Join(dir, "state")
	out := filepath.Join(dir, "out.jsonl")
	props := chainProps(t, dir, priv, state, hosttest.KV{Key: "Output", Value: "stdout"}, hosttest.KV{Key: "Path", Value: out})

	res := chainRun(t, props, chainSample(t), 250)
	assert.Contains(t, res.Stderr, "chain: no state in")
	chunks := res.Summary.Chunks
	res = chainRun(t, props, chainSample(t), 250)
	assert.Contains(t, res.Stderr, fmt.Sprintf("continuing epoch"))

	r := chainVerify(t, pub, "--from", "file", out)
	require.Equal(t, 0, r.Exit, r.Text)
	require.Len(t, r.Epochs, 1)
	assert.EqualValues(t, 2*chunks, r.Epochs[0].LastSeq)
	assert.Equal(t, chain.EpochNoState, r.Epochs[0].NewEpoch)
	assert.Contains(t, r.Text, "clean")

	// The state is lost: a new epoch, visibly marked.
	require.NoError(t, os.RemoveAll(state))
	extra := hosttest.WriteFile(t, dir, "extra-*.log", bytes.Join(auditgen.Generate(auditgen.Options{Seed: 99, Events: 100}), []byte("\n")))
	chainRun(t, props, extra, 50)
	r = chainVerify(t, pub, "--from", "file", out)
	require.Equal(t, 0, r.Exit, r.Text)
	require.Len(t, r.Epochs, 2)

	// Tampering.
	lines := chainLines(t, out)
	a, b, c := chainPick(t, lines)
	tampered, forged := chainTamperLines(t, lines, a, b, c, 3)
	path := filepath.Join(dir, "tampered.jsonl")
	chainWriteLines(t, path, tampered)
	chainCheckTampered(t, chainVerify(t, pub, "--from", "file", path), a, b, forged, 3, false)

	// Another key: every manifest is a bad signature.
	_, otherPub := chainKeys(t, t.TempDir())
	r = chainVerify(t, otherPub, "--from", "file", out)
	require.Equal(t, 1, r.Exit)
	assert.NotEmpty(t, chainFindings(r)[chain.FindBadSignature])
}

// chainESProxy forwards to OpenSearch; it fails the first manifest bulks
// with 503 and answers the first event bulks with per-item 429s for
// every other document (a partial failure).
type chainESProxy struct {
	t         *testing.T
	target    string
	manifests atomic.Int32 // manifest bulks still to fail
	partials  atomic.Int32 // event bulks still to answer partially
	failed    atomic.Int32
	srv       *httptest.Server
}

func chainStartESProxy(t *testing.T, target string, manifests, partials int32) *chainESProxy {
	p := &chainESProxy{t: t, target: target}
	p.manifests.Store(manifests)
	p.partials.Store(partials)
	p.srv = httptest.NewServer(http.HandlerFunc(p.handle))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *chainESProxy) forward(method, path string, body []byte, ctype string) (int, []byte, error) {
	req, err := http.NewRequest(method, p.target+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (p *chainESProxy) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	bulk := strings.HasSuffix(r.URL.Path, "/_bulk")
	if bulk && bytes.Contains(body, []byte(chain.Kind)) && p.manifests.Add(-1) >= 0 {
		p.failed.Add(1)
		http.Error(w, `{"error":"fault proxy: manifest refused"}`, http.StatusServiceUnavailable)
		return
	}
	if bulk && !bytes.Contains(body, []byte(chain.Kind)) && p.partials.Add(-1) >= 0 {
		half, fwd, err := newBulkHalf(body)
		if err == nil && len(half.ops) > 1 {
			st, b, err := p.forward("POST", r.URL.RequestURI(), fwd, "application/x-ndjson")
			if err == nil && st == 200 {
				if out, _, err := half.answer(b); err == nil {
					p.failed.Add(1)
					w.Header().Set("Content-Type", "application/json")
					w.Write(out)
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
	}
	st, b, err := p.forward(r.Method, r.URL.RequestURI(), body, r.Header.Get("Content-Type"))
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(st)
	w.Write(b)
}

type chainHit struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
}

// chainESAll returns every document of the pattern.
func chainESAll(t *testing.T, node *servers.OpenSearch, pattern string) []chainHit {
	t.Helper()
	require.NoError(t, node.Refresh(pattern))
	st, b, err := node.Do("POST", "/"+pattern+"/_search", []byte(`{"size":10000,"sort":["_doc"]}`))
	require.NoError(t, err)
	require.Equal(t, 200, st, "%s", b)
	var r struct {
		Hits struct {
			Hits []chainHit `json:"hits"`
		} `json:"hits"`
	}
	require.NoError(t, json.Unmarshal(b, &r))
	return r.Hits.Hits
}

func chainESDo(t *testing.T, node *servers.OpenSearch, method, path string, body []byte) {
	t.Helper()
	st, b, err := node.Do(method, path, body)
	require.NoError(t, err)
	require.Contains(t, []int{200, 201}, st, "%s %s: %s", method, path, b)
}

// TestChainOpenSearch: the sample log into the real OpenSearch node with
// partial failures and refused manifests, then again after a restart
// (every event a duplicate); verify is clean. Then a document is deleted,
// a field updated, an event forged and a manifest deleted through
// OpenSearch's API, and verify names each one.
func TestChainOpenSearch(t *testing.T) {
	node := servers.SharedOpenSearch(t)
	dir := t.TempDir()
	priv, pub := chainKeys(t, dir)
	state := filepath.Join(dir, "state")
	const pattern = "kaudit-e2e-chain-*"
	proxy := chainStartESProxy(t, node.URL, 2, 3)
	es := func(hosts string) string {
		return chainProps(t, dir, priv, state, hosttest.KV{Key: "Output", Value: "elasticsearch"}, hosttest.KV{Key: "Hosts", Value: hosts},
			hosttest.KV{Key: "Index", Value: "kaudit-e2e-chain-%Y.%m.%d"}, hosttest.KV{Key: "Retry_Max_Wait", Value: "50ms"})
	}
	res := chainRun(t, es(proxy.srv.URL), chainSample(t), 250)
	assert.EqualValues(t, 5, proxy.failed.Load(), "every fault was injected")
	assert.Contains(t, res.Stderr, "manifest was not", res.Dump())
	assert.Positive(t, res.Summary.Retry)
	res = chainRun(t, es(node.URL), chainSample(t), 250) // re-delivery after a restart
	assert.Contains(t, res.Stderr, "continuing epoch")

	verifyArgs := []string{"--from", "elasticsearch", "--url", node.URL, "--index", pattern, "--page-size", "300"}
	require.NoError(t, node.Refresh(pattern))
	r := chainVerify(t, pub, verifyArgs...)
	require.Equal(t, 0, r.Exit, r.Text)
	require.Len(t, r.Epochs, 1)
	assert.Equal(t, 2000, r.Events)
	assert.GreaterOrEqual(t, r.Manifests, 16)

	// Tamper through OpenSearch's API.
	hits := chainESAll(t, node, pattern)
	var lines []string
	byAudit := map[string]chainHit{}
	var manifest3 chainHit
	for _, h := range hits {
		lines = append(lines, string(h.Source))
		d := chainParse(t, string(h.Source))
		if d.Kind == chain.Kind && d.Manifest.Seq == 3 {
			manifest3 = h
		} else if d.AuditID != "" {
			byAudit[d.AuditID] = h
		}
	}
	require.NotEmpty(t, manifest3.ID)
	a, b, c := chainPick(t, lines)
	ha, hb, hc := byAudit[a], byAudit[b], byAudit[c]
	chainESDo(t, node, "DELETE", "/"+ha.Index+"/_doc/"+url.PathEscape(ha.ID)+"?refresh=true", nil)
	// A value no audit event has, so the update always changes the
	// document (setting "list" on an event that was a list was a no-op).
	chainESDo(t, node, "POST", "/"+hb.Index+"/_update/"+url.PathEscape(hb.ID)+"?refresh=true", []byte(`{"doc":{"verb":"tampered"}}`))
	forged := "f0f0f0f0-0000-4000-8000-000000000002"
	fs := strings.Replace(string(hc.Source), c, forged, 1)
	chainESDo(t, node, "PUT", "/"+hc.Index+"/_doc/"+forged+"-ResponseComplete?refresh=true", []byte(fs))
	chainESDo(t, node, "DELETE", "/"+manifest3.Index+"/_doc/"+url.PathEscape(manifest3.ID)+"?refresh=true", nil)

	r = chainVerify(t, pub, verifyArgs...)
	chainCheckTampered(t, r, a, b, forged, 3, true)
	got := chainFindings(r)
	assert.Equal(t, ha.Index, got[chain.FindMissingEvent][0].Index)
	assert.Equal(t, hb.Index, got[chain.FindAlteredEvent][0].Index)
	assert.Equal(t, hc.Index, got[chain.FindInsertedEvent][0].Index)
}

// TestChainVictoriaLogs: the sample log through the loki sink into
// VictoriaLogs (two workers, then a restart re-sending everything, which
// VictoriaLogs stores twice); verify --from victorialogs is clean; the
// tampering is done on an export and verified --from file.
func TestChainVictoriaLogs(t *testing.T) {
	vl := servers.StartVictoriaLogs(t)
	dir := t.TempDir()
	priv, pub := chainKeys(t, dir)
	props := chainProps(t, dir, priv, filepath.Join(dir, "state"), hosttest.KV{Key: "Output", Value: "loki"}, hosttest.KV{Key: "Url", Value: vl.PushURL()})
	chainRun(t, props, chainSample(t), 250, "-w", "2")
	chainRun(t, props, chainSample(t), 250)
	require.NoError(t, vl.Flush())

	r := chainVerify(t, pub, "--from", "victorialogs", "--url", vl.URL, "--query", `{job="kaudit"}`)
	require.Equal(t, 0, r.Exit, r.Text)
	assert.Equal(t, 4000, r.Events, "stored twice: VictoriaLogs does not de-duplicate")

	rows, err := vl.Query(`{job="kaudit"} | sort by (_time)`, 0)
	require.NoError(t, err)
	var lines []string
	for _, row := range rows {
		lines = append(lines, row["_msg"])
	}
	a, b, c := chainPick(t, lines)
	tampered, forged := chainTamperLines(t, lines, a, b, c, 3)
	path := filepath.Join(dir, "export.jsonl")
	chainWriteLines(t, path, tampered)
	chainCheckTampered(t, chainVerify(t, pub, "--from", "file", path), a, b, forged, 3, false)
}

// TestChainLokiQueryRange: verify --from loki reads query_range back.
func TestChainLokiQueryRange(t *testing.T) {
	fake := lokifake.New(t, lokifake.Options{})
	dir := t.TempDir()
	priv, pub := chainKeys(t, dir)
	props := chainProps(t, dir, priv, filepath.Join(dir, "state"), hosttest.KV{Key: "Output", Value: "loki"}, hosttest.KV{Key: "Url", Value: fake.PushURL()})
	chainRun(t, props, chainSample(t), 500)
	r := chainVerify(t, pub, "--from", "loki", "--url", fake.URL, "--page-size", "100000",
		"--start", "2025-01-01T00:00:00Z")
	require.Equal(t, 0, r.Exit, r.Text)
	assert.Equal(t, 2000, r.Events)
	assert.Equal(t, 4, r.Manifests)
}
