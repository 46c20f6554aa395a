// Package e2e drives out_kaudit.so through the project's C host exactly as
// Fluent Bit's Go proxy does, against real backends where they exist.
package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/test/auditgen"
	"github.com/kaudit/kaudit/test/hosttest"
)

// readDocs reads the JSON lines the stdout sink wrote to path.
func readDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

func auditIDs(docs []map[string]any) []string {
	var ids []string
	for _, d := range docs {
		ids = append(ids, d["auditID"].(string)+"/"+d["stage"].(string))
	}
	return ids
}

func sampleLines(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for _, l := range auditgen.Generate(auditgen.Options{Seed: 7, Events: n, Profile: "metadata"}) {
		out = append(out, string(l))
	}
	return out
}

func stdoutProps(t *testing.T, dir, name string, extra ...hosttest.KV) (props, out string) {
	out = filepath.Join(dir, name+".jsonl")
	kv := []hosttest.KV{{Key: "Name", Value: "kaudit"}, {Key: "Match", Value: "*"}, {Key: "Output", Value: "stdout"}, {Key: "Path", Value: out}, {Key: "Stats_Interval", Value: "0"}}
	return hosttest.WriteProps(t, dir, append(kv, extra...)), out
}

func TestHostRegistersAndExportsTheProxySymbols(t *testing.T) {
	p := hosttest.Build(t)
	syms := hosttest.ExportedSymbols(t, p.Plugin)
	for _, s := range []string{"FLBPluginRegister", "FLBPluginInit", "FLBPluginFlushCtx", "FLBPluginFlush", "FLBPluginExitCtx", "FLBPluginExit", "FLBPluginUnregister"} {
		assert.True(t, syms[s], s)
	}
	dir := t.TempDir()
	props, _ := stdoutProps(t, dir, "a")
	res := hosttest.Run(t, "-p", p.Plugin, "-i", props)
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.NotNil(t, res.Register)
	assert.Equal(t, "kaudit", res.Register.Name)
	assert.Equal(t, 2, res.Register.Type)
	assert.Equal(t, 11, res.Register.Proxy)
	require.Len(t, res.Inits, 1)
	assert.Equal(t, 1, res.Inits[0].RC)
	assert.True(t, res.Inits[0].Ctx, "FLBPluginInit must set a context")
	require.Len(t, res.Exits, 1)
	assert.True(t, res.Exits[0].Ctx)
	assert.True(t, res.Unregistered)
}

// Both chunk shapes, every timestamp kind, log strings and parsed maps,
// EventList bodies: all arrive, nothing else does.
func TestHostDecodesEveryRecordShape(t *testing.T) {
	p := hosttest.Build(t)
	dir := t.TempDir()
	lines := sampleLines(t, 6)
	now := time.Unix(1760000000, 123)

	var parsed map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[3]), &parsed))
	evs := auditgen.GenerateEvents(auditgen.Options{Seed: 9, Events: 3, Profile: "metadata"})
	list := string(auditgen.EventList(evs...))

	v2 := hosttest.ChunkV2(
		hosttest.Record{Time: now, TS: hosttest.TSEventTime, Body: []hosttest.KV{{Key: "log", Value: lines[0]}}},
		hosttest.Record{Time: now, TS: hosttest.TSEventTimeExt8, Meta: []hosttest.KV{{Key: "k", Value: "v"}}, Body: []hosttest.KV{{Key: "log", Value: lines[1]}}},
		hosttest.GroupStart(nil, nil),
		hosttest.Record{Time: now, TS: hosttest.TSEventTime, Body: []hosttest.KV{{Key: "log", Value: list}}},
		hosttest.GroupEnd(),
	)
	legacy := hosttest.ChunkLegacy(
		hosttest.Record{Time: now, TS: hosttest.TSInt, Body: []hosttest.KV{{Key: "log", Value: lines[2]}, {Key: "file", Value: "/var/log/audit.log"}}},
		hosttest.Record{Time: now, TS: hosttest.TSFloat, Body: []hosttest.KV{{Key: "file", Value: "x"}}}, // no log, not an event
		hosttest.Record{Time: now, TS: hosttest.TSFloat, Body: toKV(parsed)},
	)
	props, out := stdoutProps(t, dir, "shapes")
	res := hosttest.Run(t, "-p", p.Plugin, "-i", props,
		"flush", "0", "kube.audit", hosttest.WriteFile(t, dir, "v2-*.msgpack", v2),
		"flush", "0", "kube.audit", hosttest.WriteFile(t, dir, "legacy-*.msgpack", legacy))
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.Len(t, res.Flushes, 2, res.Dump())
	for _, f := range res.Flushes {
		assert.Equal(t, 1, f.RC, res.Dump())
	}
	docs := readDocs(t, out)
	var want []string
	for _, i := range []int{0, 1} {
		want = append(want, idOf(t, lines[i]))
	}
	for _, e := range evs {
		want = append(want, string(e.AuditID)+"/"+string(e.Stage))
	}
	want = append(want, idOf(t, lines[2]), idOf(t, lines[3]))
	assert.Equal(t, want, auditIDs(docs))
	assert.Contains(t, res.Stderr, "malformed record 1 skipped")
}

