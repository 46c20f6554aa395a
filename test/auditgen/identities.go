package auditgen

import (
	"fmt"
	"math/rand"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Version strings used in user agents.
const (
	k8sVersion = "v1.31.0"
	gitCommit  = "abc1234"
)

// Well-known user agents.
var (
	uaKubectl     = "kubectl/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit
	uaKubectlMac  = "kubectl/v1.30.2 (darwin/arm64) kubernetes/3968350"
	uaKubelet     = "kubelet/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit
	uaScheduler   = "kube-scheduler/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit
	uaSchedulerLE = uaScheduler + "/leader-election"
	uaKCMLE       = "kube-controller-manager/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit + "/leader-election"
	uaKubeProxy   = "kube-proxy/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit
	uaAPIServer   = "kube-apiserver/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit
	uaGoHTTP      = "Go-http-client/2.0"
	uaGoHTTP11    = "Go-http-client/1.1"
	uaHelm        = "Helm/3.15.2"
	uaArgoCD      = "argocd-application-controller/v2.12.3+b9ad2a4 (linux/amd64) kubernetes/$Format"
	uaArgoServer  = "argocd-server/v2.12.3+b9ad2a4 (linux/amd64) kubernetes/$Format"
	uaClientGo    = "backup-agent/v0.0.0 (linux/amd64) kubernetes/$Format"
	uaPrometheus  = "Prometheus/2.53.0"
	uaMetrics     = "metrics-server/v0.7.1 (linux/amd64) kubernetes/$Format"
	uaRBACProxy   = "kube-rbac-proxy/v0.18.0 (linux/amd64) kubernetes/$Format"
	uaProbe       = "kube-probe/1.31"
	uaCurl        = "curl/8.5.0"
	uaScanner     = "Mozilla/5.0 zgrab/0.x"
	uaCSRApprover = "kube-controller-manager/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit + "/system:serviceaccount:kube-system:certificate-controller"
	uaPSAExempt   = ""
	_             = uaPSAExempt
)

func uaKCM(controller string) string {
	return "kube-controller-manager/" + k8sVersion + " (linux/amd64) kubernetes/" + gitCommit + "/system:serviceaccount:kube-system:" + controller
}

// identity is an authenticated (or anonymous) user plus how it connects.
type identity struct {
	info   authnv1.UserInfo
	ua     []string
	ips    []string // picked at random per request
	reason string   // RBAC allow reason; "" = allowed by a non-RBAC authorizer
	kind   string   // human, serviceaccount, node, system, anonymous
}

func (id *identity) name() string { return id.info.Username }

// ipPools
var (
	trustedAdminIPs  = []string{"10.20.3.15", "10.20.3.16", "10.20.4.9"}
	untrustedIPs     = []string{"203.0.113.77", "203.0.113.10", "198.51.100.23", "198.51.100.140"}
	untrustedIPv6    = []string{"2001:db8:85a3::8a2e:370:7334", "2001:db8:4006:812::200e"}
	trustedIPv6      = []string{"fd00:10:20::15"}
	lbProxyIP        = "10.0.5.4"
	controlPlaneIP   = "10.0.1.10"
	controlPlaneIPv6 = "::1"
)

type nodeInfo struct {
	name, ip, uid string
}

type world struct {
	r         *rand.Rand
	nodes     []nodeInfo
	alice     *identity
	bob       *identity
	carol     *identity
	dave      *identity
	dba       *identity
	kcm       *identity
	scheduler *identity
	proxy     *identity
	apiserver *identity
	anonymous *identity
	argocd    *identity
	prom      *identity
	metricsSA *identity
	rbacProxy *identity
	backup    *identity
	helmSA    *identity
	appSAs    []*identity
	ctrlSAs   map[string]*identity
	nodeIDs   []*identity
}

func uuidFrom(r *rand.Rand) types.UID {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Intn(256))
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

func hexFrom(r *rand.Rand, n int) string {
	const h = "0123456789abcdef"
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteByte(h[r.Intn(16)])
	}
	return sb.String()
}

func rbacCRB(binding, role, subjKind, subj string) string {
	return fmt.Sprintf("RBAC: allowed by ClusterRoleBinding %q of ClusterRole %q to %s %q", binding, role, subjKind, subj)
}

func rbacRB(binding, ns, role, subjKind, subj string) string {
	return fmt.Sprintf("RBAC: allowed by RoleBinding %q of Role %q to %s %q", binding+"/"+ns, role, subjKind, subj)
}

