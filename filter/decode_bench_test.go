package filter

import (
	"os"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/kaudit/kaudit/test/auditgen"
)

// corpus returns a Fluent Bit chunk of tail records ({"log": line}) for a
// generator profile, and the number of lines and bytes in it.
func corpus(b *testing.B, profile string, n int) (chunk []byte, lines int, size int64) {
	b.Helper()
	var raw [][]byte
	if profile == "sample" {
		data, err := os.ReadFile("../test/testdata/audit.log")
		if err != nil {
			b.Fatal(err)
		}
		for len(data) > 0 {
			i := 0
			for i < len(data) && data[i] != '\n' {
				i++
			}
			if i > 0 {
				raw = append(raw, data[:i])
			}
			if i == len(data) {
				break
			}
			data = data[i+1:]
		}
	} else {
		raw = auditgen.Generate(auditgen.Options{Seed: 1, Events: n, Profile: profile})
	}
	for _, l := range raw {
		chunk = msgp.AppendArrayHeader(chunk, 2)
		chunk = msgp.AppendArrayHeader(chunk, 2)
		chunk = append(chunk, eventTimeExt(1760000000, 0)...)
		chunk = msgp.AppendMapHeader(chunk, 0)
		chunk = msgp.AppendMapHeader(chunk, 1)
		chunk = msgp.AppendString(chunk, "log")
		chunk = msgp.AppendStringFromBytes(chunk, l)
		size += int64(len(l))
	}
	return chunk, len(raw), size
}

func benchDecode(b *testing.B, profile string) {
	chunk, n, size := corpus(b, profile, 2000)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; i < b.N; i++ {
		res, err := DecodeChunk(chunk, "kube.audit", "log", func(*Event) {}, nil)
		if err != nil || res.Events != n {
			b.Fatalf("decoded %d of %d: %v", res.Events, n, err)
		}
		events += res.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(testing.AllocsPerRun(1, func() {
		DecodeChunk(chunk, "kube.audit", "log", func(*Event) {}, nil)
	}))/float64(n), "allocs/event")
}

// BenchmarkDecodeSample decodes the bundled sample log (chunk → events).
func BenchmarkDecodeSample(b *testing.B)   { benchDecode(b, "sample") }
func BenchmarkDecodeMetadata(b *testing.B) { benchDecode(b, "metadata") }
func BenchmarkDecodeLarge(b *testing.B)    { benchDecode(b, "large") }
func BenchmarkDecodeMix(b *testing.B)      { benchDecode(b, "mix") }
