package filter

import (
	"fmt"
	"testing"
	"time"

	k8stypes "k8s.io/apimachinery/pkg/types"
)

// BenchmarkDetect reports the cost per event of the default rule set:
// "no-prefilter" events reach no rule (the bulk of real traffic:
// controllers, kubelets, leases); "cel" events reach CEL rules (secret
// reads by people, pod creates with bodies, failures feeding the
// correlations); "mixed" is 90% of the first and 10% of the second.
func BenchmarkDetect(b *testing.B) {
	quiet := []dxDt{
		{verb: "get", uri: "/api/v1/namespaces/web/pods/web-1", res: "pods", ns: "web", name: "web-1", user: dxSaWeb},
		{verb: "update", uri: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", res: "leases", group: "coordination.k8s.io", ns: "kube-node-lease", name: "n1", user: dxNode1},
		{verb: "watch", uri: "/api/v1/configmaps?watch=true", res: "configmaps", user: dxNode1, stage: "ResponseStarted"},
		{verb: "list", uri: "/apis/apps/v1/replicasets", res: "replicasets", group: "apps", user: dxKcm},
		{verb: "patch", uri: "/api/v1/namespaces/web/pods/web-1/status", res: "pods", sub: "status", ns: "web", name: "web-1", user: dxNode1},
		{verb: "get", uri: "/api/v1/namespaces/web/secrets/tls", res: "secrets", ns: "web", name: "tls", user: dxNode1},
		{verb: "create", uri: "/api/v1/namespaces/web/events", res: "events", ns: "web", user: dxKcm},
		{verb: "get", uri: "/api/v1/namespaces/kube-system/configmaps/x", res: "configmaps", ns: "kube-system", user: dxSaKS},
	}
	loud := []dxDt{
		{verb: "get", uri: "/api/v1/namespaces/web/secrets/db", res: "secrets", ns: "web", name: "db"},
		{verb: "get", uri: "/api/v1/namespaces/payments/secrets/db", res: "secrets", ns: "payments", name: "db", user: dxSaWeb},
		{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxPlainPod, user: "system:serviceaccount:kube-system:replicaset-controller"},
		{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxPrivPod},
		{verb: "get", uri: "/api/v1/namespaces/web/secrets/x", res: "secrets", ns: "web", name: "x", user: "bob", code: 403, ip: "198.51.100.3"},
		{verb: "list", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web"},
		{verb: "delete", uri: "/api/v1/namespaces/web/pods/p", res: "pods", ns: "web", name: "p"},
		{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", res: "clusterrolebindings", group: dxRbacG, req: dxCrbAdmin},
	}
	mk := func(ds []dxDt) []*Event {
		var out []*Event
		for _, d := range ds {
			out = append(out, d.event(b))
		}
		return out
	}
	ids := make([]k8stypes.UID, 1<<17)
	for i := range ids {
		ids[i] = k8stypes.UID(fmt.Sprintf("%08x-0000-4000-8000-%012x", i>>12, i))
	}
	run := func(b *testing.B, evs []*Event, mix []*Event) {
		st := dxNewTestDetect(b, Options{EmitAlertRecords: true})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ev := evs[i%len(evs)]
			if mix != nil && i%10 == 9 {
				ev = mix[(i/10)%len(mix)]
			}
			ev.AuditID = ids[i%len(ids)]
			ts := detT0.Add(time.Duration(i) * time.Millisecond)
			ev.RequestReceivedTimestamp.Time = ts
			ev.StageTimestamp.Time = ts
			ev.Kaudit.Alerts = ev.Kaudit.Alerts[:0]
			st.Process(ev)
			ev.TakeEmitted()
		}
		b.StopTimer()
		s := st.Stats()
		b.ReportMetric(float64(s.Evaluated)/float64(b.N), "cel-evals/event")
	}
	b.Run("no-prefilter", func(b *testing.B) { run(b, mk(quiet), nil) })
	b.Run("cel", func(b *testing.B) { run(b, mk(loud), nil) })
	b.Run("mixed", func(b *testing.B) { run(b, mk(quiet), mk(loud)) })
}
