package filter

// Fuzz tests. `make fuzz` runs each for FUZZTIME; `go test` runs the seed
// corpus (f.Add below plus testdata/fuzz/Fuzz*/) as ordinary tests. A
// crasher found by the fuzzer is written to testdata/fuzz/Fuzz*/ by the
// go tool: commit it and it stays a regression test.
//
// KAUDIT_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./filter/
// regenerates the committed seed files from auditgen.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kaudit/kaudit/test/auditgen"
)

// fuzzSeeds are audit events that reach every branch of the redactor:
// Secrets (create, get, list, patch), tokens, and plain events.
func fuzzSeeds() [][]byte {
	sb, sv, tok := auditgen.SecretValueBase64, auditgen.SecretValue, auditgen.TestToken
	head := func(resource, sub, group, verb string) string {
		return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a-` + resource + verb +
			`","stage":"ResponseComplete","requestURI":"/api/v1/x","verb":"` + verb + `","user":{"username":"alice","groups":["system:masters"]},` +
			`"objectRef":{"resource":"` + resource + `","subresource":"` + sub + `","namespace":"default","name":"x","apiGroup":"` + group + `","apiVersion":"v1"},` +
			`"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2025-06-02T16:00:00.000001Z","stageTimestamp":"2025-06-02T16:00:00.000201Z"`
	}
	la, _ := json.Marshal(`{"apiVersion":"v1","kind":"Secret","data":{"p":"` + sb + `"}}`)
	seeds := []string{
		head("secrets", "", "", "create") + `,"requestObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x","annotations":{"kubectl.kubernetes.io/last-applied-configuration":` + string(la) + `}},"data":{"p":"` + sb + `"},"stringData":{"q":"` + sv + `"}},"responseObject":{"kind":"Secret","data":{"p":"` + sb + `"}}}`,
		head("secrets", "", "", "list") + `,"responseObject":{"kind":"SecretList","items":[{"metadata":{"name":"a"},"data":{"p":"` + sb + `"}}]}}`,
		head("secrets", "", "", "patch") + `,"requestObject":[{"op":"replace","path":"/data/p","value":"` + sb + `"}]}`,
		head("secrets", "", "", "get") + `,"responseObject":{"kind":"Table","rows":[{"cells":["x"],"object":{"kind":"Secret","data":{"p":"` + sb + `"}}}]}}`,
		head("serviceaccounts", "token", "", "create") + `,"responseObject":{"kind":"TokenRequest","status":{"token":"` + tok + `"}}}`,
		head("tokenreviews", "", "authentication.k8s.io", "create") + `,"requestObject":{"kind":"TokenReview","spec":{"token":"` + tok + `"}}}`,
		head("configmaps", "", "", "create") + `,"requestObject":{"kind":"List","items":[{"kind":"Secret","data":{"p":"` + sb + `"}}]}}`,
		head("pods", "", "", "get") + `,"responseObject":{"kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}`,
		sampleEvent,
		`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + sampleEvent + `]}`,
	}
	out := make([][]byte, 0, len(seeds)+8)
	for _, s := range seeds {
		out = append(out, []byte(s))
	}
	for i, line := range auditgen.Generate(auditgen.Options{Seed: 7, Events: 400}) {
		if i%50 == 0 || bytes.Contains(line, []byte(`"secrets"`)) || bytes.Contains(line, []byte("token")) && i%5 == 0 {
			out = append(out, line)
		}
	}
	return out
}

// fuzzChunk builds a V2 chunk of {"log": line} records.
func fuzzChunk(lines ...[]byte) []byte {
	var b []byte
	for _, l := range lines {
		b = msgp.AppendArrayHeader(b, 2)
		b = msgp.AppendArrayHeader(b, 2)
		b = append(b, eventTimeExt(1748880000, 123)...)
		b = msgp.AppendMapHeader(b, 0)
		b = msgp.AppendMapHeader(b, 1)
		b = msgp.AppendString(b, "log")
		b = msgp.AppendStringFromBytes(b, l)
	}
	return b
}

func chunkSeeds() [][]byte {
	s := fuzzSeeds()
	out := [][]byte{
		fuzzChunk(s[0], s[1]),
		fuzzChunk(s[4]),
		legacy(nil, func(b []byte) []byte { return msgp.AppendFloat64(b, 1.5e9) }, "log", sampleEvent),
		legacy(nil, func(b []byte) []byte { return msgp.AppendInt64(b, -1) }, "log", sampleEvent),
		v2(nil, 0xFFFFFFFF, "log", sampleEvent), // group marker
	}
	c := fuzzChunk(s[2], s[3])
	out = append(out, c[:len(c)/2]) // truncated
	// a record already parsed into a map
	m := msgp.AppendArrayHeader(nil, 2)
	m = msgp.AppendInt64(m, 1700000000)
	m = msgp.AppendMapHeader(m, 2)
	m = msgp.AppendString(m, "auditID")
	m = msgp.AppendString(m, "x")
	m = msgp.AppendString(m, "stage")
	m = msgp.AppendInt(m, 3)
	return append(out, m)
}

// checkDocument fails on a document that is not valid UTF-8 JSON.
func checkDocument(t *testing.T, doc []byte) {
	t.Helper()
	if !utf8.Valid(doc) {
		t.Fatalf("document is not valid UTF-8: %q", Excerpt(doc, 300))
	}
	if !json.Valid(doc) {
		t.Fatalf("document is not valid JSON: %q", Excerpt(doc, 300))
	}
}

func FuzzDecodeChunk(f *testing.F) {
	for _, c := range chunkSeeds() {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var evs, bad int
		res, err := DecodeChunk(data, "kube.audit", "log", func(ev *Event) {
			evs++
			if ev.AuditID == "" || ev.Stage == "" {
				t.Fatalf("event without auditID/stage: %+v", ev.Event)
			}
			// The encoder must cope with whatever the decoder let through
			// (bodies are made valid by the redact stage, so only check
			// documents without bodies here).
			ev.RequestObject, ev.ResponseObject = nil, nil
			checkDocument(t, AppendEvent(nil, ev))
		}, func(m Malformed) {
			bad++
			if m.Err == nil || m.Err.Error() == "" {
				t.Fatalf("malformed record without a reason: %+v", m)
			}
		})
		if err != nil {
			if res.Events != 0 || evs != 0 {
				t.Fatalf("error %v after %d events", err, evs)
			}
			return
		}
		if res.Events != evs || res.Malformed != bad {
			t.Fatalf("result %+v, saw %d events %d malformed", res, evs, bad)
		}
		if res.Records > len(data) {
			t.Fatalf("%d records from %d bytes", res.Records, len(data))
		}
	})
}

func FuzzDecodeAudit(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	for _, s := range []string{`{}`, `[]`, `null`, `{"kind":"Event"}`, `{"kind":"EventList","items":[{}]}`,
		`{"auditID":"a","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"99999-01-01T00:00:00Z"}`,
		`{"auditID":"a","stage":"ResponseComplete","verb":"get","stageTimestamp":"0001-01-01T00:00:00.9999999999Z"}`,
		"{\"auditID\":\"a\xff\",\"stage\":\"x\",\"verb\":\"\xc0\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := DecodeAudit(data, func(a *auditv1.Event) {
			n++
			ev := newEvent(a, "t", time.Unix(0, 0))
			ev.RequestObject, ev.ResponseObject = nil, nil
			checkDocument(t, AppendEvent(nil, ev))
		})
		if err != nil && n != 0 {
			t.Fatalf("error %v after %d events", err, n)
		}
		if err == nil && n == 0 && !bytes.Contains(data, []byte("EventList")) {
			t.Fatalf("no error and no event from %q", Excerpt(data, 200))
		}
	})
}

