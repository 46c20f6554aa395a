package lokifake

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

func post(t *testing.T, url, ctype, enc, tenant string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func jsonBody(labels string, vals ...[]string) []byte {
	var streams []map[string]any
	var ls map[string]string
	json.Unmarshal([]byte(labels), &ls)
	streams = append(streams, map[string]any{"stream": ls, "values": vals})
	b, _ := json.Marshal(map[string]any{"streams": streams})
	return b
}

// pbBody hand-encodes one stream with one entry per line (field numbers of
// Loki's push.proto).
func pbBody(labels string, ts time.Time, lines ...string) []byte {
	var s []byte
	s = protowire.AppendTag(s, 1, protowire.BytesType)
	s = protowire.AppendString(s, labels)
	for _, l := range lines {
		var tsb, e []byte
		tsb = protowire.AppendTag(tsb, 1, protowire.VarintType)
		tsb = protowire.AppendVarint(tsb, uint64(ts.Unix()))
		tsb = protowire.AppendTag(tsb, 2, protowire.VarintType)
		tsb = protowire.AppendVarint(tsb, uint64(ts.Nanosecond()))
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendBytes(e, tsb)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, l)
		e = protowire.AppendTag(e, 3, protowire.BytesType)
		var p []byte
		p = protowire.AppendTag(p, 1, protowire.BytesType)
		p = protowire.AppendString(p, "k")
		p = protowire.AppendTag(p, 2, protowire.BytesType)
		p = protowire.AppendString(p, "v")
		e = protowire.AppendBytes(e, p)
		s = protowire.AppendTag(s, 2, protowire.BytesType)
		s = protowire.AppendBytes(s, e)
	}
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, s)
	return snappy.Encode(nil, req)
}

func TestProtobufJSONAndDedup(t *testing.T) {
	f := New(t, Options{})
	ts := time.Date(2025, 6, 2, 16, 0, 0, 123456789, time.UTC)
	if c, b := post(t, f.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a", x="y"}`, ts, "one", "two")); c != 204 {
		t.Fatalf("%d %s", c, b)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(jsonBody(`{"x":"y","job":"a"}`, []string{"1748880000123456789", "one"}, []string{"1748880000123456789", "three"}))
	zw.Close()
	if c, b := post(t, f.PushURL(), "application/json", "gzip", "", zb.Bytes()); c != 204 {
		t.Fatalf("%d %s", c, b)
	}
	st := f.Streams("fake")
	if len(st) != 1 || st[0].Labels != `{job="a", x="y"}` || len(st[0].Entries) != 3 || f.Stats().Duplicates != 1 {
		t.Fatalf("%+v %+v", st, f.Stats())
	}
	if e := st[0].Entries[0]; !e.Timestamp.Equal(ts) || e.Metadata["k"] != "v" {
		t.Fatalf("%+v", e)
	}
}

func TestTenantsAndAuth(t *testing.T) {
	f := New(t, Options{AuthEnabled: true})
	body := jsonBody(`{"job":"a"}`, []string{"1", "x"})
	if c, b := post(t, f.PushURL(), "application/json", "", "", body); c != 401 || b != "no org id" {
		t.Fatalf("%d %s", c, b)
	}
	post(t, f.PushURL(), "application/json", "", "t1", body)
	post(t, f.PushURL(), "application/json", "", "t2", jsonBody(`{"job":"a"}`, []string{"1", "y"}))
	if f.Count("t1") != 1 || f.Count("t2") != 1 || f.Streams("t1")[0].Entries[0].Line != "x" {
		t.Fatal("tenants mixed")
	}
	req, _ := http.NewRequest("GET", f.URL+`/loki/api/v1/query_range?query={job="a"}`, nil)
	req.Header.Set("X-Scope-OrgID", "t2")
	resp, _ := http.DefaultClient.Do(req)
	var qr struct {
		Status string
		Data   struct {
			Result []struct {
				Stream map[string]string
				Values [][]string
			}
		}
	}
	json.NewDecoder(resp.Body).Decode(&qr)
	resp.Body.Close()
	if qr.Status != "success" || len(qr.Data.Result) != 1 || qr.Data.Result[0].Values[0][1] != "y" {
		t.Fatalf("%+v", qr)
	}
}

func TestValidationMessages(t *testing.T) {
	now := time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)
	f := New(t, Options{RejectOldSamples: true, MaxLineSize: 5, Now: func() time.Time { return now }})
	old := now.Add(-200 * time.Hour)
	c, b := post(t, f.PushURL(), "application/json", "", "", jsonBody(`{"job":"a"}`,
		[]string{itoa(old), "old"}, []string{itoa(now), "toolongline"}, []string{itoa(now.Add(time.Hour)), "new"}, []string{itoa(now), "ok"}))
	if c != 400 {
		t.Fatalf("%d", c)
	}
	for _, want := range []string{
		"entry for stream '{job=\"a\"}' has timestamp too old: 2025-06-01T16:00:00Z, oldest acceptable timestamp is: 2025-06-03T00:00:00Z",
		"max entry size '5' bytes exceeded for stream '{job=\"a\"}' while adding an entry with length '11' bytes",
		"entry for stream '{job=\"a\"}' has timestamp too new: 2025-06-10T01:00:00Z",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("body lacks %q:\n%s", want, b)
		}
	}
	if f.Count("fake") != 1 { // partial acceptance
		t.Fatalf("stored %d", f.Count("fake"))
	}
	for body, want := range map[string]string{
		`{"streams":[{"stream":{},"values":[["1","x"]]}]}`:          "at least one label pair",
		`{"streams":[{"stream":{"a-b":"c"},"values":[["1","x"]]}]}`: "error parsing labels",
		`{"streams":[{"stream":{"a":"c"},"values":[[1,"x"]]}]}`:     "timestamp must be a string",
	} {
		if c, b := post(t, f.PushURL(), "application/json", "", "", []byte(body)); c != 400 || !strings.Contains(b, want) {
			t.Errorf("%s: %d %s", body, c, b)
		}
	}
}

