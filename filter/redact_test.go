package filter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kaudit/kaudit/test/auditgen"
)

const marker = `"` + RedactedValue + `"`

func TestRedactBodyCases(t *testing.T) {
	sv, sb, tok := auditgen.SecretValue, auditgen.SecretValueBase64, auditgen.TestToken
	lastApplied, _ := json.Marshal(`{"apiVersion":"v1","data":{"password":"` + sb + `"},"kind":"Secret","metadata":{"annotations":{},"name":"db","namespace":"default"},"stringData":{"token":"` + sv + `"},"type":"Opaque"}`)
	cases := []struct {
		name  string
		hint  Hint
		in    string
		want  string // "" means unchanged
		paths []string
	}{
		{"secret data and stringData", HintSecret,
			`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"` + sb + `","username":"YXBw"},"stringData":{"password":"` + sv + `"},"type":"Opaque"}`,
			`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":` + marker + `,"username":` + marker + `},"stringData":{"password":` + marker + `},"type":"Opaque"}`,
			[]string{"requestObject.data.password", "requestObject.data.username", "requestObject.stringData.password"}},
		{"secret list items", HintSecret,
			`{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"a"},"data":{"k":"` + sb + `"}},{"metadata":{"name":"b"},"data":null},{"metadata":{"name":"c"},"data":{"x":""}}]}`,
			`{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"a"},"data":{"k":` + marker + `}},{"metadata":{"name":"b"},"data":null},{"metadata":{"name":"c"},"data":{"x":""}}]}`,
			[]string{"requestObject.items[0].data.k"}},
		{"table of secrets with objects", HintSecret,
			`{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[],"rows":[{"cells":["db","Opaque",1],"object":{"kind":"Secret","data":{"k":"` + sb + `"}}}]}`,
			`{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[],"rows":[{"cells":["db","Opaque",1],"object":{"kind":"Secret","data":{"k":` + marker + `}}}]}`,
			[]string{"requestObject.rows[0].object.data.k"}},
		{"json patch on a secret", HintSecret,
			`[{"op":"replace","path":"/data/password","value":"` + sb + `"},{"op":"remove","path":"/data/old"},{"op":"add","path":"/stringData","value":{"a":"` + sv + `"}}]`,
			`[{"op":"replace","path":"/data/password","value":` + marker + `},{"op":"remove","path":"/data/old"},{"op":"add","path":"/stringData","value":` + marker + `}]`,
			[]string{"requestObject[0].value", "requestObject[2].value"}},
		{"merge patch on a secret", HintSecret,
			`{"data":{"password":"` + sb + `","gone":null}}`,
			`{"data":{"password":` + marker + `,"gone":null}}`,
			[]string{"requestObject.data.password"}},
		{"data not an object", HintSecret,
			`{"data":"` + sb + `"}`, `{"data":` + marker + `}`, []string{"requestObject.data"}},
		{"escaped key names and duplicates", HintSecret,
			`{"d\u0061ta":{"p":"` + sb + `"},"data":{"q":"` + sb + `"}}`,
			`{"d\u0061ta":{"p":` + marker + `},"data":{"q":` + marker + `}}`,
			[]string{"requestObject.data.p", "requestObject.data.q"}},
		{"whitespace kept", HintSecret,
			"{ \"data\" : { \"p\" : \"" + sb + "\" } ,\n \"type\": \"Opaque\" }",
			"{ \"data\" : { \"p\" : " + marker + " } ,\n \"type\": \"Opaque\" }",
			[]string{"requestObject.data.p"}},
		{"last-applied annotation of a secret", HintSecret,
			`{"kind":"Secret","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":` + string(lastApplied) + `,"other":"x"},"name":"db"},"data":{"password":"` + sb + `"}}`,
			"", // checked below
			[]string{`requestObject.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`, "requestObject.data.password"}},
		{"secret nested in another resource", HintNone,
			`{"kind":"List","items":[{"kind":"ConfigMap","data":{"a":"b"}},{"kind":"Secret","apiVersion":"v1","data":{"p":"` + sb + `"}}]}`,
			`{"kind":"List","items":[{"kind":"ConfigMap","data":{"a":"b"}},{"kind":"Secret","apiVersion":"v1","data":{"p":` + marker + `}}]}`,
			[]string{"requestObject.items[1].data.p"}},
		{"kind after data", HintNone,
			`{"data":{"p":"` + sb + `"},"kind":"Secret"}`, `{"data":{"p":` + marker + `},"kind":"Secret"}`,
			[]string{"requestObject.data.p"}},
		{"token request", HintTokenRequest,
			`{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","spec":{"audiences":["x"]},"status":{"token":"` + tok + `","expirationTimestamp":"2025-06-02T17:00:00Z"}}`,
			`{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","spec":{"audiences":["x"]},"status":{"token":` + marker + `,"expirationTimestamp":"2025-06-02T17:00:00Z"}}`,
			[]string{"requestObject.status.token"}},
		{"token review by kind", HintNone,
			`{"kind":"TokenReview","spec":{"token":"` + tok + `"},"status":{"authenticated":true}}`,
			`{"kind":"TokenReview","spec":{"token":` + marker + `},"status":{"authenticated":true}}`,
			[]string{"requestObject.spec.token"}},
		{"token review by hint", HintTokenReview,
			`{"spec":{"token":"` + tok + `"}}`, `{"spec":{"token":` + marker + `}}`, []string{"requestObject.spec.token"}},
		{"unparseable secret body fails closed", HintSecret,
			"apiVersion: v1\nkind: Secret\nstringData:\n  password: " + sv + "\n", string(redactedBodyRaw), []string{"requestObject"}},
		{"truncated json fails closed", HintSecret, `{"data":{"p":"` + sb, string(redactedBodyRaw), []string{"requestObject"}},
		{"configmap untouched", HintNone, `{"kind":"ConfigMap","data":{"password":"not-a-secret"}}`, "", nil},
		{"secret status untouched", HintSecret, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}`, "", nil},
		{"already redacted", HintSecret, `{"data":{"p":` + marker + `}}`, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := []byte(c.in)
			out, paths, changed := RedactBody(in, c.hint, "requestObject")
			assert.Equal(t, c.paths, paths)
			assert.Equal(t, len(c.paths) > 0, changed)
			if c.want != "" {
				assert.Equal(t, c.want, string(out))
			} else if len(c.paths) == 0 {
				assert.Equal(t, c.in, string(out))
			}
			assert.Equal(t, c.in, string(in), "input modified")
			for _, s := range []string{sv, sb, tok} {
				assert.NotContains(t, string(out), s)
			}
			if json.Valid(in) {
				assert.True(t, json.Valid(out), "%s", out)
			}
			// deterministic and idempotent
			out2, _, _ := RedactBody([]byte(c.in), c.hint, "requestObject")
			assert.Equal(t, out, out2)
			out3, paths3, changed3 := RedactBody(out, c.hint, "requestObject")
			assert.Equal(t, string(out), string(out3))
			assert.False(t, changed3, "%v", paths3)
		})
	}
}

func TestRedactLastAppliedKeepsKeys(t *testing.T) {
	inner := `{"apiVersion":"v1","data":{"password":"` + auditgen.SecretValueBase64 + `"},"kind":"Secret","metadata":{"name":"db"}}`
	q, _ := json.Marshal(inner)
	body := `{"kind":"Secret","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":` + string(q) + `}}}`
	out, paths, ok := RedactBody([]byte(body), HintNone, "responseObject")
	require.True(t, ok)
	assert.Equal(t, []string{`responseObject.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`}, paths)
	var v struct {
		Metadata struct{ Annotations map[string]string }
	}
	require.NoError(t, json.Unmarshal(out, &v))
	got := v.Metadata.Annotations[LastAppliedAnnotation]
	assert.Equal(t, `{"apiVersion":"v1","data":{"password":"[REDACTED]"},"kind":"Secret","metadata":{"name":"db"}}`, got)

	// An annotation of a non-Secret is left alone, even with "data".
	cm := `{"kind":"ConfigMap","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"ConfigMap\",\"data\":{\"a\":\"b\"}}"}}}`
	_, _, ok = RedactBody([]byte(cm), HintNone, "responseObject")
	assert.False(t, ok)
}

func TestRedactNonSensitiveBodyIsNotCopied(t *testing.T) {
	in := []byte(`{"kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`)
	out, _, ok := RedactBody(in, HintNone, "requestObject")
	assert.False(t, ok)
	assert.Same(t, &in[0], &out[0])
	allocs := testing.AllocsPerRun(100, func() { RedactBody(in, HintNone, "requestObject") })
	assert.Zero(t, allocs)
}