// saIdentity builds a pod-bound service account token identity with the
// extras kube-apiserver adds (pod-name, pod-uid, credential-id, node-name, node-uid).
func (w *world) podSA(ns, name, pod string, node nodeInfo, ua string, ips []string, reason string) *identity {
	return &identity{
		info: authnv1.UserInfo{
			Username: "system:serviceaccount:" + ns + ":" + name,
			UID:      string(uuidFrom(w.r)),
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			Extra: map[string]authnv1.ExtraValue{
				"authentication.kubernetes.io/credential-id": {"JTI=" + string(uuidFrom(w.r))},
				"authentication.kubernetes.io/node-name":     {node.name},
				"authentication.kubernetes.io/node-uid":      {node.uid},
				"authentication.kubernetes.io/pod-name":      {pod},
				"authentication.kubernetes.io/pod-uid":       {string(uuidFrom(w.r))},
			},
		},
		ua: []string{ua}, ips: ips, reason: reason, kind: "serviceaccount",
	}
}

// ctrlSA is a kube-controller-manager controller using its own service
// account credentials (--use-service-account-credentials).
func (w *world) ctrlSA(controller string) *identity {
	if id, ok := w.ctrlSAs[controller]; ok {
		return id
	}
	id := &identity{
		info: authnv1.UserInfo{
			Username: "system:serviceaccount:kube-system:" + controller,
			UID:      string(uuidFrom(w.r)),
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			Extra: map[string]authnv1.ExtraValue{
				"authentication.kubernetes.io/credential-id": {"JTI=" + string(uuidFrom(w.r))},
			},
		},
		ua:     []string{uaKCM(controller)},
		ips:    []string{controlPlaneIP},
		reason: rbacCRB("system:controller:"+controller, "system:controller:"+controller, "ServiceAccount", controller+"/kube-system"),
		kind:   "serviceaccount",
	}
	w.ctrlSAs[controller] = id
	return id
}

