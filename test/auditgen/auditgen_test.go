package auditgen

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

var mixLines = Generate(Options{Seed: 1, Events: 2000})

func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	require.NoError(t, d.Decode(v), string(b))
}

func decodeAll(t *testing.T, lines [][]byte) []auditv1.Event {
	t.Helper()
	evs := make([]auditv1.Event, len(lines))
	for i, l := range lines {
		decodeStrict(t, l, &evs[i])
	}
	return evs
}

func TestDeterministic(t *testing.T) {
	for _, p := range []string{ProfileMix, ProfileMetadata, ProfileLarge} {
		o := Options{Seed: 7, Events: 300, Profile: p}
		assert.Equal(t, Generate(o), Generate(o), p)
	}
	assert.Equal(t, mixLines, Generate(Options{Seed: 1, Events: 2000, Profile: ProfileMix, Start: DefaultStart}))
	assert.NotEqual(t, mixLines, Generate(Options{Seed: 2, Events: 2000}))
}

func TestStrictDecodeAndRoundTrip(t *testing.T) {
	for i, l := range mixLines {
		require.False(t, bytes.ContainsAny(l, "\n"), "line %d", i)
		var ev auditv1.Event
		decodeStrict(t, l, &ev)
		assert.Equal(t, "Event", ev.Kind)
		assert.Equal(t, "audit.k8s.io/v1", ev.APIVersion)
		again, err := json.Marshal(&ev)
		require.NoError(t, err)
		require.Equal(t, string(l), string(again), "line %d does not round-trip", i)
		for _, u := range []*runtime.Unknown{ev.RequestObject, ev.ResponseObject} {
			if u == nil {
				continue
			}
			obj := u.Raw
			if obj != nil {
				var m map[string]any
				require.NoError(t, json.Unmarshal(obj, &m))
			}
		}
	}
}

func TestCount(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 101, 799, 800, 2000} {
		assert.Len(t, Generate(Options{Seed: 3, Events: n}), n)
	}
}

func TestTimestampsMonotone(t *testing.T) {
	evs := decodeAll(t, mixLines)
	for i := 1; i < len(evs); i++ {
		require.False(t, evs[i].StageTimestamp.Before(&evs[i-1].StageTimestamp), "event %d", i)
	}
	for _, ev := range evs {
		require.False(t, ev.StageTimestamp.Before(&ev.RequestReceivedTimestamp))
	}
	first, last := evs[0].StageTimestamp.Time, evs[len(evs)-1].StageTimestamp.Time
	assert.Greater(t, last.Sub(first), 20*time.Hour, "mix spans about a day")
	assert.Contains(t, string(mixLines[0]), `"requestReceivedTimestamp":"2025-06-02T16:00:00.`)
}

func TestPairsShareAuditID(t *testing.T) {
	evs := decodeAll(t, mixLines)
	byID := map[string][]auditv1.Event{}
	for _, ev := range evs {
		byID[string(ev.AuditID)] = append(byID[string(ev.AuditID)], ev)
	}
	pairs, started := 0, 0
	for id, group := range byID {
		stages := map[auditv1.Stage]int{}
		for _, ev := range group {
			stages[ev.Stage]++
			assert.Equal(t, group[0].RequestURI, ev.RequestURI, id)
			assert.Equal(t, group[0].User.Username, ev.User.Username, id)
			assert.Equal(t, group[0].RequestReceivedTimestamp, ev.RequestReceivedTimestamp, id)
		}
		for s, n := range stages {
			assert.Equal(t, 1, n, "auditID %s has %d %s events", id, n, s)
		}
		if stages[auditv1.StageRequestReceived] == 1 {
			assert.Equal(t, 1, stages[auditv1.StageResponseComplete]+stages[auditv1.StagePanic], "RequestReceived %s without final stage", id)
			assert.Equal(t, auditv1.StageRequestReceived, group[0].Stage, "RequestReceived comes first")
			if stages[auditv1.StageResponseComplete] == 1 {
				pairs++
			}
		}
		if stages[auditv1.StageResponseStarted] == 1 && group[len(group)-1].ResponseStatus.Code != 401 {
			started++
			assert.Equal(t, 1, stages[auditv1.StageResponseComplete], id)
		}
	}
	assert.Greater(t, pairs, 100)
	assert.Greater(t, started, 50)
	for _, ev := range evs {
		if ev.Stage == auditv1.StageRequestReceived {
			assert.Nil(t, ev.ResponseStatus)
			assert.Nil(t, ev.RequestObject)
			assert.Nil(t, ev.ResponseObject)
			assert.Nil(t, ev.ImpersonatedUser)
			assert.Empty(t, ev.Annotations)
		}
	}
}

func has(evs []auditv1.Event, f func(*auditv1.Event) bool) int {
	n := 0
	for i := range evs {
		if f(&evs[i]) {
			n++
		}
	}
	return n
}

func sub(ev *auditv1.Event) string {
	if ev.ObjectRef == nil {
		return ""
	}
	if ev.ObjectRef.Subresource != "" {
		return ev.ObjectRef.Resource + "/" + ev.ObjectRef.Subresource
	}
	return ev.ObjectRef.Resource
}

