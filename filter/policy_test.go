package filter

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/kaudit/kaudit/test/auditgen"
)

const (
	seedPolicy = "testdata/policies/seed.yaml"
	docsPolicy = "testdata/policies/k8s-docs-example.yaml"
	gcePolicy  = "testdata/policies/gce-configure-helper.yaml"
	confPolicy = "../conf/audit-policy.yaml"
)

var (
	pKubeProxy = withUser("system:kube-proxy", "system:authenticated")
	pNode1     = withUser("system:node:n1", "system:nodes", "system:authenticated")
	pKCM       = withUser("system:kube-controller-manager", "system:authenticated")
	pAnonymous = withUser("system:anonymous", "system:unauthenticated")
	pNSCtrl    = withUser("system:serviceaccount:kube-system:namespace-controller",
		"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated")
	pReceived = withStage(auditv1.StageRequestReceived)
)

type levelCase struct {
	name  string
	ev    *Event
	level string // the rule's level; "None" means dropped by the rule
	rule  int
	drop  Drop
}

// The expected levels below were read off the policy files by hand, rule
// by rule; the index is the first rule that matches.
func TestPolicyLevels(t *testing.T) {
	for _, tc := range []struct {
		file  string
		cases []levelCase
	}{
		{seedPolicy, []levelCase{
			{"services", mkEvent("get", "/api/v1/namespaces/default/services/web"), "RequestResponse", 0, Keep},
			{"services/status is not services", mkEvent("update", "/api/v1/namespaces/default/services/web/status"), "Metadata", 2, Keep},
			{"secrets", mkEvent("get", "/api/v1/namespaces/default/secrets/db"), "Metadata", 1, Keep},
			{"secrets list", mkEvent("list", "/api/v1/secrets"), "Metadata", 1, Keep},
			{"pods default rule", mkEvent("create", "/api/v1/namespaces/default/pods"), "Metadata", 2, Keep},
			{"non-resource", mkEvent("get", "/healthz"), "Metadata", 2, Keep},
			{"RequestReceived omitted policy-wide", mkEvent("get", "/api/v1/namespaces/default/services/web", pReceived), "RequestResponse", 0, DropOmitStage},
		}},
		{docsPolicy, []levelCase{
			{"pods", mkEvent("get", "/api/v1/namespaces/default/pods/p"), "RequestResponse", 0, Keep},
			{"pods/log", mkEvent("get", "/api/v1/namespaces/default/pods/p/log"), "Metadata", 1, Keep},
			{"pods/status", mkEvent("patch", "/api/v1/namespaces/default/pods/p/status"), "Metadata", 1, Keep},
			{"pods/exec falls to core", mkEvent("create", "/api/v1/namespaces/default/pods/p/exec?command=sh"), "Request", 7, Keep},
			{"resourceNames controller-leader", mkEvent("update", "/api/v1/namespaces/kube-system/configmaps/controller-leader"), "None", 2, DropPolicy},
			{"resourceNames: list has no name", mkEvent("list", "/api/v1/namespaces/kube-system/configmaps"), "Request", 5, Keep},
			{"configmap in kube-system", mkEvent("get", "/api/v1/namespaces/kube-system/configmaps/other"), "Request", 5, Keep},
			{"configmap elsewhere", mkEvent("get", "/api/v1/namespaces/default/configmaps/other"), "Metadata", 6, Keep},
			{"kube-proxy watch services", mkEvent("watch", "/api/v1/services?watch=true", pKubeProxy), "None", 3, DropPolicy},
			{"kube-proxy watch pods", mkEvent("watch", "/api/v1/pods?watch=true", pKubeProxy), "RequestResponse", 0, Keep},
			{"kube-proxy watch nodes", mkEvent("watch", "/api/v1/nodes?watch=true", pKubeProxy), "Request", 7, Keep},
			{"alice watch services", mkEvent("watch", "/api/v1/services?watch=true"), "Request", 7, Keep},
			{"/api* wildcard, authenticated", mkEvent("get", "/apis/apps/v1"), "None", 4, DropPolicy},
			{"/api exact, authenticated", mkEvent("get", "/api"), "None", 4, DropPolicy},
			{"/version", mkEvent("get", "/version?timeout=32s"), "None", 4, DropPolicy},
			{"/api as pAnonymous: userGroups don't match", mkEvent("get", "/api", pAnonymous), "Metadata", 8, Keep},
			{"/healthz", mkEvent("get", "/healthz"), "Metadata", 8, Keep},
			{"secrets", mkEvent("delete", "/api/v1/namespaces/default/secrets/s"), "Metadata", 6, Keep},
			{"extensions group", mkEvent("get", "/apis/extensions/v1beta1/namespaces/default/ingresses/i"), "Request", 7, Keep},
			{"apps default", mkEvent("create", "/apis/apps/v1/namespaces/default/deployments"), "Metadata", 8, Keep},
			{"RequestReceived", mkEvent("create", "/apis/apps/v1/namespaces/default/deployments", pReceived), "Metadata", 8, DropOmitStage},
		}},
		{gcePolicy, []levelCase{
			{"kube-proxy watch endpoints", mkEvent("watch", "/api/v1/endpoints?watch=true", pKubeProxy), "None", 0, DropPolicy},
			{"kube-proxy watch services/status", mkEvent("watch", "/api/v1/namespaces/default/services/s/status", pKubeProxy), "None", 0, DropPolicy},
			{"kube-proxy watch pods", mkEvent("watch", "/api/v1/pods?watch=true", pKubeProxy), "Request", 14, Keep},
			{"kubelet legacy get node status", mkEvent("get", "/api/v1/nodes/n1/status", withUser("kubelet")), "None", 2, DropPolicy},
			{"node get own node (userGroups)", mkEvent("get", "/api/v1/nodes/n1", pNode1), "None", 3, DropPolicy},
			{"node patch node status", mkEvent("patch", "/api/v1/nodes/n1/status", pNode1), "Request", 11, Keep},
			{"node patch pod status", mkEvent("patch", "/api/v1/namespaces/default/pods/p/status", pNode1), "Request", 11, Keep},
			{"scheduler endpoints in kube-system", mkEvent("update", "/api/v1/namespaces/kube-system/endpoints/kube-scheduler",
				withUser("system:kube-scheduler")), "None", 4, DropPolicy},
			{"scheduler endpoints elsewhere", mkEvent("update", "/api/v1/namespaces/default/endpoints/x",
				withUser("system:kube-scheduler")), "RequestResponse", 15, Keep},
			{"apiserver get namespace", mkEvent("get", "/api/v1/namespaces/default", withUser("system:apiserver")), "None", 5, DropPolicy},
			{"kcm metrics", mkEvent("list", "/apis/metrics.k8s.io/v1beta1/pods", pKCM), "None", 7, DropPolicy},
			{"alice metrics", mkEvent("list", "/apis/metrics.k8s.io/v1beta1/pods"), "Request", 14, Keep},
			{"/healthz/etcd wildcard", mkEvent("get", "/healthz/etcd"), "None", 8, DropPolicy},
			{"/swagger.json wildcard", mkEvent("get", "/swagger.json"), "None", 8, DropPolicy},
			{"/version exact", mkEvent("get", "/version"), "None", 8, DropPolicy},
			{"/versions is not /version", mkEvent("get", "/versions"), "Metadata", 16, Keep},
			{"/readyz", mkEvent("get", "/readyz"), "Metadata", 16, Keep},
			{"events", mkEvent("create", "/api/v1/namespaces/default/events"), "None", 9, DropPolicy},
			{"namespace-controller deletecollection", mkEvent("deletecollection", "/api/v1/namespaces/ns1/pods", pNSCtrl), "Request", 12, Keep},
			{"secrets", mkEvent("get", "/api/v1/namespaces/default/secrets/s"), "Metadata", 13, Keep},
			{"serviceaccounts/token", mkEvent("create", "/api/v1/namespaces/default/serviceaccounts/default/token"), "Metadata", 13, Keep},
			{"tokenreviews", mkEvent("create", "/apis/authentication.k8s.io/v1/tokenreviews"), "Metadata", 13, Keep},
			{"get pods", mkEvent("get", "/api/v1/namespaces/default/pods/p"), "Request", 14, Keep},
			{"create pods", mkEvent("create", "/api/v1/namespaces/default/pods"), "RequestResponse", 15, Keep},
			{"pods/exec", mkEvent("create", "/api/v1/namespaces/default/pods/p/exec?command=sh"), "RequestResponse", 15, Keep},
			{"delete deployment", mkEvent("delete", "/apis/apps/v1/namespaces/default/deployments/d"), "RequestResponse", 15, Keep},
			{"CRD group unknown", mkEvent("create", "/apis/example.com/v1/namespaces/x/widgets"), "Metadata", 16, Keep},
			{"RequestReceived omitted by rule", mkEvent("create", "/api/v1/namespaces/default/pods", pReceived), "RequestResponse", 15, DropOmitStage},
		}},
	} {
		st := mustPolicy(t, tc.file)
		for _, c := range tc.cases {
			t.Run(filepath.Base(tc.file)+"/"+c.name, func(t *testing.T) {
				d := st.Process(c.ev)
				assert.Equal(t, c.drop, d)
				p := c.ev.Kaudit.Policy
				assert.True(t, p.Evaluated)
				assert.Equal(t, c.level, p.Level)
				assert.Equal(t, c.rule, p.Rule)
			})
		}
	}
}

