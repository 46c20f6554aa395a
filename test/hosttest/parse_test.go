package hosttest

import "testing"

const sampleOutput = `dlopen ok=1
register rc=0 type=2 proxy=11 flags=0 event_type=0 name=kaudit desc="a \"quoted\" desc\\x"
symbols init=1 flush_ctx=1 flush=0 exit_ctx=1 exit=0 prerun=1 preexit=1 unregister=1
init idx=0 rc=1 ctx=1
init idx=1 rc=2 ctx=0
prerun idx=0 rc=-1
something a plugin printed
flush idx=0 tag="a tag" file=/tmp/c.bin bytes=21 records=1 attempt=1 rc=2 worker=-1 us=141
flush idx=0 tag="a tag" file=/tmp/c.bin bytes=21 records=1 attempt=2 rc=1 worker=1 us=14
flush idx=1 tag=t file=empty.bin bytes=0 records=0 attempt=0 rc=1 skipped=1 worker=-1
flush idx=1 tag=tt file=log.txt chunk=3 bytes=42 records=2 attempt=1 rc=0 worker=-1 us=6
drop idx=1 tag=tt file=log.txt chunk=3 attempts=1 reason=error
tail idx=1 tag=tt file=log.txt chunks=4 records=7 ok=3 retry=0 error=1 dropped=1
sleep ms=10
preexit idx=0
exit idx=0 rc=1 ctx=1
exit idx=1 skipped=init_failed
exit idx=2 rc=0 legacy=1
unregister
summary flushes=5 ok=4 retry=1 error=0 dropped_chunks=1 chunks=5 ok_chunks=4 skipped=1
rusage user_s=0.010000 sys_s=0.005443 maxrss_kb=8408
`

func TestParseOutput(t *testing.T) {
	o, err := ParseOutput(sampleOutput)
	if err != nil {
		t.Fatal(err)
	}
	if !o.DlopenOK || o.Register == nil || o.Register.Name != "kaudit" || o.Register.Desc != `a "quoted" desc\x` ||
		o.Register.Type != 2 || o.Register.Proxy != 11 {
		t.Fatalf("register %+v", o.Register)
	}
	if s := o.Symbols; s == nil || !s.FlushCtx || s.Flush || !s.PreRun || !s.Unregister {
		t.Fatalf("symbols %+v", s)
	}
	if len(o.Inits) != 2 || o.Inits[1].RC != 2 || o.Inits[1].Ctx || !o.Inits[0].Ctx {
		t.Fatalf("inits %+v", o.Inits)
	}
	if len(o.PreRuns) != 1 || o.PreRuns[0].RC != -1 {
		t.Fatalf("preruns %+v", o.PreRuns)
	}
	if len(o.Flushes) != 4 {
		t.Fatalf("flushes %+v", o.Flushes)
	}
	f := o.Flushes[1]
	if f.Tag != "a tag" || f.File != "/tmp/c.bin" || f.Attempt != 2 || f.RC != 1 || f.Worker != 1 ||
		f.Chunk != -1 || f.Bytes != 21 || f.Micros != 14 {
		t.Fatalf("flush %+v", f)
	}
	if !o.Flushes[2].Skipped || o.Flushes[3].Chunk != 3 || len(o.FlushesFor(1)) != 2 {
		t.Fatalf("flushes %+v", o.Flushes)
	}
	if len(o.Drops) != 1 || o.Drops[0].Reason != "error" || o.Drops[0].Chunk != 3 {
		t.Fatalf("drops %+v", o.Drops)
	}
	if len(o.Tails) != 1 || o.Tails[0].Records != 7 || o.Tails[0].Dropped != 1 {
		t.Fatalf("tails %+v", o.Tails)
	}
	if len(o.Exits) != 3 || o.Exits[1].Skipped != "init_failed" || !o.Exits[2].Legacy || !o.Exits[0].Ctx {
		t.Fatalf("exits %+v", o.Exits)
	}
	if len(o.PreExits) != 1 || len(o.Sleeps) != 1 || !o.Unregistered {
		t.Fatalf("preexit/sleep/unregister %+v", o)
	}
	want := Summary{Flushes: 5, OK: 4, Retry: 1, DroppedChunks: 1, Chunks: 5, OKChunks: 4, Skipped: 1}
	if o.Summary == nil || *o.Summary != want {
		t.Fatalf("summary %+v", o.Summary)
	}
	if o.Rusage == nil || o.Rusage.MaxRSSKB != 8408 || o.Rusage.UserS != 0.01 {
		t.Fatalf("rusage %+v", o.Rusage)
	}
	if len(o.Lines) != 21 || o.Lines[6].Text != "something a plugin printed" {
		t.Fatalf("%d lines: %q", len(o.Lines), o.Lines[6].Text)
	}
}

func TestParseLineQuoting(t *testing.T) {
	l, err := ParseLine(`flush tag="x=y \"z\"\n\x01" file= a=b`)
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "flush" || l.Fields["tag"] != "x=y \"z\"\n\x01" || l.Fields["file"] != "" || l.Fields["a"] != "b" {
		t.Fatalf("%+v", l)
	}
	if _, err := ParseLine(`flush tag="open`); err == nil {
		t.Fatal("unterminated quote accepted")
	}
	if _, err := ParseOutput("init idx=x rc=1\n"); err == nil {
		t.Fatal("bad int accepted")
	}
}