func TestRedactDeepNestingIsBounded(t *testing.T) {
	// 100k levels: the index gives up at maxRedactDepth, the body is
	// replaced (it says Secret), in linear time.
	n := 100_000
	body := strings.Repeat(`{"kind":"Secret","a":`, n) + "1" + strings.Repeat("}", n)
	start := time.Now()
	out, paths, ok := RedactBody([]byte(body), HintNone, "requestObject")
	assert.True(t, ok)
	assert.Equal(t, string(redactedBodyRaw), string(out))
	assert.Equal(t, []string{"requestObject"}, paths)
	// 9000 levels are walked, each once.
	n = 9000
	body = strings.Repeat(`{"kind":"Secret","data":{"k":"v"},"a":`, n) + "1" + strings.Repeat("}", n)
	out, paths, ok = RedactBody([]byte(body), HintNone, "requestObject")
	assert.True(t, ok)
	assert.Len(t, paths, maxRedactedPaths+1)
	assert.Equal(t, "requestObject: 8936 more", paths[maxRedactedPaths])
	assert.NotContains(t, string(out), `"k":"v"`)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// pipelineFor builds a pipeline with only the redaction settings.
func pipelineFor(t testing.TB, redact bool, max int) *Pipeline {
	t.Helper()
	p, err := NewPipeline(Options{RedactSecrets: redact, MaxEventBytes: max})
	require.NoError(t, err)
	return p
}

// encodeAll runs every generated event through p and returns the
// documents back to back.
func encodeAll(t testing.TB, p *Pipeline, evs []auditv1.Event) ([]byte, []*Event) {
	t.Helper()
	var out []byte
	var kept []*Event
	for i := range evs {
		raw, err := json.Marshal(&evs[i])
		require.NoError(t, err)
		require.NoError(t, DecodeAudit(raw, func(a *auditv1.Event) {
			ev := newEvent(a, "kube.audit", time.Unix(1, 0))
			if p.Process(ev, func(x *Event) { out = AppendEvent(out, x) }) == Keep {
				out = AppendEvent(out, ev)
				out = append(out, '\n')
				kept = append(kept, ev)
			}
		}))
	}
	return out, kept
}

func secretStrings() []string {
	return []string{auditgen.SecretValue, auditgen.SecretValueBase64, auditgen.TestToken,
		base64.StdEncoding.EncodeToString([]byte(auditgen.TestToken))}
}

// TestSecretsNeverReachOutput: with the default setting no generated
// Secret value or token survives into any document; with
// redact_secrets off they do (so the test can see them).
func TestSecretsNeverReachOutput(t *testing.T) {
	var evs []auditv1.Event
	for seed := int64(0); seed < 3; seed++ {
		evs = append(evs, auditgen.GenerateEvents(auditgen.Options{Seed: seed})...)
	}
	raw, _ := json.Marshal(evs)
	for _, s := range secretStrings()[:3] {
		require.True(t, bytes.Contains(raw, []byte(s)), "generator no longer produces %q", s)
	}

	out, kept := encodeAll(t, pipelineFor(t, true, 4<<20), evs)
	for _, s := range secretStrings() {
		assert.False(t, bytes.Contains(out, []byte(s)), "%q reached the output", s)
	}
	redacted := map[string]int{}
	for _, ev := range kept {
		for _, p := range ev.Kaudit.Redacted {
			redacted[p]++
		}
		if ev.ObjectRef != nil && ev.ObjectRef.Resource == "secrets" && ev.ResponseObject != nil {
			assert.Contains(t, string(ev.ResponseObject.Raw), `"data":{"password":`+marker, "%s", ev.AuditID)
		}
	}
	t.Logf("redacted paths: %v", redacted)
	for _, p := range []string{"requestObject.stringData.password", "requestObject.data.password",
		"responseObject.data.password", "responseObject.status.token", "requestObject.spec.token", "responseObject.spec.token"} {
		assert.NotZero(t, redacted[p], p)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		require.True(t, json.Valid(line), "%s", line)
	}

	off, _ := encodeAll(t, pipelineFor(t, false, 4<<20), evs)
	for _, s := range secretStrings()[:3] {
		assert.True(t, bytes.Contains(off, []byte(s)), "redact_secrets off should ship %q", s)
	}
	assert.NotContains(t, string(off), `"redacted"`)

	// Deterministic: the same events encode to the same bytes.
	again, _ := encodeAll(t, pipelineFor(t, true, 4<<20), evs)
	assert.True(t, bytes.Equal(out, again))
}

func TestMaxEventBytes(t *testing.T) {
	p := pipelineFor(t, true, 4<<10)
	big := `{"kind":"ConfigMap","data":{"x":"` + strings.Repeat("a", 10<<10) + `"}}`
	small := `{"kind":"ConfigMap","data":{"x":"y"}}`
	ev := &Event{}
	ev.AuditID, ev.Stage, ev.Verb = "a", "ResponseComplete", "update"
	ev.RequestObject = &runtime.Unknown{Raw: []byte(small)}
	ev.ResponseObject = &runtime.Unknown{Raw: []byte(big)}
	require.Equal(t, Keep, p.Process(ev, nil))
	assert.Equal(t, []string{"responseObject"}, ev.Kaudit.Truncated)
	assert.Equal(t, `{"kaudit_truncated":true,"bytes":10276}`, string(ev.ResponseObject.Raw))
	assert.Equal(t, small, string(ev.RequestObject.Raw))
	doc := AppendEvent(nil, ev)
	assert.True(t, json.Valid(doc))
	assert.Contains(t, string(doc), `"truncated":["responseObject"]`)

	// Both bodies too large together: the larger goes first, then the other.
	ev = &Event{}
	ev.RequestObject = &runtime.Unknown{Raw: []byte(big)}
	ev.ResponseObject = &runtime.Unknown{Raw: []byte(big[:len(big)-200] + `"}}`)}
	p.Process(ev, nil)
	assert.Equal(t, []string{"requestObject", "responseObject"}, ev.Kaudit.Truncated)

	// Under the limit: untouched.
	ev = &Event{}
	ev.ResponseObject = &runtime.Unknown{Raw: []byte(small)}
	p.Process(ev, nil)
	assert.Empty(t, ev.Kaudit.Truncated)
}

func TestInvalidUTF8InBodyBecomesReplacementChar(t *testing.T) {
	p := pipelineFor(t, false, 0)
	ev := &Event{}
	ev.ResponseObject = &runtime.Unknown{Raw: []byte("{\"a\":\"x\xff\xfey\",\"b\":\"é\"}")}
	p.Process(ev, nil)
	assert.Equal(t, `{"a":"x\ufffd\ufffdy","b":"é"}`, string(ev.ResponseObject.Raw))
	var v map[string]string
	require.NoError(t, json.Unmarshal(ev.ResponseObject.Raw, &v))
	assert.Equal(t, "x\uFFFD\uFFFDy", v["a"])
}

func BenchmarkRedactSecretBody(b *testing.B) {
	body := []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default","labels":{"app":"x"},"managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:data":{".":{},"f:password":{}}}}]},"data":{"password":"c2VjcmV0","username":"YXBw"},"type":"Opaque"}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		RedactBody(body, HintSecret, "responseObject")
	}
}

func BenchmarkRedactPodBody(b *testing.B) {
	body := bytes.Repeat([]byte(`{"kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`), 1)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		RedactBody(body, HintNone, "responseObject")
	}
}