func TestMixCategories(t *testing.T) {
	evs := decodeAll(t, mixLines)
	all := string(bytes.Join(mixLines, []byte("\n")))
	for _, v := range []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"} {
		assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return e.Verb == v }), "verb %s", v)
	}
	for _, s := range []auditv1.Stage{auditv1.StageRequestReceived, auditv1.StageResponseStarted, auditv1.StageResponseComplete, auditv1.StagePanic} {
		assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return e.Stage == s }), "stage %s", s)
	}
	for _, l := range []auditv1.Level{auditv1.LevelMetadata, auditv1.LevelRequest, auditv1.LevelRequestResponse} {
		assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return e.Level == l }), "level %s", l)
	}
	groups := map[string]bool{}
	for i := range evs {
		if evs[i].ObjectRef != nil {
			groups[evs[i].ObjectRef.APIGroup] = true
		}
	}
	for _, g := range []string{"", "apps", "rbac.authorization.k8s.io", "batch", "admissionregistration.k8s.io", "certificates.k8s.io", "coordination.k8s.io", "db.example.com", "authentication.k8s.io", "authorization.k8s.io"} {
		assert.True(t, groups[g], "group %q", g)
	}
	for _, r := range []string{"leases", "events", "namespaces", "nodes", "secrets", "configmaps", "serviceaccounts/token", "tokenreviews", "subjectaccessreviews",
		"pods/exec", "pods/attach", "pods/portforward", "pods/log", "deployments/scale", "certificatesigningrequests/approval", "postgresclusters",
		"clusterrolebindings", "rolebindings", "validatingwebhookconfigurations", "mutatingwebhookconfigurations", "endpoints", "services", "endpointslices", "statefulsets"} {
		assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return sub(e) == r }), "resource %s", r)
	}
	for _, c := range []int32{101, 200, 201, 304, 401, 403, 404, 409, 422, 429, 500} {
		assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return e.ResponseStatus != nil && e.ResponseStatus.Code == c }), "code %d", c)
	}
	for _, k := range []string{"human", "serviceaccount", "node", "system", "anonymous", "unauthenticated"} {
		assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return UserType(e) == k }), "user type %s", k)
	}
	for _, u := range []string{"alice@example.com", "bob", "dba@example.com", "system:kube-controller-manager", "system:kube-scheduler", "system:kube-proxy", "system:apiserver", "system:anonymous"} {
		assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return e.User.Username == u }), "user %s", u)
	}
	for _, s := range []string{
		`"authentication.kubernetes.io/pod-name"`, `"authentication.kubernetes.io/pod-uid"`, `"authentication.kubernetes.io/credential-id"`, `"authentication.kubernetes.io/node-name"`,
		`"system:nodes"`, `"oidc:admins"`, `"system:unauthenticated"`, `"pod-security.kubernetes.io/enforce-policy"`, `"authorization.k8s.io/decision":"forbid"`,
		`?timeout=32s`, `\u0026watch=true`, `"impersonatedUser"`, `"privileged":true`, `"hostPID":true`, `"hostNetwork":true`, `"hostPath"`, `"managedFields"`,
		`"app":"postgres"`, `"app":"mysql"`, `"tier":"db"`, `"name":"cluster-admin"`, `"stringData"`, SecretValue, SecretValueBase64, `"token":"` + TestToken,
		`"spec":{"token":"` + TestToken, uaKubectl, uaKCM("replicaset-controller"), uaGoHTTP, uaHelm, "argocd", "$Format",
		`"203.0.113.`, `"198.51.100.`, `"10.`, `"message":"Authentication failed, attempted: bearer","code":401`,
		`"/healthz"`, `"/livez"`, `"/readyz"`, `"/version"`, `"/metrics"`, `"/openapi/v2`, `"requestURI":"/"`,
	} {
		assert.Contains(t, all, s)
	}
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return len(e.SourceIPs) > 1 }), "X-Forwarded-For")
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool { return strings.Contains(strings.Join(e.SourceIPs, ","), "2001:db8:") }), "IPv6")
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return e.User.Username == "system:anonymous" && e.RequestURI == "/healthz" && e.Annotations["authorization.k8s.io/decision"] == "allow"
	}))
	// slow and long requests
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return e.Verb != "watch" && e.StageTimestamp.Sub(e.RequestReceivedTimestamp.Time) > time.Second
	}))
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return e.Verb == "watch" && e.Stage == auditv1.StageResponseComplete && e.StageTimestamp.Sub(e.RequestReceivedTimestamp.Time) > 4*time.Minute
	}))
	// 401s are written as the apiserver does: ResponseStarted, no user, no annotations
	for _, e := range evs {
		if e.ResponseStatus != nil && e.ResponseStatus.Code == 401 {
			assert.Equal(t, auditv1.StageResponseStarted, e.Stage)
			assert.Empty(t, e.User.Username)
			assert.Empty(t, e.Annotations)
		}
	}
	assert.GreaterOrEqual(t, has(evs, func(e *auditv1.Event) bool { return len(mixLines[0]) > 0 && e.Level == auditv1.LevelRequestResponse }), 50)
	large := 0
	for _, l := range mixLines {
		if len(l) > 15000 {
			large++
		}
	}
	assert.GreaterOrEqual(t, large, 3, "a few ~20 KB lines")
}

