package filter

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kaudit/kaudit/test/auditgen"
)

// slowDecode is the reference: DecodeAudit and a copy into an Event.
func slowDecode(data []byte) (*Event, error, int) {
	var ev *Event
	n := 0
	err := DecodeAudit(data, func(a *auditv1.Event) {
		n++
		ev = newEvent(a, "t", time.Unix(5, 0))
	})
	return ev, err, n
}

// checkFastMatches decodes data both ways: when the fast decoder accepts
// it, the reflective decoder must yield exactly one event, deep-equal,
// encoding to the same bytes. It reports whether the fast path took it.
func checkFastMatches(t testing.TB, d *fastDecoder, data []byte) bool {
	t.Helper()
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	fast, ok := d.decode(trimmed, "t", time.Unix(5, 0))
	if !ok {
		return false
	}
	slow, err, n := slowDecode(data)
	if err != nil || n != 1 {
		t.Fatalf("fast path accepted what DecodeAudit rejects (%v, %d events): %q", err, n, Excerpt(data, 300))
	}
	if !reflect.DeepEqual(fast.Event, slow.Event) {
		t.Fatalf("fast and reflective events differ for %q:\nfast %#v\nslow %#v", Excerpt(data, 300), fast.Event, slow.Event)
	}
	if fast.ID() != slow.ID() {
		t.Fatalf("ids differ: %q vs %q", fast.ID(), slow.ID())
	}
	if a, b := AppendEvent(nil, fast), AppendEvent(nil, slow); !bytes.Equal(a, b) {
		t.Fatalf("documents differ:\n%s\n%s", a, b)
	}
	return true
}

func fastCorpus(t testing.TB) [][]byte {
	var lines [][]byte
	for _, p := range []string{"metadata", "large", "mix"} {
		for _, seed := range []int64{1, 2} {
			lines = append(lines, auditgen.Generate(auditgen.Options{Seed: seed, Events: 1500, Profile: p})...)
		}
	}
	data, err := os.ReadFile("../test/testdata/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(l) > 0 {
			lines = append(lines, l)
		}
	}
	return append(lines, fuzzSeeds()...)
}

func TestFastDecodeMatchesReflective(t *testing.T) {
	d := &fastDecoder{in: newInternTable()}
	fast, total := 0, 0
	for _, l := range fastCorpus(t) {
		total++
		if checkFastMatches(t, d, l) {
			fast++
		}
	}
	// Every generated event has the common shape.
	if fast < total*95/100 {
		t.Fatalf("fast path took only %d of %d events", fast, total)
	}
	// The checked-in fuzz inputs of the decoders.
	for _, dir := range []string{"testdata/fuzz/FuzzDecodeAudit", "testdata/fuzz/FuzzPipeline"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			for _, in := range readFuzzFile(t, f) {
				checkFastMatches(t, d, in)
			}
		}
	}
}

func TestFastDecodeEdgeCases(t *testing.T) {
	base := func(extra string) string {
		return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-1","stage":"ResponseComplete","verb":"get","requestURI":"/api/v1/pods?limit=1\u0026x=2"` + extra + `}`
	}
	cases := []struct {
		in   string
		fast bool // whether the fast path must take it
	}{
		{base(``), true},
		{base(`,"user":{"username":"a\"b\\c\/d\n\u00e9","groups":[]}`), true},
		{base(`,"annotations":{}`), true},
		{base(`,"annotations":{"a":"b","a":"c"}`), true},
		{base(`,"sourceIPs":["1.2.3.4","::1"],"userAgent":"kubectl/v1 (x)"`), true},
		{base(`,"responseStatus":{"metadata":{},"code":0}`), true},
		{base(`,"responseStatus":{"metadata":{},"code":404}`), true},
		{base(`,"responseStatus":{"metadata":{},"status":"Failure","message":"no","reason":"NotFound","code":404}`), true},
		{base(`,"responseStatus":{"metadata":{},"code":0404}`), false},
		{base(`,"objectRef":{"resource":"pods","name":"x","uid":"u","resourceVersion":"7"}`), true},
		{base(`,"requestObject":{"a":[1,2,{"b":"}"}]},"responseObject":"x"`), true},
		{base(`,"requestObject":null`), false},
		{base(`,"objectRef":null`), false},
		{base(`,"Verb":"list"`), false},
		{base(`,"verb":"list"`), false},
		{base(`,"unknown":1`), false},
		{base(`,"items":[]`), false},
		{base(`,"user":{"username":"\ud83d\ude00"}`), false},
		{base(`,"user":{"username":"\x01"}`), false},
		{base(`,"user":{"username":"a\q"}`), false},
		{base(`,"requestReceivedTimestamp":"2025-06-02T16:00:00+02:00"`), true},
		{base(`,"requestReceivedTimestamp":"bad"`), false},
		{base(`,"requestReceivedTimestamp":null`), false},
		{base(``) + ` x`, false},
		{base(`,"user":{"username":"a","extra":{"k":["v","w"],"j":[]}}`), true},
		{base(`,"impersonatedUser":{"username":"b"},"authenticationMetadata":{"impersonationConstraint":"x"}`), true},
		{`{"kind":"EventList","items":[]}`, false},
		{`{"auditID":"a","stage":"x"}`, false},
		{`{}`, false},
		{` {"auditID":"a","stage":"ResponseComplete","verb":"get"} `, true},
	}
	d := &fastDecoder{in: newInternTable()}
	for _, c := range cases {
		for range 2 { // the second time from the intern table
			if got := checkFastMatches(t, d, []byte(c.in)); got != c.fast {
				t.Errorf("fast path took=%v, want %v: %s", got, c.fast, c.in)
			}
		}
	}
}