// Rules match the requesting user (event.user), not impersonatedUser:
// kube-apiserver's audit filter runs before impersonation.
func TestPolicyMatchesRequestingUserNotImpersonated(t *testing.T) {
	st := compile(t, `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  users: ["alice"]
- level: Request
  userGroups: ["admins"]
- level: Metadata
`)
	// alice impersonating bob: the rule for alice applies.
	ev := mkEvent("get", "/api/v1/namespaces/default/pods/p", withImpersonated("bob", "admins"))
	assert.Equal(t, DropPolicy, st.Process(ev))
	assert.Equal(t, 0, ev.Kaudit.Policy.Rule)

	// bob (in no group) impersonating alice: alice's rule does not apply,
	// nor does the impersonated identity's group.
	ev = mkEvent("get", "/api/v1/namespaces/default/pods/p", withUser("bob"), withImpersonated("alice", "admins"))
	assert.Equal(t, Keep, st.Process(ev))
	assert.Equal(t, 2, ev.Kaudit.Policy.Rule)
	assert.Equal(t, "Metadata", ev.Kaudit.Policy.Level)

	// carol in admins impersonating someone: her group matches.
	ev = mkEvent("get", "/api/v1/namespaces/default/pods/p", withUser("carol", "admins"), withImpersonated("alice"))
	assert.Equal(t, Keep, st.Process(ev))
	assert.Equal(t, 1, ev.Kaudit.Policy.Rule)
}

