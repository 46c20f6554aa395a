package plugin

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/test/auditgen"
)

// discardSink counts the bytes it would put on the wire.
type discardSink struct{ bytes int64 }

func (d *discardSink) Deliver(_ context.Context, items []sink.Item) error {
	for i := range items {
		d.bytes += int64(len(items[i].Doc.Body)) + 1
		items[i].Outcome = sink.Delivered
	}
	return nil
}
func (d *discardSink) Close() error { return nil }

// benchChunk builds a tail-shaped chunk ({"log": line}) of a generator
// profile.
func benchChunk(profile string, n int) (chunk []byte, size int64) {
	for _, l := range auditgen.Generate(auditgen.Options{Seed: 1, Events: n, Profile: profile}) {
		chunk = msgp.AppendArrayHeader(chunk, 2)
		chunk = msgp.AppendInt64(chunk, 1760000000)
		chunk = msgp.AppendMapHeader(chunk, 1)
		chunk = msgp.AppendString(chunk, "log")
		chunk = msgp.AppendStringFromBytes(chunk, l)
		size += int64(len(l))
	}
	return chunk, size
}

// benchFlush measures the whole flush path: msgpack chunk in, policy,
// redaction, enrichment, critical workloads, detections, document bytes
// out (to a sink that discards them).
func benchFlush(b *testing.B, profile string, props map[string]string) {
	const n = 1000
	chunk, size := benchChunk(profile, n)
	p := config.MapProps("kaudit.bench", props)
	cfg, err := config.Parse(p)
	if err != nil {
		b.Fatal(err)
	}
	d := &discardSink{}
	in, err := NewWithSink(p, cfg, flblog.NewTo(io.Discard, &sync.Mutex{}, "kaudit.bench", flblog.Error), d)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rc := in.Flush(chunk, "kube.audit"); rc != FlbOK {
			b.Fatalf("flush returned %d", rc)
		}
	}
	b.StopTimer()
	events := float64(n) * float64(b.N)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(d.bytes)/events, "wire-B/event")
	b.ReportMetric(float64(testing.AllocsPerRun(3, func() { in.Flush(chunk, "kube.audit") }))/n, "allocs/event")
}

var benchPolicy = map[string]string{
	"policy_file":             "../conf/audit-policy.yaml",
	"critical_workloads_file": "../conf/critical-workloads.yaml",
	"trusted_networks":        "10.0.0.0/8",
	"stats_interval":          "0",
}

func BenchmarkFlushMetadata(b *testing.B) { benchFlush(b, "metadata", benchPolicy) }
func BenchmarkFlushLarge(b *testing.B)    { benchFlush(b, "large", benchPolicy) }
func BenchmarkFlushMix(b *testing.B)      { benchFlush(b, "mix", benchPolicy) }

// BenchmarkFlushMetadataNoDetect is the path the target names:
// decode, policy, critical-workload selectors, enrichment and encoding,
// with detections turned off (a detections_file without rules).
func BenchmarkFlushMetadataNoDetect(b *testing.B) {
	f := filepath.Join(b.TempDir(), "detections.yaml")
	if err := os.WriteFile(f, []byte("rules: []\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	props := map[string]string{"detections_file": f}
	for k, v := range benchPolicy {
		props[k] = v
	}
	benchFlush(b, "metadata", props)
}

// BenchmarkFlushMetadataNoPolicy is the path without policy_file and
// critical selectors (enrichment and the built-in detections only).
func BenchmarkFlushMetadataNoPolicy(b *testing.B) {
	benchFlush(b, "metadata", map[string]string{"stats_interval": "0"})
}