var (
	fuzzPipelinesOnce sync.Once
	fuzzPipelines     []*Pipeline
	fuzzPipelinesErr  error
)

// fuzzPolicyFile is the shipped policy when the repository has one, else
// the test policy.
func fuzzPolicyFile() string {
	if _, err := os.Stat("../conf/audit-policy.yaml"); err == nil {
		return "../conf/audit-policy.yaml"
	}
	return "testdata/fuzz-policy.yaml"
}

// pipelines: with the policy and redaction; redaction only with a small
// size limit; redaction off (the policy and limits still apply).
func pipelines(t testing.TB) []*Pipeline {
	fuzzPipelinesOnce.Do(func() {
		now := func() time.Time { return time.Date(2025, 6, 2, 18, 0, 0, 0, time.UTC) }
		for _, o := range []Options{
			{PolicyFile: fuzzPolicyFile(), RedactSecrets: true, MaxEventBytes: 4 << 20, Now: now},
			{RedactSecrets: true, MaxEventBytes: 2048, Now: now},
			{PolicyFile: fuzzPolicyFile(), RedactSecrets: false, MaxEventBytes: 4096, Now: now},
		} {
			p, err := NewPipeline(o)
			if err != nil {
				fuzzPipelinesErr = fmt.Errorf("pipeline %+v: %w", o, err)
				return
			}
			fuzzPipelines = append(fuzzPipelines, p)
		}
	})
	if fuzzPipelinesErr != nil {
		t.Fatal(fuzzPipelinesErr)
	}
	return fuzzPipelines
}