func itoa(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

func TestOrderingStructuredMetadataAndRateLimit(t *testing.T) {
	base := time.Date(2025, 6, 2, 16, 0, 0, 0, time.UTC)
	f := New(t, Options{OrderedWrites: true})
	post(t, f.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base, "late"))
	c, b := post(t, f.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base.Add(-time.Second), "early"))
	if c != 400 || !strings.Contains(b, "ignored, reason: 'entry out of order' for stream: {job=\"a\"},") || !strings.Contains(b, "total ignored: 1 out of 1") {
		t.Fatalf("%d %s", c, b)
	}

	u := New(t, Options{})
	post(t, u.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base, "late"))
	if c, _ := post(t, u.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base.Add(-30*time.Minute), "fine")); c != 204 {
		t.Fatalf("unordered within window: %d", c)
	}
	c, b = post(t, u.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base.Add(-2*time.Hour), "behind"))
	if c != 400 || !strings.Contains(b, "reason: 'entry too far behind, entry timestamp is: 2025-06-02T14:00:00Z, oldest acceptable timestamp is: 2025-06-02T15:00:00Z',") {
		t.Fatalf("%d %s", c, b)
	}

	sm := New(t, Options{DisallowStructuredMetadata: true})
	c, b = post(t, sm.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base, "x"))
	if c != 400 || !strings.Contains(b, "includes structured metadata, but this feature is disallowed") || sm.Count("fake") != 0 {
		t.Fatalf("%d %s", c, b)
	}

	rl := New(t, Options{IngestionRateBytes: 20, Now: func() time.Time { return base }})
	if c, _ := post(t, rl.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base, "0123456789")); c != 204 {
		t.Fatalf("within the burst: %d", c)
	}
	c, b = post(t, rl.PushURL(), "application/x-protobuf", "", "", pbBody(`{job="a"}`, base, "abcdefghij", "klmnopqrst"))
	if c != 429 || !strings.HasPrefix(b, "ingestion rate limit exceeded for user fake (limit: 20 bytes/sec) while attempting to ingest '2' lines totaling '24' bytes") || rl.Count("fake") != 1 {
		t.Fatalf("%d %s", c, b)
	}
}
