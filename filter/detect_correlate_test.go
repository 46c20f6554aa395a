package filter

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

// feed runs events through the stage and returns the alerts per rule
// (severity) in order, and the records emitted.
func dxFeed(t testing.TB, st *detectStage, evs ...*Event) (fired []string, emitted []*Event) {
	t.Helper()
	for _, ev := range evs {
		st.Process(ev)
		for _, a := range ev.Kaudit.Alerts {
			if st.isCorr(a.Rule) {
				fired = append(fired, a.Rule+":"+a.Severity)
			}
		}
		emitted = append(emitted, ev.TakeEmitted()...)
	}
	return fired, emitted
}

func (st *detectStage) isCorr(name string) bool {
	for _, r := range st.rules {
		if r.name == name {
			return r.corr != nil
		}
	}
	return false
}

// dxFail is a 403 for user from ip at detT0+at.
func dxFail(t testing.TB, user, ip string, at time.Duration) *Event {
	return dxDt{verb: "get", uri: "/api/v1/namespaces/web/secrets/x", res: "secrets", ns: "web", name: "x",
		user: user, ip: ip, code: 403, at: detT0.Add(at)}.event(t)
}

func dxOK(t testing.TB, user, ip string, at time.Duration) *Event {
	return dxDt{verb: "list", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", user: user, ip: ip, at: detT0.Add(at)}.event(t)
}

func TestDetectCorrelationAuthFailuresByUser(t *testing.T) {
	st := dxNewTestDetect(t, Options{})
	var evs []*Event
	for i := 0; i < 19; i++ {
		evs = append(evs, dxFail(t, "bob", "10.1.1.1", time.Duration(i)*10*time.Second))
	}
	fired, _ := dxFeed(t, st, evs...)
	assert.Empty(t, fired)
	// The 20th within 5 minutes crosses the threshold; the alert is on it.
	ev := dxFail(t, "bob", "10.1.1.1", 190*time.Second)
	fired, _ = dxFeed(t, st, ev)
	assert.Equal(t, []string{"auth-failures-by-user:medium"}, fired)
	assert.Contains(t, ev.Kaudit.Alerts[len(ev.Kaudit.Alerts)-1].Description, "[user=bob: match=20 within 5m0s]")
	// Not again within the window.
	fired, _ = dxFeed(t, st, dxFail(t, "bob", "10.1.1.1", 200*time.Second), dxFail(t, "bob", "10.1.1.1", 210*time.Second))
	assert.Empty(t, fired)
	// Another user is another key.
	fired, _ = dxFeed(t, st, dxFail(t, "carol", "10.1.1.2", 220*time.Second))
	assert.Empty(t, fired)

	// Failures slower than 20 per 5 minutes never fire.
	st = dxNewTestDetect(t, Options{})
	for i := 0; i < 200; i++ {
		fired, _ = dxFeed(t, st, dxFail(t, "bob", "10.1.1.1", time.Duration(i)*20*time.Second))
		require.Empty(t, fired, i)
	}
	// 401s without a user count for the source IP.
	st = dxNewTestDetect(t, Options{})
	var all []string
	for i := 0; i < 60; i++ {
		ev := dxDt{verb: "get", uri: "/api/v1/namespaces", res: "namespaces", user: "-", ip: "203.0.113.9", code: 401, at: detT0.Add(time.Duration(i) * time.Second)}.event(t)
		f, _ := dxFeed(t, st, ev)
		if len(f) > 0 {
			all = append(all, fmt.Sprint(i, f))
		}
	}
	assert.Equal(t, []string{"49 [auth-failures-by-source:medium]"}, all)
}

func TestDetectCorrelationInsideAndOutside(t *testing.T) {
	const rule = "auth-failures-inside-and-outside"
	only := func(f []string) []string {
		var out []string
		for _, x := range f {
			if strings.HasPrefix(x, rule) {
				out = append(out, x)
			}
		}
		return out
	}
	// Failure from outside, then from inside: medium; the user then
	// succeeds from inside: escalated to high, once.
	st := dxNewTestDetect(t, Options{})
	f, _ := dxFeed(t, st, dxFail(t, "dave@example.com", "198.51.100.7", 0))
	assert.Empty(t, only(f))
	f, _ = dxFeed(t, st, dxFail(t, "dave@example.com", "10.2.0.4", time.Minute))
	assert.Equal(t, []string{rule + ":medium"}, only(f))
	f, _ = dxFeed(t, st, dxOK(t, "dave@example.com", "10.2.0.4", 2*time.Minute))
	assert.Equal(t, []string{rule + ":high"}, only(f))
	f, _ = dxFeed(t, st, dxOK(t, "dave@example.com", "10.2.0.4", 3*time.Minute), dxFail(t, "dave@example.com", "198.51.100.7", 4*time.Minute))
	assert.Empty(t, only(f))

	// Success first, then both failures: high straight away.
	st = dxNewTestDetect(t, Options{})
	f, _ = dxFeed(t, st, dxOK(t, "erin@example.com", "10.2.0.5", 0), dxFail(t, "erin@example.com", "10.2.0.5", time.Minute),
		dxFail(t, "erin@example.com", "192.0.2.1", 2*time.Minute))
	assert.Equal(t, []string{rule + ":high"}, only(f))

	// Outside only, inside only, or the two further apart than the window: nothing.
	st = dxNewTestDetect(t, Options{})
	f, _ = dxFeed(t, st, dxFail(t, "frank@example.com", "192.0.2.1", 0), dxFail(t, "frank@example.com", "192.0.2.2", time.Minute),
		dxFail(t, "grace@example.com", "10.0.0.1", 0), dxFail(t, "grace@example.com", "10.0.0.1", time.Minute),
		dxFail(t, "frank@example.com", "10.0.0.9", 40*time.Minute))
	assert.Empty(t, only(f))
	// Service accounts are not users here.
	f, _ = dxFeed(t, st, dxFail(t, dxSaWeb, "192.0.2.1", 41*time.Minute), dxFail(t, dxSaWeb, "10.0.0.1", 42*time.Minute))
	assert.Empty(t, only(f))
}

func TestDetectCorrelationFollowedBy(t *testing.T) {
	const rule = "auth-failures-then-success:high"
	st := dxNewTestDetect(t, Options{})
	// Success before the failures: no sequence.
	f, _ := dxFeed(t, st, dxOK(t, "mallory", "192.0.2.50", 0))
	assert.Empty(t, f)
	for i := 0; i < 10; i++ {
		f, _ = dxFeed(t, st, dxFail(t, "-", "192.0.2.50", time.Duration(i+1)*time.Second))
		assert.NotContains(t, f, rule)
	}
	f, _ = dxFeed(t, st, dxOK(t, "mallory", "192.0.2.50", time.Minute))
	assert.Equal(t, []string{rule}, f)
	// A success from another IP does not follow.
	st = dxNewTestDetect(t, Options{})
	for i := 0; i < 10; i++ {
		dxFeed(t, st, dxFail(t, "-", "192.0.2.51", time.Duration(i)*time.Second))
	}
	f, _ = dxFeed(t, st, dxOK(t, "mallory", "192.0.2.52", time.Minute))
	assert.Empty(t, f)
	// Nor one after the window.
	f, _ = dxFeed(t, st, dxOK(t, "mallory", "192.0.2.51", 20*time.Minute))
	assert.Empty(t, f)
}

func TestDetectCorrelationBursts(t *testing.T) {
	st := dxNewTestDetect(t, Options{})
	var f []string
	for i := 0; i < 20; i++ {
		ev := dxDt{verb: "get", uri: "/api/v1/namespaces/payments/secrets/s" + fmt.Sprint(i), res: "secrets", ns: "payments", name: fmt.Sprint("s", i),
			user: "system:serviceaccount:payments:api", at: detT0.Add(time.Duration(i) * 2 * time.Second)}.event(t)
		x, _ := dxFeed(t, st, ev)
		f = append(f, x...)
	}
	assert.Equal(t, []string{"secret-read-burst:high"}, f)
	// Twenty identities reading one secret each: no burst.
	st = dxNewTestDetect(t, Options{})
	f = nil
	for i := 0; i < 20; i++ {
		ev := dxDt{verb: "get", uri: "/api/v1/namespaces/payments/secrets/s", res: "secrets", ns: "payments", name: "s",
			user: fmt.Sprintf("system:serviceaccount:payments:api%d", i), at: detT0.Add(time.Duration(i) * time.Second)}.event(t)
		x, _ := dxFeed(t, st, ev)
		f = append(f, x...)
	}
	assert.Empty(t, f)

	// Mass delete: 30 in a minute by one human; the garbage collector is exempt.
	st = dxNewTestDetect(t, Options{})
	f = nil
	for i := 0; i < 40; i++ {
		for _, u := range []string{"alice@example.com", "system:serviceaccount:kube-system:generic-garbage-collector"} {
			ev := dxDt{verb: "delete", uri: fmt.Sprintf("/api/v1/namespaces/web/pods/p%d", i), res: "pods", ns: "web", name: fmt.Sprint("p", i),
				user: u, at: detT0.Add(time.Duration(i) * time.Second)}.event(t)
			x, _ := dxFeed(t, st, ev)
			f = append(f, x...)
		}
	}
	assert.Equal(t, []string{"mass-delete:high"}, f)
}

// A chunk re-sent by Fluent Bit is not counted again, and its events
// carry the same alerts and re-emit the same records.
func TestDetectCorrelationRetry(t *testing.T) {
	st := dxNewTestDetect(t, Options{EmitAlertRecords: true, Cluster: "prod", Node: "cp-1"})
	var chunk []*Event
	for i := 0; i < 20; i++ {
		chunk = append(chunk, dxFail(t, "bob", "10.1.1.1", time.Duration(i)*time.Second))
	}
	fired, emitted := dxFeed(t, st, chunk...)
	require.Equal(t, []string{"auth-failures-by-user:medium"}, fired)
	require.Len(t, emitted, 1)
	first := AppendEvent(nil, emitted[0])
	crossing := AppendEvent(nil, chunk[19])

	// The retry: the same events decoded again.
	var again []*Event
	for _, ev := range chunk {
		cp := &Event{Event: ev.Event, Tag: ev.Tag, RecordTime: ev.RecordTime}
		again = append(again, cp)
	}
	fired, emitted = dxFeed(t, st, again...)
	assert.Equal(t, []string{"auth-failures-by-user:medium"}, fired, "the crossing event carries its alert again")
	require.Len(t, emitted, 1)
	assert.Equal(t, string(first), string(AppendEvent(nil, emitted[0])), "the same record, byte for byte")
	assert.Equal(t, string(crossing), string(AppendEvent(nil, again[19])))
	assert.EqualValues(t, 20, st.Stats().Duplicates)

	// And the counts were not doubled: 19 more are needed, not 0.
	st2 := st.Stats()
	assert.EqualValues(t, 1, st2.Fired)
}

func TestDetectCorrelationAlertRecord(t *testing.T) {
	st := dxNewTestDetect(t, Options{EmitAlertRecords: true, Cluster: "prod", Node: "cp-1"})
	var evs []*Event
	for i := 0; i < 50; i++ {
		evs = append(evs, dxFail(t, fmt.Sprint("u", i), "203.0.113.77", time.Duration(i)*time.Second))
	}
	_, emitted := dxFeed(t, st, evs...)
	require.Len(t, emitted, 1)
	x := emitted[0]
	assert.Equal(t, AlertKind, x.Kaudit.Kind)
	assert.Equal(t, "prod", x.Kaudit.Cluster)
	assert.Equal(t, []string{"203.0.113.77"}, x.SourceIPs)
	assert.Equal(t, evs[49].Timestamp(), x.Timestamp())
	assert.NotEmpty(t, x.ID())
	var doc map[string]any
	require.NoError(t, json.Unmarshal(AppendEvent(nil, x), &doc))
	assert.Equal(t, "Alert", doc["kind"])
	ann := doc["annotations"].(map[string]any)
	assert.Equal(t, "auth-failures-by-source", ann[AlertAnnoRule])
	assert.Equal(t, "source_ip", ann[AlertAnnoGroupBy])
	assert.Equal(t, "203.0.113.77", ann[AlertAnnoGroup])
	assert.Equal(t, "5m0s", ann[AlertAnnoWindow])
	assert.Equal(t, "match=50", ann[AlertAnnoCounts])
	assert.Equal(t, "50", ann[AlertAnnoThreshold])
	assert.Equal(t, evs[49].ID(), ann[AlertAnnoTrigger])
	ids := strings.Split(ann[AlertAnnoAuditIDs].(string), ",")
	require.Len(t, ids, maxIDs)
	assert.Equal(t, string(evs[49].AuditID), ids[len(ids)-1])
	assert.Equal(t, string(evs[44].AuditID), ids[0])
	k := doc["kaudit"].(map[string]any)
	assert.Equal(t, AlertKind, k["kind"])
	assert.Equal(t, "auth-failures-by-source", k["alerts"].([]any)[0].(map[string]any)["rule"])

	// Without emit_alert_records: the alert is on the event only.
	st = dxNewTestDetect(t, Options{})
	_, emitted = dxFeed(t, st, evs...)
	assert.Empty(t, emitted)
}

func TestDetectCorrelationCustomRules(t *testing.T) {
	path := dxRuleFileFor(t, `
rules:
  - name: scale-then-exec
    severity: high
    match: verb == "patch" && resource == "deployments" && subresource == "scale"
    followed_by: resource == "pods" && subresource == "exec"
    group_by: [actor, ns]
    window: 2m
  - name: many-namespaces
    severity: low
    match: verb == "create"
    together_with:
      - {name: deletes, match: verb == "delete", threshold: 2}
    group_by: 'user + "@" + source_ip'
    window: 1m
    threshold: 3
`)
	st := dxNewTestDetect(t, Options{DetectionsFile: path})
	f, _ := dxFeed(t, st,
		dxDt{verb: "patch", uri: "/apis/apps/v1/namespaces/web/deployments/d/scale", res: "deployments", sub: "scale", group: "apps", ns: "web", name: "d"}.event(t),
		dxDt{verb: "create", uri: "/api/v1/namespaces/db/pods/p/exec", res: "pods", sub: "exec", ns: "db", name: "p", code: 101, at: detT0.Add(time.Second)}.event(t))
	assert.Empty(t, f, "other namespace")
	f, _ = dxFeed(t, st,
		dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods/p/exec", res: "pods", sub: "exec", ns: "web", name: "p", code: 101, at: detT0.Add(2 * time.Second)}.event(t))
	assert.Equal(t, []string{"scale-then-exec:high"}, f)

	var evs []*Event
	for i, v := range []string{"create", "create", "delete", "create"} {
		evs = append(evs, dxDt{verb: v, uri: "/api/v1/namespaces/web/configmaps", res: "configmaps", ns: "web", at: detT0.Add(time.Duration(i) * time.Second)}.event(t))
	}
	f, _ = dxFeed(t, st, evs...)
	assert.Empty(t, f, "one delete")
	ev := dxDt{verb: "delete", uri: "/api/v1/namespaces/web/configmaps/x", res: "configmaps", ns: "web", name: "x", at: detT0.Add(5 * time.Second)}.event(t)
	f, _ = dxFeed(t, st, ev)
	assert.Equal(t, []string{"many-namespaces:low"}, f)
	assert.Contains(t, ev.Kaudit.Alerts[0].Description, "user + \"@\" + source_ip=alice@example.com@10.0.3.17: match=5,deletes=2 within 1m0s]")
}

func TestDetectCorrelationKeyCap(t *testing.T) {
	st := dxNewTestDetect(t, Options{CorrelationMaxKeys: 100})
	for i := 0; i < 1000; i++ {
		dxFeed(t, st, dxFail(t, "-", fmt.Sprintf("192.0.%d.%d", i/256, i%256), time.Duration(i)*time.Millisecond))
	}
	s := st.Stats()
	assert.LessOrEqual(t, s.Keys, 100)
	// Each failure is a key of auth-failures-by-source and of
	// auth-failures-then-success: 2000 keys, 100 kept.
	assert.EqualValues(t, 1900, s.Evictions)
	// The newest keys survive: 49 more failures of the last IP fire.
	var f []string
	for i := 0; i < 49; i++ {
		x, _ := dxFeed(t, st, dxFail(t, "-", "192.0.3.231", time.Second+time.Duration(i)*time.Millisecond))
		f = append(f, x...)
	}
	assert.Equal(t, []string{"auth-failures-by-source:medium"}, f)
}

// A day of traffic replayed at speed on event time: the keys expire with
// their windows, evictions bound the rest, and the heap stays flat.
func TestDetectCorrelationSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	st := dxNewTestDetect(t, Options{CorrelationMaxKeys: 200})
	// Templates re-stamped per event, so the test measures the stage.
	tmpl := []*Event{
		dxFail(t, "bob", "203.0.113.1", 0),
		dxOK(t, "dave@example.com", "10.2.0.4", 0),
		dxDt{verb: "get", uri: "/api/v1/namespaces/payments/secrets/s", res: "secrets", ns: "payments", name: "s", user: "system:serviceaccount:payments:api"}.event(t),
		dxDt{verb: "delete", uri: "/api/v1/namespaces/web/pods/p", res: "pods", ns: "web", name: "p"}.event(t),
	}
	const day = 24 * time.Hour
	const step = 250 * time.Millisecond // 345,600 events
	var heaps []uint64
	var ms runtime.MemStats
	i := 0
	for at := time.Duration(0); at < day; at += step {
		src := tmpl[i%len(tmpl)]
		ev := &Event{Event: src.Event}
		ev.AuditID = k8stypes.UID(dxUID(i))
		ev.RequestReceivedTimestamp.Time = detT0.Add(at)
		ev.StageTimestamp.Time = detT0.Add(at)
		// A new identity/IP every few events: keys churn all day.
		switch i % 4 {
		case 0:
			ev.SourceIPs = []string{fmt.Sprintf("198.51.%d.%d", (i/256)%256, (i/65536)%256)}
			ev.User.Username = fmt.Sprintf("user%d", i/16)
		case 1:
			ev.User.Username = fmt.Sprintf("user%d@example.com", i/64)
		case 2, 3:
			ev.User.Username = fmt.Sprintf("system:serviceaccount:ns%d:sa", i/32)
		}
		st.Process(ev)
		ev.TakeEmitted()
		i++
		if at%(2*time.Hour) == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heaps = append(heaps, ms.HeapAlloc)
		}
	}
	s := st.Stats()
	t.Logf("events %d, keys %d, evictions %d, expired %d, fired %d; heap by 2h: %v", i, s.Keys, s.Evictions, s.Expired, s.Fired, heaps)
	assert.LessOrEqual(t, s.Keys, 200)
	assert.Positive(t, s.Evictions)
	assert.Positive(t, s.Expired)
	assert.Positive(t, s.Fired)
	// Flat: after the first hours, the heap does not grow by more than 8 MiB.
	base := heaps[2]
	for _, h := range heaps[2:] {
		assert.Less(t, int64(h)-int64(base), int64(8<<20), "heap %v", heaps)
	}
}

