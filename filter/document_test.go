package filter

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func decodeOne(t *testing.T, js string) *Event {
	t.Helper()
	var out *Event
	require.NoError(t, DecodeAudit([]byte(js), func(a *auditv1.Event) { out = &Event{Event: *a} }))
	return out
}

// The shipped document must keep every audit field as the apiserver's own
// type encodes it: decode our bytes with encoding/json into auditv1.Event
// and compare with the original.
func TestAppendEventRoundTripsThroughTheApiserverType(t *testing.T) {
	js := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/db/secrets/s?x=1","verb":"create","user":{"username":"system:serviceaccount:db:op","uid":"u1","groups":["system:serviceaccounts","system:authenticated"],"extra":{"authentication.kubernetes.io/pod-name":["op-1"],"a\"b":["x\ny"]}},"impersonatedUser":{"username":"bob","groups":["g"]},"sourceIPs":["10.0.0.1","2001:db8::1"],"userAgent":"kubectl/v1.31.0 (linux/amd64) kubernetes/abc","objectRef":{"resource":"secrets","namespace":"db","name":"s","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"status":"Failure","message":"nope \u003c","reason":"Forbidden","code":403},"requestObject":{"kind":"Secret","data":{"k":"dmFsdWU="}},"responseObject":{"kind":"Status"},"requestReceivedTimestamp":"2024-07-02T17:01:26.365713Z","stageTimestamp":"2024-07-02T17:01:26.370651Z","annotations":{"z":"1","authorization.k8s.io/decision":"forbid"}}`
	ev := decodeOne(t, js)
	ev.Kaudit.Actor = Actor{Type: "serviceaccount", Name: "bob", ServiceAccountNS: "db", ServiceAccount: "op", ImpersonatedBy: "system:serviceaccount:db:op"}
	ev.Kaudit.Critical = []CriticalMatch{{Name: "databases", Severity: "high", Reason: "actor not expected"}}
	ev.Kaudit.Alerts = []Alert{{Rule: "r", Severity: "low", Description: "d", Techniques: []string{"T1552"}}}
	out := AppendEvent(nil, ev)
	require.True(t, json.Valid(out), "%s", out)

	var want, got auditv1.Event
	require.NoError(t, json.Unmarshal([]byte(js), &want))
	require.NoError(t, json.Unmarshal(out, &got))
	assert.Equal(t, want, got)

	var doc map[string]any
	require.NoError(t, json.Unmarshal(out, &doc))
	assert.Equal(t, "2024-07-02T17:01:26.365713Z", doc["@timestamp"])
	k := doc["kaudit"].(map[string]any)
	assert.Equal(t, "serviceaccount", k["actor"].(map[string]any)["type"])
	assert.Equal(t, true, k["critical_workload"])
	assert.Equal(t, "databases", k["critical"].([]any)[0].(map[string]any)["name"])
	assert.Equal(t, "T1552", k["alerts"].([]any)[0].(map[string]any)["techniques"].([]any)[0])

	// Deterministic: the same event always gives the same bytes.
	for i := 0; i < 20; i++ {
		assert.Equal(t, string(out), string(AppendEvent(nil, ev)))
	}
	assert.Equal(t, "a-1-ResponseComplete", ev.ID())
}

func TestAppendStringEscapesAndRepairs(t *testing.T) {
	cases := map[string]string{
		"plain":         `"plain"`,
		"q\"b\\":        `"q\"b\\"`,
		"\n\r\t\x01":    `"\n\r\t\u0001"`,
		"bad\xffutf8":   `"bad\ufffdutf8"`,
		"ünïcode ✓":     `"ünïcode ✓"`,
		"line\u2028sep": `"line\u2028sep"`,
	}
	for in, want := range cases {
		got := AppendString(nil, in)
		assert.Equal(t, want, string(got), "%q", in)
		assert.True(t, json.Valid(got))
	}
}

// TestAppendStatusMatchesMarshal: the reflection-free encoding of a
// code-only status is auditJSON's, and every other status still goes
// through auditJSON.
func TestAppendStatusMatchesMarshal(t *testing.T) {
	rc := int64(3)
	for _, st := range []*metav1.Status{
		{Code: 200}, {Code: 0}, {Code: -1}, {Code: 101}, {Code: 2147483647},
		{Code: 404, Status: "Failure", Message: "pods \"x\" not found \u2028<&>", Reason: "NotFound"},
		{Code: 409, Details: &metav1.StatusDetails{Name: "x", Kind: "pods"}},
		{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Code: 200},
		{ListMeta: metav1.ListMeta{ResourceVersion: "1", RemainingItemCount: &rc}, Code: 200},
		{ListMeta: metav1.ListMeta{ShardInfo: &metav1.ShardInfo{}}, Code: 200},
	} {
		want, err := auditJSON.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendStatus([]byte("x"), st); string(got) != "x"+string(want) {
			t.Errorf("appendStatus(%+v) = %s, want %s", st, got[1:], want)
		}
	}
}

func TestAppendMicroTimeMatchesFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 6, 2, 16, 0, 0, 1500, time.FixedZone("x", 3600))}
	for i := 0; i < 20000; i++ {
		times = append(times, time.Unix(r.Int64N(1<<37)-1<<36, r.Int64N(1e9)).In(time.FixedZone("y", int(r.Int64N(86400))-43200)))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), metav1.RFC3339Micro)
		if got := AppendMicroTime([]byte("x"), tm); string(got) != string(want) {
			t.Fatalf("AppendMicroTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestAppendStringMatchesReference(t *testing.T) {
	// The byte-at-a-time encoder AppendString had before its 8-byte fast
	// path, as the reference.
	ref := func(s string) string {
		b := []byte{'"'}
		for i := 0; i < len(s); {
			c := s[i]
			if c < utf8.RuneSelf {
				switch {
				case c == '"' || c == '\\':
					b = append(b, '\\', c)
				case c == '\n':
					b = append(b, '\\', 'n')
				case c == '\r':
					b = append(b, '\\', 'r')
				case c == '\t':
					b = append(b, '\\', 't')
				case c < 0x20:
					b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				default:
					b = append(b, c)
				}
				i++
				continue
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				b = append(b, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			default:
				b = append(b, s[i:i+n]...)
			}
			i += n
		}
		return string(append(b, '"'))
	}
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "Z", " ", "~", "\x7f", "\"", "\\", "\n", "\x00", "\x1f", "é", "\u2028", "\xff", "\xe2\x80", "/", "<"}
	for i := 0; i < 50000; i++ {
		var sb strings.Builder
		for n := r.IntN(40); n > 0; n-- {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := sb.String()
		if got := string(AppendString(nil, s)); got != ref(s) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, ref(s))
		}
	}
	for c := 0; c < 256; c++ { // each byte at each position of an 8-byte word
		for pos := 0; pos < 8; pos++ {
			s := []byte("abcdefghijklmnop")
			s[pos+3] = byte(c)
			if got := string(AppendString(nil, string(s))); got != ref(string(s)) {
				t.Fatalf("AppendString(%q) = %s, want %s", s, got, ref(string(s)))
			}
		}
	}
}