func compile(t testing.TB, y string) *policyStage {
	t.Helper()
	st, err := compilePolicy([]byte(y))
	require.NoError(t, err)
	return st
}

const (
	podJSON = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default","labels":{"app":"web"},` +
		`"managedFields":[{"manager":"kubectl","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{}}}],` +
		`"resourceVersion":"42"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`
	podNoMF = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default","labels":{"app":"web"},` +
		`"resourceVersion":"42"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}`
)

func TestPolicyOutcome(t *testing.T) {
	st := compile(t, `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["Panic"]
omitManagedFields: true
rules:
- level: None
  verbs: ["watch"]
- level: Metadata
  resources: [{group: "", resources: ["secrets"]}]
- level: Request
  resources: [{group: "", resources: ["configmaps"]}]
  omitStages: ["RequestReceived"]
  omitManagedFields: false
- level: RequestResponse
  resources: [{group: "", resources: ["pods"]}]
- level: Metadata
`)
	type want struct {
		drop              Drop
		level             auditv1.Level
		req, resp         string // "" = no body
		stripped, below   bool
		rule              int
		ruleLevel, recLvl string
	}
	for _, c := range []struct {
		name string
		ev   *Event
		want want
	}{
		{"None drops", mkEvent("watch", "/api/v1/pods?watch=true"),
			want{drop: DropPolicy, level: "RequestResponse", rule: 0, ruleLevel: "None", recLvl: "RequestResponse"}},
		{"policy omitStages", mkEvent("get", "/api/v1/namespaces/default/pods/p", withStage(auditv1.StagePanic)),
			want{drop: DropOmitStage, level: "RequestResponse", rule: 3, ruleLevel: "RequestResponse", recLvl: "RequestResponse"}},
		{"rule omitStages", mkEvent("get", "/api/v1/namespaces/default/configmaps/c", pReceived),
			want{drop: DropOmitStage, level: "RequestResponse", rule: 2, ruleLevel: "Request", recLvl: "RequestResponse"}},
		{"rule omitStages adds to the policy's", mkEvent("get", "/api/v1/namespaces/default/configmaps/c", withStage(auditv1.StagePanic)),
			want{drop: DropOmitStage, level: "RequestResponse", rule: 2, ruleLevel: "Request", recLvl: "RequestResponse"}},
		{"RequestResponse → Metadata strips both bodies", mkEvent("update", "/api/v1/namespaces/default/secrets/s",
			withRequest(`{"kind":"Secret","data":{"k":"djE="}}`), withResponse(`{"kind":"Secret","data":{"k":"djE="}}`)),
			want{level: "Metadata", stripped: true, rule: 1, ruleLevel: "Metadata", recLvl: "RequestResponse"}},
		{"RequestResponse → Request strips the response, keeps managedFields (rule false overrides policy true)",
			mkEvent("update", "/api/v1/namespaces/default/configmaps/c", withRequest(podJSON), withResponse(podJSON)),
			want{level: "Request", req: podJSON, stripped: true, rule: 2, ruleLevel: "Request", recLvl: "RequestResponse"}},
		{"same level: kept, managedFields omitted by policy default",
			mkEvent("update", "/api/v1/namespaces/default/pods/p", withRequest(podJSON), withResponse(podJSON)),
			want{level: "RequestResponse", req: podNoMF, resp: podNoMF, rule: 3, ruleLevel: "RequestResponse", recLvl: "RequestResponse"}},
		{"recorded below the rule: passes as is, marked",
			mkEvent("update", "/api/v1/namespaces/default/pods/p", withLevel("Request"), withRequest(podNoMF)),
			want{level: "Request", req: podNoMF, below: true, rule: 3, ruleLevel: "RequestResponse", recLvl: "Request"}},
		{"recorded Metadata below Request rule", mkEvent("get", "/api/v1/namespaces/default/configmaps/c", withLevel("Metadata")),
			want{level: "Metadata", below: true, rule: 2, ruleLevel: "Request", recLvl: "Metadata"}},
		{"non-resource default Metadata", mkEvent("get", "/healthz", withLevel("Metadata")),
			want{level: "Metadata", rule: 4, ruleLevel: "Metadata", recLvl: "Metadata"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := st.Process(c.ev)
			w := c.want
			assert.Equal(t, w.drop, d)
			assert.Equal(t, w.level, c.ev.Level)
			assert.Equal(t, PolicyResult{Evaluated: true, Rule: w.rule, Level: w.ruleLevel, RecordedLevel: w.recLvl,
				Stripped: w.stripped, BelowPolicy: w.below}, c.ev.Kaudit.Policy)
			if d != Keep {
				return
			}
			if w.req == "" {
				assert.Nil(t, c.ev.RequestObject)
			} else if assert.NotNil(t, c.ev.RequestObject) {
				assert.Equal(t, w.req, string(c.ev.RequestObject.Raw))
			}
			if w.resp == "" {
				assert.Nil(t, c.ev.ResponseObject)
			} else if assert.NotNil(t, c.ev.ResponseObject) {
				assert.Equal(t, w.resp, string(c.ev.ResponseObject.Raw))
			}
		})
	}
}

