package servers

// VictoriaLogs (Apache-2.0, github.com/VictoriaMetrics/VictoriaLogs) is the
// real server the Loki sink's end-to-end tests push to: it speaks Loki's push
// protocol at /insert/loki/api/v1/push and is queried with LogsQL at
// /select/logsql/query. No Grafana Loki code (AGPL) is used anywhere: the
// binary is built from the separate Go module in test/tools.
//
// How VictoriaLogs v1.52.1 maps a Loki push (read from
// app/vlinsert/loki/*.go and checked against the running server):
//
//   - Body formats: Content-Type "application/json" (or "application/json;…")
//     selects the JSON body {"streams":[{"stream":{…},"values":[[ts,line,{meta}]]}]};
//     any other Content-Type is parsed as a protobuf PushRequest. Protobuf
//     bodies are snappy (block format) decoded when Content-Encoding is empty
//     (Loki's default); Content-Encoding gzip/zstd/deflate/snappy are honoured
//     for both formats. A successful push answers 204 No Content; a malformed
//     one 400 with a plain-text reason.
//   - Stream labels: the JSON "stream" object / the protobuf labels string
//     (Prometheus form `{a="b", c="d"}`, "{}" allowed) become ordinary fields
//     AND the log stream fields: `_stream` is `{a="b",c="d"}` (sorted), and
//     `_stream_id` is derived from tenant + stream. Non-string JSON label or
//     metadata values are stored as their JSON text (3 → "3").
//   - Line: stored verbatim in `_msg` when message parsing is off. By default
//     (-loki.disableMessageParsing=false) a line that is a JSON object
//     `{…}` is exploded into fields and `_msg` is then absent (queries show the
//     -defaultMsgValue placeholder "missing _msg field; see …"); the
//     per-request switch is `disable_message_parsing=1` query arg or
//     `VL-Loki-Disable-Message-Parsing: 1` header, and
//     `message_fields_prefix` / `VL-Loki-Message-Fields-Prefix` prefixes the
//     parsed names. StartVictoriaLogs passes -loki.disableMessageParsing so
//     `_msg` holds the pushed line byte for byte, as Loki would.
//   - Structured metadata: each pair becomes an ordinary field (NOT a stream
//     field) of that entry, e.g. {"verb":"get"} → field verb="get". Pairs
//     with an empty name or value are dropped (fields with empty values do
//     not exist in VictoriaLogs). Avoid metadata names that clash: a name
//     equal to a label name stores the field twice (the query output then
//     has the key twice — Query's map keeps the last, the metadata value —
//     while LogsQL filters match only the first, the label value); a
//     metadata `_msg` shadows the line; a metadata `_time` is dropped with a
//     warning.
//   - Timestamp: JSON values[i][0] must be a JSON *string* (a bare number is
//     a 400); it is unix time whose unit is guessed from its magnitude
//     (s/ms/µs/ns — Loki sends ns); "" means "now". Protobuf uses
//     google.protobuf.Timestamp{seconds,nanos}; zero means "now". It is kept
//     with nanosecond precision in `_time`, returned as RFC3339Nano UTC
//     ("2026-11-25T17:50:50.194134666Z", trailing zeros trimmed).
//   - Retention: entries older than now-retentionPeriod (default 7d) or newer
//     than now+futureRetention (default 2d) are DROPPED SILENTLY — the push
//     still answers 204, only the server log warns. StartVictoriaLogs sets
//     both to 100y so tests may use fixed historical timestamps.
//   - Stream-field / msg / time overrides: `_stream_fields` query arg or
//     `VL-Stream-Fields` header replaces the label-derived stream fields
//     with the named fields (labels or metadata); the other labels stay
//     ordinary fields. `_msg_field`/`VL-Msg-Field` only renames a field taken
//     from a JSON-parsed line into `_msg`; `_time_field`/`VL-Time-Field` is
//     ignored for Loki (the entry timestamp always wins). `ignore_fields`,
//     `extra_fields`, `debug` (log, do not store) also work.
//   - Tenant: `AccountID`/`ProjectID` headers (uint32, default 0:0). When
//     both are 0, `X-Scope-OrgID` is used and must be "N" or "N:M" with
//     uint32 numbers — a non-numeric org id such as "tenant1" makes the push
//     fail with 400. Queries select the tenant ONLY by AccountID/ProjectID
//     headers (X-Scope-OrgID is ignored on /select).
//   - No de-duplication: pushing the same entry twice (same stream, time,
//     line, metadata) stores two rows; both come back from queries.
//   - Visibility: ingested rows sit in an in-memory buffer for up to ~1s
//     before they are searchable. GET /internal/force_flush makes them
//     searchable at once (the documented way for automated tests);
//     -inmemoryDataFlushInterval (default 5s) only governs persistence to
//     disk and does not matter for querying. Query/Count below flush first.
//   - Query response: one JSON object per line, every value a string, with
//     `_msg`, `_stream`, `_stream_id`, `_time` and every other field. With
//     limit>0 the server adds `sort by (_time) desc | limit N` (newest first);
//     without it, rows come in no particular order (append `| sort by (_time)`).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// VictoriaLogsBinEnv names an environment variable that, when set, points at
// a prebuilt victoria-logs binary to use instead of building test/tools.
const VictoriaLogsBinEnv = "KAUDIT_VICTORIALOGS_BIN"