func newWorld(r *rand.Rand) *world {
	w := &world{r: r, ctrlSAs: map[string]*identity{}}
	for i, n := range []string{"control-plane-1", "worker-1", "worker-2", "worker-3", "worker-4"} {
		w.nodes = append(w.nodes, nodeInfo{name: n, ip: fmt.Sprintf("10.0.1.%d", 10+i), uid: string(uuidFrom(r))})
	}
	for _, n := range w.nodes {
		w.nodeIDs = append(w.nodeIDs, &identity{
			info: authnv1.UserInfo{
				Username: "system:node:" + n.name,
				Groups:   []string{"system:nodes", "system:authenticated"},
				Extra: map[string]authnv1.ExtraValue{
					"authentication.kubernetes.io/credential-id": {"X509SHA256=" + hexFrom(r, 64)},
				},
			},
			ua: []string{uaKubelet}, ips: []string{n.ip}, reason: "", kind: "node",
		})
	}
	human := func(name string, groups []string, ips []string, reason string, uas ...string) *identity {
		return &identity{
			info: authnv1.UserInfo{Username: name, Groups: groups},
			ua:   uas, ips: ips, reason: reason, kind: "human",
		}
	}
	w.alice = human("alice@example.com", []string{"oidc:admins", "system:authenticated"},
		[]string{"10.20.3.15", "10.20.3.16", "fd00:10:20::15"},
		rbacCRB("oidc-admins", "cluster-admin", "Group", "oidc:admins"), uaKubectl, uaKubectl, uaHelm)
	w.bob = human("bob", []string{"developers", "system:authenticated"},
		[]string{"10.20.4.9", "10.20.4.9", "198.51.100.23"},
		rbacRB("developers-edit", "default", "edit", "Group", "developers"), uaKubectlMac, uaKubectl)
	w.carol = human("carol@example.com", []string{"oidc:developers", "system:authenticated"},
		[]string{"10.20.5.31", "2001:db8:85a3::8a2e:370:7334"},
		rbacCRB("oidc-developers-view", "view", "Group", "oidc:developers"), uaKubectl)
	w.dave = human("dave@example.com", []string{"oidc:sre", "system:authenticated"},
		[]string{"10.20.6.7"},
		rbacCRB("oidc-sre-admin", "admin", "Group", "oidc:sre"), uaKubectl)
	w.dba = human("dba@example.com", []string{"oidc:dba", "system:authenticated"},
		[]string{"10.40.2.17"},
		rbacRB("dba-admin", "databases", "admin", "Group", "oidc:dba"), uaKubectl)
	w.kcm = &identity{info: authnv1.UserInfo{Username: "system:kube-controller-manager", Groups: []string{"system:authenticated"}},
		ua: []string{uaKCMLE}, ips: []string{controlPlaneIP},
		reason: rbacCRB("system:kube-controller-manager", "system:kube-controller-manager", "User", "system:kube-controller-manager"), kind: "system"}
	w.scheduler = &identity{info: authnv1.UserInfo{Username: "system:kube-scheduler", Groups: []string{"system:authenticated"}},
		ua: []string{uaScheduler, uaSchedulerLE}, ips: []string{controlPlaneIP},
		reason: rbacCRB("system:kube-scheduler", "system:kube-scheduler", "User", "system:kube-scheduler"), kind: "system"}
	w.proxy = &identity{info: authnv1.UserInfo{Username: "system:kube-proxy", Groups: []string{"system:authenticated"}},
		ua: []string{uaKubeProxy}, ips: []string{"10.0.1.11", "10.0.1.12", "10.0.1.13", "10.0.1.14"},
		reason: rbacCRB("system:node-proxier", "system:node-proxier", "User", "system:kube-proxy"), kind: "system"}
	w.apiserver = &identity{info: authnv1.UserInfo{Username: "system:apiserver", UID: string(uuidFrom(r)), Groups: []string{"system:authenticated", "system:masters"}},
		ua: []string{uaAPIServer}, ips: []string{controlPlaneIPv6}, reason: "", kind: "system"}
	w.anonymous = &identity{info: authnv1.UserInfo{Username: "system:anonymous", Groups: []string{"system:unauthenticated"}},
		ua: []string{uaProbe, uaGoHTTP11, uaCurl}, ips: []string{"10.0.5.4", "10.0.5.5"},
		reason: rbacCRB("system:public-info-viewer", "system:public-info-viewer", "Group", "system:unauthenticated"), kind: "anonymous"}
	w.argocd = w.podSA("argocd", "argocd-application-controller", "argocd-application-controller-0", w.nodes[2], uaArgoCD,
		[]string{"10.244.2.14"}, rbacCRB("argocd-application-controller", "argocd-application-controller", "ServiceAccount", "argocd-application-controller/argocd"))
	w.prom = w.podSA("monitoring", "prometheus-k8s", "prometheus-k8s-0", w.nodes[3], uaPrometheus,
		[]string{"10.244.3.8"}, rbacCRB("prometheus-k8s", "prometheus-k8s", "ServiceAccount", "prometheus-k8s/monitoring"))
	w.metricsSA = w.podSA("kube-system", "metrics-server", "metrics-server-6d94bc8694-x7k2p", w.nodes[1], uaMetrics,
		[]string{"10.244.1.5"}, rbacCRB("metrics-server:system:auth-delegator", "system:auth-delegator", "ServiceAccount", "metrics-server/kube-system"))
	w.rbacProxy = w.podSA("monitoring", "node-exporter", "node-exporter-8xq2v", w.nodes[4], uaRBACProxy,
		[]string{"10.244.4.3"}, rbacCRB("node-exporter", "node-exporter", "ServiceAccount", "node-exporter/monitoring"))
	w.backup = w.podSA("tools", "backup-agent", "backup-agent-7c9f8d5b6-qz4lm", w.nodes[2], uaClientGo,
		[]string{"10.244.2.31"}, rbacCRB("backup-agent", "secret-reader", "ServiceAccount", "backup-agent/tools"))
	w.helmSA = w.podSA("ci", "deployer", "deployer-job-29381-kq8fz", w.nodes[1], uaHelm,
		[]string{"10.244.1.44"}, rbacRB("deployer", "payments", "admin", "ServiceAccount", "deployer/ci"))
	w.appSAs = []*identity{
		w.podSA("payments", "payments-api", "payments-api-5f7d8c9b4-2xkqp", w.nodes[1], "payments-api/1.4.2 (linux/amd64) kubernetes/$Format",
			[]string{"10.244.1.21"}, rbacRB("payments-api", "payments", "payments-api", "ServiceAccount", "payments-api/payments")),
		w.podSA("shop", "web", "web-6b7f9d8c5d-9tq4w", w.nodes[3], uaGoHTTP,
			[]string{"10.244.3.17"}, rbacRB("web", "shop", "web-reader", "ServiceAccount", "web/shop")),
	}
	return w
}

func (w *world) pick(ss []string) string { return ss[w.r.Intn(len(ss))] }

// sourceIPs for a request by id: usually one of its IPs; sometimes via an
// X-Forwarded-For proxy (client IP first, then the proxy's address).
func (w *world) sourceIPs(id *identity) []string {
	ip := w.pick(id.ips)
	if id.kind == "human" && w.r.Intn(8) == 0 {
		return []string{ip, lbProxyIP}
	}
	return []string{ip}
}
