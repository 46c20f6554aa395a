package e2e

// TestBenchE2E is the end-to-end throughput harness (make bench-e2e): the
// C host replays a large generated Metadata-level audit log through
// out_kaudit.so, as Fluent Bit's tail input and Go proxy would, into each
// sink's loopback server, and reports events/s, CPU seconds per million
// events and the host's peak RSS. It runs only with KAUDIT_BENCH_E2E=1;
// KAUDIT_BENCH_EVENTS sets the log size (default 1,000,000) and
// KAUDIT_BENCH_SINKS the sinks to run (default
// esfake,opensearch,victorialogs,stdout).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/test/auditgen"
	"github.com/kaudit/kaudit/test/esfake"
	"github.com/kaudit/kaudit/test/hosttest"
	"github.com/kaudit/kaudit/test/servers"
)

// benchChunkRecords is the records per chunk the host's tail action builds
// (~1 MB of Metadata-level events, about what Fluent Bit hands a flush).
const benchChunkRecords = 1000

// benchWriteLog streams n Metadata-level events into a log file, in
// batches (the generator holds a batch in memory, never the whole log),
// each batch a different seed starting where the previous one ended.
func benchWriteLog(t *testing.T, dir string, n int) (string, int64) {
	t.Helper()
	name := filepath.Join(dir, "bench-audit.log")
	f, err := os.Create(name)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	const batch = 50_000
	start := auditgen.DefaultStart
	var size int64
	for seed, left := int64(1), n; left > 0; seed++ {
		k := min(batch, left)
		evs := auditgen.GenerateEvents(auditgen.Options{Seed: seed, Events: k, Profile: "metadata", Start: start})
		for i := range evs {
			b, err := json.Marshal(&evs[i])
			require.NoError(t, err)
			w.Write(b)
			w.WriteByte('\n')
			size += int64(len(b)) + 1
		}
		start = evs[len(evs)-1].StageTimestamp.Time.Add(time.Second)
		left -= k
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return name, size
}

// benchFigures is one replay's result.
type benchFigures struct {
	Sink       string
	Events     int
	Wall       time.Duration
	CPU        float64 // user+sys seconds of the host process
	MaxRSSKB   int64
	EventsPerS float64
	CPUPerM    float64 // CPU seconds per million events
}

func (f benchFigures) String() string {
	return fmt.Sprintf("| %s | %d | %.1f | %.0f | %.2f | %.1f |", f.Sink, f.Events, f.Wall.Seconds(), f.EventsPerS,
		f.CPUPerM, float64(f.MaxRSSKB)/1024)
}

// benchReplay runs the host over log with the instance in props, with two
// flush workers (Workers 2, as the shipped node configuration).
func benchReplay(t *testing.T, p hosttest.Paths, sinkName, props, log string, events int) benchFigures {
	return benchReplayW(t, p, sinkName, props, log, events, 2)
}

// benchReplayW is benchReplay with the given number of flush workers (0:
// flushes on the host's engine thread, one at a time).
func benchReplayW(t *testing.T, p hosttest.Paths, sinkName, props, log string, events, workers int) benchFigures {
	t.Helper()
	res := hosttest.RunWith(t, hosttest.RunOptions{Timeout: 25 * time.Minute},
		"-q", "--rusage", "-w", strconv.Itoa(workers), "-p", p.Plugin, "-i", props,
		"tail", "0", "kube.audit", log, strconv.Itoa(benchChunkRecords))
	require.Equal(t, 0, res.ExitCode, res.Dump())
	require.NotNil(t, res.Summary, res.Dump())
	require.Zero(t, res.Summary.DroppedChunks, res.Dump())
	require.Equal(t, res.Summary.Chunks, res.Summary.OKChunks, "every chunk delivered on its first flush\n%s", res.Dump())
	require.Len(t, res.Tails, 1, res.Dump())
	require.Equal(t, events, res.Tails[0].Records, res.Dump())
	require.NotNil(t, res.Rusage, res.Dump())
	cpu := res.Rusage.UserS + res.Rusage.SysS
	// VmHWM: ru_maxrss would include this test binary's RSS (see flbhost.c).
	peak := res.Rusage.HWMKB
	if peak < 0 {
		peak = res.Rusage.MaxRSSKB
	}
	f := benchFigures{
		Sink: sinkName, Events: events, Wall: res.Duration, CPU: cpu, MaxRSSKB: peak,
		EventsPerS: float64(events) / res.Duration.Seconds(),
		CPUPerM:    cpu / float64(events) * 1e6,
	}
	t.Logf("%s: %d events in %v: %.0f events/s, %.2f CPU s per 1M events (user %.2fs sys %.2fs), peak RSS %.1f MiB",
		sinkName, events, res.Duration.Round(time.Millisecond), f.EventsPerS, f.CPUPerM, res.Rusage.UserS, res.Rusage.SysS,
		float64(f.MaxRSSKB)/1024)
	return f
}

// benchESFakeOK answers every bulk item "created" without storing it: the
// fake then costs little CPU and no memory, and the figure is the plugin's.
func benchESFakeOK(_ int, ops []esfake.Op) (int, string) {
	var b strings.Builder
	b.Grow(len(ops)*96 + 32)
	b.WriteString(`{"took":1,"errors":false,"items":[`)
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(',')
		}
		idx, _ := json.Marshal(op.Index)
		id, _ := json.Marshal(op.ID)
		fmt.Fprintf(&b, `{%q:{"_index":%s,"_id":%s,"status":201,"result":"created"}}`, op.Action, idx, id)
	}
	b.WriteString(`]}`)
	return 200, b.String()
}

