package hosttest

// Smoke tests: flbhost drives a throwaway plugin built on fluent-bit-go
// itself (testdata/probe), which proves the host against fbgo's view of the
// structs before the kaudit plugin exists.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const fbgoVersion = "v0.0.0-20230731091245-a7a013e2473c"

var (
	probeOnce sync.Once
	probeDir  string
	probePath string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if probeDir != "" {
		os.RemoveAll(probeDir)
	}
	os.Exit(code)
}

// probeSO builds testdata/probe in a temporary module (its own go.mod, the
// repo's go.sum, module cache only) once per test binary.
func probeSO(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hosttest-probe-")
		if err != nil {
			t.Fatal(err)
		}
		probeDir = dir
		src, err := os.ReadFile(filepath.Join("testdata", "probe", "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := os.ReadFile(filepath.Join(RepoRoot(t), "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		mod := "module example.com/probe\n\ngo 1.26\n\nrequire github.com/fluent/fluent-bit-go " + fbgoVersion + "\n"
		for name, data := range map[string][]byte{"main.go": src, "go.sum": sum, "go.mod": []byte(mod)} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out := filepath.Join(dir, "probe.so")
		BuildCShared(t, dir, out, "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		probePath = out
	})
	if probePath == "" {
		t.Fatal("probe plugin was not built (see the first failing test)")
	}
	return probePath
}

func mustExit(t *testing.T, r Result, code int) {
	t.Helper()
	if r.ExitCode != code {
		t.Fatalf("exit %d, want %d\n%s", r.ExitCode, code, r.Dump())
	}
}

func mustStderr(t *testing.T, r Result, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("stderr lacks %q\n%s", s, r.Dump())
		}
	}
}

func TestProbeExports(t *testing.T) {
	syms := ExportedSymbols(t, probeSO(t))
	for _, s := range []string{"FLBPluginRegister", "FLBPluginInit", "FLBPluginFlushCtx",
		"FLBPluginExitCtx", "FLBPluginUnregister"} {
		if !syms[s] {
			t.Errorf("probe.so does not export %s", s)
		}
	}
	for _, s := range []string{"FLBPluginFlush", "FLBPluginExit", "FLBPluginOutputPreRun"} {
		if syms[s] {
			t.Errorf("probe.so unexpectedly exports %s", s)
		}
	}
}

func TestSmokeTwoInstances(t *testing.T) {
	so, dir := probeSO(t), t.TempDir()
	a := WriteProps(t, dir, []KV{{"Name", "probe"}, {"Match", "*"}, {"probe_id", "A"}, {"Mode", "retry_first"},
		{"Log_Level", "debug"}, {"Workers", "0"}, {"Retry_Limit", "1"}, {"from_env", "${HOSTTEST_VAR}/x"},
		{"empty_key", ""}, {"PROBE_ID", "second-not-seen"}})
	b := WriteProps(t, dir, map[string]string{"probe_id": "B"})
	v2 := WriteFile(t, dir, "v2-*.bin", ChunkV2(Log(t0, "one"), Log(t0, "two"),
		Record{Time: t0, TS: TSEventTimeExt8, Meta: []KV{{"m", 1}}, Body: []KV{{"k", "v"}}}))
	legacy := WriteFile(t, dir, "legacy-*.bin", ChunkLegacy(Log(t0, "x"), Record{Time: t0, TS: TSInt, Body: []KV{{"k", 1}}}))

	r := RunWith(t, RunOptions{Env: []string{"HOSTTEST_VAR=fromenv"}},
		"-p", so, "-i", a, "-i", b, "flush", "0", "v2.tag", v2, "flush", "1", "legacy.tag", legacy)
	mustExit(t, r, ExitOK)
	if r.Register == nil || r.Register.Name != "probe" || r.Register.Desc != "hosttest probe plugin" ||
		r.Register.Type != 2 || r.Register.Proxy != 11 || r.Register.RC != 0 {
		t.Fatalf("register %+v\n%s", r.Register, r.Dump())
	}
	if len(r.Inits) != 2 || r.Inits[0].RC != 1 || !r.Inits[0].Ctx || r.Inits[1].RC != 1 || !r.Inits[1].Ctx {
		t.Fatalf("inits %+v", r.Inits)
	}
	f0, f1 := r.FlushesFor(0), r.FlushesFor(1)
	if len(f0) != 2 || f0[0].Attempt != 1 || f0[0].RC != 2 || f0[1].Attempt != 2 || f0[1].RC != 1 ||
		f0[0].Records != 3 || f0[0].Tag != "v2.tag" {
		t.Fatalf("instance 0 flushes %+v\n%s", f0, r.Dump())
	}
	if len(f1) != 1 || f1[0].RC != 1 || f1[0].Records != 2 {
		t.Fatalf("instance 1 flushes %+v", f1)
	}
	want := Summary{Flushes: 3, OK: 2, Retry: 1, Chunks: 2, OKChunks: 2}
	if r.Summary == nil || *r.Summary != want {
		t.Fatalf("summary %+v", r.Summary)
	}
	if len(r.Exits) != 2 || r.Exits[0].RC != 1 || !r.Exits[0].Ctx || !r.Unregistered {
		t.Fatalf("exits %+v unregistered=%v", r.Exits, r.Unregistered)
	}
	mustStderr(t, r,
		// per-instance properties, case-insensitive first match, consumed keys hidden, ${VAR}, empty = unset
		`probe: init id=A upper=A mode=retry_first match="" workers="" retry_limit="" env="fromenv/x" empty="" unset=""`,
		`probe: init id=B upper=B mode=`,
		// api->log_print with api->output_log_check honouring Log_Level per instance
		"[ info] probe: info from init id=A", "[debug] probe: debug from init id=A", "[ info] probe: info from init id=B",
		// fbgo decodes both shapes; the retry re-flushes the same chunk
		"probe: flush id=A tag=v2.tag records=3 ts=output.FLBTime call=1",
		"probe: flush id=A tag=v2.tag records=3 ts=output.FLBTime call=2",
		"probe: flush id=B tag=legacy.tag records=2 ts=output.FLBTime call=1",
		"probe: exit id=A calls=2 records=6", "probe: exit id=B calls=1 records=2", "probe: unregister")
	if strings.Contains(r.Stderr, "debug from init id=B") {
		t.Errorf("instance B logged at debug with the default info level\n%s", r.Stderr)
	}
}