func dxUID(i int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", i>>16, i)
}

// Through the whole pipeline, with the enrichment filling Meta.
func TestDetectInPipeline(t *testing.T) {
	p, err := NewPipeline(Options{TrustedNetworks: detTrusted, EmitAlertRecords: true, AlertsOnly: true})
	require.NoError(t, err)
	var emitted []*Event
	emit := func(x *Event) { emitted = append(emitted, x) }
	ev := dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods/web-1/exec?command=sh", res: "pods", sub: "exec", ns: "web", name: "web-1", code: 101}.event(t)
	require.Equal(t, Keep, p.Process(ev, emit))
	assert.Equal(t, []string{"pod-exec"}, dxAlertNames(ev))
	quiet := dxDt{verb: "get", uri: "/api/v1/namespaces/web/pods/web-1", res: "pods", ns: "web", name: "web-1", user: dxSaWeb}.event(t)
	assert.Equal(t, DropNoAlert, p.Process(quiet, emit))
	for i := 0; i < 50; i++ {
		p.Process(dxFail(t, "-", "203.0.113.5", time.Duration(i)*time.Second), emit)
	}
	require.Len(t, emitted, 1)
	assert.Equal(t, AlertKind, emitted[0].Kaudit.Kind)
	s, ok := p.DetectStats()
	require.True(t, ok)
	assert.EqualValues(t, 1, s.Fired)
	assert.Zero(t, s.EvalErrors)
}
