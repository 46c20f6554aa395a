package servers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestVictoriaLogsLokiJSONPush pushes one stream of three entries with
// structured metadata as a Loki JSON body and reads them back.
func TestVictoriaLogsLokiJSONPush(t *testing.T) {
	v := StartVictoriaLogs(t)

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	type entry struct {
		ts   time.Time
		line string
		meta map[string]string
	}
	entries := []entry{
		{base.Add(1 * time.Millisecond), `{"kind":"Event","auditID":"a1","verb":"get"}`, map[string]string{"verb": "get", "user": "alice"}},
		{base.Add(2 * time.Millisecond), "plain text line two", map[string]string{"verb": "list", "user": "bob"}},
		{base.Add(3*time.Millisecond + 7), "line three  with  spaces\tand tab", map[string]string{"verb": "delete", "user": "carol", "empty": ""}},
	}
	values := make([][]any, 0, len(entries))
	for _, e := range entries {
		values = append(values, []any{strconv.FormatInt(e.ts.UnixNano(), 10), e.line, e.meta})
	}
	body, err := json.Marshal(map[string]any{
		"streams": []any{map[string]any{
			"stream": map[string]string{"job": "kaudit-e2e", "cluster": "c1", "run": run},
			"values": values,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	push(t, v.PushURL(), "application/json", "", nil, body)

	filter := fmt.Sprintf(`{job="kaudit-e2e",run=%q}`, run)
	if n, err := v.Count(filter); err != nil || n != 3 {
		t.Fatalf("Count(%s) = %d, %v; want 3", filter, n, err)
	}
	rows, err := v.Query(filter+" | sort by (_time)", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want 3: %v", len(rows), rows)
	}
	wantStream := fmt.Sprintf(`{cluster="c1",job="kaudit-e2e",run=%q}`, run)
	for i, row := range rows {
		e := entries[i]
		// The line is stored verbatim, even when it is JSON (message parsing is off).
		check(t, row, "_msg", e.line)
		// Labels are both fields and the stream; metadata is not in the stream.
		check(t, row, "_stream", wantStream)
		check(t, row, "job", "kaudit-e2e")
		check(t, row, "cluster", "c1")
		check(t, row, "run", run)
		check(t, row, "verb", e.meta["verb"])
		check(t, row, "user", e.meta["user"])
		if _, ok := row["empty"]; ok {
			t.Errorf("row %d: empty-valued metadata stored: %v", i, row)
		}
		checkTime(t, row, e.ts)
	}

	// Metadata fields are ordinary fields: filterable.
	if n, err := v.Count(filter + " verb:=list user:=bob"); err != nil || n != 1 {
		t.Errorf("Count by metadata = %d, %v; want 1", n, err)
	}
	// limit>0 returns the newest first.
	newest, err := v.Query(filter, 1)
	if err != nil || len(newest) != 1 || newest[0]["_msg"] != entries[2].line {
		t.Errorf("Query(limit 1) = %v, %v; want the newest entry", newest, err)
	}

	// No de-duplication: the identical body pushed again doubles the count.
	push(t, v.PushURL(), "application/json", "", nil, body)
	if n, err := v.Count(filter); err != nil || n != 6 {
		t.Errorf("after re-push Count = %d, %v; want 6 (VictoriaLogs does not de-duplicate)", n, err)
	}
}

// TestVictoriaLogsLokiProtobufPush pushes a hand-encoded, snappy-compressed
// Loki PushRequest (two streams, structured metadata, nanosecond
// timestamps), then the same into another tenant via X-Scope-OrgID.
func TestVictoriaLogsLokiProtobufPush(t *testing.T) {
	v := StartVictoriaLogs(t)

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	base := time.Unix(time.Now().Add(-time.Hour).Unix(), 0)
	s1 := pbStream{
		labels: map[string]string{"job": "kaudit-pb", "namespace": `kube "system"`, "run": run},
		entries: []pbEntry{
			{base.Add(123456789), "pb line one", [][2]string{{"verb", "create"}, {"user", "system:admin"}}},
			{base.Add(2*time.Second + 1), `{"json":"kept verbatim"}`, [][2]string{{"verb", "patch"}, {"stage", "ResponseComplete"}}},
			{base.Add(3 * time.Second), "pb line three", nil},
		},
	}
	s2 := pbStream{
		labels:  map[string]string{"job": "kaudit-pb-other", "run": run},
		entries: []pbEntry{{base.Add(4 * time.Second), "other stream", [][2]string{{"k", "v"}}}},
	}
	body := snappy.Encode(nil, encodePushRequest([]pbStream{s1, s2}))
	push(t, v.PushURL(), "application/x-protobuf", "snappy", nil, body)

	filter := fmt.Sprintf(`{job="kaudit-pb",run=%q}`, run)
	if n, err := v.Count(fmt.Sprintf(`{run=%q}`, run)); err != nil || n != 4 {
		t.Fatalf("Count(run) = %d, %v; want 4", n, err)
	}
	rows, err := v.Query(filter+" | sort by (_time)", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want 3: %v", len(rows), rows)
	}
	wantStream := fmt.Sprintf(`{job="kaudit-pb",namespace="kube \"system\"",run=%q}`, run)
	for i, row := range rows {
		e := s1.entries[i]
		check(t, row, "_msg", e.line)
		check(t, row, "_stream", wantStream)
		check(t, row, "job", "kaudit-pb")
		check(t, row, "namespace", `kube "system"`)
		for _, kv := range e.meta {
			check(t, row, kv[0], kv[1])
		}
		checkTime(t, row, e.ts)
	}
	if _, ok := rows[2]["verb"]; ok {
		t.Errorf("entry without metadata has a verb field: %v", rows[2])
	}

	// Tenants: X-Scope-OrgID "12:34" on push; AccountID/ProjectID on query.
	tenantBody := snappy.Encode(nil, encodePushRequest([]pbStream{{
		labels:  map[string]string{"job": "kaudit-tenant", "run": run},
		entries: []pbEntry{{base, "tenant line", [][2]string{{"t", "12:34"}}}},
	}}))
	push(t, v.PushURL(), "application/x-protobuf", "", http.Header{"X-Scope-OrgID": {"12:34"}}, tenantBody)
	tf := fmt.Sprintf(`{job="kaudit-tenant",run=%q}`, run)
	if n, err := v.CountTenant("12:34", tf); err != nil || n != 1 {
		t.Errorf("CountTenant(12:34) = %d, %v; want 1", n, err)
	}
	if n, err := v.Count(tf); err != nil || n != 0 {
		t.Errorf("Count(default tenant) = %d, %v; want 0", n, err)
	}
	// A non-numeric org id is refused.
	status, msg := pushStatus(t, v.PushURL(), "application/x-protobuf", "", http.Header{"X-Scope-OrgID": {"team-a"}}, tenantBody)
	if status != http.StatusBadRequest {
		t.Errorf("push with X-Scope-OrgID=team-a: %d %s; want 400", status, msg)
	}
}

func check(t *testing.T, row map[string]string, field, want string) {
	t.Helper()
	if got, ok := row[field]; !ok || got != want {
		t.Errorf("field %q = %q (present %v), want %q; row %v", field, got, ok, want, row)
	}
}

func checkTime(t *testing.T, row map[string]string, want time.Time) {
	t.Helper()
	got, err := time.Parse(time.RFC3339Nano, row["_time"])
	if err != nil || !got.Equal(want) {
		t.Errorf("_time = %q (%v), want %s", row["_time"], err, want.UTC().Format(time.RFC3339Nano))
	}
}

func push(t *testing.T, url, contentType, encoding string, hdr http.Header, body []byte) {
	t.Helper()
	if status, msg := pushStatus(t, url, contentType, encoding, hdr, body); status != http.StatusNoContent {
		t.Fatalf("push %s: status %d: %s", contentType, status, msg)
	}
}

func pushStatus(t *testing.T, url, contentType, encoding string, hdr http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

// ---- test-local Loki PushRequest encoder (schema of Loki's pkg/push/push.proto) ----
//
//	PushRequest      { repeated StreamAdapter streams = 1; }
//	StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//	EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//	                   repeated LabelPairAdapter structuredMetadata = 3; }
//	LabelPairAdapter { string name = 1; string value = 2; }
//	Timestamp        { int64 seconds = 1; int32 nanos = 2; }

type pbStream struct {
	labels  map[string]string
	entries []pbEntry
}

type pbEntry struct {
	ts   time.Time
	line string
	meta [][2]string
}

func encodePushRequest(streams []pbStream) []byte {
	var req []byte
	for _, s := range streams {
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.BytesType)
		sb = protowire.AppendString(sb, promLabels(s.labels))
		for _, e := range s.entries {
			sb = protowire.AppendTag(sb, 2, protowire.BytesType)
			sb = protowire.AppendBytes(sb, encodeEntry(e))
		}
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, sb)
	}
	return req
}

func encodeEntry(e pbEntry) []byte {
	var ts []byte
	if secs := e.ts.Unix(); secs != 0 {
		ts = protowire.AppendTag(ts, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(secs))
	}
	if nanos := e.ts.Nanosecond(); nanos != 0 {
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(int64(int32(nanos))))
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, e.line)
	for _, kv := range e.meta {
		var p []byte
		p = protowire.AppendTag(p, 1, protowire.BytesType)
		p = protowire.AppendString(p, kv[0])
		p = protowire.AppendTag(p, 2, protowire.BytesType)
		p = protowire.AppendString(p, kv[1])
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	return b
}

// promLabels renders labels the way Loki clients send them: {a="x", b="y"}.
func promLabels(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