func TestBenchE2E(t *testing.T) {
	if os.Getenv("KAUDIT_BENCH_E2E") != "1" {
		t.Skip("set KAUDIT_BENCH_E2E=1 (make bench-e2e) to run the end-to-end throughput harness")
	}
	events := 1_000_000
	if s := os.Getenv("KAUDIT_BENCH_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "KAUDIT_BENCH_EVENTS")
		events = n
	}
	sinks := "esfake,opensearch,victorialogs,stdout"
	if s := os.Getenv("KAUDIT_BENCH_SINKS"); s != "" {
		sinks = s
	}
	p := hosttest.Build(t)
	root := hosttest.RepoRoot(t)
	dir := t.TempDir()
	genStart := time.Now()
	log, size := benchWriteLog(t, dir, events)
	t.Logf("generated %d Metadata-level events (%.0f MiB) in %v", events, float64(size)/(1<<20), time.Since(genStart).Round(time.Millisecond))

	// The shipped pipeline: policy, critical workloads, trusted networks,
	// built-in detections.
	common := []hosttest.KV{
		{Key: "Name", Value: "kaudit"}, {Key: "Match", Value: "*"},
		{Key: "Policy_File", Value: filepath.Join(root, "conf", "audit-policy.yaml")},
		{Key: "Critical_Workloads_File", Value: filepath.Join(root, "conf", "critical-workloads.yaml")},
		{Key: "Trusted_Networks", Value: "10.0.0.0/8"},
		{Key: "Cluster", Value: "bench"}, {Key: "Node", Value: "bench-cp-1"},
		{Key: "Stats_Interval", Value: "0"},
	}
	props := func(t *testing.T, kv ...hosttest.KV) string {
		return hosttest.WriteProps(t, t.TempDir(), append(append([]hosttest.KV{}, common...), kv...))
	}

	var results []benchFigures
	for _, s := range strings.Split(sinks, ",") {
		t.Run(s, func(t *testing.T) {
			switch s {
			case "esfake":
				es := esfake.Start(t, esfake.Options{})
				es.SetHooks(esfake.Hooks{Bulk: benchESFakeOK})
				pr := props(t, hosttest.KV{Key: "Output", Value: "elasticsearch"}, hosttest.KV{Key: "Hosts", Value: es.URL})
				// Peak RSS must not grow with the log: a quarter of it
				// first, then all of it; with two workers and with one
				// flush at a time (Fluent Bit without Workers).
				for _, w := range []int{2, 0} {
					name := s
					if w == 0 {
						name += " (-w 0)"
					}
					if events >= 200_000 {
						quarter := events / 4
						qlog, _ := benchWriteLog(t, t.TempDir(), quarter)
						f := benchReplayW(t, p, name+" (¼ log)", pr, qlog, quarter, w)
						results = append(results, f)
						full := benchReplayW(t, p, name, pr, log, events, w)
						results = append(results, full)
						t.Logf("-w %d: peak RSS %.1f MiB for %d events, %.1f MiB for %d", w, float64(f.MaxRSSKB)/1024, quarter,
							float64(full.MaxRSSKB)/1024, events)
					} else {
						results = append(results, benchReplayW(t, p, name, pr, log, events, w))
					}
				}
			case "opensearch":
				node := servers.SharedOpenSearch(t)
				pr := props(t, hosttest.KV{Key: "Output", Value: "elasticsearch"}, hosttest.KV{Key: "Hosts", Value: node.URL},
					hosttest.KV{Key: "Index", Value: "kaudit-bench-%Y.%m.%d"})
				f := benchReplay(t, p, s, pr, log, events)
				results = append(results, f)
				require.NoError(t, node.Refresh("kaudit-bench-*"))
				t.Logf("OpenSearch holds %d documents; its RSS %d MiB", node.Count("kaudit-bench-*"), node.RSS()>>20)
			case "victorialogs":
				vl := servers.StartVictoriaLogs(t)
				pr := props(t, hosttest.KV{Key: "Output", Value: "loki"}, hosttest.KV{Key: "Url", Value: vl.PushURL()})
				results = append(results, benchReplay(t, p, s, pr, log, events))
			case "stdout":
				pr := props(t, hosttest.KV{Key: "Output", Value: "stdout"}, hosttest.KV{Key: "Path", Value: os.DevNull})
				results = append(results, benchReplay(t, p, s, pr, log, events))
			default:
				t.Fatalf("unknown sink %q in KAUDIT_BENCH_SINKS", s)
			}
		})
	}
	var b strings.Builder
	b.WriteString("| sink | events | wall s | events/s | CPU s per 1M events | peak RSS MiB |\n|---|---|---|---|---|---|\n")
	for _, f := range results {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	t.Logf("end-to-end replay through the C host (-w 2 unless noted, %d records per chunk):\n%s", benchChunkRecords, b.String())
}