// victoriaLogsPkg is the main package built from test/tools' go.mod.
const victoriaLogsPkg = "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"

// VictoriaLogs is a running single-node VictoriaLogs server on a loopback
// port with its data in a per-test temp dir.
type VictoriaLogs struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234 (no trailing slash).
	URL string
	// Dir is the temp dir holding the data and the server's log.
	Dir string
	// LogPath is the file receiving the server's stdout and stderr.
	LogPath string

	t        testing.TB
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
	client   *http.Client
}

// StartVictoriaLogs builds victoria-logs if needed (test/tools →
// .cache/bin/victoria-logs), starts it on a free 127.0.0.1 port with a temp
// storage dir, waits for /health and stops it when the test ends.
//
// Defaults: -loki.disableMessageParsing (so `_msg` is the pushed line
// verbatim), -retentionPeriod=100y and -futureRetention=100y (so no test
// timestamp is silently dropped). extraFlags are appended last and so
// override them, e.g. "-loki.disableMessageParsing=false".
//
// When the binary cannot be built the test is skipped, or failed under
// KAUDIT_E2E=required (see Unavailable).
func StartVictoriaLogs(t testing.TB, extraFlags ...string) *VictoriaLogs {
	t.Helper()
	bin := VictoriaLogsBinary(t)

	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		v, err := startVictoriaLogs(t, bin, dir, attempt, extraFlags)
		if err == nil {
			return v
		}
		lastErr = err
		// Retry only when another process grabbed the port in between.
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("victoria-logs: %v", lastErr)
	return nil
}

