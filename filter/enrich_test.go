package filter

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func testEnrich(t testing.TB) *enrichStage {
	st, err := newEnrichStage(&Options{
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
		Cluster:         "prod-eu", Node: "cp-1", SlowThreshold: time.Second,
	})
	require.NoError(t, err)
	return st.(*enrichStage)
}

func TestEnrichActor(t *testing.T) {
	sa := withUser("system:serviceaccount:db:backup", "system:serviceaccounts", "system:serviceaccounts:db", "system:authenticated")
	for _, c := range []struct {
		name string
		ev   *Event
		want Actor
	}{
		{"user", mkEvent("get", "/api/v1/pods", withUser("alice@example.com", "dev", "system:authenticated")),
			Actor{Type: "user", Name: "alice@example.com", Groups: []string{"dev", "system:authenticated"}}},
		{"service account", mkEvent("get", "/api/v1/pods", sa),
			Actor{Type: "serviceaccount", Name: "system:serviceaccount:db:backup", ServiceAccountNS: "db", ServiceAccount: "backup",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:db", "system:authenticated"}}},
		{"node", mkEvent("get", "/api/v1/pods", pNode1),
			Actor{Type: "node", Name: "system:node:n1", NodeName: "n1", Groups: []string{"system:nodes", "system:authenticated"}}},
		{"kube-scheduler", mkEvent("get", "/api/v1/pods", withUser("system:kube-scheduler")),
			Actor{Type: "system-component", Name: "system:kube-scheduler"}},
		{"apiserver", mkEvent("get", "/api/v1/pods", withUser("system:apiserver", "system:masters")),
			Actor{Type: "system-component", Name: "system:apiserver", Groups: []string{"system:masters"}}},
		{"kube-proxy", mkEvent("get", "/api/v1/pods", pKubeProxy),
			Actor{Type: "system-component", Name: "system:kube-proxy", Groups: []string{"system:authenticated"}}},
		{"anonymous", mkEvent("get", "/healthz", pAnonymous),
			Actor{Type: "anonymous", Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}},
		{"unauthenticated group", mkEvent("get", "/healthz", withUser("someone", "system:unauthenticated")),
			Actor{Type: "anonymous", Name: "someone", Groups: []string{"system:unauthenticated"}}},
		{"failed authentication (empty user)", mkEvent("get", "/api/v1/pods", withUser("")),
			Actor{Type: "anonymous"}},
		{"impersonation", mkEvent("get", "/api/v1/pods", withUser("alice", "admins"), withImpersonated("system:serviceaccount:db:backup", "system:serviceaccounts")),
			Actor{Type: "serviceaccount", Name: "system:serviceaccount:db:backup", ServiceAccountNS: "db", ServiceAccount: "backup",
				Groups: []string{"system:serviceaccounts"}, ImpersonatedBy: "alice"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			testEnrich(t).Process(c.ev)
			assert.Equal(t, c.want, c.ev.Kaudit.Actor)
		})
	}
}

func TestEnrichActionObject(t *testing.T) {
	for _, c := range []struct {
		name, verb, uri, action string
		obj                     Object
	}{
		{"exec", "create", "/api/v1/namespaces/db/pods/pg-0/exec?command=sh&stdin=true", "create pods/exec",
			Object{Version: "v1", Resource: "pods", Subresource: "exec", Namespace: "db", Name: "pg-0"}},
		{"delete exec", "delete", "/api/v1/namespaces/db/pods/pg-0/exec", "delete pods/exec",
			Object{Version: "v1", Resource: "pods", Subresource: "exec", Namespace: "db", Name: "pg-0"}},
		{"grouped", "patch", "/apis/apps/v1/namespaces/db/statefulsets/pg", "patch statefulsets",
			Object{Group: "apps", Version: "v1", Resource: "statefulsets", Namespace: "db", Name: "pg"}},
		{"cluster list", "list", "/api/v1/nodes?limit=500", "list nodes", Object{Version: "v1", Resource: "nodes"}},
		{"non-resource", "get", "/healthz?verbose", "get /healthz", Object{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := testEnrich(t)
			for i := 0; i < 2; i++ { // second time from the cache
				ev := mkEvent(c.verb, c.uri)
				st.Process(ev)
				assert.Equal(t, c.action, ev.Kaudit.Action)
				assert.Equal(t, c.obj, ev.Kaudit.Object)
			}
		})
	}
}

func TestEnrichOutcome(t *testing.T) {
	status := func(code int32, reason metav1.StatusReason, msg string) evOpt {
		return func(e *Event) { e.ResponseStatus = &metav1.Status{Code: code, Reason: reason, Message: msg} }
	}
	forbid := func(reason string) evOpt {
		return func(e *Event) { e.Annotations = map[string]string{annDecision: "forbid", annReason: reason} }
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	for _, c := range []struct {
		name            string
		ev              *Event
		outcome, reason string
	}{
		{"200", mkEvent("get", "/api/v1/pods"), "success", ""},
		{"201", mkEvent("create", "/api/v1/namespaces/d/pods", withCode(201)), "success", ""},
		{"101 exec upgrade", mkEvent("create", "/api/v1/namespaces/d/pods/p/exec", withCode(101)), "success", ""},
		{"304", mkEvent("get", "/openapi/v2", withCode(304)), "success", ""},
		{"forbid with RBAC reason empty → status message", mkEvent("get", "/api/v1/namespaces/d/secrets/s", forbid(""),
			status(403, "Forbidden", `secrets "s" is forbidden: User "bob" cannot get resource "secrets"`)),
			"denied", `secrets "s" is forbidden: User "bob" cannot get resource "secrets"`},
		{"forbid with authorizer reason", mkEvent("get", "/api/v1/namespaces/d/secrets/s", forbid("denied by webhook"), status(403, "Forbidden", "")),
			"denied", "denied by webhook"},
		{"admission 403 (decision allow)", mkEvent("create", "/api/v1/namespaces/d/pods", status(403, "Forbidden", "")),
			"denied", "Forbidden"},
		{"401", mkEvent("get", "/api/v1/pods", withUser(""), func(e *Event) {
			e.Annotations = nil
			e.ResponseStatus = &metav1.Status{Code: 401, Message: "Authentication failed, attempted: bearer"}
		}), "failure", "Authentication failed, attempted: bearer"},
		{"401 bare", mkEvent("get", "/api/v1/pods", withCode(401)), "failure", "Unauthorized"},
		{"404", mkEvent("get", "/api/v1/namespaces/d/pods/x", status(404, "NotFound", `pods "x" not found`)), "failure", "NotFound"},
		{"409", mkEvent("create", "/api/v1/namespaces/d/configmaps", status(409, "AlreadyExists", "exists")), "failure", "AlreadyExists"},
		{"429 code only", mkEvent("list", "/api/v1/pods", withCode(429)), "failure", "Too Many Requests"},
		{"long message cut", mkEvent("get", "/api/v1/pods", status(422, "", string(long))), "failure", string(long[:200])},
		{"500", mkEvent("get", "/api/v1/pods", status(500, "InternalError", "boom")), "error", "InternalError"},
		{"503", mkEvent("get", "/api/v1/pods", withCode(503)), "error", "Service Unavailable"},
		{"panic stage", mkEvent("get", "/api/v1/pods", withStage(auditv1.StagePanic), status(500, "", "APIServer panic'd: boom")),
			"error", "APIServer panic'd: boom"},
		{"RequestReceived", mkEvent("get", "/api/v1/pods", pReceived), "unknown", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			testEnrich(t).Process(c.ev)
			assert.Equal(t, c.outcome, c.ev.Kaudit.Outcome)
			assert.Equal(t, c.reason, c.ev.Kaudit.Reason)
		})
	}
}

func TestEnrichWhenWhere(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name      string
		ev        *Event
		latencyMS float64
		slow      bool
		src       Source
		ua        UserAgent
	}{
		{"fast kubectl", mkEvent("get", "/api/v1/pods", withReceived(testT0, 12500*time.Microsecond)), 12.5, false,
			Source{IP: "10.0.0.7", Trusted: true}, UserAgent{Name: "kubectl", Version: "v1.31.0"}},
		{"slow list", mkEvent("list", "/api/v1/pods", withReceived(testT0, 1500*ms)), 1500, true,
			Source{IP: "10.0.0.7", Trusted: true}, UserAgent{Name: "kubectl", Version: "v1.31.0"}},
		{"exactly the threshold is not slow", mkEvent("list", "/api/v1/pods", withReceived(testT0, time.Second)), 1000, false,
			Source{IP: "10.0.0.7", Trusted: true}, UserAgent{Name: "kubectl", Version: "v1.31.0"}},
		{"watch is never slow", mkEvent("watch", "/api/v1/pods?watch=true", withReceived(testT0, 5*time.Minute)), 300000, false,
			Source{IP: "10.0.0.7", Trusted: true}, UserAgent{Name: "kubectl", Version: "v1.31.0"}},
		{"exec is never slow", mkEvent("create", "/api/v1/namespaces/d/pods/p/exec?command=sh", withReceived(testT0, time.Hour)), 3600000, false,
			Source{IP: "10.0.0.7", Trusted: true}, UserAgent{Name: "kubectl", Version: "v1.31.0"}},
		{"log follow is never slow", mkEvent("get", "/api/v1/namespaces/d/pods/p/log?container=c&follow=true", withReceived(testT0, time.Minute)), 60000, false,
			Source{IP: "10.0.0.7", Trusted: true}, UserAgent{Name: "kubectl", Version: "v1.31.0"}},
		{"log without follow can be slow", mkEvent("get", "/api/v1/namespaces/d/pods/p/log?container=c", withReceived(testT0, 2*time.Second)), 2000, true,
			Source{IP: "10.0.0.7", Trusted: true}, UserAgent{Name: "kubectl", Version: "v1.31.0"}},
		{"untrusted IPv4, hyperkube UA", mkEvent("get", "/api/v1/pods", func(e *Event) {
			e.SourceIPs = []string{"203.0.113.9", "10.0.0.1"}
			e.UserAgent = "hyperkube/v1.15.10 (linux/amd64) kubernetes/059c666/system:serviceaccount:kube-system:resourcequota-controller"
		}), 12, false, Source{IP: "203.0.113.9"}, UserAgent{Name: "hyperkube", Version: "v1.15.10"}},
		{"trusted IPv6, UA without version", mkEvent("get", "/api/v1/pods", func(e *Event) {
			e.SourceIPs = []string{"fd00::1"}
			e.UserAgent = "curl"
		}), 12, false, Source{IP: "fd00::1", Trusted: true}, UserAgent{Name: "curl"}},
		{"IPv4-mapped IPv6", mkEvent("get", "/api/v1/pods", func(e *Event) { e.SourceIPs = []string{"::ffff:10.1.2.3"}; e.UserAgent = "" }),
			12, false, Source{IP: "::ffff:10.1.2.3", Trusted: true}, UserAgent{}},
		{"no source, no timestamps", mkEvent("get", "/api/v1/pods", func(e *Event) {
			e.SourceIPs = nil
			e.RequestReceivedTimestamp = metav1.MicroTime{}
			e.UserAgent = "Go-http-client/1.1"
		}), 0, false, Source{}, UserAgent{Name: "Go-http-client", Version: "1.1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			testEnrich(t).Process(c.ev)
			m := c.ev.Kaudit
			assert.Equal(t, c.latencyMS, m.LatencyMS)
			assert.Equal(t, c.slow, m.Slow)
			assert.Equal(t, c.src, m.Source)
			assert.Equal(t, c.ua, m.UserAgent)
			assert.Equal(t, "prod-eu", m.Cluster)
			assert.Equal(t, "cp-1", m.Node)
		})
	}
}

func TestEnrichNoAllocs(t *testing.T) {
	st := testEnrich(t)
	ev := mkEvent("get", "/api/v1/namespaces/d/pods/p")
	st.Process(ev) // warm the action cache
	allocs := testing.AllocsPerRun(100, func() { st.Process(ev) })
	assert.Zero(t, allocs)
}

func TestEnrichEncoded(t *testing.T) {
	ev := mkEvent("delete", "/api/v1/namespaces/db/pods/pg-0", withUser("alice", "dba", "system:authenticated"), withImpersonated("system:serviceaccount:db:backup"))
	testEnrich(t).Process(ev)
	out := string(AppendMeta(nil, &ev.Kaudit))
	assert.Contains(t, out, `"actor":{"type":"serviceaccount","name":"system:serviceaccount:db:backup","serviceaccount":{"namespace":"db","name":"backup"},"impersonated_by":"alice"}`)
	assert.Contains(t, out, `"action":"delete pods","object":{"version":"v1","resource":"pods","namespace":"db","name":"pg-0"},"outcome":"success"`)
	ev = mkEvent("get", "/api/v1/pods", withUser("alice", "dba", "system:authenticated"))
	testEnrich(t).Process(ev)
	assert.Contains(t, string(AppendMeta(nil, &ev.Kaudit)), `"actor":{"type":"user","name":"alice","groups":["dba","system:authenticated"]}`)
}

// slow_request_threshold can name a threshold per verb: a list that
// takes 1.5 s is normal when lists may take 5 s, a get is not.
func TestEnrichSlowPerVerb(t *testing.T) {
	st, err := newEnrichStage(&Options{SlowThreshold: time.Second, SlowByVerb: map[string]time.Duration{"list": 5 * time.Second, "get": 0}})
	require.NoError(t, err)
	ms := time.Millisecond
	for _, c := range []struct {
		ev   *Event
		slow bool
	}{
		{mkEvent("list", "/api/v1/pods", withReceived(testT0, 1500*ms)), false},
		{mkEvent("list", "/api/v1/pods", withReceived(testT0, 5001*ms)), true},
		{mkEvent("delete", "/api/v1/namespaces/d/pods/p", withReceived(testT0, 1500*ms)), true},
		{mkEvent("get", "/api/v1/namespaces/d/pods/p", withReceived(testT0, time.Hour)), false}, // 0: never slow
	} {
		st.Process(c.ev)
		assert.Equal(t, c.slow, c.ev.Kaudit.Slow, "%s %v", c.ev.Verb, c.ev.Kaudit.LatencyMS)
	}
}
