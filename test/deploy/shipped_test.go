package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kaudit/kaudit/test/hosttest"
)

// Shipped documents: the sample log through the real plugin, driven by the
// C host like Fluent Bit drives it, with the stdout sink writing the exact
// documents the Loki and Elasticsearch sinks ship to a file.

const (
	sampleCluster = "sample"
	sampleNode    = "sample-control-plane-1"
)

var shipped struct {
	once sync.Once
	docs []map[string]any
	raw  [][]byte
	err  string
}

func optionalConf(t testing.TB, key, rel string) [2]string {
	if _, err := os.Stat(filepath.Join(root(t), rel)); err == nil {
		return [2]string{key, filepath.Join(root(t), rel)}
	}
	return [2]string{}
}

// shippedDocs returns the documents the plugin ships for the sample log,
// with the policy, critical workloads and detections of conf/ (those that
// exist), generated once per test binary.
func shippedDocs(t *testing.T) []map[string]any {
	t.Helper()
	shipped.once.Do(func() {
		paths := hosttest.Build(t)
		dir, err := os.MkdirTemp("", "kaudit-deploy-")
		if err != nil {
			shipped.err = err.Error()
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "shipped.jsonl")
		props := [][2]string{
			{"Name", "kaudit"}, {"Match", "kube.audit"},
			{"output", "stdout"}, {"path", out},
			{"record_key", "log"},
			{"trusted_networks", "10.0.0.0/8"},
			{"cluster", sampleCluster}, {"node", sampleNode},
			{"stats_interval", "0"},
		}
		for _, o := range [][2]string{
			optionalConf(t, "policy_file", "conf/audit-policy.yaml"),
			optionalConf(t, "critical_workloads_file", "conf/critical-workloads.yaml"),
			optionalConf(t, "detections_file", "conf/detections.yaml"),
		} {
			if o[0] != "" {
				props = append(props, o)
			}
		}
		pf := hosttest.WriteProps(t, dir, props)
		r := hosttest.Run(t, "-p", paths.Plugin, "-i", pf, "tail", "0", "kube.audit",
			filepath.Join(root(t), "test", "testdata", "audit.log"), "500")
		if r.ExitCode != hosttest.ExitOK {
			shipped.err = r.Dump()
			return
		}
		data, err := os.ReadFile(out)
		if err != nil {
			shipped.err = err.Error() + "\n" + r.Dump()
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			line := append([]byte(nil), sc.Bytes()...)
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				shipped.err = "shipped line is not JSON: " + err.Error()
				return
			}
			shipped.docs = append(shipped.docs, m)
			shipped.raw = append(shipped.raw, line)
		}
		if len(shipped.docs) == 0 {
			shipped.err = "no documents shipped\n" + r.Dump()
		}
	})
	if shipped.err != "" {
		t.Fatalf("generating the shipped documents: %s", shipped.err)
	}
	return shipped.docs
}

// lookup resolves a path in a document: dots between keys, [N] for an
// array index, ["key"] for a key holding dots. ok is false when absent.
func lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, seg := range splitPath(path) {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func splitPath(p string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '.':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		case '[':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return append(out, p[i:])
			}
			out = append(out, strings.Trim(p[i+1:i+j], `"`))
			i += j
		default:
			cur.WriteByte(p[i])
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// pathExists reports whether some shipped document has path, and one
// example value.
func pathExists(docs []map[string]any, path string) (any, bool) {
	for _, d := range docs {
		if v, ok := lookup(d, path); ok {
			return v, true
		}
	}
	return nil, false
}

func TestShippedDocuments(t *testing.T) {
	docs := shippedDocs(t)
	// The fields every event carries (filter/document.go).
	for _, p := range []string{"auditID", "verb", "user", "stage", "@timestamp", "kaudit.actor.type", "kaudit.actor.name",
		"kaudit.action", "kaudit.outcome", "kaudit.latency_ms", "kaudit.slow", "kaudit.source", "kaudit.critical_workload",
		"kaudit.cluster", "kaudit.node"} {
		if _, ok := lookup(docs[0], p); !ok {
			t.Errorf("first document lacks %s: %s", p, shipped.raw[0])
		}
	}
	t.Logf("%d documents shipped for the sample log", len(docs))
}