// TestFastDecodeOwnsItsStrings: nothing of a decoded event aliases the
// record's bytes (Fluent Bit's chunk), so overwriting them changes nothing;
// and events sharing a slab stay independent, declined records between
// them included.
func TestFastDecodeOwnsItsStrings(t *testing.T) {
	d := &fastDecoder{in: newInternTable()}
	type kept struct {
		ev  *Event
		doc []byte
		id  string
	}
	var all []kept
	for i, l := range auditgen.Generate(auditgen.Options{Seed: 3, Events: 300, Profile: "mix"}) {
		if i%7 == 0 { // declined half-way through
			d.decode([]byte(`{"kind":"Event","auditID":"x","stage":"ResponseComplete","verb":"get","user":{"username":"u"},"bogus":1}`), "t", time.Time{})
		}
		in := bytes.Clone(l)
		ev, ok := d.decode(in, "t", time.Unix(5, 0))
		if !ok {
			continue
		}
		k := kept{ev, AppendEvent(nil, ev), ev.ID()}
		for i := range in {
			in[i] = 'x'
		}
		all = append(all, k)
	}
	for _, k := range all {
		if after := AppendEvent(nil, k.ev); !bytes.Equal(k.doc, after) || k.ev.ID() != k.id {
			t.Fatalf("event changed after its input was overwritten or others were decoded:\n%s\n%s", k.doc, after)
		}
	}
}

func TestEventIDCache(t *testing.T) {
	d := &fastDecoder{in: newInternTable()}
	ev, ok := d.decode([]byte(`{"auditID":"abc","stage":"ResponseComplete","verb":"get"}`), "t", time.Time{})
	if !ok || ev.ID() != "abc-ResponseComplete" {
		t.Fatalf("id %q", ev.ID())
	}
	ev.Stage = auditv1.StageRequestReceived
	if ev.ID() != "abc-RequestReceived" {
		t.Fatalf("stale id %q", ev.ID())
	}
	ev.AuditID = "abd"
	if ev.ID() != "abd-RequestReceived" {
		t.Fatalf("stale id %q", ev.ID())
	}
}

type internSnapshot struct {
	strs   map[string]string
	lists  map[string][]string
	smaps  map[string]map[string]string
	extras map[string]map[string]authnv1.ExtraValue
	status map[string]metav1.Status
}

func snapshotIntern(t *internTable) internSnapshot {
	s := internSnapshot{strs: map[string]string{}, lists: map[string][]string{},
		smaps: map[string]map[string]string{}, extras: map[string]map[string]authnv1.ExtraValue{},
		status: map[string]metav1.Status{}}
	for k, v := range t.status {
		s.status[k] = *v.DeepCopy()
	}
	for k, v := range t.strs {
		s.strs[k] = strings.Clone(v)
	}
	for k, v := range t.lists {
		s.lists[k] = append([]string(nil), v...)
	}
	for k, v := range t.smaps {
		m := map[string]string{}
		for a, b := range v {
			m[a] = b
		}
		s.smaps[k] = m
	}
	for k, v := range t.extras {
		m := map[string]authnv1.ExtraValue{}
		for a, b := range v {
			m[a] = append(authnv1.ExtraValue(nil), b...)
		}
		s.extras[k] = m
	}
	return s
}