func startVictoriaLogs(t testing.TB, bin, dir string, attempt int, extraFlags []string) (*VictoriaLogs, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, fmt.Errorf("pick a free port: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dataDir := filepath.Join(dir, fmt.Sprintf("data-%d", attempt))
	logPath := filepath.Join(dir, fmt.Sprintf("victoria-logs-%d.log", attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor

	args := []string{
		"-httpListenAddr=" + addr,
		"-storageDataPath=" + dataDir,
		"-retentionPeriod=100y",
		"-futureRetention=100y",
		"-loki.disableMessageParsing",
		"-loggerLevel=INFO",
	}
	args = append(args, extraFlags...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}

	v := &VictoriaLogs{
		URL:     "http://" + addr,
		Dir:     dir,
		LogPath: logPath,
		t:       t,
		cmd:     cmd,
		exited:  make(chan struct{}),
		client:  &http.Client{Timeout: 30 * time.Second},
	}
	go func() {
		v.waitErr = cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("victoria-logs log tail (%s):\n%s", v.LogPath, v.LogTail(40))
		}
		v.Stop()
	})

	if err := v.waitHealthy(60 * time.Second); err != nil {
		v.Stop()
		return nil, fmt.Errorf("%w\nlog tail (%s):\n%s", err, logPath, v.LogTail(40))
	}
	t.Logf("victoria-logs listening on %s (data %s)", v.URL, dataDir)
	return v, nil
}

func (v *VictoriaLogs) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-v.exited:
			return fmt.Errorf("victoria-logs exited before becoming healthy: %v", v.waitErr)
		default:
		}
		resp, err := c.Get(v.URL + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "OK" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("victoria-logs not healthy at %s/health after %s (last error: %v)", v.URL, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PushURL is the Loki push endpoint: <URL>/insert/loki/api/v1/push.
func (v *VictoriaLogs) PushURL() string { return v.URL + "/insert/loki/api/v1/push" }

// Stop terminates the server (SIGTERM, then SIGKILL after 10s). It is
// idempotent and also runs from t.Cleanup.
func (v *VictoriaLogs) Stop() {
	v.stopOnce.Do(func() {
		if v.cmd == nil || v.cmd.Process == nil {
			return
		}
		select {
		case <-v.exited:
			return
		default:
		}
		_ = v.cmd.Process.Signal(os.Interrupt) // VictoriaLogs stops on SIGINT/SIGTERM
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.exited
		}
	})
}

// LogTail returns the last n lines of the server's log.
func (v *VictoriaLogs) LogTail(n int) string {
	data, err := os.ReadFile(v.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", v.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Flush makes everything ingested so far searchable (/internal/force_flush).
func (v *VictoriaLogs) Flush() error {
	resp, err := v.client.Get(v.URL + "/internal/force_flush")
	if err != nil {
		return fmt.Errorf("force_flush: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("force_flush: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Query flushes, runs a LogsQL query in the default tenant (0:0) and returns
// one map per log entry (all VictoriaLogs values are strings): `_msg`,
// `_time`, `_stream`, `_stream_id` and every label / metadata field.
// limit <= 0 means no limit (rows unordered); limit > 0 returns the newest
// limit rows, newest first.
func (v *VictoriaLogs) Query(logsql string, limit int) ([]map[string]string, error) {
	return v.QueryTenant("", logsql, limit)
}

// QueryTenant is Query for the tenant "AccountID[:ProjectID]" (the form
// X-Scope-OrgID takes on push); "" is the default tenant 0:0.
func (v *VictoriaLogs) QueryTenant(tenant, logsql string, limit int) ([]map[string]string, error) {
	if err := v.Flush(); err != nil {
		return nil, err
	}
	form := url.Values{"query": {logsql}}
	if limit > 0 {
		form.Set("limit", strconv.Itoa(limit))
	}
	req, err := http.NewRequest(http.MethodPost, v.URL+"/select/logsql/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tenant != "" {
		account, project, _ := strings.Cut(tenant, ":")
		req.Header.Set("AccountID", account)
		if project != "" {
			req.Header.Set("ProjectID", project)
		}
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", logsql, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("query %q: %s: %s", logsql, resp.Status, bytes.TrimSpace(body))
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var row map[string]string
		if err := json.Unmarshal(line, &row); err != nil {
			return nil, fmt.Errorf("query %q: bad response line %q: %w", logsql, line, err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("query %q: read response: %w", logsql, err)
	}
	return rows, nil
}

// Count flushes and returns how many entries of the default tenant match
// the LogsQL filter (it appends `| stats count() as n`).
func (v *VictoriaLogs) Count(logsql string) (int, error) {
	return v.CountTenant("", logsql)
}

// CountTenant is Count for the tenant "AccountID[:ProjectID]".
func (v *VictoriaLogs) CountTenant(tenant, logsql string) (int, error) {
	rows, err := v.QueryTenant(tenant, logsql+" | stats count() as kaudit_n", 0)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("count %q: want 1 stats row, got %d: %v", logsql, len(rows), rows)
	}
	n, err := strconv.Atoi(rows[0]["kaudit_n"])
	if err != nil {
		return 0, fmt.Errorf("count %q: %v: %w", logsql, rows[0], err)
	}
	return n, nil
}

// WaitForCount polls Count until at least want entries match or timeout
// passes, and returns the last count seen. Use it after an asynchronous
// sender (the Fluent Bit plugin) rather than after a synchronous push.
func (v *VictoriaLogs) WaitForCount(logsql string, want int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := v.Count(logsql)
		if err == nil && n >= want {
			return n, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return n, err
			}
			return n, fmt.Errorf("count %q: got %d, want >= %d after %s", logsql, n, want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// VictoriaLogsBinary returns the path of a current victoria-logs binary:
// $KAUDIT_VICTORIALOGS_BIN if set, else <repo>/.cache/bin/victoria-logs,
// (re)built from test/tools when its stamp (sha256 of test/tools/go.mod +
// go.sum, and the Go version) differs. The Makefile's victorialogs target
// writes the same stamp.
func VictoriaLogsBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(VictoriaLogsBinEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			Unavailable(t, "%s=%s: %v", VictoriaLogsBinEnv, bin, err)
		}
		return bin
	}
	vlBuildMu.Lock()
	defer vlBuildMu.Unlock()
	bin, err := buildVictoriaLogs(t)
	if err != nil {
		Unavailable(t, "victoria-logs binary unavailable: %v", err)
	}
	return bin
}

var vlBuildMu sync.Mutex

func buildVictoriaLogs(t testing.TB) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	toolsDir := filepath.Join(root, "test", "tools")
	binDir := filepath.Join(root, ".cache", "bin")
	bin := filepath.Join(binDir, "victoria-logs")
	stampPath := bin + ".stamp"

	goBin, err := exec.LookPath("go")
	if err != nil {
		if fi, statErr := os.Stat(bin); statErr == nil && fi.Mode().IsRegular() {
			t.Logf("go not on PATH; using %s without checking that it is current", bin)
			return bin, nil
		}
		return "", fmt.Errorf("go toolchain not on PATH: %w", err)
	}

	stamp, err := victoriaLogsStamp(goBin, toolsDir)
	if err != nil {
		return "", err
	}
	if old, err := os.ReadFile(stampPath); err == nil && strings.TrimSpace(string(old)) == stamp {
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
			return bin, nil
		}
	}

	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	defer os.Remove(tmp)
	t.Logf("building victoria-logs from %s (first build takes about a minute)", toolsDir)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", tmp, victoriaLogsPkg)
	cmd.Dir = toolsDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", victoriaLogsPkg, toolsDir, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	if err := os.WriteFile(stampPath, []byte(stamp+"\n"), 0o644); err != nil {
		return "", err
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Second))
	return bin, nil
}

// victoriaLogsStamp is "<sha256 of go.mod+go.sum> <go version>", the same
// line the Makefile computes with
// `cat go.mod go.sum | sha256sum | cut -d' ' -f1` and `go env GOVERSION`.
func victoriaLogsStamp(goBin, toolsDir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(toolsDir, name))
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	cmd := exec.Command(goBin, "env", "GOVERSION")
	cmd.Dir = toolsDir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION in %s: %w", toolsDir, err)
	}
	return hex.EncodeToString(h.Sum(nil)) + " " + strings.TrimSpace(string(out)), nil
}

// repoRoot walks up from the working directory to the go.mod of module
// github.com/kaudit/kaudit.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(data) == "github.com/kaudit/kaudit" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module github.com/kaudit/kaudit above the working directory")
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
