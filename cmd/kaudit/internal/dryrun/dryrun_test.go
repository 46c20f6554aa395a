package dryrun

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kaudit/kaudit/test/auditgen"
)

// A policy whose decisions are easy to count by hand:
//
//	0 None             verb watch
//	1 Metadata         core secrets
//	2 Metadata         user nobody (matches nothing)
//	3 RequestResponse  verb watch (every watch is taken by 0: shadowed)
//	4 Request          everything, RequestReceived omitted
const testPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  verbs: ["watch"]
- level: Metadata
  resources: [{group: "", resources: ["secrets"]}]
- level: Metadata
  users: ["nobody"]
- level: RequestResponse
  verbs: ["watch"]
- level: Request
  omitStages: ["RequestReceived"]
`

// The same without rule 0: watches now reach rules 0 (secrets) and 2.
const testPolicy2 = `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
  resources: [{group: "", resources: ["secrets"]}]
- level: Metadata
  users: ["nobody"]
- level: RequestResponse
  verbs: ["watch"]
- level: Request
  omitStages: ["RequestReceived"]
`

var levelOrder = map[auditv1.Level]int{"None": 0, "Metadata": 1, "Request": 2, "RequestResponse": 3}

type expect struct {
	in, out, none, omit, stripped int64
	bytesIn, noneBytes, omitBytes int64
	rule                          [5]int64
	watch, watchSecrets           int64
}

func isSecret(ev *auditv1.Event) bool {
	return ev.ObjectRef != nil && ev.ObjectRef.APIGroup == "" && ev.ObjectRef.Resource == "secrets"
}

// count works out what the policy does with plain predicates.
func countByHand(evs []auditv1.Event, lines [][]byte) expect {
	var e expect
	for i := range evs {
		ev := &evs[i]
		size := int64(len(lines[i]))
		e.in++
		e.bytesIn += size
		switch {
		case ev.Verb == "watch":
			e.rule[0]++
			e.none++
			e.noneBytes += size
			e.watch++
			if isSecret(ev) {
				e.watchSecrets++
			}
		case isSecret(ev):
			e.rule[1]++
			e.out++
			if levelOrder[ev.Level] > levelOrder["Metadata"] {
				e.stripped++
			}
		default:
			e.rule[4]++
			if ev.Stage == auditv1.StageRequestReceived {
				e.omit++
				e.omitBytes += size
				continue
			}
			e.out++
			if levelOrder[ev.Level] > levelOrder["Request"] {
				e.stripped++
			}
		}
	}
	return e
}

func write(t *testing.T, path string, data []byte) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

func TestDryrunCountsMatchThePolicy(t *testing.T) {
	dir := t.TempDir()
	evs := auditgen.GenerateEvents(auditgen.Options{Seed: 7, Events: 3000})
	lines := auditgen.Generate(auditgen.Options{Seed: 7, Events: 3000})
	require.Len(t, lines, len(evs))
	want := countByHand(evs, lines)
	require.NotZero(t, want.none)
	require.NotZero(t, want.omit)
	require.NotZero(t, want.stripped)
	require.NotZero(t, want.watchSecrets)

	// A rotated set in a directory: the oldest file gzipped, the rest plain.
	logs := filepath.Join(dir, "logs")
	require.NoError(t, os.Mkdir(logs, 0o755))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(append(bytes.Join(lines[:1000], []byte("\n")), '\n'))
	zw.Close()
	write(t, filepath.Join(logs, "audit-2025-06-02T16-00-00.000.log.gz"), gz.Bytes())
	write(t, filepath.Join(logs, "audit.log"), bytes.Join(lines[1000:], []byte("\n"))) // no final newline
	old := filepath.Join(logs, "audit-2025-06-02T16-00-00.000.log.gz")
	require.NoError(t, os.Chtimes(old, auditgen.DefaultStart, auditgen.DefaultStart))
	policy := write(t, filepath.Join(dir, "policy.yaml"), []byte(testPolicy))
	policy2 := write(t, filepath.Join(dir, "policy2.yaml"), []byte(testPolicy2))

	inputs, err := Expand([]string{logs})
	require.NoError(t, err)
	require.Len(t, inputs, 2)
	assert.True(t, strings.HasSuffix(inputs[0].Path, ".gz"), "oldest first")

	rep, err := Run(Config{Policy: policy, Compare: policy2, Inputs: inputs, Workers: 3})
	require.NoError(t, err)
	assert.Equal(t, want.in, rep.In.Events)
	assert.Equal(t, want.bytesIn, rep.In.Bytes)
	assert.Equal(t, want.out, rep.Out.Events)
	assert.Equal(t, Volume{want.none, want.noneBytes}, rep.DroppedBy("policy_none"))
	assert.Equal(t, Volume{want.omit, want.omitBytes}, rep.DroppedBy("omit_stage"))
	assert.Equal(t, want.stripped, rep.Stripped.Events)
	assert.Positive(t, rep.Stripped.BytesSaved)
	assert.Zero(t, rep.Malformed)

	require.Len(t, rep.Rules, 5)
	for i, r := range rep.Rules {
		assert.Equal(t, want.rule[i], r.Matched, "rule %d", i)
	}
	assert.Nil(t, rep.NoRule)
	assert.Equal(t, "Request", rep.Rules[4].Level)
	assert.Equal(t, "resources=secrets", rep.Rules[1].Description)
	require.Len(t, rep.NeverMatched, 1)
	assert.Equal(t, 2, rep.NeverMatched[0].Index)
	require.Len(t, rep.Shadowed, 1)
	assert.Equal(t, 3, rep.Shadowed[0].Index)
	assert.Equal(t, want.watch, rep.Shadowed[0].Reached)
	assert.Equal(t, []Taken{{Rule: 0, Events: want.watch}}, rep.Shadowed[0].By)

	// Top triples: kept events of rule 1 are all secrets.
	require.NotEmpty(t, rep.Rules[1].Top)
	for _, tr := range rep.Rules[1].Top {
		assert.Equal(t, "secrets", tr.Resource)
	}
	assert.Empty(t, rep.Rules[0].Top, "nothing of rule 0 is shipped")

	// Compare: only the watches change, None → Metadata (secrets) or
	// RequestResponse (rule 2 of the second policy).
	assert.Equal(t, want.watch, rep.CompareChanged)
	got := map[string]int64{}
	for _, g := range rep.CompareGroups {
		got[g.From+">"+g.To] += g.Events
		assert.Equal(t, 0, g.Rule)
	}
	assert.Equal(t, map[string]int64{"None>Metadata": want.watchSecrets, "None>RequestResponse": want.watch - want.watchSecrets}, got)

	// The human report renders every section.
	var b bytes.Buffer
	rep.WriteText(&b)
	for _, s := range []string{"dropped: level None", "Never matched", "Shadowed", "taken by #0", "Noisiest", "Compared with"} {
		assert.Contains(t, b.String(), s)
	}
}

func TestDryrunEventListAndMalformedLines(t *testing.T) {
	dir := t.TempDir()
	evs := auditgen.GenerateEvents(auditgen.Options{Seed: 3, Events: 50})
	var b bytes.Buffer
	b.Write(auditgen.EventList(evs[:20]...))
	b.WriteString("\nnot json\n\n{\"kind\":\"Event\"}\n")
	b.Write(auditgen.EventList(evs[20:]...))
	b.WriteString("\n")
	f := write(t, filepath.Join(dir, "webhook.json"), b.Bytes())
	inputs, err := Expand([]string{filepath.Join(dir, "*.json")})
	require.NoError(t, err)
	rep, err := Run(Config{Inputs: inputs})
	require.NoError(t, err)
	assert.EqualValues(t, 50, rep.In.Events)
	assert.EqualValues(t, 50, rep.Out.Events, "no policy: everything is kept")
	assert.EqualValues(t, 2, rep.Malformed)
	require.Len(t, rep.MalformedSamples, 2)
	assert.Equal(t, f, rep.MalformedSamples[0].File)
	assert.Equal(t, 2, rep.MalformedSamples[0].Line)
	assert.Equal(t, 4, rep.MalformedSamples[1].Line)
	// An EventList's bytes are shared out among its items.
	assert.EqualValues(t, len(auditgen.EventList(evs[:20]...))+len(auditgen.EventList(evs[20:]...)), rep.In.Bytes)
}

func TestSize(t *testing.T) {
	assert.Equal(t, "512 B", Size(512))
	assert.Equal(t, "1.5 KiB", Size(1536))
	assert.Equal(t, "2.0 MiB", Size(2<<20))
	assert.Equal(t, "3.00 GiB", Size(3<<30))
}

func BenchmarkDryrun(b *testing.B) {
	dir := b.TempDir()
	lines := auditgen.Generate(auditgen.Options{Seed: 1, Events: 20000})
	var all []byte
	for _, l := range lines {
		all = append(append(all, l...), '\n')
	}
	path := filepath.Join(dir, "audit.log")
	os.WriteFile(path, all, 0o644)
	policy := filepath.Join(dir, "p.yaml")
	os.WriteFile(policy, []byte(testPolicy), 0o644)
	inputs, _ := Expand([]string{path})
	b.SetBytes(int64(len(all)))
	for b.Loop() {
		if _, err := Run(Config{Policy: policy, Inputs: inputs}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "events/s")
}
