package filter

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kaudit/kaudit/test/auditgen"
)

// benchEncode measures AppendEvent alone (the encode stage): events of a
// generator profile decoded and run through the policy, critical-workload
// and enrichment stages first, then encoded into one reused buffer.
func benchEncode(b *testing.B, profile string) {
	p, err := NewPipeline(Options{PolicyFile: confPolicy, CriticalFile: confCritical, LabelCacheSize: 10000,
		Cluster: "bench", Node: "n", SlowThreshold: time.Second, DetectionsFile: noDetections(b)})
	if err != nil {
		b.Fatal(err)
	}
	d := &fastDecoder{in: newInternTable()}
	var evs []*Event
	for _, l := range auditgen.Generate(auditgen.Options{Seed: 1, Events: 2000, Profile: profile}) {
		ev, ok := d.decode(bytes.TrimSpace(l), "kube.audit", time.Unix(1760000000, 0))
		if !ok {
			b.Fatalf("fast decoder declined %.200s", l)
		}
		if p.Process(ev, nil) == Keep {
			evs = append(evs, ev)
		}
	}
	var out int64
	buf := make([]byte, 0, 1<<20)
	for _, ev := range evs {
		out += int64(len(AppendEvent(buf[:0], ev)))
	}
	b.SetBytes(out / int64(len(evs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = AppendEvent(buf[:0], evs[i%len(evs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkEncodeMetadata(b *testing.B) { benchEncode(b, auditgen.ProfileMetadata) }
func BenchmarkEncodeLarge(b *testing.B)    { benchEncode(b, auditgen.ProfileLarge) }
func BenchmarkEncodeMix(b *testing.B)      { benchEncode(b, auditgen.ProfileMix) }

// noDetections is a detections_file without rules.
func noDetections(b *testing.B) string {
	f := filepath.Join(b.TempDir(), "detections.yaml")
	if err := os.WriteFile(f, []byte("rules: []\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return f
}