func FuzzPipeline(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	ps := pipelines(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for pi, p := range ps {
			var docs [][]byte
			run := func() [][]byte {
				var out [][]byte
				DecodeAudit(data, func(a *auditv1.Event) {
					ev := newEvent(a, "t", time.Unix(1748880000, 0))
					hint := hintFor(ev)
					emit := func(x *Event) { out = append(out, AppendEvent(nil, x)) }
					if p.Process(ev, emit) != Keep {
						return
					}
					doc := AppendEvent(nil, ev)
					checkDocument(t, doc)
					if max := p.opts.MaxEventBytes; max > 0 {
						if n := bodyLen(ev); n > max {
							t.Fatalf("pipeline %d: bodies of %d bytes > max_event_bytes %d", pi, n, max)
						}
					}
					if p.opts.RedactSecrets {
						for _, b := range []struct {
							raw  []byte
							name string
						}{{rawOf(ev.RequestObject), "requestObject"}, {rawOf(ev.ResponseObject), "responseObject"}} {
							if msg := unredacted(b.raw, hint); msg != "" {
								t.Fatalf("pipeline %d: %s: %s\n%s", pi, b.name, msg, Excerpt(b.raw, 400))
							}
						}
					}
					out = append(out, doc)
				})
				return out
			}
			docs = run()
			again := run()
			if len(docs) != len(again) {
				t.Fatalf("pipeline %d: %d then %d documents", pi, len(docs), len(again))
			}
			for i := range docs {
				if !bytes.Equal(docs[i], again[i]) && !bytes.Contains(docs[i], []byte(`"kaudit.k8s.io/`)) {
					t.Fatalf("pipeline %d: same event, different documents:\n%s\n%s", pi, docs[i], again[i])
				}
			}
		}
	})
}

func bodyLen(ev *Event) int {
	return len(rawOf(ev.RequestObject)) + len(rawOf(ev.ResponseObject))
}

// unredacted is an independent check, over encoding/json's view of the
// body, that no credential the redactor is responsible for is left.
func unredacted(raw []byte, hint Hint) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "" // the redactor replaced unreadable sensitive bodies; others pass as is
	}
	return checkValue(v, topHint(hint), "$")
}

func isRedacted(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == "" || x == RedactedValue
	}
	return false
}

func checkValue(v any, ro role, path string) string {
	switch x := v.(type) {
	case []any:
		elem := roleAny
		switch ro {
		case roleSecretTop:
			elem = roleJSONPatch
		case roleSecret:
			elem = roleSecret
		case roleRow:
			elem = roleRow
		}
		for i, e := range x {
			if msg := checkValue(e, elem, fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return msg
			}
		}
	case map[string]any:
		if ro == roleJSONPatch {
			if !isRedacted(x["value"]) {
				return path + ".value not redacted"
			}
			return ""
		}
		kind, _ := x["kind"].(string)
		secret := ro == roleSecretTop || ro == roleSecret || kind == "Secret"
		list := secret || kind == "SecretList"
		if secret {
			for _, k := range []string{"data", "stringData"} {
				switch d := x[k].(type) {
				case map[string]any:
					for kk, vv := range d {
						if !isRedacted(vv) {
							return fmt.Sprintf("%s.%s.%s not redacted", path, k, kk)
						}
					}
				default:
					if !isRedacted(d) {
						return fmt.Sprintf("%s.%s not redacted", path, k)
					}
				}
			}
		}
		if st, ok := x["status"].(map[string]any); ok && (ro == roleTokenReq || kind == "TokenRequest") && !isRedacted(st["token"]) {
			return path + ".status.token not redacted"
		}
		if sp, ok := x["spec"].(map[string]any); ok && (ro == roleTokenRev || kind == "TokenReview") && !isRedacted(sp["token"]) {
			return path + ".spec.token not redacted"
		}
		if md, ok := x["metadata"].(map[string]any); ok {
			if an, ok := md["annotations"].(map[string]any); ok {
				if la, ok := an[LastAppliedAnnotation].(string); ok {
					inner := HintNone
					if secret {
						inner = HintSecret
					}
					if msg := unredacted([]byte(la), inner); msg != "" {
						return path + ".metadata.annotations[last-applied]: " + msg
					}
				}
			}
		}
		for k, c := range x {
			if secret && (k == "data" || k == "stringData") {
				continue
			}
			child := roleAny
			switch {
			case list && k == "items":
				child = roleSecret
			case ro == roleSecretTop && k == "rows":
				child = roleRow
			case ro == roleRow && k == "object":
				child = roleSecret
			}
			if msg := checkValue(c, child, path+"."+k); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// TestFuzzSeedsRedacted runs the pipeline checks over the seeds with the
// known secret strings, as a plain test.
func TestFuzzSeedsRedacted(t *testing.T) {
	p := pipelines(t)[1]
	for _, s := range fuzzSeeds() {
		DecodeAudit(s, func(a *auditv1.Event) {
			ev := newEvent(a, "t", time.Unix(0, 0))
			p.Process(ev, nil)
			doc := AppendEvent(nil, ev)
			for _, secret := range secretStrings() {
				if bytes.Contains(doc, []byte(secret)) {
					t.Errorf("%s: %q in %s", ev.AuditID, secret, doc)
				}
			}
		})
	}
}

// TestWriteFuzzCorpus writes the seed corpora under testdata/fuzz.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("KAUDIT_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set KAUDIT_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	write := func(fuzzer string, seeds [][]byte) {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			name := filepath.Join(dir, fmt.Sprintf("seed-%03d", i))
			if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("FuzzDecodeChunk", chunkSeeds())
	write("FuzzDecodeAudit", fuzzSeeds())
	write("FuzzPipeline", fuzzSeeds())
}

func rawOf(u *runtime.Unknown) []byte {
	if u == nil {
		return nil
	}
	return u.Raw
}
