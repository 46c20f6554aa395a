package auditgen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

const (
	lvM  = auditv1.LevelMetadata
	lvR  = auditv1.LevelRequest
	lvRR = auditv1.LevelRequestResponse
)

type gen struct {
	o     Options
	r     *rand.Rand
	w     *world
	rv    int64
	uids  map[string]types.UID
	start time.Time
	end   time.Time
}

func newGen(o Options) *gen {
	r := rand.New(rand.NewSource(o.Seed))
	g := &gen{o: o, r: r, uids: map[string]types.UID{}, rv: 48213000 + r.Int63n(100000), start: o.Start}
	g.w = newWorld(r)
	switch o.Profile {
	case ProfileMix:
		g.end = g.start.Add(24 * time.Hour)
	default:
		g.end = g.start.Add(time.Duration(o.Events) * 150 * time.Millisecond)
	}
	return g
}

func (g *gen) nextRV() string { g.rv += 1 + g.r.Int63n(40); return fmt.Sprint(g.rv) }

func (g *gen) uid(key string) types.UID {
	if u, ok := g.uids[key]; ok {
		return u
	}
	u := uuidFrom(g.r)
	g.uids[key] = u
	return u
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// latency draws a log-normal request latency around median.
func (g *gen) latency(median time.Duration) time.Duration {
	f := math.Exp(g.r.NormFloat64() * 0.6)
	d := time.Duration(float64(median) * f)
	if g.chance(0.02) {
		d += time.Duration(1000+g.r.Intn(3000)) * time.Millisecond // slow request
	}
	if d < 200*time.Microsecond {
		d = 200 * time.Microsecond
	}
	return d
}

func apiPrefix(group, version string) string {
	if group == "" {
		return "/api/" + version
	}
	return "/apis/" + group + "/" + version
}

func resPath(group, version, ns, resource, name, sub string) string {
	p := apiPrefix(group, version)
	if ns != "" {
		p += "/namespaces/" + ns
	}
	p += "/" + resource
	if name != "" {
		p += "/" + name
	}
	if sub != "" {
		p += "/" + sub
	}
	return p
}

func ref(group, version, ns, resource, name, sub string) *auditv1.ObjectReference {
	return &auditv1.ObjectReference{Resource: resource, Namespace: ns, Name: name, APIGroup: group, APIVersion: version, Subresource: sub}
}

// req starts a request by id at time at. Defaults: 200, Metadata, allowed.
func (g *gen) req(id *identity, at time.Time, verb, uri string, rf *auditv1.ObjectReference) *request {
	u := id.info
	r := &request{
		at: at.UTC().Truncate(time.Microsecond), verb: verb, uri: uri, user: u, ips: g.w.sourceIPs(id),
		ua: g.w.pick(id.ua), ref: rf, level: lvM, code: 200, auditID: uuidFrom(g.r),
		ann: map[string]string{
			"authorization.k8s.io/decision": "allow",
			"authorization.k8s.io/reason":   id.reason,
		},
		received: id.kind == "human",
		latency:  g.latency(8 * time.Millisecond),
	}
	switch verb {
	case "list":
		r.latency = g.latency(25 * time.Millisecond)
	case "create", "update", "patch", "delete":
		r.latency = g.latency(15 * time.Millisecond)
	case "deletecollection":
		r.latency = g.latency(120 * time.Millisecond)
	}
	if r.latency > 500*time.Millisecond {
		r.ann["apiserver.latency.k8s.io/etcd"] = (r.latency * 7 / 10).Round(time.Microsecond).String()
		r.ann["apiserver.latency.k8s.io/total"] = r.latency.Round(time.Microsecond).String()
	}
	return r
}

// res builds a resource request (with objectRef) by id.
func (g *gen) res(id *identity, at time.Time, verb, group, version, ns, resource, name, sub, query string) *request {
	uri := resPath(group, version, ns, resource, name, sub)
	if query != "" {
		uri += "?" + query
	}
	return g.req(id, at, verb, uri, ref(group, version, ns, resource, name, sub))
}

func (g *gen) watchQuery(extra string) (string, time.Duration) {
	secs := 300 + g.r.Intn(300)
	q := "allowWatchBookmarks=true"
	if extra != "" {
		q += "&" + extra
	}
	q += fmt.Sprintf("&resourceVersion=%d&timeout=%dm%ds&timeoutSeconds=%d&watch=true", g.rv-int64(g.r.Intn(5000)), secs/60, secs%60, secs)
	return q, time.Duration(secs)*time.Second + time.Duration(g.r.Intn(900))*time.Millisecond
}

func (g *gen) watch(id *identity, at time.Time, group, version, ns, resource, extra string) *request {
	q, d := g.watchQuery(extra)
	r := g.res(id, at, "watch", group, version, ns, resource, "", "", q)
	r.started, r.latency = true, d
	return r
}

// ----- outcomes, as the apiserver writes them -----

func qualified(group, resource string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

func details(rf *auditv1.ObjectReference) *metav1.StatusDetails {
	return &metav1.StatusDetails{Name: rf.Name, Group: rf.APIGroup, Kind: rf.Resource}
}

func (g *gen) forbid(r *request) *request {
	rf := r.ref
	var msg string
	switch {
	case rf == nil:
		msg = fmt.Sprintf("forbidden: User %q cannot %s path %q", r.user.Username, r.verb, strings.SplitN(r.uri, "?", 2)[0])
		r.status = &metav1.Status{Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReasonForbidden, Details: &metav1.StatusDetails{}}
	default:
		res := rf.Resource
		if rf.Subresource != "" {
			res += "/" + rf.Subresource
		}
		subject := qualified(rf.APIGroup, rf.Resource)
		if rf.Name != "" {
			subject += fmt.Sprintf(" %q", rf.Name)
		}
		msg = fmt.Sprintf("%s is forbidden: User %q cannot %s resource %q in API group %q", subject, r.user.Username, r.verb, res, rf.APIGroup)
		if rf.Namespace != "" {
			msg += fmt.Sprintf(" in the namespace %q", rf.Namespace)
		} else {
			msg += " at the cluster scope"
		}
		r.status = &metav1.Status{Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReasonForbidden, Details: details(rf)}
	}
	r.code = 403
	r.ann = map[string]string{"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
	r.reqObj, r.respObj = nil, nil
	r.latency = g.latency(2 * time.Millisecond)
	return r
}

func (g *gen) notFound(r *request) *request {
	rf := r.ref
	r.code = 404
	r.status = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound,
		Message: fmt.Sprintf("%s %q not found", qualified(rf.APIGroup, rf.Resource), rf.Name), Details: details(rf)}
	r.respObj = nil
	return r
}

func (g *gen) alreadyExists(r *request) *request {
	rf := r.ref
	r.code = 409
	r.status = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonAlreadyExists,
		Message: fmt.Sprintf("%s %q already exists", qualified(rf.APIGroup, rf.Resource), rf.Name), Details: details(rf)}
	r.respObj = nil
	return r
}

func (g *gen) conflict(r *request) *request {
	rf := r.ref
	r.code = 409
	r.status = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonConflict,
		Message: fmt.Sprintf("Operation cannot be fulfilled on %s %q: the object has been modified; please apply your changes to the latest version and try again", qualified(rf.APIGroup, rf.Resource), rf.Name),
		Details: details(rf)}
	r.respObj = nil
	return r
}

func (g *gen) invalid(r *request, kind, field, cause string) *request {
	rf := r.ref
	r.code = 422
	kq := kind
	if rf.APIGroup != "" {
		kq += "." + rf.APIGroup
	}
	r.status = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInvalid,
		Message: fmt.Sprintf("%s %q is invalid: %s: %s", kq, rf.Name, field, cause),
		Details: &metav1.StatusDetails{Name: rf.Name, Group: rf.APIGroup, Kind: kind, Causes: []metav1.StatusCause{{Type: metav1.CauseTypeFieldValueRequired, Message: cause, Field: field}}}}
	r.respObj = nil
	return r
}

func (g *gen) webhookError(r *request) *request {
	r.code = 500
	msg := `Internal error occurred: failed calling webhook "validate.policy.example.com": failed to call webhook: Post "https://policy-webhook.policy.svc:443/validate?timeout=10s": context deadline exceeded`
	r.status = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Message: msg,
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Message: strings.TrimPrefix(msg, "Internal error occurred: ")}}}}
	r.latency = 10*time.Second + time.Duration(g.r.Intn(40))*time.Millisecond
	r.ann["apiserver.latency.k8s.io/validating-webhook"] = (r.latency - 3*time.Millisecond).String()
	r.ann["apiserver.latency.k8s.io/total"] = r.latency.String()
	r.respObj = nil
	return r
}