func TestSmokeWorkers(t *testing.T) {
	so, dir := probeSO(t), t.TempDir()
	p := WriteProps(t, dir, map[string]string{"probe_id": "W", "mode": "slow"})
	chunk := WriteFile(t, dir, "c-*.bin", ChunkV2(Log(t0, "a")))
	log := WriteFile(t, dir, "log-*.txt", []byte("1\n2\n3\n4\n"))
	args := []string{"-p", so, "-w", "2", "-i", p}
	for i := 0; i < 4; i++ {
		args = append(args, "flush", "0", "w.tag", chunk)
	}
	args = append(args, "tail", "0", "t.tag", log, "1")
	r := Run(t, args...)
	mustExit(t, r, ExitOK)
	workers := map[int]int{}
	for _, f := range r.Flushes {
		workers[f.Worker]++
	}
	if len(r.Flushes) != 8 || workers[0] != 4 || workers[1] != 4 {
		t.Fatalf("flushes by worker %v\n%s", workers, r.Dump())
	}
	if len(r.Tails) != 1 || r.Tails[0].Chunks != 4 || r.Tails[0].Records != 4 || r.Tails[0].OK != 4 {
		t.Fatalf("tail %+v", r.Tails)
	}
	mustStderr(t, r, "probe: exit id=W calls=8 records=8 maxconc=2")
}

func TestSmokeInitFailure(t *testing.T) {
	so, dir := probeSO(t), t.TempDir()
	ok := WriteProps(t, dir, map[string]string{"probe_id": "ok"})
	bad := WriteProps(t, dir, map[string]string{"probe_id": "bad", "fail_init": "yes"})
	never := WriteProps(t, dir, map[string]string{"probe_id": "never"})
	chunk := WriteFile(t, dir, "c-*.bin", ChunkV2(Log(t0, "a")))
	r := Run(t, "-p", so, "-i", ok, "-i", bad, "-i", never, "flush", "0", "t", chunk)
	mustExit(t, r, ExitStartup)
	if len(r.Inits) != 2 || r.Inits[1].RC != 0 || len(r.Flushes) != 0 {
		t.Fatalf("inits %+v flushes %+v", r.Inits, r.Flushes)
	}
	if len(r.Exits) != 3 || !r.Exits[0].Ctx || r.Exits[1].Skipped != "init_failed" || r.Exits[2].Ctx ||
		!r.Unregistered || r.Summary == nil || !r.Summary.InitFailed {
		t.Fatalf("exits %+v\n%s", r.Exits, r.Dump())
	}
	mustStderr(t, r, "[go proxy]: plugin 'probe' failed to initialize", "[engine] output initialization failed",
		"probe: exit id=ok", "probe: exit nil-context", "probe: unregister")
}