func TestMixScenarios(t *testing.T) {
	evs := decodeAll(t, mixLines)
	db := func(e *auditv1.Event) bool { return e.ObjectRef != nil && e.ObjectRef.Namespace == "databases" }
	// DBA at night (00:00-05:00 UTC), others by day
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return db(e) && e.User.Username == "dba@example.com" && e.RequestReceivedTimestamp.Hour() < 5
	}))
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return db(e) && e.User.Username != "dba@example.com" && UserType(e) == "human" && e.RequestReceivedTimestamp.Hour() >= 8
	}))
	// Metadata-level delete and exec of db pods
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return db(e) && e.Verb == "delete" && e.Level == auditv1.LevelMetadata && strings.HasPrefix(e.ObjectRef.Name, "mysql-")
	}))
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return db(e) && sub(e) == "pods/exec" && e.Level == auditv1.LevelMetadata && e.User.Username != "dba@example.com"
	}))
	// the labels came in an earlier create body
	assert.Positive(t, has(evs, func(e *auditv1.Event) bool {
		return db(e) && e.Verb == "create" && sub(e) == "pods" && e.ResponseObject != nil && bytes.Contains(e.ResponseObject.Raw, []byte(`"app":"postgres"`))
	}))
	// auth failure burst: 401/403 from untrusted and trusted IP within a minute, then success
	var burst []auditv1.Event
	for _, e := range evs {
		if (e.User.Username == "bob" || e.User.Username == "") && (containsIP(&e, "203.0.113.77") || containsIP(&e, "10.20.4.9")) &&
			e.RequestReceivedTimestamp.Hour() == 22 && e.RequestReceivedTimestamp.Minute() >= 31 && e.RequestReceivedTimestamp.Minute() <= 32 && e.Stage != auditv1.StageRequestReceived {
			burst = append(burst, e)
		}
	}
	require.GreaterOrEqual(t, len(burst), 9)
	span := burst[len(burst)-1].RequestReceivedTimestamp.Sub(burst[0].RequestReceivedTimestamp.Time)
	assert.Less(t, span, time.Minute)
	assert.Equal(t, int32(200), burst[len(burst)-1].ResponseStatus.Code)
	assert.True(t, containsIP(&burst[len(burst)-1], "10.20.4.9"))
	// secret read burst and delete burst
	reads := has(evs, func(e *auditv1.Event) bool {
		return e.User.Username == "system:serviceaccount:tools:backup-agent" && sub(e) == "secrets" && e.Verb == "get"
	})
	assert.GreaterOrEqual(t, reads, 20)
	assert.GreaterOrEqual(t, has(evs, func(e *auditv1.Event) bool {
		return e.User.Username == "dave@example.com" && e.Verb == "delete" && e.Stage == auditv1.StageResponseComplete
	}), 10)
}

func containsIP(e *auditv1.Event, ip string) bool {
	for _, s := range e.SourceIPs {
		if s == ip {
			return true
		}
	}
	return false
}

func TestProfiles(t *testing.T) {
	meta := Generate(Options{Seed: 1, Events: 500, Profile: ProfileMetadata})
	total := 0
	for _, l := range meta {
		var ev auditv1.Event
		decodeStrict(t, l, &ev)
		assert.Equal(t, auditv1.LevelMetadata, ev.Level)
		assert.Nil(t, ev.RequestObject)
		assert.Nil(t, ev.ResponseObject)
		assert.Less(t, len(l), 2500)
		total += len(l)
	}
	avg := total / len(meta)
	assert.True(t, avg > 600 && avg < 1400, "metadata avg %d", avg)

	large := Generate(Options{Seed: 1, Events: 50, Profile: ProfileLarge})
	for _, l := range large {
		var ev auditv1.Event
		decodeStrict(t, l, &ev)
		assert.Equal(t, auditv1.LevelRequestResponse, ev.Level)
		assert.NotNil(t, ev.RequestObject)
		assert.NotNil(t, ev.ResponseObject)
		assert.True(t, len(l) > 15000 && len(l) < 26000, "large line %d bytes", len(l))
	}

	total = 0
	for _, l := range mixLines {
		total += len(l) + 1
	}
	assert.Less(t, total, 4<<20, "mix of 2000 stays under 4 MB")
}

func TestEventList(t *testing.T) {
	evs := GenerateEvents(Options{Seed: 1, Events: 100})
	body := EventList(evs...)
	var l auditv1.EventList
	decodeStrict(t, body, &l)
	assert.Equal(t, "EventList", l.Kind)
	assert.Equal(t, "audit.k8s.io/v1", l.APIVersion)
	require.Len(t, l.Items, 100)
	assert.Equal(t, evs[5].AuditID, l.Items[5].AuditID)
	assert.JSONEq(t, `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[]}`, string(EventList()))
}