// tooMany is a 429 from API Priority and Fairness (written with http.Error:
// no Status body, so the event has only the code).
func (g *gen) tooMany(r *request) *request {
	r.code, r.status, r.reqObj, r.respObj = 429, nil, nil, nil
	r.latency = g.latency(40 * time.Millisecond)
	return r
}

// authnFail turns r into a failed authentication: no user, no authz annotations.
func (g *gen) authnFail(r *request) *request {
	r.authnErr = true
	r.user = authnv1.UserInfo{}
	r.imp = nil
	r.ann = nil
	r.code = 401
	r.status = nil
	r.reqObj, r.respObj = nil, nil
	r.latency = time.Duration(300+g.r.Intn(900)) * time.Microsecond
	return r
}

// longRunning marks exec/attach/portforward (hijacked: 101) and log streams.
func (g *gen) longRunning(r *request, dur time.Duration, code int32) *request {
	r.started, r.latency, r.code = true, dur, code
	r.received = true
	return r
}

func (g *gen) impersonate(r *request, as authnv1.UserInfo) *request {
	r.imp = &as
	r.ann["authorization.k8s.io/reason"] = rbacCRB(strings.SplitN(r.ann["authorization.k8s.io/reason"], "\"", 3)[1], "cluster-admin", "Group", "oidc:admins")
	return r
}

func (g *gen) pick(ss []string) string { return ss[g.r.Intn(len(ss))] }

func podSecurity(level string) map[string]string {
	return map[string]string{"pod-security.kubernetes.io/enforce-policy": level + ":latest"}
}

func merge(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

// ----- scheduling -----

func countEvents(rs []*request) int {
	n := 0
	for _, r := range rs {
		n += r.eventCount()
	}
	return n
}

func (g *gen) run() []*request {
	var scripted []*request
	if g.o.Profile == ProfileMix && g.o.Events >= 800 {
		scripted = g.scripted()
	}
	budget := g.o.Events - countEvents(scripted)
	var out []*request
	c := g.start
	for budget > 0 {
		var acts []*request
		switch g.o.Profile {
		case ProfileLarge:
			acts = []*request{g.large(c)}
		default:
			acts = g.background(c)
		}
		n := countEvents(acts)
		if n > budget || n == 0 {
			acts = nil
			for i := 0; i < budget; i++ {
				acts = append(acts, g.leaseRenew(c.Add(time.Duration(i) * time.Millisecond))[0])
			}
			n = budget
		}
		if g.o.Profile == ProfileMetadata {
			for _, a := range acts {
				a.level = lvM
			}
		}
		out = append(out, acts...)
		budget -= n
		if budget > 0 {
			perEvent := float64(g.end.Sub(c)) / float64(budget+1)
			c = c.Add(time.Duration(g.r.ExpFloat64() * perEvent * float64(n)))
		}
	}
	return append(out, scripted...)
}

// at returns the first time >= start+10m at hour:min UTC.
func (g *gen) at(hour, min int) time.Time {
	d := g.start.Truncate(24 * time.Hour)
	t := d.Add(time.Duration(hour)*time.Hour + time.Duration(min)*time.Minute)
	for t.Before(g.start.Add(10 * time.Minute)) {
		t = t.Add(24 * time.Hour)
	}
	return t.Add(time.Duration(g.r.Intn(50000)) * time.Millisecond)
}

// ----- background traffic -----

type weighted struct {
	w int
	f func(time.Time) []*request
}

func (g *gen) background(c time.Time) []*request {
	ws := []weighted{
		{28, g.leaseRenew}, {8, g.kubeProxy}, {12, g.kubelet}, {12, g.controllers}, {4, g.schedulerAct},
		{3, g.apiserverAct}, {6, g.anonymousAct}, {14, g.humanAct}, {5, g.argoAct}, {3, g.promAct},
		{3, g.reviewAct}, {3, g.appAct}, {3, g.errorAct},
	}
	if g.o.Profile == ProfileMix {
		ws = append(ws, weighted{1, func(t time.Time) []*request {
			switch {
			case g.chance(0.3):
				return []*request{g.large(t)}
			case g.chance(0.2):
				return g.panicAct(t)
			}
			return g.leaseRenew(t)
		}})
	}
	tot := 0
	for _, x := range ws {
		tot += x.w
	}
	n := g.r.Intn(tot)
	for _, x := range ws {
		if n < x.w {
			return x.f(c)
		}
		n -= x.w
	}
	return nil
}

func (g *gen) leaseRenew(t time.Time) []*request {
	var id *identity
	var ns, name, holder string
	switch k := g.r.Intn(10); {
	case k < 6:
		n := g.r.Intn(len(g.w.nodes))
		id, ns, name, holder = g.w.nodeIDs[n], "kube-node-lease", g.w.nodes[n].name, g.w.nodes[n].name
	case k < 8:
		id, ns, name, holder = g.w.kcm, "kube-system", "kube-controller-manager", "control-plane-1_"+string(g.uid("kcm-holder"))
	case k < 9:
		id, ns, name, holder = g.w.scheduler, "kube-system", "kube-scheduler", "control-plane-1_"+string(g.uid("sched-holder"))
		id = &identity{info: id.info, ua: []string{uaSchedulerLE}, ips: id.ips, reason: rbacRB("system::leader-locking-kube-scheduler", "kube-system", "system::leader-locking-kube-scheduler", "User", "system:kube-scheduler"), kind: id.kind}
	default:
		id, ns, name, holder = g.w.apiserver, "kube-system", "apiserver-"+strings.ToLower(string(g.uid("apiserver-lease"))[:26]), "apiserver-"+string(g.uid("apiserver-id"))
	}
	r := g.res(id, t, "update", "coordination.k8s.io", "v1", ns, "leases", name, "", "timeout=10s")
	r.latency = g.latency(4 * time.Millisecond)
	r.reqObj = leaseObj(meta{ns: ns, name: name, uid: g.uid("lease/" + name), rv: fmt.Sprint(g.rv)}, holder, t, 40)
	return []*request{r}
}

func (g *gen) kubeProxy(t time.Time) []*request {
	id := g.w.proxy
	sel := "labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name"
	switch g.r.Intn(4) {
	case 0:
		return []*request{g.watch(id, t, "", "v1", "", "services", sel)}
	case 1:
		return []*request{g.watch(id, t, "", "v1", "", "endpoints", sel)}
	case 2:
		r := g.res(id, t, "list", "discovery.k8s.io", "v1", "", "endpointslices", "", "", sel+"&limit=500&resourceVersion=0")
		return []*request{r}
	default:
		return []*request{g.watch(id, t, "discovery.k8s.io", "v1", "", "endpointslices", sel)}
	}
}

var appNamespaces = []string{"default", "payments", "shop", "monitoring", "argocd", "kube-system", "databases", "tools"}

func (g *gen) kubelet(t time.Time) []*request {
	n := g.r.Intn(len(g.w.nodes))
	id, node := g.w.nodeIDs[n], g.w.nodes[n]
	switch g.r.Intn(7) {
	case 0:
		ns := g.pick(appNamespaces)
		res := g.pick([]string{"configmaps", "secrets"})
		name := g.pick([]string{"kube-root-ca.crt", "app-config", "app-tls", "registry-credentials"})
		q, d := g.watchQuery("fieldSelector=metadata.name%3D" + name)
		r := g.res(id, t, "watch", "", "v1", ns, res, "", "", strings.TrimPrefix(q, "allowWatchBookmarks=true&"))
		r.ref.Name = name
		r.started, r.latency = true, d
		return []*request{r}
	case 1:
		r := g.res(id, t, "patch", "", "v1", "", "nodes", node.name, "status", "timeout=10s")
		r.level = lvR
		r.reqObj = []byte(fmt.Sprintf(`{"status":{"$setElementOrder/conditions":[{"type":"MemoryPressure"},{"type":"DiskPressure"},{"type":"PIDPressure"},{"type":"Ready"}],"conditions":[{"lastHeartbeatTime":%q,"type":"Ready"}]}}`, t.UTC().Format(time.RFC3339)))
		return []*request{r}
	case 2:
		r := g.res(id, t, "get", "", "v1", "", "nodes", node.name, "", "resourceVersion=0&timeout=10s")
		return []*request{r}
	case 3:
		ns := g.pick([]string{"payments", "shop", "default"})
		pod := ns + "-" + hexFrom(g.r, 5)
		r := g.res(id, t, "patch", "", "v1", ns, "pods", pod, "status", "")
		r.level = lvR
		r.reqObj = []byte(fmt.Sprintf(`{"metadata":{"uid":%q},"status":{"$setElementOrder/conditions":[{"type":"Ready"}],"conditions":[{"lastTransitionTime":%q,"status":"True","type":"Ready"}]}}`, uuidFrom(g.r), t.UTC().Format(time.RFC3339)))
		return []*request{r}
	case 4:
		return g.tokenRequest(t, n, g.w.appSAs[g.r.Intn(len(g.w.appSAs))])
	default:
		ns := g.pick(appNamespaces)
		r := g.res(id, t, "create", "", "v1", ns, "events", "", "", "")
		name := fmt.Sprintf("pod-%s.%x", hexFrom(g.r, 5), g.r.Int63())
		r.ref.Name = name
		r.reqObj = coreEventObj(meta{ns: ns, name: name, created: t}, corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "pod-" + hexFrom(g.r, 5)}, "Pulled", "Container image already present on machine", "kubelet")
		r.code = 201
		return []*request{r}
	}
}

