package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