func toKV(m map[string]any) []hosttest.KV {
	var kv []hosttest.KV
	for k, v := range m {
		kv = append(kv, hosttest.KV{Key: k, Value: v})
	}
	return kv
}

func idOf(t *testing.T, line string) string {
	var m struct{ AuditID, Stage string }
	require.NoError(t, json.Unmarshal([]byte(line), &m))
	return m.AuditID + "/" + m.Stage
}

func TestHostMalformedRecordsAndGarbageChunks(t *testing.T) {
	p := hosttest.Build(t)
	dir := t.TempDir()
	lines := sampleLines(t, 2)
	now := time.Now()
	mixed := hosttest.ChunkV2(
		hosttest.Log(now, lines[0]),
		hosttest.Log(now, `{"kind":"Event","auditID":`),
		hosttest.Log(now, "\xff\xfe not json"),
		hosttest.Record{Time: now, Body: []hosttest.KV{{Key: "log", Value: 42}}},
		hosttest.Log(now, lines[1]),
	)
	props, out := stdoutProps(t, dir, "bad")
	res := hosttest.Run(t, "-p", p.Plugin, "-i", props,
		"flush", "0", "kube.audit", hosttest.WriteFile(t, dir, "mixed-*.msgpack", mixed),
		"flush", "0", "kube.audit", hosttest.WriteFile(t, dir, "garbage-*.msgpack", []byte("this is not msgpack at all")))
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.Len(t, res.Flushes, 2, res.Dump())
	assert.Equal(t, 1, res.Flushes[0].RC, "malformed records are skipped, the rest ships")
	assert.Equal(t, 0, res.Flushes[1].RC, "a chunk that is not msgpack can never succeed")
	assert.Equal(t, []string{idOf(t, lines[0]), idOf(t, lines[1])}, auditIDs(readDocs(t, out)))
	assert.Contains(t, res.Stderr, `tag "kube.audit": malformed record 1 skipped: invalid audit JSON`)
	assert.Contains(t, res.Stderr, `malformed record 3 skipped: field "log" is a int`)
	assert.Contains(t, res.Stderr, `chunk of tag "kube.audit" (26 bytes) dropped`)
	assert.Contains(t, res.Stderr, "malformed=3")
}