func (g *gen) tokenRequest(t time.Time, node int, sa *identity) []*request {
	id := g.w.nodeIDs[node]
	parts := strings.Split(sa.info.Username, ":")
	ns, name := parts[2], parts[3]
	pod := sa.info.Extra["authentication.kubernetes.io/pod-name"][0]
	podUID := types.UID(sa.info.Extra["authentication.kubernetes.io/pod-uid"][0])
	r := g.res(id, t, "create", "", "v1", ns, "serviceaccounts", name, "token", "")
	r.level, r.code, r.received = lvRR, 201, true
	r.reqObj = tokenRequestObjs(name, ns, pod, podUID, time.Time{}, false)
	r.respObj = tokenRequestObjs(name, ns, pod, podUID, t.Add(time.Hour), true)
	r.ann["authentication.kubernetes.io/issued-credential-id"] = "JTI=" + string(uuidFrom(g.r))
	return []*request{r}
}

var controllers = []string{"replicaset-controller", "deployment-controller", "endpointslice-controller", "horizontal-pod-autoscaler", "generic-garbage-collector", "resourcequota-controller", "job-controller"}

func (g *gen) controllers(t time.Time) []*request {
	c := g.pick(controllers)
	id := g.w.ctrlSA(c)
	ns := g.pick([]string{"payments", "shop", "default", "monitoring"})
	app := g.pick([]string{"api", "web", "worker", "frontend"})
	switch c {
	case "replicaset-controller":
		if g.chance(0.3) {
			name := app + "-" + hexFrom(g.r, 9) + "-" + hexFrom(g.r, 5)
			r := g.res(id, t, "create", "", "v1", ns, "pods", "", "", "")
			r.ref.Name = name
			r.code, r.level, r.received = 201, lvRR, false
			owner := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-7d9c6b5f4", UID: g.uid("rs/" + app), Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
			r.reqObj = podObj(meta{ns: ns, name: name, labels: map[string]string{"app": app, "pod-template-hash": "7d9c6b5f4"}}, podOpts{image: "registry.example.com/" + app + ":1.4.2", sa: "default", owner: owner})
			r.respObj = podObj(meta{ns: ns, name: name, labels: map[string]string{"app": app, "pod-template-hash": "7d9c6b5f4"}, uid: uuidFrom(g.r), rv: g.nextRV(), created: t, manager: "kube-controller-manager"}, podOpts{image: "registry.example.com/" + app + ":1.4.2", sa: "default", owner: owner})
			r.ann = merge(r.ann, podSecurity("baseline"))
			return []*request{r}
		}
		r := g.res(id, t, "update", "apps", "v1", ns, "replicasets", app+"-7d9c6b5f4", "status", "")
		return []*request{r}
	case "deployment-controller":
		r := g.res(id, t, "update", "apps", "v1", ns, "deployments", app, "status", "")
		if g.chance(0.1) {
			g.conflict(r)
		}
		return []*request{r}
	case "endpointslice-controller":
		r := g.res(id, t, "update", "discovery.k8s.io", "v1", ns, "endpointslices", app+"-"+hexFrom(g.r, 5), "", "")
		return []*request{r}
	case "horizontal-pod-autoscaler":
		r := g.res(id, t, "get", "apps", "v1", ns, "deployments", app, "scale", "")
		if g.chance(0.3) {
			r.verb, r.level = "update", lvRR
			m := meta{ns: ns, name: app, uid: g.uid("deploy/" + app), rv: g.nextRV(), created: t.Add(-30 * 24 * time.Hour)}
			r.reqObj = scaleObj(m, int32(2+g.r.Intn(6)), false)
			r.respObj = scaleObj(m, int32(2+g.r.Intn(6)), true)
		}
		return []*request{r}
	case "generic-garbage-collector", "resourcequota-controller":
		group := g.pick([]string{"apps", "batch", "rbac.authorization.k8s.io", "admissionregistration.k8s.io", "db.example.com"})
		ver := map[string]string{"apps": "v1", "batch": "v1", "rbac.authorization.k8s.io": "v1", "admissionregistration.k8s.io": "v1", "db.example.com": "v1"}[group]
		r := g.req(id, t, "get", apiPrefix(group, ver)+"?timeout=32s", nil)
		return []*request{r}
	default: // job-controller
		if g.chance(0.5) {
			return []*request{g.watch(id, t, "batch", "v1", "", "jobs", "")}
		}
		r := g.res(id, t, "update", "batch", "v1", "ci", "jobs", "nightly-report-"+fmt.Sprint(29381+g.r.Intn(20)), "status", "")
		return []*request{r}
	}
}

func (g *gen) schedulerAct(t time.Time) []*request {
	id := g.w.scheduler
	if g.chance(0.4) {
		return []*request{g.watch(id, t, "", "v1", "", "pods", "fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed")}
	}
	ns := g.pick([]string{"payments", "shop", "default"})
	pod := g.pick([]string{"api", "web", "worker"}) + "-7d9c6b5f4-" + hexFrom(g.r, 5)
	r := g.res(id, t, "create", "", "v1", ns, "pods", pod, "binding", "")
	r.code, r.level = 201, lvR
	r.reqObj = mustJSON(corev1.Binding{TypeMeta: metav1.TypeMeta{Kind: "Binding", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: ns, UID: uuidFrom(g.r)},
		Target: corev1.ObjectReference{Kind: "Node", Name: g.w.nodes[1+g.r.Intn(4)].name}})
	return []*request{r}
}

func (g *gen) apiserverAct(t time.Time) []*request {
	id := g.w.apiserver
	switch g.r.Intn(3) {
	case 0:
		return []*request{g.res(id, t, "get", "", "v1", "default", "endpoints", "kubernetes", "", "")}
	case 1:
		return []*request{g.res(id, t, "get", "", "v1", "default", "services", "kubernetes", "", "")}
	default:
		return []*request{g.watch(id, t, "apiregistration.k8s.io", "v1", "", "apiservices", "")}
	}
}

func (g *gen) anonymousAct(t time.Time) []*request {
	id := g.w.anonymous
	path := g.pick([]string{"/healthz", "/livez", "/readyz", "/readyz", "/version", "/livez?verbose", "/", "/metrics", "/openapi/v2"})
	r := g.req(id, t, "get", path, nil)
	r.latency = g.latency(time.Millisecond)
	base := strings.SplitN(path, "?", 2)[0]
	switch base {
	case "/", "/metrics", "/openapi/v2":
		// not covered by system:public-info-viewer
		if g.chance(0.5) {
			r.ips = []string{g.pick(untrustedIPs)}
			r.ua = g.pick([]string{uaScanner, uaCurl, uaGoHTTP11})
		}
		if base == "/" && g.chance(0.5) {
			r.verb = "head"
		}
		g.forbid(r)
	}
	return []*request{r}
}