// TestInternedValuesNotMutated runs every stage (policy, redaction,
// enrichment, critical workloads, detections with alert records) over
// events whose slices and maps are shared through the intern table, and
// checks that none of them changed: a stage that wrote into
// ev.User.Groups, ev.SourceIPs, ev.Annotations, ev.User.Extra or
// ev.ResponseStatus would
// change other events.
func TestInternedValuesNotMutated(t *testing.T) {
	d := &fastDecoder{in: newInternTable()}
	var evs []*Event
	for _, l := range fastCorpus(t) {
		if ev, ok := d.decode(bytes.TrimSpace(l), "t", time.Unix(1748880000, 0)); ok {
			evs = append(evs, ev)
		}
	}
	if len(d.in.lists) == 0 || len(d.in.smaps) == 0 || len(d.in.extras) == 0 || len(d.in.status) == 0 {
		t.Fatal("nothing interned")
	}
	snap := snapshotIntern(d.in)
	now := func() time.Time { return time.Date(2025, 6, 2, 18, 0, 0, 0, time.UTC) }
	p, err := NewPipeline(Options{PolicyFile: "../conf/audit-policy.yaml", CriticalFile: "../conf/critical-workloads.yaml",
		DetectionsFile: "../conf/detections.yaml", LabelCacheSize: 1000, RedactSecrets: true, MaxEventBytes: 4096,
		EmitAlertRecords: true, TrustedNetworks: detTrusted, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		p.Process(ev, func(x *Event) { AppendEvent(nil, x) })
		AppendEvent(nil, ev)
	}
	if got := snapshotIntern(d.in); !reflect.DeepEqual(got, snap) {
		t.Fatal("a stage changed a shared (interned) slice or map")
	}
}

func TestInternTableBounded(t *testing.T) {
	in := newInternTable()
	for i := 0; i < internMaxEntries*3; i++ {
		in.room(10)
		in.strs[strings.Repeat("x", i%50)+string(rune('a'+i%26))] = ""
	}
	if in.entries > internMaxEntries || len(in.strs) > internMaxEntries {
		t.Fatalf("table grew to %d entries", len(in.strs))
	}
}

// readFuzzFile reads the []byte values of a "go test fuzz v1" file.
func readFuzzFile(t testing.TB, name string) [][]byte {
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(data), "\n") {
		if q, ok := strings.CutPrefix(line, "[]byte("); ok {
			if s, err := strconv.Unquote(strings.TrimSuffix(q, ")")); err == nil {
				out = append(out, []byte(s))
			}
		}
	}
	return out
}

// TestInternDoorkeeper: a list, map or status is interned the second time
// its raw text is seen, never the first, so unique values do not fill the
// table.
func TestInternDoorkeeper(t *testing.T) {
	d := &fastDecoder{in: newInternTable()}
	line := func(ann string) []byte {
		return []byte(`{"auditID":"a","stage":"ResponseComplete","verb":"get","annotations":{"k":"` + ann + `"}}`)
	}
	for i := 0; i < 100; i++ {
		if _, ok := d.decode(line(strconv.Itoa(i)), "t", time.Time{}); !ok {
			t.Fatal("declined")
		}
	}
	if len(d.in.smaps) != 0 {
		t.Fatalf("%d unique maps interned", len(d.in.smaps))
	}
	a, _ := d.decode(line("x"), "t", time.Time{})
	b, _ := d.decode(line("x"), "t", time.Time{})
	c, _ := d.decode(line("x"), "t", time.Time{})
	if len(d.in.smaps) != 1 || reflect.ValueOf(b.Annotations).Pointer() != reflect.ValueOf(c.Annotations).Pointer() ||
		reflect.ValueOf(a.Annotations).Pointer() == reflect.ValueOf(b.Annotations).Pointer() {
		t.Fatalf("repeated map not interned on its second sight (%d maps)", len(d.in.smaps))
	}
}

// FuzzFastDecode: whatever the fast decoder accepts, the reflective
// decoder accepts too, with a deep-equal event and the same document.
func FuzzFastDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	for _, s := range []string{`{"auditID":"a","stage":"x","verb":"get","requestURI":"/a\u0026b\"c"}`,
		`{"auditID":"a","stage":"x","verb":"get","annotations":{"a":"b","a":"c"},"user":{"groups":[]}}`,
		`{"auditID":"a","stage":"x","verb":"get","responseStatus":{"metadata":{},"code":200}}`} {
		f.Add([]byte(s))
	}
	d := &fastDecoder{in: newInternTable()}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastMatches(t, d, data)
	})
}