// Two [OUTPUT] sections with different settings in one process work
// independently: each keeps its own record_key, sink and counters.
func TestHostTwoInstancesWithDifferentSettings(t *testing.T) {
	p := hosttest.Build(t)
	dir := t.TempDir()
	lines := sampleLines(t, 3)
	now := time.Now()
	propsA, outA := stdoutProps(t, dir, "a", hosttest.KV{Key: "Record_Key", Value: "log"})
	propsB, outB := stdoutProps(t, dir, "b", hosttest.KV{Key: "record_key", Value: "message"})
	chunkLog := hosttest.WriteFile(t, dir, "log-*.msgpack", hosttest.ChunkV2(hosttest.Log(now, lines[0]), hosttest.Log(now, lines[1])))
	chunkMsg := hosttest.WriteFile(t, dir, "msg-*.msgpack", hosttest.ChunkV2(hosttest.Record{Time: now, Body: []hosttest.KV{{Key: "message", Value: lines[2]}}}))
	for _, workers := range []string{"0", "2"} {
		t.Run("workers="+workers, func(t *testing.T) {
			os.Remove(outA)
			os.Remove(outB)
			res := hosttest.Run(t, "-p", p.Plugin, "-w", workers, "-i", propsA, "-i", propsB,
				"flush", "0", "kube.audit", chunkLog,
				"flush", "1", "kube.audit", chunkMsg,
				"flush", "1", "kube.audit", chunkLog, // record_key message: the map itself is not an event
				"flush", "0", "kube.audit", chunkLog)
			require.Equal(t, 0, res.ExitCode, res.Dump())
			require.Len(t, res.Inits, 2)
			assert.Equal(t, []string{idOf(t, lines[0]), idOf(t, lines[1]), idOf(t, lines[0]), idOf(t, lines[1])}, auditIDs(readDocs(t, outA)))
			assert.Equal(t, []string{idOf(t, lines[2])}, auditIDs(readDocs(t, outB)))
			assert.Contains(t, res.Stderr, "[output:kaudit:kaudit.1] tag \"kube.audit\": malformed record 0 skipped")
			assert.NotContains(t, res.Stderr, "[output:kaudit:kaudit.0] tag \"kube.audit\": malformed")
			require.Len(t, res.Exits, 2)
		})
	}
}

func TestHostBadConfigurationFailsInit(t *testing.T) {
	p := hosttest.Build(t)
	dir := t.TempDir()
	cases := []struct {
		kv   hosttest.KV
		want string
	}{
		{hosttest.KV{Key: "Output", Value: "kafka"}, `invalid value for output: "kafka": allowed: stdout, elasticsearch, loki`},
		{hosttest.KV{Key: "Slow_Request_Threshold", Value: "-3s"}, `invalid value for slow_request_threshold: "-3s": a duration that is not negative`},
		{hosttest.KV{Key: "Policy_File", Value: "/nonexistent/policy.yaml"}, `invalid value for policy_file: "/nonexistent/policy.yaml": a readable file (no such file or directory)`},
		{hosttest.KV{Key: "Trusted_Networks", Value: "10.0.0.0/40"}, `invalid value for trusted_networks: "10.0.0.0/40"`},
	}
	for _, tc := range cases {
		t.Run(tc.kv.Key, func(t *testing.T) {
			good, _ := stdoutProps(t, dir, "good")
			bad := hosttest.WriteProps(t, dir, []hosttest.KV{{Key: "Name", Value: "kaudit"}, {Key: "Match", Value: "*"}, tc.kv})
			res := hosttest.Run(t, "-p", p.Plugin, "-i", good, "-i", bad)
			assert.Equal(t, hosttest.ExitStartup, res.ExitCode, res.Dump())
			require.Len(t, res.Inits, 2)
			assert.Equal(t, 1, res.Inits[0].RC)
			assert.Equal(t, 0, res.Inits[1].RC)
			var initLines []string
			for _, l := range strings.Split(res.Stderr, "\n") {
				if strings.Contains(l, "init failed") {
					initLines = append(initLines, l)
				}
			}
			require.Len(t, initLines, 1, res.Stderr)
			assert.Contains(t, initLines[0], "[error] [output:kaudit] init failed: kaudit.1: "+tc.want)
		})
	}
}
