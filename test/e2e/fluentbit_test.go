package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/test/hosttest"
)

// jsonLines returns the JSON object lines of out (other lines are the
// host's or Fluent Bit's own).
func jsonLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var docs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(line, &m), "%s", line)
		docs = append(docs, m)
	}
	return docs
}

// runSampleThroughHost runs conf/kaudit-output.conf over the sample log
// through the C host, as `make run` does without Fluent Bit.
func runSampleThroughHost(t *testing.T) (hosttest.Result, []map[string]any) {
	t.Helper()
	p := hosttest.Build(t)
	res := hosttest.RunWith(t, hosttest.RunOptions{Dir: hosttest.RepoRoot(t)},
		"-q", "-p", p.Plugin, "-i", "conf/kaudit-output.conf", "tail", "0", "kube.audit", "test/testdata/audit.log", "500")
	require.Equal(t, 0, res.ExitCode, res.Dump())
	return res, jsonLines(t, []byte(res.Stdout))
}

// With FLUENT_BIT naming a real fluent-bit binary, conf/fluent-bit.conf
// runs unchanged and ships exactly what the C host ships for the same
// output section: the host is faithful to Fluent Bit, and the shipped
// configuration works.
func TestRealFluentBitRunsTheShippedConfiguration(t *testing.T) {
	fb := os.Getenv("FLUENT_BIT")
	if fb == "" {
		t.Skip("FLUENT_BIT does not name a fluent-bit binary")
	}
	p := hosttest.Build(t)
	root := hosttest.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fb, "-c", "conf/fluent-bit.conf")
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "fluent-bit: %s", stderr.String())
	_ = p
	fbDocs := jsonLines(t, stdout.Bytes())

	_, hostDocs := runSampleThroughHost(t)
	require.NotEmpty(t, hostDocs)
	require.Equal(t, len(hostDocs), len(fbDocs), "fluent-bit stderr:\n%s", stderr.String())
	// Same events in the same order; only the node-independent content is compared.
	for i := range hostDocs {
		assert.Equal(t, hostDocs[i]["auditID"], fbDocs[i]["auditID"])
		assert.Equal(t, hostDocs[i]["stage"], fbDocs[i]["stage"])
		assert.Equal(t, hostDocs[i]["kaudit"], fbDocs[i]["kaudit"])
	}
	assert.Contains(t, stderr.String(), "[output:kaudit:kaudit.0] exit:")
	assert.False(t, strings.Contains(stderr.String(), "panic"), stderr.String())
}

// The sample log through conf/kaudit-output.conf (conf/audit-policy.yaml +
// conf/critical-workloads.yaml) across the .so boundary: the exact counts
// the filter package's TestPipelineSampleLog checks against an
// independent evaluation with the apiserver's own policy evaluator.
func TestHostSampleLogThroughPolicyAndSelectors(t *testing.T) {
	res, docs := runSampleThroughHost(t)
	assert.Contains(t, res.Stderr, "records=2000 events=2000 malformed=0 dropped={omit_stage=252 policy_none=662} shipped=1086")
	require.Len(t, docs, 1086)
	stripped, critical := 0, 0
	for _, d := range docs {
		k := d["kaudit"].(map[string]any)
		if k["policy"].(map[string]any)["stripped"] == true {
			stripped++
		}
		if k["critical_workload"] == true {
			critical++
		}
		assert.NotEqual(t, "None", d["level"])
	}
	assert.Equal(t, 94, stripped)
	assert.Equal(t, 76, critical)

	// The critical-workload scenario of the sample (test/testdata/README.md):
	// the DBA's night-time exec is expected and in its window; bob's
	// Metadata-level delete of mysql-0 carries no body, so its labels come
	// from the label cache, and he is not an expected actor.
	find := func(user, verb, name, sub string) map[string]any {
		for _, d := range docs {
			k := d["kaudit"].(map[string]any)
			o := k["object"].(map[string]any)
			if k["actor"].(map[string]any)["name"] == user && d["verb"] == verb && o["name"] == name && (o["subresource"] == nil && sub == "" || o["subresource"] == sub) {
				if c, ok := k["critical"].([]any); ok && len(c) > 0 {
					return c[0].(map[string]any)
				}
			}
		}
		t.Fatalf("no critical event for %s %s %s/%s", user, verb, name, sub)
		return nil
	}
	dba := find("dba@example.com", "create", "postgres-0", "exec")
	assert.Equal(t, map[string]any{"name": "databases", "severity": "high", "expected_actor": true, "in_window": true}, dba)
	del := find("bob", "delete", "mysql-0", "")
	assert.Equal(t, "databases", del["name"])
	assert.Equal(t, "critical", del["severity"])
	assert.Equal(t, false, del["expected_actor"])
	assert.Contains(t, del["reason"], "actor not expected")
	assert.NotContains(t, res.Stdout, "kaudit-test-secret-value")
	assert.NotContains(t, res.Stdout, "a2F1ZGl0LXRlc3Qtc2VjcmV0LXZhbHVl")
}

// Without a policy (and with redaction off) the shipped document is the
// apiserver's event, field for field, plus @timestamp and kaudit: nothing
// the apiserver wrote is lost or altered on the way through the .so.
func TestHostShipsTheApiserverEventUnchanged(t *testing.T) {
	p := hosttest.Build(t)
	dir := t.TempDir()
	props, out := stdoutProps(t, dir, "plain", hosttest.KV{Key: "Redact_Secrets", Value: "off"})
	root := hosttest.RepoRoot(t)
	log := filepath.Join(root, "test/testdata/audit.log")
	res := hosttest.Run(t, "-q", "-p", p.Plugin, "-i", props, "tail", "0", "kube.audit", log, "500")
	require.Equal(t, 0, res.ExitCode, res.Dump())
	raw, err := os.ReadFile(log)
	require.NoError(t, err)
	var orig []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		orig = append(orig, m)
	}
	docs := readDocs(t, out)
	require.Len(t, docs, len(orig))
	for i := range docs {
		require.Contains(t, docs[i], "kaudit")
		require.Equal(t, docs[i]["requestReceivedTimestamp"], docs[i]["@timestamp"])
		delete(docs[i], "kaudit")
		delete(docs[i], "@timestamp")
		require.Equal(t, orig[i], docs[i], "event %d (%v)", i, orig[i]["auditID"])
	}
}