var humanResources = []struct{ group, version, resource string }{
	{"", "v1", "pods"}, {"", "v1", "pods"}, {"", "v1", "services"}, {"", "v1", "configmaps"}, {"", "v1", "secrets"},
	{"apps", "v1", "deployments"}, {"apps", "v1", "deployments"}, {"apps", "v1", "statefulsets"}, {"batch", "v1", "jobs"},
	{"batch", "v1", "cronjobs"}, {"", "v1", "namespaces"}, {"", "v1", "nodes"}, {"", "v1", "events"}, {"events.k8s.io", "v1", "events"},
	{"rbac.authorization.k8s.io", "v1", "rolebindings"}, {"rbac.authorization.k8s.io", "v1", "clusterroles"},
	{"db.example.com", "v1", "postgresclusters"}, {"networking.k8s.io", "v1", "ingresses"},
}

var clusterScoped = map[string]bool{"namespaces": true, "nodes": true, "clusterroles": true, "clusterrolebindings": true}

func (g *gen) humanAct(t time.Time) []*request {
	ids := []*identity{g.w.alice, g.w.bob, g.w.bob, g.w.carol, g.w.dave}
	id := ids[g.r.Intn(len(ids))]
	var out []*request
	// kubectl discovery, as a fresh kubectl does
	if g.chance(0.2) {
		for _, p := range []string{"/api?timeout=32s", "/apis?timeout=32s"} {
			out = append(out, g.req(id, t, "get", p, nil))
			t = t.Add(time.Duration(3+g.r.Intn(10)) * time.Millisecond)
		}
		if g.chance(0.5) {
			r := g.req(id, t, "get", "/openapi/v2?timeout=32s", nil)
			r.code = 304
			out = append(out, r)
			t = t.Add(20 * time.Millisecond)
		}
	}
	hr := humanResources[g.r.Intn(len(humanResources))]
	ns := g.pick([]string{"default", "payments", "shop", "monitoring"})
	if clusterScoped[hr.resource] {
		ns = ""
	}
	name := g.pick([]string{"api", "web", "worker", "frontend", "api-7d9c6b5f4-x2x9q", "app-config"})
	var r *request
	switch k := g.r.Intn(20); {
	case k < 7:
		r = g.res(id, t, "list", hr.group, hr.version, ns, hr.resource, "", "", "limit=500")
	case k < 11:
		r = g.res(id, t, "get", hr.group, hr.version, ns, hr.resource, name, "", "")
		if g.chance(0.15) {
			g.notFound(r)
		}
	case k < 12:
		r = g.watch(id, t, hr.group, hr.version, ns, hr.resource, "")
		r.received = true
		r.latency = time.Duration(5+g.r.Intn(120)) * time.Second
	case k < 14: // kubectl scale
		r = g.res(id, t, "patch", "apps", "v1", ns, "deployments", g.pick([]string{"api", "web", "worker"}), "scale", "")
		r.level = lvRR
		n := int32(1 + g.r.Intn(8))
		r.reqObj = []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n))
		r.respObj = scaleObj(meta{ns: ns, name: r.ref.Name, uid: g.uid("deploy/" + r.ref.Name), rv: g.nextRV(), created: t.Add(-40 * 24 * time.Hour)}, n, true)
	case k < 16: // kubectl apply (client-side, strategic merge patch) of a deployment
		dn := g.pick([]string{"api", "web", "worker"})
		r = g.res(id, t, "patch", "apps", "v1", ns, "deployments", dn, "", "fieldManager=kubectl-client-side-apply&fieldValidation=Strict")
		r.level = lvRR
		img := fmt.Sprintf("registry.example.com/%s:1.%d.%d", dn, 4+g.r.Intn(3), g.r.Intn(10))
		r.reqObj = []byte(fmt.Sprintf(`{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":%q}],"containers":[{"image":%q,"name":%q}]}}}}`, dn, img, dn))
		r.respObj = deploymentObj(meta{ns: ns, name: dn, labels: map[string]string{"app": dn}, uid: g.uid("deploy/" + dn), rv: g.nextRV(), created: t.Add(-40 * 24 * time.Hour), manager: "kubectl-client-side-apply", gen: int64(10 + g.r.Intn(40))}, img, 3, 0)
		if g.chance(0.1) {
			g.webhookError(r)
		}
	case k < 17: // kubectl create configmap
		cm := g.pick([]string{"app-config", "feature-flags", "nginx-conf"})
		r = g.res(id, t, "create", "", "v1", ns, "configmaps", cm, "", "fieldManager=kubectl-create&fieldValidation=Strict")
		r.level = lvRR
		m := meta{ns: ns, name: cm}
		data := map[string]string{"LOG_LEVEL": g.pick([]string{"debug", "info"}), "FEATURE_X": "true"}
		r.reqObj = configMapObj(m, data)
		if g.chance(0.4) {
			g.alreadyExists(r)
		} else {
			r.code = 201
			m.uid, m.rv, m.created, m.manager = uuidFrom(g.r), g.nextRV(), t, "kubectl-create"
			r.respObj = configMapObj(m, data)
		}
	case k < 18: // kubectl delete pod
		r = g.res(id, t, "delete", "", "v1", ns, "pods", "api-7d9c6b5f4-"+hexFrom(g.r, 5), "", "")
		r.level = lvR
		r.reqObj = []byte(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`)
		if ns == "" {
			r = g.res(id, t, "get", "", "v1", "", "nodes", g.w.nodes[1].name, "", "")
		}
	case k < 19: // impersonation: kubectl --as
		r = g.res(g.w.alice, t, "list", "", "v1", "payments", "pods", "", "", "limit=500")
		g.impersonate(r, authnv1.UserInfo{Username: "system:serviceaccount:payments:payments-api", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:payments", "system:authenticated"}})
	default: // kubectl auth can-i
		r = g.res(id, t, "create", "authorization.k8s.io", "v1", "", "selfsubjectaccessreviews", "", "", "")
		r.level, r.code = lvRR, 201
		attrs := &authzv1.ResourceAttributes{Namespace: ns, Verb: "delete", Resource: "pods"}
		r.reqObj = mustJSON(authzv1.SelfSubjectAccessReview{TypeMeta: metav1.TypeMeta{Kind: "SelfSubjectAccessReview", APIVersion: "authorization.k8s.io/v1"}, Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}})
		r.respObj = mustJSON(authzv1.SelfSubjectAccessReview{TypeMeta: metav1.TypeMeta{Kind: "SelfSubjectAccessReview", APIVersion: "authorization.k8s.io/v1"}, Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}, Status: authzv1.SubjectAccessReviewStatus{Allowed: id != g.w.carol}})
	}
	// bob has edit in default only; elsewhere many of his requests are denied
	if id == g.w.bob && r.ref != nil && r.ref.Namespace != "default" && r.ref.Resource != "selfsubjectaccessreviews" && r.code < 300 && g.chance(0.5) {
		g.forbid(r)
	}
	if r.ref != nil && r.ref.Resource == "secrets" && r.code == 200 && r.verb == "get" {
		r.level = lvRR
		r.respObj = secretObj(meta{ns: ns, name: name, uid: g.uid("secret/" + ns + name), rv: g.nextRV(), created: t.Add(-90 * 24 * time.Hour), manager: "kubectl-create"}, true, false)
	}
	return append(out, r)
}

func (g *gen) argoAct(t time.Time) []*request {
	id := g.w.argocd
	switch g.r.Intn(6) {
	case 0:
		gr := [][2]string{{"apps", "deployments"}, {"", "configmaps"}, {"db.example.com", "postgresclusters"}}[g.r.Intn(3)]
		return []*request{g.watch(id, t, gr[0], "v1", "", gr[1], "")}
	case 1:
		r := g.res(id, t, "list", "apps", "v1", "", "deployments", "", "", "limit=500&resourceVersion=0")
		if g.chance(0.3) {
			g.tooMany(r)
		}
		return []*request{r}
	case 2:
		dn := g.pick([]string{"api", "web", "worker"})
		ns := g.pick([]string{"payments", "shop"})
		r := g.res(id, t, "patch", "apps", "v1", ns, "deployments", dn, "", "fieldManager=argocd-controller&force=true")
		r.level = lvRR
		img := fmt.Sprintf("registry.example.com/%s:1.%d.0", dn, 4+g.r.Intn(3))
		r.reqObj = []byte(fmt.Sprintf(`{"metadata":{"labels":{"app.kubernetes.io/instance":%q}},"spec":{"template":{"spec":{"containers":[{"image":%q,"name":%q}]}}}}`, ns+"-"+dn, img, dn))
		r.respObj = deploymentObj(meta{ns: ns, name: dn, labels: map[string]string{"app": dn, "app.kubernetes.io/instance": ns + "-" + dn}, uid: g.uid("deploy/" + dn), rv: g.nextRV(), created: t.Add(-40 * 24 * time.Hour), manager: "argocd-controller", op: metav1.ManagedFieldsOperationApply, gen: int64(10 + g.r.Intn(40))}, img, 3, 0)
		if g.chance(0.15) {
			g.invalid(r, "Deployment", "spec.template.spec.containers[0].image", "Required value")
		}
		return []*request{r}
	case 3:
		r := g.res(id, t, "get", "", "v1", "argocd", "secrets", "argocd-secret", "", "")
		return []*request{r}
	default:
		r := g.res(id, t, "get", "db.example.com", "v1", "databases", "postgresclusters", "orders", "", "")
		return []*request{r}
	}
}

func (g *gen) promAct(t time.Time) []*request {
	id := g.w.prom
	switch g.r.Intn(3) {
	case 0:
		r := g.req(id, t, "get", "/metrics", nil)
		r.ann["authorization.k8s.io/reason"] = rbacCRB("prometheus-k8s", "prometheus-k8s", "ServiceAccount", "prometheus-k8s/monitoring")
		r.latency = g.latency(60 * time.Millisecond)
		return []*request{r}
	case 1:
		return []*request{g.res(id, t, "list", "", "v1", "", "pods", "", "", "limit=500&resourceVersion=0")}
	default:
		return []*request{g.watch(id, t, "", "v1", "", "endpoints", "")}
	}
}

func (g *gen) reviewAct(t time.Time) []*request {
	ids := []*identity{g.w.metricsSA, g.w.rbacProxy}
	id := ids[g.r.Intn(2)]
	subject := g.w.prom.info
	if g.chance(0.5) {
		r := g.res(id, t, "create", "authentication.k8s.io", "v1", "", "tokenreviews", "", "", "")
		r.level, r.code, r.received = lvRR, 201, true
		r.reqObj = tokenReviewObj(false, authnv1.UserInfo{})
		r.respObj = tokenReviewObj(true, subject)
		return []*request{r}
	}
	r := g.res(id, t, "create", "authorization.k8s.io", "v1", "", "subjectaccessreviews", "", "", "")
	r.level, r.code = lvRR, 201
	na := &authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}
	r.reqObj = sarObj(subject.Username, subject.Groups, nil, na, false, "", false)
	r.respObj = sarObj(subject.Username, subject.Groups, nil, na, true, `RBAC: allowed by ClusterRoleBinding "prometheus-k8s" of ClusterRole "prometheus-k8s" to ServiceAccount "prometheus-k8s/monitoring"`, true)
	return []*request{r}
}

func (g *gen) appAct(t time.Time) []*request {
	id := g.w.appSAs[g.r.Intn(len(g.w.appSAs))]
	ns := strings.Split(id.info.Username, ":")[2]
	switch g.r.Intn(4) {
	case 0:
		return []*request{g.res(id, t, "get", "", "v1", ns, "configmaps", "app-config", "", "")}
	case 1:
		r := g.res(id, t, "list", "", "v1", "kube-system", "secrets", "", "", "")
		return []*request{g.forbid(r)}
	case 2:
		return []*request{g.res(id, t, "get", "", "v1", ns, "secrets", "app-tls", "", "")}
	default:
		return []*request{g.watch(id, t, "", "v1", ns, "configmaps", "")}
	}
}

func (g *gen) errorAct(t time.Time) []*request {
	switch g.r.Intn(7) {
	case 6: // a script with an expired token from outside
		r := g.res(g.w.bob, t, "list", "", "v1", "default", "pods", "", "", "limit=500")
		r.ips, r.ua = []string{g.pick(untrustedIPs)}, uaGoHTTP
		return []*request{g.authnFail(r)}
	case 0:
		r := g.res(g.w.helmSA, t, "create", "", "v1", "payments", "serviceaccounts", "payments-api", "", "")
		r.level = lvRR
		r.reqObj = mustJSON(corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{Kind: "ServiceAccount", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "payments-api", Namespace: "payments"}})
		return []*request{g.alreadyExists(r)}
	case 1:
		r := g.res(g.w.dave, t, "update", "apps", "v1", "shop", "deployments", "web", "", "")
		r.level = lvRR
		r.reqObj = deploymentObj(meta{ns: "shop", name: "web", labels: map[string]string{"app": "web"}, uid: g.uid("deploy/web"), rv: fmt.Sprint(g.rv - 500)}, "registry.example.com/web:1.6.0", 3, 0)
		return []*request{g.conflict(r)}
	case 2:
		r := g.res(g.w.carol, t, "get", "batch", "v1", "ci", "jobs", "nightly-report-1", "", "")
		return []*request{g.notFound(r)}
	case 3:
		r := g.res(g.w.appSAs[0], t, "list", "", "v1", "payments", "pods", "", "", "limit=500")
		return []*request{g.tooMany(r)}
	case 4:
		r := g.res(g.w.nodeIDs[2], t, "get", "", "v1", "shop", "secrets", "registry-credentials", "", "")
		return []*request{g.forbid(r)}
	default:
		r := g.res(g.w.appSAs[1], t, "get", "", "v1", "", "nodes", "", "", "")
		r.verb = "list"
		r.status = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonTimeout, Message: "The list operation against nodes could not be completed at this time, please try again.", Details: &metav1.StatusDetails{Kind: "nodes", RetryAfterSeconds: 2}}
		r.code = 504
		r.latency = 60 * time.Second
		return []*request{r}
	}
}

func (g *gen) panicAct(t time.Time) []*request {
	r := g.res(g.w.argocd, t, "list", "db.example.com", "v1", "", "postgresclusters", "", "", "limit=500")
	r.panicked, r.received = true, true
	return []*request{r}
}

// large builds a ~20 KB RequestResponse ResponseComplete event.
func (g *gen) large(t time.Time) *request {
	target := 17000 + g.r.Intn(6000)
	var r *request
	build := func(n int) {}
	switch g.r.Intn(3) {
	case 0: // argocd updates its big ConfigMap
		r = g.res(g.w.argocd, t, "update", "", "v1", "argocd", "configmaps", "argocd-cm", "", "")
		build = func(n int) {
			data := map[string]string{"resource.customizations": bigYAML(n), "url": "https://argocd.example.com"}
			m := meta{ns: "argocd", name: "argocd-cm", labels: map[string]string{"app.kubernetes.io/part-of": "argocd"}, uid: g.uid("cm/argocd-cm"), rv: fmt.Sprint(g.rv)}
			r.reqObj = configMapObj(m, data)
			m.rv, m.created, m.manager = fmt.Sprint(g.rv+3), t.Add(-60*24*time.Hour), "argocd-server"
			r.respObj = configMapObj(m, data)
		}
	case 1: // helm upgrades a deployment with a large env
		ns := g.pick([]string{"payments", "shop"})
		r = g.res(g.w.helmSA, t, "update", "apps", "v1", ns, "deployments", "api", "", "")
		build = func(n int) {
			m := meta{ns: ns, name: "api", labels: map[string]string{"app": "api", "app.kubernetes.io/managed-by": "Helm"}, uid: g.uid("deploy/api"), rv: fmt.Sprint(g.rv)}
			r.reqObj = deploymentObj(m, "registry.example.com/api:1.5.0", 3, n/40)
			m.rv, m.created, m.manager = fmt.Sprint(g.rv+2), t.Add(-40*24*time.Hour), "helm"
			r.respObj = deploymentObj(m, "registry.example.com/api:1.5.0", 3, n/40)
		}
	default: // a custom resource with a large spec
		r = g.res(g.w.argocd, t, "update", "db.example.com", "v1", "databases", "postgresclusters", "orders", "", "")
		build = func(n int) {
			spec := map[string]any{"instances": 3, "postgresVersion": 16, "parameters": bigParams(n)}
			m := meta{ns: "databases", name: "orders", labels: map[string]string{"app": "postgres", "tier": "db"}, uid: g.uid("pgc/orders"), rv: fmt.Sprint(g.rv)}
			r.reqObj = customObj(m, spec)
			m.rv, m.created, m.manager = fmt.Sprint(g.rv+2), t.Add(-100*24*time.Hour), "argocd-controller"
			r.respObj = customObj(m, spec)
		}
	}
	r.level, r.received = lvRR, false
	r.latency = g.latency(40 * time.Millisecond)
	// grow the body until the event reaches the target size
	n := 2000
	for i := 0; i < 20; i++ {
		build(n)
		size := 0
		for _, ev := range r.events() {
			b, _ := json.Marshal(&ev)
			size = len(b)
		}
		if size >= target-600 && size <= target+600 {
			break
		}
		n = int(float64(n) * float64(target) / float64(size) * 1.0)
		if n < 1 {
			n = 1
		}
	}
	g.rv += 5
	return r
}

func bigYAML(n int) string {
	var sb strings.Builder
	for i := 0; sb.Len() < n; i++ {
		fmt.Fprintf(&sb, "example.com/Widget%d:\n  health.lua: |\n    hs = {}\n    if obj.status ~= nil and obj.status.ready == %d then hs.status = \"Healthy\" end\n    return hs\n", i, i%5)
	}
	return sb.String()
}

func bigParams(n int) map[string]string {
	p := map[string]string{}
	size := 0
	for i := 0; size < n; i++ {
		k := fmt.Sprintf("custom.setting_%04d", i)
		v := fmt.Sprintf("%d%s", i*37%1000, []string{"MB", "ms", "", "kB"}[i%4])
		p[k] = v
		size += len(k) + len(v) + 6
	}
	return p
}

// ----- scripted scenarios (mix profile) -----

func (g *gen) step(t *time.Time, min, max time.Duration) time.Time {
	*t = t.Add(min + time.Duration(g.r.Int63n(int64(max-min)+1)))
	return *t
}

func (g *gen) scripted() []*request {
	var out []*request
	add := func(rs ...*request) { out = append(out, rs...) }
	w := g.w
	dbLabels := func(app string) map[string]string {
		return map[string]string{"app": app, "tier": "db", "app.kubernetes.io/part-of": "orders"}
	}

	// 1. Critical workloads are created: StatefulSets by argocd, pods by the
	// statefulset controller (the only place the pod labels appear), bound by the scheduler.
	t := g.start.Add(20 * time.Minute)
	for _, db := range []struct{ app, image string }{{"postgres", "postgres:16.3"}, {"mysql", "mysql:8.4"}} {
		r := g.res(w.argocd, g.step(&t, time.Second, 3*time.Second), "create", "apps", "v1", "databases", "statefulsets", db.app, "", "fieldManager=argocd-controller")
		r.level, r.code, r.received = lvRR, 201, true
		m := meta{ns: "databases", name: db.app, labels: dbLabels(db.app)}
		r.reqObj = statefulSetObj(m, db.image, 1)
		m.uid, m.rv, m.created, m.manager, m.gen = g.uid("sts/"+db.app), g.nextRV(), t, "argocd-controller", 1
		r.respObj = statefulSetObj(m, db.image, 1)
		add(r)
		pod := db.app + "-0"
		pr := g.res(w.ctrlSA("statefulset-controller"), g.step(&t, 50*time.Millisecond, 300*time.Millisecond), "create", "", "v1", "databases", "pods", pod, "", "")
		pr.level, pr.code = lvRR, 201
		pl := merge(dbLabels(db.app), map[string]string{"controller-revision-hash": db.app + "-5b7c9d8f6", "statefulset.kubernetes.io/pod-name": pod, "apps.kubernetes.io/pod-index": "0"})
		owner := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: db.app, UID: g.uid("sts/" + db.app), Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
		pm := meta{ns: "databases", name: pod, labels: pl}
		pr.reqObj = podObj(pm, podOpts{image: db.image, sa: db.app, owner: owner})
		pm.uid, pm.rv, pm.created, pm.manager = g.uid("pod/"+pod), g.nextRV(), t, "kube-controller-manager"
		pr.respObj = podObj(pm, podOpts{image: db.image, sa: db.app, owner: owner})
		pr.ann = merge(pr.ann, podSecurity("baseline"))
		add(pr)
		br := g.res(w.scheduler, g.step(&t, 5*time.Millisecond, 40*time.Millisecond), "create", "", "v1", "databases", "pods", pod, "binding", "")
		br.code = 201
		add(br)
	}
	// a helm-created Secret with data and stringData
	{
		r := g.res(w.helmSA, g.step(&t, time.Second, 5*time.Second), "create", "", "v1", "databases", "secrets", "postgres-credentials", "", "")
		r.level, r.code, r.received = lvRR, 201, true
		m := meta{ns: "databases", name: "postgres-credentials", labels: map[string]string{"app": "postgres"}}
		r.reqObj = secretObj(m, true, true)
		m.uid, m.rv, m.created, m.manager = g.uid("secret/postgres-credentials"), g.nextRV(), t, "helm"
		r.respObj = secretObj(m, true, false)
		r.ann["authorization.k8s.io/reason"] = rbacRB("deployer", "databases", "admin", "ServiceAccount", "deployer/ci")
		add(r)
	}

	// 2. Later, a get of a db pod at RequestResponse (labels in the response body).
	t = g.start.Add(2*time.Hour + time.Duration(g.r.Intn(600))*time.Second)
	{
		r := g.res(w.carol, t, "get", "", "v1", "databases", "pods", "mysql-0", "", "")
		r.level = lvRR
		r.respObj = podObj(meta{ns: "databases", name: "mysql-0", labels: merge(dbLabels("mysql"), map[string]string{"statefulset.kubernetes.io/pod-name": "mysql-0"}), uid: g.uid("pod/mysql-0"), rv: g.nextRV(), created: g.start.Add(20 * time.Minute), manager: "kube-controller-manager"},
			podOpts{image: "mysql:8.4", sa: "mysql", node: "worker-2", status: true, podIP: "10.244.2.40"})
		add(r)
	}

	// 3. Expected DBA at night: list, get, exec into postgres-0, follow logs, read credentials.
	t = g.at(2, 14)
	{
		id := w.dba
		add(g.res(id, t, "list", "", "v1", "databases", "pods", "", "", "limit=500"))
		add(g.res(id, g.step(&t, 2*time.Second, 8*time.Second), "get", "apps", "v1", "databases", "statefulsets", "postgres", "", ""))
		ex := g.res(id, g.step(&t, 5*time.Second, 20*time.Second), "create", "", "v1", "databases", "pods", "postgres-0", "exec", "command=psql&command=-U&command=postgres&container=postgres&stdin=true&stdout=true&tty=true")
		add(g.longRunning(ex, 14*time.Minute+time.Duration(g.r.Intn(60000))*time.Millisecond, 101))
		lg := g.res(id, g.step(&t, 30*time.Second, 90*time.Second), "get", "", "v1", "databases", "pods", "mysql-0", "log", "container=mysql&follow=true&tailLines=100")
		add(g.longRunning(lg, 3*time.Minute, 200))
		add(g.res(id, g.step(&t, 10*time.Second, 30*time.Second), "get", "", "v1", "databases", "secrets", "postgres-credentials", "", ""))
		add(g.res(id, g.at(11, 30), "get", "apps", "v1", "databases", "statefulsets", "mysql", "", ""))
	}

	// 4. Others touch db pods at other times, at Metadata level only:
	// carol execs into postgres-0 (kubectl 1.31 websocket: verb get), bob deletes mysql-0.
	{
		t = g.at(15, 10)
		ex := g.res(w.carol, t, "get", "", "v1", "databases", "pods", "postgres-0", "exec", "command=sh&command=-c&command=pg_dumpall+-U+postgres&container=postgres&stdout=true")
		ex.ann["authorization.k8s.io/reason"] = rbacRB("carol-debug", "databases", "pod-exec", "User", "carol@example.com")
		add(g.longRunning(ex, 47*time.Second, 101))
		t = g.at(19, 42)
		del := g.res(w.bob, t, "delete", "", "v1", "databases", "pods", "mysql-0", "", "")
		del.received = true
		del.ann["authorization.k8s.io/reason"] = rbacRB("bob-databases", "databases", "edit", "User", "bob")
		add(del)
		pf := g.res(w.dave, g.at(17, 55), "create", "", "v1", "databases", "pods", "postgres-0", "portforward", "")
		pf.ann["authorization.k8s.io/reason"] = rbacRB("sre-databases", "databases", "admin", "Group", "oidc:sre")
		add(g.longRunning(pf, 6*time.Minute, 101))
		at := g.res(w.dave, g.at(18, 5), "create", "", "v1", "databases", "pods", "mysql-0", "attach", "container=mysql&stdin=true&stdout=true&tty=true")
		at.ann["authorization.k8s.io/reason"] = rbacRB("sre-databases", "databases", "admin", "Group", "oidc:sre")
		add(g.longRunning(at, 90*time.Second, 101))
	}

	// 5. Authentication/authorization failure burst within a minute:
	// untrusted IP (401, 403) then trusted IP (401, 403), then success from the trusted IP.
	{
		t = g.at(22, 31)
		bad, good := "203.0.113.77", "10.20.4.9"
		mk := func(ip, verb, group, ns, resource, name string) *request {
			r := g.res(w.bob, g.step(&t, 800*time.Millisecond, 4*time.Second), verb, group, "v1", ns, resource, name, "", "")
			if name == "" && verb == "get" {
				r.verb = "list"
			}
			r.ips, r.ua, r.received = []string{ip}, uaKubectl, true
			return r
		}
		for i := 0; i < 3; i++ {
			add(g.authnFail(mk(bad, "get", "", "kube-system", "secrets", "")))
		}
		add(g.forbid(mk(bad, "get", "", "kube-system", "secrets", "")))
		add(g.forbid(mk(bad, "get", "", "kube-system", "secrets", "bootstrap-token-abcdef")))
		add(g.forbid(mk(bad, "get", "rbac.authorization.k8s.io", "", "clusterrolebindings", "")))
		add(g.authnFail(mk(good, "get", "", "kube-system", "secrets", "")))
		add(g.forbid(mk(good, "get", "", "kube-system", "secrets", "")))
		add(g.forbid(mk(good, "get", "", "databases", "secrets", "postgres-credentials")))
		add(mk(good, "get", "", "default", "pods", ""))
	}

	// 6. Burst of Secret reads by one identity (backup-agent) across namespaces.
	{
		t = g.at(4, 12)
		add(g.res(w.backup, t, "list", "", "v1", "", "secrets", "", "", "limit=500"))
		names := []string{"app-tls", "registry-credentials", "db-password", "api-token", "postgres-credentials", "mysql-credentials", "argocd-secret", "grafana-admin", "smtp-credentials", "s3-backup-key"}
		for i := 0; i < 24; i++ {
			ns := appNamespaces[g.r.Intn(len(appNamespaces))]
			r := g.res(w.backup, g.step(&t, 200*time.Millisecond, 1500*time.Millisecond), "get", "", "v1", ns, "secrets", names[g.r.Intn(len(names))], "", "")
			if i%9 == 8 {
				g.notFound(r)
			}
			add(r)
		}
	}

	// 7. Burst of deletes by dave, then the namespace controller's deletecollections.
	{
		t = g.at(12, 20)
		ns := "payments-staging"
		for i, x := range []struct{ group, res, name string }{
			{"apps", "deployments", "api"}, {"apps", "deployments", "worker"}, {"apps", "deployments", "web"}, {"", "services", "api"}, {"", "services", "web"},
			{"", "configmaps", "app-config"}, {"", "configmaps", "feature-flags"}, {"", "secrets", "db-password"}, {"", "secrets", "api-token"},
			{"batch", "cronjobs", "cleanup"}, {"rbac.authorization.k8s.io", "rolebindings", "payments-api"}, {"", "persistentvolumeclaims", "data-api-0"},
		} {
			r := g.res(w.dave, g.step(&t, 300*time.Millisecond, 2*time.Second), "delete", x.group, "v1", ns, x.res, x.name, "", "")
			r.level = lvR
			r.reqObj = []byte(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`)
			if i == 4 {
				g.notFound(r)
			}
			add(r)
		}
		r := g.res(w.dave, g.step(&t, time.Second, 3*time.Second), "delete", "", "v1", "", "namespaces", ns, "", "")
		r.level = lvRR
		r.respObj = namespaceObj(meta{name: ns, labels: map[string]string{"kubernetes.io/metadata.name": ns}, uid: g.uid("ns/" + ns), rv: g.nextRV(), created: g.start.Add(-200 * 24 * time.Hour), manager: "kubectl-create"}, true)
		add(r)
		nc := w.ctrlSA("namespace-controller")
		for _, x := range []struct{ group, res string }{{"", "pods"}, {"", "configmaps"}, {"", "secrets"}, {"apps", "replicasets"}, {"", "serviceaccounts"}, {"", "events"}} {
			add(g.res(nc, g.step(&t, 50*time.Millisecond, 400*time.Millisecond), "deletecollection", x.group, "v1", ns, x.res, "", "", ""))
		}
	}

	// 8. RBAC: alice grants cluster-admin to bob, a rolebinding by the deployer, later removal.
	{
		t = g.at(17, 5)
		r := g.res(w.alice, t, "create", "rbac.authorization.k8s.io", "v1", "", "clusterrolebindings", "tmp-admin-bob", "", "fieldManager=kubectl-create&fieldValidation=Strict")
		r.level, r.code = lvRR, 201
		subj := rbacv1.Subject{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "bob"}
		m := meta{name: "tmp-admin-bob"}
		r.reqObj = clusterRoleBindingObj(m, "cluster-admin", subj)
		m.uid, m.rv, m.created, m.manager = g.uid("crb/tmp-admin-bob"), g.nextRV(), t, "kubectl-create"
		r.respObj = clusterRoleBindingObj(m, "cluster-admin", subj)
		add(r)
		rb := g.res(w.helmSA, g.at(16, 45), "create", "rbac.authorization.k8s.io", "v1", "payments", "rolebindings", "payments-api", "", "")
		rb.level, rb.code = lvRR, 201
		sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "payments-api", Namespace: "payments"}
		m = meta{ns: "payments", name: "payments-api", labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}}
		rb.reqObj = roleBindingObj(m, "view", sa)
		m.uid, m.rv, m.created, m.manager = g.uid("rb/payments-api"), g.nextRV(), rb.at, "helm"
		rb.respObj = roleBindingObj(m, "view", sa)
		add(rb)
		d := g.res(w.alice, g.at(23, 40), "delete", "rbac.authorization.k8s.io", "v1", "", "clusterrolebindings", "tmp-admin-bob", "", "")
		d.level = lvRR
		d.respObj = statusObj(&metav1.Status{Status: metav1.StatusSuccess, Details: &metav1.StatusDetails{Name: "tmp-admin-bob", Group: "rbac.authorization.k8s.io", Kind: "clusterrolebindings", UID: g.uid("crb/tmp-admin-bob")}})
		d.status = &metav1.Status{Status: metav1.StatusSuccess, Details: &metav1.StatusDetails{Name: "tmp-admin-bob", Group: "rbac.authorization.k8s.io", Kind: "clusterrolebindings", UID: g.uid("crb/tmp-admin-bob")}}
		add(d)
		// impersonation of a privileged identity
		ir := g.res(w.alice, g.at(14, 20), "get", "", "v1", "payments", "secrets", "payments-db", "", "")
		add(g.impersonate(ir, authnv1.UserInfo{Username: "system:serviceaccount:payments:payments-api", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:payments", "system:authenticated"}}))
	}

	// 9. Privileged pod: rejected by Pod Security in payments, then created in default; exec into it.
	{
		t = g.at(21, 0)
		mkPod := func(ns string) *request {
			r := g.res(w.bob, g.step(&t, 2*time.Second, 20*time.Second), "create", "", "v1", ns, "pods", "debug-shell", "", "fieldManager=kubectl-run")
			r.level, r.code = lvRR, 201
			m := meta{ns: ns, name: "debug-shell", labels: map[string]string{"run": "debug-shell"}}
			o := podOpts{image: "nicolaka/netshoot:v0.13", sa: "default", privileged: true, hostPID: true, hostNetwork: true, hostPath: "/"}
			r.reqObj = podObj(m, o)
			m.uid, m.rv, m.created, m.manager = g.uid("pod/debug-shell/"+ns), g.nextRV(), t, "kubectl-run"
			r.respObj = podObj(m, o)
			return r
		}
		rej := mkPod("payments")
		rej.ann["authorization.k8s.io/reason"] = rbacRB("developers-edit", "payments", "edit", "Group", "developers")
		rej.code = 403
		rej.status = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Details: &metav1.StatusDetails{Name: "debug-shell", Kind: "pods"},
			Message: `pods "debug-shell" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true), privileged (container "debug" must not set securityContext.privileged=true), hostPath volumes (volume "host")`}
		rej.respObj = nil
		rej.ann = merge(rej.ann, podSecurity("baseline"))
		add(rej)
		ok := mkPod("default")
		ok.ann = merge(ok.ann, podSecurity("privileged"))
		add(ok)
		ex := g.res(w.bob, g.step(&t, 5*time.Second, 15*time.Second), "get", "", "v1", "default", "pods", "debug-shell", "exec", "command=nsenter&command=-t&command=1&command=-m&command=-u&command=-i&command=-n&command=sh&container=debug-shell&stdin=true&stdout=true&tty=true")
		add(g.longRunning(ex, 5*time.Minute, 101))
	}

	// 10. Admission webhooks, a CRD and a custom resource (helm by alice).
	{
		t = g.at(16, 40)
		for _, mut := range []bool{false, true} {
			res, name := "validatingwebhookconfigurations", "policy-validating"
			if mut {
				res, name = "mutatingwebhookconfigurations", "policy-mutating"
			}
			r := g.res(w.alice, g.step(&t, 200*time.Millisecond, time.Second), "create", "admissionregistration.k8s.io", "v1", "", res, name, "", "")
			r.ua, r.level, r.code = uaHelm, lvRR, 201
			m := meta{name: name, labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}}
			r.reqObj = webhookConfigObj(m, mut)
			m.uid, m.rv, m.created, m.manager = g.uid("wh/"+name), g.nextRV(), t, "helm"
			r.respObj = webhookConfigObj(m, mut)
			add(r)
		}
		crd := g.res(w.alice, g.step(&t, 200*time.Millisecond, time.Second), "create", "apiextensions.k8s.io", "v1", "", "customresourcedefinitions", "postgresclusters.db.example.com", "", "")
		crd.ua, crd.level, crd.code = uaHelm, lvRR, 201
		crd.reqObj = []byte(`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"postgresclusters.db.example.com"},"spec":{"group":"db.example.com","names":{"kind":"PostgresCluster","listKind":"PostgresClusterList","plural":"postgresclusters","singular":"postgrescluster"},"scope":"Namespaced","versions":[{"name":"v1","schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}},"served":true,"storage":true}]}}`)
		crd.respObj = crd.reqObj
		add(crd)
		cr := g.res(w.argocd, g.step(&t, 5*time.Second, 30*time.Second), "create", "db.example.com", "v1", "databases", "postgresclusters", "orders", "", "")
		cr.level, cr.code = lvRR, 201
		m := meta{ns: "databases", name: "orders", labels: map[string]string{"app": "postgres", "tier": "db"}}
		cr.reqObj = customObj(m, map[string]any{"instances": 3, "postgresVersion": 16})
		m.uid, m.rv, m.created, m.manager = g.uid("pgc/orders"), g.nextRV(), t, "argocd-controller"
		cr.respObj = customObj(m, map[string]any{"instances": 3, "postgresVersion": 16})
		add(cr)
		// a mutating-webhook-patched pod create
		pr := g.res(w.ctrlSA("replicaset-controller"), g.step(&t, 30*time.Second, 60*time.Second), "create", "", "v1", "shop", "pods", "web-6b7f9d8c5d-k8s2d", "", "")
		pr.level, pr.code = lvRR, 201
		pm := meta{ns: "shop", name: "web-6b7f9d8c5d-k8s2d", labels: map[string]string{"app": "web"}}
		pr.reqObj = podObj(pm, podOpts{image: "registry.example.com/web:1.6.0", sa: "web"})
		pm.uid, pm.rv, pm.created, pm.manager = uuidFrom(g.r), g.nextRV(), t, "kube-controller-manager"
		pr.respObj = podObj(pm, podOpts{image: "registry.example.com/web:1.6.0", sa: "web"})
		pr.ann = merge(pr.ann, podSecurity("restricted"))
		pr.ann["mutation.webhook.admission.k8s.io/round_0_index_0"] = `{"configuration":"policy-mutating","webhook":"mutate.policy.example.com","mutated":true}`
		pr.ann["patch.webhook.admission.k8s.io/round_0_index_0"] = `{"configuration":"policy-mutating","webhook":"mutate.policy.example.com","patch":[{"op":"add","path":"/metadata/labels/policy.example.com~1checked","value":"true"}],"patchType":"JSONPatch"}`
		add(pr)
	}

	// 11. CSRs: a node CSR auto-approved; alice approves a suspicious client CSR at night.
	{
		t = g.at(9, 0)
		node := w.nodeIDs[4]
		name := "csr-" + hexFrom(g.r, 5)
		c := g.res(node, t, "create", "certificates.k8s.io", "v1", "", "certificatesigningrequests", name, "", "")
		c.level, c.code = lvRR, 201
		m := meta{name: name}
		c.reqObj = csrObj(m, "kubernetes.io/kube-apiserver-client-kubelet", "", nil, false, "")
		m.uid, m.rv, m.created, m.manager = g.uid("csr/"+name), g.nextRV(), t, "kubelet"
		c.respObj = csrObj(m, "kubernetes.io/kube-apiserver-client-kubelet", node.name(), node.info.Groups, false, "")
		add(c)
		ap := g.res(w.ctrlSA("certificate-controller"), g.step(&t, 20*time.Millisecond, 200*time.Millisecond), "update", "certificates.k8s.io", "v1", "", "certificatesigningrequests", name, "approval", "")
		ap.ua, ap.level = uaCSRApprover, lvRR
		ap.reqObj = csrObj(meta{name: name, uid: m.uid, rv: m.rv}, "kubernetes.io/kube-apiserver-client-kubelet", node.name(), node.info.Groups, true, "kube-controller-manager")
		m.rv = g.nextRV()
		ap.respObj = csrObj(m, "kubernetes.io/kube-apiserver-client-kubelet", node.name(), node.info.Groups, true, "kube-controller-manager")
		add(ap)

		t = g.at(3, 2)
		name = "mallory-admin"
		c2 := g.res(w.bob, t, "create", "certificates.k8s.io", "v1", "", "certificatesigningrequests", name, "", "")
		c2.level, c2.code = lvRR, 201
		c2.ann["authorization.k8s.io/reason"] = rbacCRB("system:certificates-requesters", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "Group", "developers")
		m = meta{name: name}
		c2.reqObj = csrObj(m, "kubernetes.io/kube-apiserver-client", "", nil, false, "")
		m.uid, m.rv, m.created, m.manager = g.uid("csr/"+name), g.nextRV(), t, "kubectl-create"
		c2.respObj = csrObj(m, "kubernetes.io/kube-apiserver-client", "bob", w.bob.info.Groups, false, "")
		add(c2)
		ap2 := g.res(w.alice, g.step(&t, time.Minute, 3*time.Minute), "update", "certificates.k8s.io", "v1", "", "certificatesigningrequests", name, "approval", "")
		ap2.level = lvRR
		ap2.reqObj = csrObj(meta{name: name, uid: m.uid, rv: m.rv}, "kubernetes.io/kube-apiserver-client", "bob", w.bob.info.Groups, true, "alice@example.com")
		m.rv = g.nextRV()
		ap2.respObj = csrObj(m, "kubernetes.io/kube-apiserver-client", "bob", w.bob.info.Groups, true, "alice@example.com")
		add(ap2)
	}

	// 12. Tokens: TokenRequest by a kubelet, TokenReview by metrics-server, a Panic, large events.
	{
		add(g.tokenRequest(g.at(10, 5), 1, w.appSAs[0])...)
		add(g.reviewAct(g.at(10, 6))...)
		add(g.panicAct(g.at(13, 13))...)
		for _, h := range []int{18, 1, 7} {
			add(g.large(g.at(h, 33)))
		}
		// IPv6 and X-Forwarded-For from untrusted ranges
		r := g.res(w.carol, g.at(8, 15), "list", "", "v1", "shop", "pods", "", "", "limit=500")
		r.ips = []string{untrustedIPv6[1], lbProxyIP}
		add(r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}