func TestNoPolicyPassesUnchanged(t *testing.T) {
	st, err := newPolicyStage(&Options{})
	require.NoError(t, err)
	assert.Nil(t, st)
	p, err := NewPipeline(Options{})
	require.NoError(t, err)
	ev := mkEvent("update", "/api/v1/namespaces/default/secrets/s", withRequest(`{"data":{"k":"djE="}}`))
	assert.Equal(t, Keep, p.Process(ev, nil))
	assert.False(t, ev.Kaudit.Policy.Evaluated)
	assert.Equal(t, auditv1.LevelRequestResponse, ev.Level)
	assert.Equal(t, `{"data":{"k":"djE="}}`, string(ev.RequestObject.Raw))
}

// A policy kube-apiserver rejects is rejected with the apiserver's text.
func TestPolicyRejected(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, yaml, contains string
	}{
		{"bad level", "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n",
			`rules[0].level: Unsupported value: "Everything"`},
		{"bad omitStage", "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Done]\nrules:\n- level: Metadata\n",
			`omitStages[0]: Invalid value: "Done": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic`},
		{"resources and nonResourceURLs", "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: \"\"}]\n  nonResourceURLs: [\"/healthz\"]\n",
			`rules[0].nonResourceURLs: Invalid value: ["/healthz"]: rules cannot apply to both regular resources and non-resource URLs`},
		{"no rules", "apiVersion: audit.k8s.io/v1\nkind: Policy\n", "loaded illegal policy with 0 rules"},
		{"wrong version", "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: Metadata\n", "failed decoding"},
		{"not a policy", "hello: world\n", "unknown group version field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, apiErr := policy.LoadPolicyFromBytes([]byte(c.yaml))
			require.Error(t, apiErr)
			f := filepath.Join(dir, "p.yaml")
			require.NoError(t, os.WriteFile(f, []byte(c.yaml), 0o600))
			_, err := NewPipeline(Options{PolicyFile: f})
			require.Error(t, err)
			var oe *OptionError
			require.True(t, errors.As(err, &oe))
			assert.Equal(t, "policy_file", oe.Key)
			assert.Equal(t, f, oe.Value)
			assert.Equal(t, apiErr.Error(), oe.Err.Error(), "the apiserver's own text")
			assert.Contains(t, err.Error(), c.contains)
		})
	}
	_, err := NewPipeline(Options{PolicyFile: filepath.Join(dir, "missing.yaml")})
	var oe *OptionError
	require.True(t, errors.As(err, &oe))
	assert.Equal(t, "policy_file", oe.Key)
}

