package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/test/servers"
)

// Each detection search of conf/elasticsearch/queries runs against a real
// OpenSearch node holding the documents the plugin ships for the sample
// log (bulked under the sink's OpenSearch template), with "now" moved to
// the scenario's time; the hits must be those the scenario predicts,
// computed here from the same documents.

const osIndex = "kaudit-deploytest-000001"

func str(d map[string]any, p string) string {
	v, _ := lookup(d, p)
	s, _ := v.(string)
	return s
}

func num(d map[string]any, p string) float64 {
	v, _ := lookup(d, p)
	f, _ := v.(float64)
	return f
}

func docTime(d map[string]any) time.Time {
	ts, _ := time.Parse(time.RFC3339Nano, str(d, "@timestamp"))
	return ts
}

func inWindow(d map[string]any, anchor time.Time, w time.Duration) bool {
	ts := docTime(d).Truncate(time.Millisecond) // the date field keeps milliseconds
	return !ts.Before(anchor.Add(-w)) && !ts.After(anchor)
}

func hasAny(v string, set ...string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

type esScenario struct {
	file   string
	anchor string // the scenario's "now"
	window time.Duration
	// match is the query's document filter, written again in Go.
	match func(d map[string]any) bool
	// groupBy and minCount describe the bucket aggregation "agg" (empty for hit lists).
	agg      string
	groupBy  func(d map[string]any) string
	minCount int
	// post filters groups (the bucket_selector), given the group's docs.
	post func(docs []map[string]any) bool
	// trigger is the alert condition on a bucket, applied to the response.
	trigger func(bucket map[string]any) bool
	// must names a key (bucket or auditID) the scenario is about.
	must string
}

func answered(d map[string]any) bool { return str(d, "stage") != "RequestReceived" }

var esScenarios = []esScenario{
	{
		file: "auth-failures-inside-and-outside.json", anchor: "2025-06-02T22:32:00Z", window: 15 * time.Minute,
		match: func(d map[string]any) bool {
			c := num(d, "responseStatus.code")
			return (c == 401 || c == 403) && str(d, "kaudit.actor.type") == "user"
		},
		agg: "by_user", groupBy: func(d map[string]any) string { return str(d, "user.username") },
		post: func(docs []map[string]any) bool {
			nets := map[bool]bool{}
			for _, d := range docs {
				v, _ := lookup(d, "kaudit.source.trusted")
				b, _ := v.(bool)
				nets[b] = true
			}
			return len(nets) == 2
		},
		// Watcher / monitor condition: the user failed from both networks.
		trigger: func(b map[string]any) bool { v, _ := lookup(b, "networks.value"); return v == 2.0 },
		must:    "bob", // 22:31: 403s from 203.0.113.77, then from 10.20.4.9
	},
	{
		file: "secret-read-burst.json", anchor: "2025-06-03T04:12:45Z", window: time.Minute,
		match: func(d map[string]any) bool {
			return answered(d) && str(d, "objectRef.resource") == "secrets" && hasAny(str(d, "verb"), "get", "list", "watch") &&
				str(d, "kaudit.outcome") == "success" && hasAny(str(d, "kaudit.actor.type"), "user", "serviceaccount", "anonymous") &&
				str(d, "kaudit.actor.serviceaccount.namespace") != "kube-system"
		},
		agg: "by_actor", groupBy: func(d map[string]any) string { return str(d, "kaudit.actor.name") }, minCount: 20,
		must: "system:serviceaccount:tools:backup-agent", // 04:12: 24 Secrets in ~30 s
	},
	{
		file: "mass-delete.json", anchor: "2025-06-03T12:20:45Z", window: time.Minute,
		match: func(d map[string]any) bool {
			return answered(d) && hasAny(str(d, "verb"), "delete", "deletecollection") && str(d, "kaudit.outcome") == "success" &&
				hasAny(str(d, "kaudit.actor.type"), "user", "serviceaccount", "anonymous") && str(d, "objectRef.resource") != "events" &&
				str(d, "kaudit.actor.serviceaccount.namespace") != "kube-system"
		},
		agg: "by_actor", groupBy: func(d map[string]any) string { return str(d, "kaudit.actor.name") }, minCount: 30,
		// 12:20: dave deletes 12 objects and a namespace: below the threshold
		// of 30 (no bucket); the lowered-threshold run below finds him.
	},
	{
		file: "alerts-high-critical.json", anchor: "2025-06-03T04:13:00Z", window: 5 * time.Minute,
		match: func(d map[string]any) bool {
			alerts, _ := lookup(d, "kaudit.alerts")
			for _, a := range asSlice(alerts) {
				if m, ok := a.(map[string]any); ok && hasAny(fmt.Sprint(m["severity"]), "high", "critical") {
					return true
				}
			}
			return false
		},
		must: "secret-read", // the backup agent's cross-namespace reads
	},
	{
		file: "critical-workload-unexpected-actor.json", anchor: "2025-06-02T17:06:00Z", window: 5 * time.Minute,
		match: func(d map[string]any) bool {
			if v, _ := lookup(d, "kaudit.critical_workload"); v != true || !answered(d) || hasAny(str(d, "verb"), "get", "list", "watch") {
				return false
			}
			crit, _ := lookup(d, "kaudit.critical")
			for _, c := range asSlice(crit) {
				if m, ok := c.(map[string]any); ok && m["expected_actor"] == false {
					return true
				}
			}
			return false
		},
		must: "alice@example.com", // 17:05: alice binds cluster-admin to bob
	},
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// anchored replaces "now" in the query's range with the scenario's time.
func anchored(body []byte, anchor string) []byte {
	s := string(body)
	for _, w := range []string{"15m", "5m", "1m"} {
		s = strings.ReplaceAll(s, `"now-`+w+`"`, `"`+anchor+`||-`+w+`"`)
	}
	return []byte(strings.ReplaceAll(s, `"now"`, `"`+anchor+`"`))
}

func loadOpenSearch(t *testing.T) *servers.OpenSearch {
	t.Helper()
	node := servers.SharedOpenSearch(t)
	docs := shippedDocs(t)
	var tmpl map[string]any
	if err := json.Unmarshal(readFile(t, "conf/elasticsearch/opensearch.json"), &tmpl); err != nil {
		t.Fatal(err)
	}
	tmpl["index_patterns"] = []string{"kaudit-deploytest-*"}
	tb, _ := json.Marshal(tmpl)
	if st, b, err := node.Do(http.MethodPut, "/_index_template/kaudit-deploytest", tb); err != nil || st != 200 {
		t.Fatalf("template: %d %s %v", st, b, err)
	}
	node.Do(http.MethodDelete, "/"+osIndex, nil)
	var bulk bytes.Buffer
	for _, raw := range shipped.raw {
		bulk.WriteString(`{"index":{"_index":"` + osIndex + `"}}` + "\n")
		bulk.Write(raw)
		bulk.WriteByte('\n')
	}
	st, b, err := node.Do(http.MethodPost, "/_bulk?refresh=true", bulk.Bytes())
	if err != nil || st != 200 {
		t.Fatalf("bulk: %d %v", st, err)
	}
	var br struct {
		Errors bool             `json:"errors"`
		Items  []map[string]any `json:"items"`
	}
	json.Unmarshal(b, &br)
	if br.Errors {
		for _, it := range br.Items {
			if e := it["index"].(map[string]any)["error"]; e != nil {
				t.Fatalf("bulk item rejected under the OpenSearch template: %v", e)
			}
		}
	}
	if n := node.Count(osIndex); n != len(docs) {
		t.Fatalf("indexed %d of %d documents", n, len(docs))
	}
	return node
}

func search(t *testing.T, node *servers.OpenSearch, body []byte) map[string]any {
	t.Helper()
	st, b, err := node.Do(http.MethodPost, "/"+osIndex+"/_search", body)
	if err != nil || st != 200 {
		t.Fatalf("search: HTTP %d %v: %s", st, err, b)
	}
	var r map[string]any
	json.Unmarshal(b, &r)
	return r
}

func TestElasticsearchQueriesOnOpenSearch(t *testing.T) {
	if testing.Short() {
		t.Skip("OpenSearch node: not in -short")
	}
	files := queryFiles(t)
	if len(files) != len(esScenarios) {
		t.Errorf("%d query files, %d scenarios: every query needs a scenario", len(files), len(esScenarios))
	}
	node := loadOpenSearch(t)
	docs := shippedDocs(t)
	for _, sc := range esScenarios {
		t.Run(strings.TrimSuffix(sc.file, ".json"), func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(root(t), "conf", "elasticsearch", "queries", sc.file))
			if err != nil {
				t.Fatal(err)
			}
			anchor, _ := time.Parse(time.RFC3339, sc.anchor)
			var want []map[string]any
			for _, d := range docs {
				if inWindow(d, anchor, sc.window) && sc.match(d) {
					want = append(want, d)
				}
			}
			r := search(t, node, anchored(body, sc.anchor))
			total, _ := lookup(r, "hits.total.value")
			if int(total.(float64)) != len(want) {
				t.Errorf("%d documents match, the scenario predicts %d", int(total.(float64)), len(want))
			}
			if sc.agg == "" {
				got := map[string]bool{}
				for _, h := range asSlice(mustLookup(t, r, "hits.hits")) {
					src := h.(map[string]any)["_source"].(map[string]any)
					got[str(src, "auditID")] = true
				}
				found := false
				for _, d := range want {
					if !got[str(d, "auditID")] {
						t.Errorf("hit %s missing", str(d, "auditID"))
					}
					b, _ := json.Marshal(d)
					if strings.Contains(string(b), sc.must) {
						found = true
					}
				}
				if !found {
					t.Errorf("no hit mentions %q, the scenario's subject", sc.must)
				}
				return
			}
			check := func(body []byte, minCount int, must string) {
				r := search(t, node, body)
				groups := map[string][]map[string]any{}
				for _, d := range want {
					groups[sc.groupBy(d)] = append(groups[sc.groupBy(d)], d)
				}
				wantBuckets := map[string]int{}
				for k, g := range groups {
					if k != "" && len(g) >= minCount && (sc.post == nil || sc.post(g)) {
						wantBuckets[k] = len(g)
					}
				}
				gotBuckets := map[string]int{}
				for _, b := range asSlice(mustLookup(t, r, "aggregations."+sc.agg+".buckets")) {
					m := b.(map[string]any)
					// The trigger condition (a script in Watcher or the
					// monitor, kept out of the search itself).
					if sc.trigger != nil && !sc.trigger(m) {
						continue
					}
					gotBuckets[fmt.Sprint(m["key"])] = int(m["doc_count"].(float64))
				}
				if fmt.Sprint(sortedMap(gotBuckets)) != fmt.Sprint(sortedMap(wantBuckets)) {
					t.Errorf("min_doc_count %d: buckets %v, the scenario predicts %v", minCount, gotBuckets, wantBuckets)
				}
				if must != "" && gotBuckets[must] == 0 {
					t.Errorf("min_doc_count %d: no bucket for %s", minCount, must)
				}
			}
			check(anchored(body, sc.anchor), sc.minCount, sc.must)
			if sc.file == "mass-delete.json" {
				// Below the threshold on the sample: lowered, it finds dave's 12:20 deletions.
				lowered := strings.Replace(string(anchored(body, sc.anchor)), `"min_doc_count": 30`, `"min_doc_count": 10`, 1)
				check([]byte(lowered), 10, "dave@example.com")
			}
		})
	}
}

func mustLookup(t *testing.T, m map[string]any, p string) any {
	t.Helper()
	v, ok := lookup(m, p)
	if !ok {
		t.Fatalf("response lacks %s", p)
	}
	return v
}

func sortedMap(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}
