package loki

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
)

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(config.MapProps("k", nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.URL.String() != DefaultURL || c.Format != "protobuf" || c.LineFormat != "json" || c.TimestampField != "stageTimestamp" ||
		c.RetryMaxWait != DefaultRetryMaxWait || c.Timeout != DefaultTimeout || c.BatchMaxBytes != DefaultBatchMaxBytes || c.TLS != nil {
		t.Fatalf("%+v", c)
	}
	var names []string
	for _, l := range c.Labels {
		names = append(names, l.name)
	}
	if strings.Join(names, ",") != "job,cluster,node,verb,resource,namespace,level,critical" || len(c.HighCardinalityLabels) != 0 {
		t.Fatalf("labels %v", names)
	}
	if len(c.Metadata) != 3 || c.Metadata[0].name != "audit_id" {
		t.Fatalf("metadata %v", c.Metadata)
	}
	c, _ = parseConfig(config.MapProps("k", map[string]string{"url": "https://loki.example:3100/"}))
	if c.URL.Path != DefaultPushPath || c.TLS == nil || c.TLS.InsecureSkipVerify {
		t.Fatalf("%v %+v", c.URL, c.TLS)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	for _, tc := range []struct {
		props map[string]string
		key   string
	}{
		{map[string]string{"url": "ftp://x"}, "url"},
		{map[string]string{"url": "http://a, http://b"}, "url"},
		{map[string]string{"url": "http://u:p@x"}, "url"},
		{map[string]string{"format": "avro"}, "format"},
		{map[string]string{"line_format": "xml"}, "line_format"},
		{map[string]string{"labels": "job=kaudit, nosuchfield"}, "labels"},
		{map[string]string{"labels": "verb, verb"}, "labels"},
		{map[string]string{"labels": "job="}, "labels"},
		{map[string]string{"structured_metadata": "audit_id, bogus"}, "structured_metadata"},
		{map[string]string{"logfmt_fields": "bogus"}, "logfmt_fields"},
		{map[string]string{"timestamp_field": "@timestamp"}, "timestamp_field"},
		{map[string]string{"timeout": "0"}, "timeout"},
		{map[string]string{"retry_max_wait": "soon"}, "retry_max_wait"},
		{map[string]string{"batch_max_bytes": "10"}, "batch_max_bytes"},
		{map[string]string{"http_passwd": "p"}, "http_user"},
		{map[string]string{"bearer_token_file": "/nonexistent"}, "bearer_token_file"},
		{map[string]string{"bearer_token_file": junk, "http_user": "u"}, "bearer_token_file"},
		{map[string]string{"url": "https://x", "tls_ca_file": junk}, "tls_ca_file"},
		{map[string]string{"tls_crt_file": junk}, "tls_key_file"},
		{map[string]string{"tls_verify": "maybe"}, "tls_verify"},
		{map[string]string{"sent_cache_entries": "-1"}, "sent_cache_entries"},
	} {
		_, err := parseConfig(config.MapProps("kaudit.3", tc.props))
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != tc.key || ce.Instance != "kaudit.3" {
			t.Errorf("%v: error %v, want one naming %s", tc.props, err, tc.key)
		}
		if err != nil && strings.Contains(err.Error(), "p@x") {
			t.Errorf("credentials in error: %v", err)
		}
	}
}

func TestHighCardinalityLabelsWarnOnce(t *testing.T) {
	lb := &logBuf{}
	log := flblog.NewTo(lb, &lb.mu, "k", flblog.Info)
	_, err := NewSink(config.MapProps("k", map[string]string{"labels": "job=kaudit, user, audit_id, verb"}), sink.Env{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if lb.Count("high-cardinality") != 1 || !strings.Contains(lb.String(), "[audit_id user]") && !strings.Contains(lb.String(), "[user audit_id]") {
		t.Fatalf("log:\n%s", lb)
	}
}

func TestSanitizeLabelName(t *testing.T) {
	for in, want := range map[string]string{
		"job": "job", "api-group": "api_group", "9lives": "_9lives", "__name__": "_name__",
		"a.b/c": "a_b_c", "ünï": "_n__", "---": "", "_ok_1": "_ok_1", "kube.audit": "kube_audit",
	} {
		if got := SanitizeLabelName(in); got != want {
			t.Errorf("SanitizeLabelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLabelStringsRoundTrip(t *testing.T) {
	ps := []pair{{"a", `x"y\z`}, {"b", "é\n"}}
	s := formatLabels(ps)
	if s != `{a="x\"y\\z", b="é\n"}` {
		t.Fatalf("%s", s)
	}
	if canonicalLabels(`{b="é\n",a="x\"y\\z"}`) != s {
		t.Fatalf("canonical %q", canonicalLabels(`{b="é\n",a="x\"y\\z"}`))
	}
}

func TestParseRejections(t *testing.T) {
	body := "entry for stream '{job=\"kaudit\"}' has timestamp too old: 2025-06-02T16:00:00Z, oldest acceptable timestamp is: 2025-06-02T17:00:00Z\n" +
		"entry with timestamp 2025-06-02 18:00:00.5 +0000 UTC ignored, reason: 'entry out of order' for stream: {job=\"b\"},\n" +
		"entry with timestamp 2025-06-02 15:00:00 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2025-06-02T15:00:00Z, oldest acceptable timestamp is: 2025-06-02T16:30:00Z',  for stream: {job=\"c\"},\n" +
		"max entry size '10' bytes exceeded for stream '{job=\"d\"}' while adding an entry with length '11' bytes\n" +
		"total ignored: 2 out of 9"
	rs := parseRejections(body)
	if len(rs) != 4 {
		t.Fatalf("%d rejections: %+v", len(rs), rs)
	}
	want := []string{ReasonTooOld, ReasonOutOfOrder, ReasonTooFarBehind, ReasonLineTooLong}
	for i, r := range rs {
		if r.reason != want[i] {
			t.Errorf("%d: %s, want %s", i, r.reason, want[i])
		}
	}
	ts := func(s string) int64 {
		t2, _ := parseLokiTime(s)
		return t2.UnixNano()
	}
	cases := []struct {
		r      int
		labels string
		e      entry
		want   bool
	}{
		{0, `{job="x"}`, entry{ts: ts("2025-06-02T16:59:59Z")}, true}, // tenant-wide cutoff
		{0, `{job="x"}`, entry{ts: ts("2025-06-02T17:00:01Z")}, false},
		{1, `{job="b"}`, entry{ts: ts("2025-06-02T18:00:00.5Z")}, true},
		{1, `{job="b"}`, entry{ts: ts("2025-06-02T18:00:00.6Z")}, false},
		{1, `{job="c"}`, entry{ts: ts("2025-06-02T18:00:00.5Z")}, false},
		{2, `{job="c"}`, entry{ts: ts("2025-06-02T16:00:00Z")}, true},
		{2, `{job="c"}`, entry{ts: ts("2025-06-02T16:31:00Z")}, false},
		{3, `{job="d"}`, entry{line: []byte("12345678901")}, true},
		{3, `{job="d"}`, entry{line: []byte("1234567890")}, false},
	}
	for i, c := range cases {
		if got := rs[c.r].match(c.labels, &c.e); got != c.want {
			t.Errorf("case %d: match %v, want %v", i, got, c.want)
		}
	}
	if parseRejections("some unknown complaint") != nil {
		t.Error("unknown 400 parsed")
	}
	if !structuredMetadataDisallowed("stream '{a=\"b\"}' includes structured metadata, but this feature is disallowed. Please see …") {
		t.Error("structured metadata message not recognised")
	}
}