func TestSmokeRetriesAndErrors(t *testing.T) {
	so, dir := probeSO(t), t.TempDir()
	props := func(id, mode string, extra ...KV) string {
		return WriteProps(t, dir, append([]KV{{"probe_id", id}, {"mode", mode}}, extra...))
	}
	chunk := WriteFile(t, dir, "c-*.bin", ChunkV2(Log(t0, "a")))
	empty := WriteFile(t, dir, "empty-*.bin", nil)
	r := Run(t, "-p", so, "-r", "2", "-d", "1",
		"-i", props("retry", "always_retry"),
		"-i", props("noretry", "always_retry", KV{"retry_limit", "no_retries"}),
		"-i", props("err", "error"),
		"-i", props("weird", "weird"),
		"-i", props("ok", ""),
		"flush", "0", "t", chunk, "flush", "1", "t", chunk, "flush", "2", "t", chunk,
		"flush", "3", "t", chunk, "flush", "4", "t", empty)
	mustExit(t, r, ExitOK)
	if f := r.FlushesFor(0); len(f) != 3 || f[2].Attempt != 3 || f[2].RC != 2 {
		t.Fatalf("retry instance %+v", f)
	}
	if f := r.FlushesFor(3); len(f) != 1 || f[0].RC != 0 {
		t.Fatalf("rc 7 not mapped to FLB_ERROR: %+v", f)
	}
	if f := r.FlushesFor(4); len(f) != 1 || !f[0].Skipped || f[0].Attempt != 0 {
		t.Fatalf("empty chunk %+v", f)
	}
	reasons := map[int]string{}
	for _, d := range r.Drops {
		reasons[d.Idx] = d.Reason
	}
	if fmt.Sprint(reasons) != "map[0:retries_exhausted 1:no_retries 2:error 3:error]" {
		t.Fatalf("drops %v\n%s", reasons, r.Dump())
	}
	want := Summary{Flushes: 6, Retry: 4, Error: 2, DroppedChunks: 4, Chunks: 5, OKChunks: 1, Skipped: 1}
	if *r.Summary != want {
		t.Fatalf("summary %+v", *r.Summary)
	}
	mustStderr(t, r, "probe: exit id=ok calls=0")
}

// TestSmokeTailEncoding checks that the host's tail action writes records
// byte for byte as ChunkV2(Log(...)) does, apart from the timestamps.
func TestSmokeTailEncoding(t *testing.T) {
	so, dir := probeSO(t), t.TempDir()
	dump := t.TempDir()
	lines := []string{"short", "é ünïcode", strings.Repeat("a", 31), strings.Repeat("b", 32),
		strings.Repeat("c", 255), strings.Repeat("d", 256), strings.Repeat("e", 65535),
		strings.Repeat("f", 65536), strings.Repeat("g", 3<<20)}
	var file bytes.Buffer
	for i, l := range lines {
		file.WriteString(l)
		if i%2 == 0 {
			file.WriteString("\r\n\n")
		} else if i != len(lines)-1 {
			file.WriteString("\n")
		}
	}
	log := WriteFile(t, dir, "log-*.txt", file.Bytes())
	p := WriteProps(t, dir, map[string]string{"probe_id": "T", "dump_dir": dump})
	before := time.Now()
	r := Run(t, "-p", so, "-i", p, "tail", "0", "tail.tag", log, "4")
	mustExit(t, r, ExitOK)
	if len(r.Tails) != 1 || r.Tails[0].Chunks != 3 || r.Tails[0].Records != len(lines) {
		t.Fatalf("tail %+v\n%s", r.Tails, r.Dump())
	}
	var got []byte
	for call := 1; call <= 3; call++ {
		b, err := os.ReadFile(filepath.Join(dump, fmt.Sprintf("T-%d.bin", call)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	off := 0
	for i, l := range lines {
		want := ChunkV2(Log(time.Unix(0, 0), l))
		if off+len(want) > len(got) {
			t.Fatalf("line %d: chunk data too short", i)
		}
		rec := append([]byte(nil), got[off:off+len(want)]...)
		sec := time.Unix(int64(uint32(rec[4])<<24|uint32(rec[5])<<16|uint32(rec[6])<<8|uint32(rec[7])), 0)
		if sec.Before(before.Add(-time.Second)) || sec.After(time.Now().Add(time.Second)) {
			t.Fatalf("line %d: timestamp %v is not now", i, sec)
		}
		copy(rec[4:12], make([]byte, 8))
		if !bytes.Equal(rec, want) {
			t.Fatalf("line %d (len %d): got % x... want % x...", i, len(l), rec[:min(len(rec), 24)], want[:min(len(want), 24)])
		}
		off += len(want)
	}
	if off != len(got) {
		t.Fatalf("%d trailing bytes", len(got)-off)
	}
}

func TestHostUsageErrors(t *testing.T) {
	dir := t.TempDir()
	p := WriteProps(t, dir, map[string]string{"k": "v"})
	for _, args := range [][]string{
		{},
		{"-p", "x.so"},
		{"-p", "x.so", "-i", p, "bogus"},
		{"-p", "x.so", "-i", p, "flush", "1", "t", "f"},
		{"-p", "x.so", "-i", p, "tail", "0", "t", "f", "0"},
		{"-p", "x.so", "-i", filepath.Join(dir, "missing.conf")},
	} {
		if r := Run(t, args...); r.ExitCode != ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, r.ExitCode, ExitUsage, r.Dump())
		}
	}
	r := Run(t, "-p", filepath.Join(dir, "missing.so"), "-i", p)
	mustExit(t, r, ExitStartup)
	if r.DlopenOK || r.Summary == nil || !r.Summary.InitFailed {
		t.Fatalf("%s", r.Dump())
	}
}