func TestStripManagedFields(t *testing.T) {
	for _, c := range []struct{ name, in, out string }{
		{"middle member", `{"metadata":{"name":"a","managedFields":[{"manager":"x"}],"uid":"u"}}`, `{"metadata":{"name":"a","uid":"u"}}`},
		{"last member", `{"metadata":{"name":"a","managedFields":[{"manager":"x"}]},"spec":{}}`, `{"metadata":{"name":"a"},"spec":{}}`},
		{"first member", `{"metadata":{"managedFields":[],"name":"a"}}`, `{"metadata":{"name":"a"}}`},
		{"only member", `{"metadata":{"managedFields":[{"f":"}]{["}]}}`, `{"metadata":{}}`},
		{"with spaces", "{ \"metadata\" : { \"name\" : \"a\" ,\n \"managedFields\" : [ 1 ] } }", "{ \"metadata\" : { \"name\" : \"a\" } }"},
		{"escaped strings", `{"metadata":{"annotations":{"x":"\"managedFields\":\\"},"managedFields":[{"m":"a\"]"}],"name":"a"}}`,
			`{"metadata":{"annotations":{"x":"\"managedFields\":\\"},"name":"a"}}`},
		{"not under metadata", `{"spec":{"managedFields":[1]},"metadata":{"name":"a"}}`, `{"spec":{"managedFields":[1]},"metadata":{"name":"a"}}`},
		{"list items", `{"kind":"PodList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a","managedFields":[1]}},{"metadata":{"managedFields":[2],"name":"b"}}]}`,
			`{"kind":"PodList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}`},
		{"table rows", `{"kind":"Table","rows":[{"cells":[],"object":{"metadata":{"name":"a","managedFields":[1]}}}]}`,
			`{"kind":"Table","rows":[{"cells":[],"object":{"metadata":{"name":"a"}}}]}`},
		{"malformed left alone", `{"metadata":{"name":"a","managedFields":[1}`, `{"metadata":{"name":"a","managedFields":[1}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _ := stripManagedFields([]byte(c.in))
			assert.Equal(t, c.out, string(out))
		})
	}
}

// TestPolicySinglePassMatchesEvaluator: the config evaluate derives from
// the first matching single-rule evaluator is the apiserver evaluator's
// (level, omitted stages, omitManagedFields), and the rule index is the
// first rule that matches, on every test policy and generated event.
func TestPolicySinglePassMatchesEvaluator(t *testing.T) {
	files, _ := filepath.Glob("testdata/policies/*.yaml")
	files = append(files, "../conf/audit-policy.yaml", "testdata/fuzz-policy.yaml")
	var evs []auditv1.Event
	for _, p := range []string{auditgen.ProfileMix, auditgen.ProfileMetadata} {
		for _, l := range auditgen.Generate(auditgen.Options{Seed: 11, Events: 3000, Profile: p}) {
			require.NoError(t, DecodeAudit(l, func(a *auditv1.Event) { evs = append(evs, *a) }))
		}
	}
	stageSet := func(ss []audit.Stage) map[audit.Stage]bool {
		m := map[audit.Stage]bool{}
		for _, s := range ss {
			m[s] = true
		}
		return m
	}
	for _, f := range files {
		st := mustPolicy(t, f)
		matched := map[int]bool{}
		for i := range evs {
			got, idx := st.evaluate(&evs[i])
			var a authorizer.AttributesRecord
			fillAttributes(&a, &evs[i])
			want := st.eval.EvaluatePolicyRule(&a)
			require.Equal(t, want.Level, got.Level, "%s: event %d", f, i)
			require.Equal(t, stageSet(want.OmitStages), stageSet(got.OmitStages), "%s: event %d", f, i)
			require.Equal(t, want.OmitManagedFields, got.OmitManagedFields, "%s: event %d", f, i)
			first := -1
			for j, r := range st.rules {
				if r.EvaluatePolicyRule(&a).Level == matchLevel {
					first = j
					break
				}
			}
			require.Equal(t, first, idx, "%s: event %d", f, i)
			if idx >= 0 {
				require.Equal(t, st.levels[idx], got.Level)
			}
			matched[idx] = true
		}
		require.Greater(t, len(matched), 2, "%s: the events reach only rules %v", f, matched)
	}
}
