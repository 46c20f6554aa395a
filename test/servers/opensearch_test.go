package servers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// osJSON sends a request and decodes the JSON answer, failing the test on a
// transport error or an undecodable body; the status is returned for checks.
func osJSON(t *testing.T, s *OpenSearch, method, path string, body string) (int, map[string]any) {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	st, resp, err := s.Do(method, path, b)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatalf("%s %s: HTTP %d, not JSON: %v: %s", method, path, st, err, resp)
	}
	return st, m
}

func osMustOK(t *testing.T, s *OpenSearch, method, path, body string) map[string]any {
	t.Helper()
	st, m := osJSON(t, s, method, path, body)
	if st < 200 || st > 299 {
		t.Fatalf("%s %s: HTTP %d: %v", method, path, st, m)
	}
	return m
}

// osBulkItems returns, per bulk item, the action's result object.
func osBulkItems(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	raw, _ := m["items"].([]any)
	var out []map[string]any
	for _, it := range raw {
		for _, v := range it.(map[string]any) { // one key: the op type
			out = append(out, v.(map[string]any))
		}
	}
	return out
}

// osGet walks a decoded JSON document: osGet(m, "a", "b") is m["a"]["b"].
func osGet(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

func TestOpenSearch(t *testing.T) {
	s := StartOpenSearch(t)

	t.Run("Version", func(t *testing.T) {
		m := osMustOK(t, s, http.MethodGet, "/", "")
		if v := osGet(m, "version", "number"); v != "2.19.6" {
			t.Fatalf("version.number = %v, want 2.19.6 (%v)", v, m)
		}
		if d := osGet(m, "version", "distribution"); d != "opensearch" {
			t.Fatalf("version.distribution = %v", d)
		}
	})

	t.Run("TemplateBulkMapping", func(t *testing.T) {
		osMustOK(t, s, http.MethodPut, "/_index_template/e2e-audit", `{
			"index_patterns": ["e2e-audit-*"],
			"priority": 100,
			"template": {
				"settings": {"number_of_shards": 1},
				"mappings": {
					"dynamic": true,
					"properties": {
						"verb":      {"type": "keyword"},
						"sourceIP":  {"type": "ip"},
						"ts":        {"type": "date"},
						"objectRef": {"type": "flat_object"}
					}
				}
			}
		}`)

		const idx = "e2e-audit-1"
		doc := func(id, verb, ip string) string {
			return fmt.Sprintf(`{"create":{"_index":%q,"_id":%q}}
{"verb":%q,"sourceIP":%q,"ts":"2025-01-02T03:04:05.123456Z","objectRef":{"resource":"pods","name":"p-%s","labels":{"app":"web"}}}
`, idx, id, verb, ip, id)
		}
		bulk := doc("a1", "get", "10.0.0.1") + doc("a2", "list", "2001:db8::1") + doc("a3", "create", "192.168.1.7")
		m := osMustOK(t, s, http.MethodPost, "/_bulk", bulk)
		if m["errors"] != false {
			t.Fatalf("bulk errors: %v", m)
		}
		for i, it := range osBulkItems(t, m) {
			if it["status"] != float64(201) || it["result"] != "created" {
				t.Fatalf("item %d: %v", i, it)
			}
		}

		// Same id again with op_type create: a per-item 409.
		m = osMustOK(t, s, http.MethodPost, "/_bulk", doc("a2", "list", "2001:db8::1"))
		items := osBulkItems(t, m)
		if m["errors"] != true || len(items) != 1 || items[0]["status"] != float64(409) {
			t.Fatalf("re-create: %v", m)
		}
		if typ := osGet(items[0], "error", "type"); typ != "version_conflict_engine_exception" {
			t.Fatalf("re-create error type %v: %v", typ, items[0])
		}

		// A value an ip field can't parse: a per-item 400.
		m = osMustOK(t, s, http.MethodPost, "/_bulk", doc("bad1", "get", "not-an-ip"))
		items = osBulkItems(t, m)
		if m["errors"] != true || len(items) != 1 || items[0]["status"] != float64(400) {
			t.Fatalf("bad ip: %v", m)
		}
		typ, _ := osGet(items[0], "error", "type").(string)
		if typ != "mapper_parsing_exception" && typ != "document_parsing_exception" {
			t.Fatalf("bad ip error type %q: %v", typ, items[0])
		}
		t.Logf("bad ip item: %s: %v", typ, osGet(items[0], "error", "reason"))

		if n := s.Count(idx); n != 3 {
			t.Fatalf("count = %d, want 3", n)
		}

		m = osMustOK(t, s, http.MethodGet, "/"+idx+"/_mapping", "")
		props := osGet(m, idx, "mappings", "properties")
		for field, want := range map[string]string{
			"verb": "keyword", "sourceIP": "ip", "ts": "date", "objectRef": "flat_object",
		} {
			if got := osGet(props, field, "type"); got != want {
				t.Errorf("mapping %s: type %v, want %s", field, got, want)
			}
		}

		// flat_object is searchable by dotted path; ip by CIDR.
		m = osMustOK(t, s, http.MethodPost, "/"+idx+"/_search", `{"query":{"term":{"objectRef.name":"p-a2"}}}`)
		if n := osGet(m, "hits", "total", "value"); n != float64(1) {
			t.Fatalf("flat_object term: %v", m)
		}
		m = osMustOK(t, s, http.MethodPost, "/"+idx+"/_search", `{"query":{"term":{"sourceIP":"10.0.0.0/8"}}}`)
		if n := osGet(m, "hits", "total", "value"); n != float64(1) {
			t.Fatalf("ip CIDR term: %v", m)
		}

		// Update and delete by id.
		m = osMustOK(t, s, http.MethodPost, "/"+idx+"/_update/a3", `{"doc":{"verb":"patch"}}`)
		if m["result"] != "updated" {
			t.Fatalf("update: %v", m)
		}
		m = osMustOK(t, s, http.MethodDelete, "/"+idx+"/_doc/a1", "")
		if m["result"] != "deleted" {
			t.Fatalf("delete: %v", m)
		}
		if n := s.Count(idx); n != 2 {
			t.Fatalf("count after delete = %d, want 2", n)
		}
		m = osMustOK(t, s, http.MethodGet, "/"+idx+"/_doc/a3", "")
		if v := osGet(m, "_source", "verb"); v != "patch" {
			t.Fatalf("updated doc: %v", m)
		}
	})

	t.Run("DataStream", func(t *testing.T) {
		osMustOK(t, s, http.MethodPut, "/_index_template/e2e-ds", `{
			"index_patterns": ["e2e-ds-*"],
			"data_stream": {},
			"priority": 100,
			"template": {
				"mappings": {
					"properties": {
						"@timestamp": {"type": "date"},
						"verb":       {"type": "keyword"},
						"objectRef":  {"type": "flat_object"}
					}
				}
			}
		}`)
		const ds = "e2e-ds-audit"
		m := osMustOK(t, s, http.MethodPost, "/_bulk",
			`{"create":{"_index":"`+ds+`","_id":"d1"}}
{"@timestamp":"2025-01-02T03:04:05Z","verb":"get","objectRef":{"resource":"secrets"}}
{"create":{"_index":"`+ds+`","_id":"d2"}}
{"@timestamp":"2025-01-02T03:04:06Z","verb":"watch","objectRef":{"resource":"pods"}}
`)
		if m["errors"] != false {
			t.Fatalf("bulk into data stream: %v", m)
		}
		items := osBulkItems(t, m)
		if bi, _ := items[0]["_index"].(string); !strings.HasPrefix(bi, ".ds-"+ds+"-") {
			t.Fatalf("backing index %q", bi)
		}
		// Data streams take only op_type create.
		st, m := osJSON(t, s, http.MethodPost, "/_bulk", `{"index":{"_index":"`+ds+`","_id":"d3"}}
{"@timestamp":"2025-01-02T03:04:07Z","verb":"get"}
`)
		if st != 200 || osBulkItems(t, m)[0]["status"] != float64(400) {
			t.Fatalf("op_type index into data stream: HTTP %d %v", st, m)
		}

		m = osMustOK(t, s, http.MethodGet, "/_data_stream/"+ds, "")
		dss, _ := m["data_streams"].([]any)
		if len(dss) != 1 || osGet(dss[0], "name") != ds || osGet(dss[0], "template") != "e2e-ds" {
			t.Fatalf("data stream: %v", m)
		}
		t.Logf("data stream %s: status %v, indices %v", ds, osGet(dss[0], "status"), osGet(dss[0], "indices"))
		if n := s.Count(ds); n != 2 {
			t.Fatalf("data stream count = %d, want 2", n)
		}

		// Explicit creation also works.
		osMustOK(t, s, http.MethodPut, "/_data_stream/e2e-ds-explicit", "")
		if n := s.Count("e2e-ds-explicit"); n != 0 {
			t.Fatalf("empty data stream count = %d", n)
		}
	})

	t.Run("Health", func(t *testing.T) {
		m := osMustOK(t, s, http.MethodGet, "/_cluster/health?wait_for_status=green&timeout=30s", "")
		if m["status"] != "green" {
			t.Fatalf("health: %v", m)
		}
		if n := s.Count("no-such-index"); n != -1 {
			t.Fatalf("Count of a missing index = %d, want -1", n)
		}
		t.Logf("RSS after the tests: %d MiB", s.RSS()>>20)
	})
}

func TestSharedOpenSearch(t *testing.T) {
	a := SharedOpenSearch(t)
	b := SharedOpenSearch(t)
	if a != b {
		t.Fatal("SharedOpenSearch returned two nodes")
	}
	st, body, err := a.Do(http.MethodGet, "/", nil)
	if err != nil || st != 200 || !strings.Contains(string(body), `"2.19.6"`) {
		t.Fatalf("GET /: %d %v %s", st, err, body)
	}
}
