package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/test/auditgen"
	"github.com/kaudit/kaudit/test/hosttest"
	"github.com/kaudit/kaudit/test/servers"
)

// With FLUENT_BIT naming a real fluent-bit: one process, two kaudit
// outputs with different settings (OpenSearch with two workers, the
// Loki protocol into VictoriaLogs), the sample log through the shipped
// policy and selectors. Each backend holds exactly the events the policy
// keeps, once.
func TestRealFluentBitIntoOpenSearchAndVictoriaLogs(t *testing.T) {
	fb := os.Getenv("FLUENT_BIT")
	if fb == "" {
		t.Skip("FLUENT_BIT does not name a fluent-bit binary")
	}
	p := hosttest.Build(t)
	root := hosttest.RepoRoot(t)
	node := servers.SharedOpenSearch(t)
	vl := servers.StartVictoriaLogs(t)
	dir := t.TempDir()
	index := fmt.Sprintf("fbreal-%d", time.Now().UnixNano())
	conf := filepath.Join(dir, "fluent-bit.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
[SERVICE]
    Flush        1
    Grace        30
    Log_Level    info
    storage.path %[1]s/buffer

[INPUT]
    Name              tail
    Tag               kube.audit
    Path              %[2]s/test/testdata/audit.log
    Read_from_Head    On
    Exit_On_Eof       On
    Buffer_Chunk_Size 256k
    Buffer_Max_Size   64M
    storage.type      filesystem

[OUTPUT]
    Name                    kaudit
    Match                   kube.audit
    Output                  elasticsearch
    Hosts                   %[3]s
    Index                   %[4]s
    Policy_File             %[2]s/conf/audit-policy.yaml
    Critical_Workloads_File %[2]s/conf/critical-workloads.yaml
    Trusted_Networks        10.0.0.0/8
    Stats_Interval          0
    Workers                 2
    Retry_Limit             no_limits

[OUTPUT]
    Name                    kaudit
    Match                   kube.audit
    Output                  loki
    Url                     %[5]s
    Policy_File             %[2]s/conf/audit-policy.yaml
    Labels                  job=kaudit-fbreal,verb,resource,namespace
    Stats_Interval          0
    Retry_Limit             no_limits
`, dir, root, node.URL, index, vl.PushURL())), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fb, "-e", p.Plugin, "-c", conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), "fluent-bit: %s", stderr.String())
	log := stderr.String()
	assert.Contains(t, log, "[output:kaudit:kaudit.0] exit:")
	assert.Contains(t, log, "[output:kaudit:kaudit.1] exit:")
	assert.NotContains(t, log, "panic")

	// 1086 of the 2000 sample events survive conf/audit-policy.yaml (see
	// TestHostSampleLogThroughPolicyAndSelectors).
	assert.Equal(t, 1086, node.Count(index), "fluent-bit log:\n%s", log)
	n, err := vl.WaitForCount(`{job="kaudit-fbreal"}`, 1086, 30*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1086, n, "fluent-bit log:\n%s", log)
}

// With FLUENT_BIT: the apiserver's webhook backend POSTs EventList bodies
// to Fluent Bit's http input; kaudit ships each item.
func TestRealFluentBitWebhookEventList(t *testing.T) {
	fb := os.Getenv("FLUENT_BIT")
	if fb == "" {
		t.Skip("FLUENT_BIT does not name a fluent-bit binary")
	}
	p := hosttest.Build(t)
	dir := t.TempDir()
	port := freePort(t)
	out := filepath.Join(dir, "out.jsonl")
	conf := filepath.Join(dir, "fluent-bit.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
[SERVICE]
    Flush 1
    Grace 2
[INPUT]
    Name   http
    Listen 127.0.0.1
    Port   %d
    Tag    kube.audit
[OUTPUT]
    Name           kaudit
    Match          kube.audit
    Output         stdout
    Path           %s
    Stats_Interval 0
`, port, out)), 0o600))
	cmd := exec.Command(fb, "-e", p.Plugin, "-c", conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()

	events := auditgen.GenerateEvents(auditgen.Options{Seed: 11, Events: 40, Profile: "metadata"})
	url := fmt.Sprintf("http://127.0.0.1:%d/kube.audit", port)
	var posted int
	for deadline := time.Now().Add(30 * time.Second); posted == 0 && time.Now().Before(deadline); {
		resp, err := http.Post(url, "application/json", bytes.NewReader(auditgen.EventList(events[:25]...)))
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		posted = 25
	}
	require.Equal(t, 25, posted, "fluent-bit's http input never answered: %s", stderr.String())
	resp, err := http.Post(url, "application/json", bytes.NewReader(auditgen.EventList(events[25:]...)))
	require.NoError(t, err)
	resp.Body.Close()

	var docs []map[string]any
	for deadline := time.Now().Add(30 * time.Second); len(docs) < len(events) && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		docs = readDocs(t, out)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	cmd.Wait()
	var want []string
	for _, e := range events {
		want = append(want, string(e.AuditID)+"/"+string(e.Stage))
	}
	assert.ElementsMatch(t, want, auditIDs(docs), "fluent-bit log:\n%s", stderr.String())
	assert.Contains(t, stderr.String(), "records=2 events=40 malformed=0")
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
