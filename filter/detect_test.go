package filter

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

const (
	dxPrivPod     = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"dbg","namespace":"web"},"spec":{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}}`
	dxCapPod      = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"dbg","namespace":"web"},"spec":{"containers":[{"name":"c","image":"busybox"}],"initContainers":[{"name":"i","image":"busybox","securityContext":{"capabilities":{"add":["NET_ADMIN","SYS_ADMIN"]}}}]}}`
	dxPlainPod    = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"web"},"spec":{"containers":[{"name":"c","image":"nginx","securityContext":{"privileged":false,"runAsNonRoot":true}}],"volumes":[{"name":"tmp","emptyDir":{}}]}}`
	dxHostPIDPod  = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"hostPID":true,"containers":[{"name":"c","image":"busybox"}]}}`
	dxPrivDeploy  = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":1,"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x","securityContext":{"privileged":true}}]}}}}`
	dxHostPathDS  = `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agent"},"spec":{"template":{"spec":{"containers":[{"name":"c","image":"x"}],"volumes":[{"name":"root","hostPath":{"path":"/"}}]}}}}`
	dxHostNetCron = `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"cj"},"spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{"hostNetwork":true,"containers":[{"name":"c","image":"x"}]}}}}}}`
	dxCrbAdmin    = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"pwn"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"},"subjects":[{"kind":"ServiceAccount","name":"default","namespace":"web"}]}`
	dxRbAdmin     = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b","namespace":"web"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"},"subjects":[{"kind":"User","name":"mallory"}]}`
	dxRbView      = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b","namespace":"web"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"},"subjects":[{"kind":"User","name":"bob"}]}`
	dxRbPwn       = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"b2","namespace":"web"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"pwn"},"subjects":[{"kind":"User","name":"mallory"}]}`
	dxRolePwn     = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"pwn","namespace":"web"},"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["*"]}]}`
	dxRoleTame    = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"pwn","namespace":"web"},"rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get","list"]}]}`
	dxCrWild      = `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"god"},"rules":[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]}`
	dxCsrOK       = `{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":"csr-x"},"status":{"conditions":[{"type":"Approved","status":"True","reason":"KubectlApprove"}]}}`
	dxCsrNo       = `{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":"csr-x"},"status":{"conditions":[{"type":"Denied","status":"True"}]}}`
	dxWebhook     = `{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingWebhookConfiguration","metadata":{"name":"w"},"webhooks":[]}`
)

const (
	dxSaWeb   = "system:serviceaccount:web:frontend"
	dxSaKS    = "system:serviceaccount:kube-system:replicaset-controller"
	dxKcm     = "system:kube-controller-manager"
	dxNode1   = "system:node:ip-10-0-1-5"
	dxAnonUsr = "system:anonymous"
	dxRbacG   = "rbac.authorization.k8s.io"
)

type dxDetCase struct {
	name string
	rule string
	ev   dxDt
	crit []CriticalMatch
	want bool
}

func dxDetCases() []dxDetCase {
	return []dxDetCase{
		// pod-exec
		{"exec (SPDY create)", "pod-exec", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods/web-1/exec?command=sh&stdin=true&tty=true", res: "pods", sub: "exec", ns: "web", name: "web-1", code: 101}, nil, true},
		{"exec (websocket get), ResponseStarted", "pod-exec", dxDt{verb: "get", uri: "/api/v1/namespaces/web/pods/web-1/exec?command=sh", res: "pods", sub: "exec", ns: "web", name: "web-1", code: 101, stage: "ResponseStarted"}, nil, true},
		{"port-forward", "pod-exec", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods/web-1/portforward", res: "pods", sub: "portforward", ns: "web", name: "web-1", code: 101}, nil, true},
		{"attach", "pod-exec", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods/web-1/attach", res: "pods", sub: "attach", ns: "web", name: "web-1", code: 101}, nil, true},
		{"exec forbidden", "pod-exec", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods/web-1/exec", res: "pods", sub: "exec", ns: "web", name: "web-1", code: 403}, nil, false},
		{"exec at RequestReceived", "pod-exec", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods/web-1/exec", res: "pods", sub: "exec", ns: "web", name: "web-1", stage: "RequestReceived"}, nil, false},
		{"pod logs", "pod-exec", dxDt{verb: "get", uri: "/api/v1/namespaces/web/pods/web-1/log", res: "pods", sub: "log", ns: "web", name: "web-1"}, nil, false},
		{"pod get", "pod-exec", dxDt{verb: "get", uri: "/api/v1/namespaces/web/pods/web-1", res: "pods", ns: "web", name: "web-1"}, nil, false},

		// privileged-pod
		{"privileged pod", "privileged-pod", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxPrivPod}, nil, true},
		{"SYS_ADMIN init container", "privileged-pod", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxCapPod}, nil, true},
		{"privileged deployment template", "privileged-pod", dxDt{verb: "create", uri: "/apis/apps/v1/namespaces/web/deployments", res: "deployments", group: "apps", ns: "web", req: dxPrivDeploy}, nil, true},
		{"plain pod", "privileged-pod", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxPlainPod}, nil, false},
		{"privileged pod, Metadata level (no body)", "privileged-pod", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web"}, nil, false},
		{"privileged pod refused by admission", "privileged-pod", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxPrivPod, code: 403}, nil, false},
		{"privileged pod, JSON patch body", "privileged-pod", dxDt{verb: "patch", uri: "/api/v1/namespaces/web/pods/x", res: "pods", ns: "web", name: "x", req: `[{"op":"replace","path":"/spec/containers/0/image","value":"x"}]`}, nil, false},

		// host-namespace-pod
		{"hostPID pod", "host-namespace-pod", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxHostPIDPod}, nil, true},
		{"hostPath daemonset", "host-namespace-pod", dxDt{verb: "create", uri: "/apis/apps/v1/namespaces/kube-system/daemonsets", res: "daemonsets", group: "apps", ns: "kube-system", req: dxHostPathDS}, nil, true},
		{"hostNetwork cronjob", "host-namespace-pod", dxDt{verb: "create", uri: "/apis/batch/v1/namespaces/web/cronjobs", res: "cronjobs", group: "batch", ns: "web", req: dxHostNetCron}, nil, true},
		{"plain pod with emptyDir", "host-namespace-pod", dxDt{verb: "create", uri: "/api/v1/namespaces/web/pods", res: "pods", ns: "web", req: dxPlainPod}, nil, false},
		{"hostPID pod read back", "host-namespace-pod", dxDt{verb: "get", uri: "/api/v1/namespaces/web/pods/x", res: "pods", ns: "web", name: "x", resp: dxHostPIDPod}, nil, false},

		// rbac-binding-to-admin
		{"CRB to cluster-admin", "rbac-binding-to-admin", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", res: "clusterrolebindings", group: dxRbacG, req: dxCrbAdmin}, nil, true},
		{"RB to ClusterRole cluster-admin", "rbac-binding-to-admin", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/web/rolebindings", res: "rolebindings", group: dxRbacG, ns: "web", req: dxRbAdmin}, nil, true},
		{"RB to view", "rbac-binding-to-admin", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/web/rolebindings", res: "rolebindings", group: dxRbacG, ns: "web", req: dxRbView}, nil, false},
		{"CRB to cluster-admin without body", "rbac-binding-to-admin", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", res: "clusterrolebindings", group: dxRbacG}, nil, false},
		{"CRB to cluster-admin denied", "rbac-binding-to-admin", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", res: "clusterrolebindings", group: dxRbacG, req: dxCrbAdmin, code: 403}, nil, false},

		// rbac-wildcard-role
		{"ClusterRole with * verbs", "rbac-wildcard-role", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/clusterroles", res: "clusterroles", group: dxRbacG, req: dxCrWild}, nil, true},
		{"ClusterRole with * by the apiserver", "rbac-wildcard-role", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/clusterroles", res: "clusterroles", group: dxRbacG, req: dxCrWild, user: "system:apiserver", groups: []string{"system:masters"}}, nil, false},
		{"Role with get/list", "rbac-wildcard-role", dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/web/roles", res: "roles", group: dxRbacG, ns: "web", req: dxRoleTame}, nil, false},

		// serviceaccount-token-by-human
		{"token by human", "serviceaccount-token-by-human", dxDt{verb: "create", uri: "/api/v1/namespaces/web/serviceaccounts/deployer/token", res: "serviceaccounts", sub: "token", ns: "web", name: "deployer"}, nil, true},
		{"token by kubelet", "serviceaccount-token-by-human", dxDt{verb: "create", uri: "/api/v1/namespaces/web/serviceaccounts/frontend/token", res: "serviceaccounts", sub: "token", ns: "web", name: "frontend", user: dxNode1, groups: []string{"system:nodes", "system:authenticated"}}, nil, false},
		{"token by service account", "serviceaccount-token-by-human", dxDt{verb: "create", uri: "/api/v1/namespaces/web/serviceaccounts/frontend/token", res: "serviceaccounts", sub: "token", ns: "web", name: "frontend", user: dxSaWeb}, nil, false},
		{"service account create by human", "serviceaccount-token-by-human", dxDt{verb: "create", uri: "/api/v1/namespaces/web/serviceaccounts", res: "serviceaccounts", ns: "web"}, nil, false},

		// csr-approved
		{"CSR approved by human", "csr-approved", dxDt{verb: "update", uri: "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-x/approval", res: "certificatesigningrequests", sub: "approval", group: "certificates.k8s.io", name: "csr-x", req: dxCsrOK}, nil, true},
		{"CSR approval at Metadata level", "csr-approved", dxDt{verb: "update", uri: "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-x/approval", res: "certificatesigningrequests", sub: "approval", group: "certificates.k8s.io", name: "csr-x"}, nil, true},
		{"CSR denied", "csr-approved", dxDt{verb: "update", uri: "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-x/approval", res: "certificatesigningrequests", sub: "approval", group: "certificates.k8s.io", name: "csr-x", req: dxCsrNo}, nil, false},
		{"CSR auto-approved by the controller", "csr-approved", dxDt{verb: "update", uri: "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-x/approval", res: "certificatesigningrequests", sub: "approval", group: "certificates.k8s.io", name: "csr-x", user: "system:serviceaccount:kube-system:certificate-controller", req: dxCsrOK}, nil, false},
		{"CSR created", "csr-approved", dxDt{verb: "create", uri: "/apis/certificates.k8s.io/v1/certificatesigningrequests", res: "certificatesigningrequests", group: "certificates.k8s.io"}, nil, false},

		// secret-read-by-human
		{"human gets a secret", "secret-read-by-human", dxDt{verb: "get", uri: "/api/v1/namespaces/web/secrets/db-password", res: "secrets", ns: "web", name: "db-password"}, nil, true},
		{"human lists secrets", "secret-read-by-human", dxDt{verb: "list", uri: "/api/v1/secrets?limit=500", res: "secrets"}, nil, true},
		{"human forbidden", "secret-read-by-human", dxDt{verb: "get", uri: "/api/v1/namespaces/web/secrets/db-password", res: "secrets", ns: "web", name: "db-password", code: 403}, nil, false},
		{"human reads a configmap", "secret-read-by-human", dxDt{verb: "get", uri: "/api/v1/namespaces/web/configmaps/x", res: "configmaps", ns: "web", name: "x"}, nil, false},
		{"SA reads a secret", "secret-read-by-human", dxDt{verb: "get", uri: "/api/v1/namespaces/web/secrets/db-password", res: "secrets", ns: "web", name: "db-password", user: dxSaWeb}, nil, false},

		// secret-read-cross-namespace
		{"SA reads another namespace's secret", "secret-read-cross-namespace", dxDt{verb: "get", uri: "/api/v1/namespaces/payments/secrets/stripe", res: "secrets", ns: "payments", name: "stripe", user: dxSaWeb}, nil, true},
		{"SA lists all secrets", "secret-read-cross-namespace", dxDt{verb: "list", uri: "/api/v1/secrets", res: "secrets", user: dxSaWeb}, nil, true},
		{"SA reads own namespace", "secret-read-cross-namespace", dxDt{verb: "get", uri: "/api/v1/namespaces/web/secrets/tls", res: "secrets", ns: "web", name: "tls", user: dxSaWeb}, nil, false},
		{"kube-system controller lists secrets", "secret-read-cross-namespace", dxDt{verb: "list", uri: "/api/v1/secrets", res: "secrets", user: dxSaKS}, nil, false},
		{"SA denied", "secret-read-cross-namespace", dxDt{verb: "get", uri: "/api/v1/namespaces/payments/secrets/stripe", res: "secrets", ns: "payments", name: "stripe", user: dxSaWeb, code: 403}, nil, false},

		// critical-workload-deleted
		{"critical deployment deleted", "critical-workload-deleted", dxDt{verb: "delete", uri: "/apis/apps/v1/namespaces/db/statefulsets/pg", res: "statefulsets", group: "apps", ns: "db", name: "pg"}, []CriticalMatch{{Name: "postgres", Severity: "critical"}}, true},
		{"critical deleted by expected actor", "critical-workload-deleted", dxDt{verb: "delete", uri: "/apis/apps/v1/namespaces/db/statefulsets/pg", res: "statefulsets", group: "apps", ns: "db", name: "pg", user: "system:serviceaccount:argocd:argocd-application-controller"}, []CriticalMatch{{Name: "postgres", Severity: "critical", ExpectedActor: true}}, false},
		{"non-critical deleted", "critical-workload-deleted", dxDt{verb: "delete", uri: "/apis/apps/v1/namespaces/web/deployments/x", res: "deployments", group: "apps", ns: "web", name: "x"}, nil, false},
		{"critical read", "critical-workload-deleted", dxDt{verb: "get", uri: "/apis/apps/v1/namespaces/db/statefulsets/pg", res: "statefulsets", group: "apps", ns: "db", name: "pg"}, []CriticalMatch{{Name: "postgres", Severity: "critical"}}, false},

		// namespace-deleted
		{"namespace deleted", "namespace-deleted", dxDt{verb: "delete", uri: "/api/v1/namespaces/payments", res: "namespaces", name: "payments", ns: "payments"}, nil, true},
		{"namespace read", "namespace-deleted", dxDt{verb: "get", uri: "/api/v1/namespaces/payments", res: "namespaces", name: "payments", ns: "payments"}, nil, false},
		{"namespace finalize", "namespace-deleted", dxDt{verb: "update", uri: "/api/v1/namespaces/payments/finalize", res: "namespaces", sub: "finalize", name: "payments", ns: "payments"}, nil, false},
		{"pod deleted", "namespace-deleted", dxDt{verb: "delete", uri: "/api/v1/namespaces/web/pods/x", res: "pods", ns: "web", name: "x"}, nil, false},

		// kube-system-config-changed
		{"configmap in kube-system updated", "kube-system-config-changed", dxDt{verb: "update", uri: "/api/v1/namespaces/kube-system/configmaps/coredns", res: "configmaps", ns: "kube-system", name: "coredns"}, nil, true},
		{"secret in kube-system patched by SA", "kube-system-config-changed", dxDt{verb: "patch", uri: "/api/v1/namespaces/kube-system/secrets/x", res: "secrets", ns: "kube-system", name: "x", user: dxSaWeb}, nil, true},
		{"configmap in default updated", "kube-system-config-changed", dxDt{verb: "update", uri: "/api/v1/namespaces/default/configmaps/x", res: "configmaps", ns: "default", name: "x"}, nil, false},
		{"kube-system configmap by controller manager", "kube-system-config-changed", dxDt{verb: "update", uri: "/api/v1/namespaces/kube-system/configmaps/x", res: "configmaps", ns: "kube-system", name: "x", user: dxKcm}, nil, false},
		{"kube-system configmap read", "kube-system-config-changed", dxDt{verb: "get", uri: "/api/v1/namespaces/kube-system/configmaps/coredns", res: "configmaps", ns: "kube-system", name: "coredns"}, nil, false},
		{"kube-system configmap create conflict (409)", "kube-system-config-changed", dxDt{verb: "create", uri: "/api/v1/namespaces/kube-system/configmaps", res: "configmaps", ns: "kube-system", name: "coredns-custom", code: 409}, nil, false},

		// admission-webhook-changed
		{"webhook created", "admission-webhook-changed", dxDt{verb: "create", uri: "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", res: "validatingwebhookconfigurations", group: "admissionregistration.k8s.io", req: dxWebhook}, nil, true},
		{"mutating webhook deleted by SA", "admission-webhook-changed", dxDt{verb: "delete", uri: "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/w", res: "mutatingwebhookconfigurations", group: "admissionregistration.k8s.io", name: "w", user: dxSaWeb}, nil, true},
		{"webhook read", "admission-webhook-changed", dxDt{verb: "list", uri: "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", res: "validatingwebhookconfigurations", group: "admissionregistration.k8s.io"}, nil, false},

		// audit-config-changed
		{"OpenShift audit profile changed", "audit-config-changed", dxDt{verb: "patch", uri: "/apis/config.openshift.io/v1/apiservers/cluster", res: "apiservers", group: "config.openshift.io", name: "cluster"}, nil, true},
		{"events wiped", "audit-config-changed", dxDt{verb: "deletecollection", uri: "/api/v1/namespaces/web/events", res: "events", ns: "web"}, nil, true},
		{"events wiped by namespace controller", "audit-config-changed", dxDt{verb: "deletecollection", uri: "/api/v1/namespaces/web/events", res: "events", ns: "web", user: "system:serviceaccount:kube-system:namespace-controller"}, nil, false},
		{"one event deleted", "audit-config-changed", dxDt{verb: "delete", uri: "/api/v1/namespaces/web/events/e", res: "events", ns: "web", name: "e"}, nil, false},
		{"other apiservers resource", "audit-config-changed", dxDt{verb: "patch", uri: "/apis/example.com/v1/apiservers/x", res: "apiservers", group: "example.com", name: "x"}, nil, false},

		// anonymous-request-allowed
		{"anonymous lists namespaces", "anonymous-request-allowed", dxDt{verb: "list", uri: "/api/v1/namespaces", res: "namespaces", user: dxAnonUsr}, nil, true},
		{"unauthenticated group reads a pod", "anonymous-request-allowed", dxDt{verb: "get", uri: "/api/v1/namespaces/web/pods/x", res: "pods", ns: "web", name: "x", user: "anyone", groups: []string{"system:unauthenticated"}}, nil, true},
		{"anonymous healthz", "anonymous-request-allowed", dxDt{verb: "get", uri: "/healthz", user: dxAnonUsr}, nil, false},
		{"anonymous readyz?verbose", "anonymous-request-allowed", dxDt{verb: "get", uri: "/readyz?verbose", user: dxAnonUsr}, nil, false},
		{"anonymous forbidden", "anonymous-request-allowed", dxDt{verb: "head", uri: "/", user: dxAnonUsr, code: 403}, nil, false},
		{"authenticated user", "anonymous-request-allowed", dxDt{verb: "list", uri: "/api/v1/namespaces", res: "namespaces"}, nil, false},
	}
}

func TestDetectRules(t *testing.T) {
	covered := map[string][2]int{}
	for _, c := range dxDetCases() {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			st := dxNewTestDetect(t, Options{})
			ev := c.ev.event(t)
			ev.Kaudit.Critical = c.crit
			require.Equal(t, Keep, st.Process(ev))
			got := slices.Contains(dxAlertNames(ev), c.rule)
			assert.Equal(t, c.want, got, "alerts: %v", dxAlertNames(ev))
			assert.Zero(t, st.Stats().EvalErrors)
			for _, a := range ev.Kaudit.Alerts {
				assert.NotEmpty(t, a.Severity)
				assert.NotEmpty(t, a.Description)
			}
		})
		n := covered[c.rule]
		if c.want {
			n[0]++
		} else {
			n[1]++
		}
		covered[c.rule] = n
	}
	// Every built-in single-event rule has positive and negative cases.
	st := dxNewTestDetect(t, Options{})
	for _, r := range st.rules {
		if r.corr != nil {
			continue
		}
		n := covered[r.name]
		assert.True(t, n[0] > 0 && n[1] > 0, "rule %s: %d positive, %d negative cases", r.name, n[0], n[1])
	}
}

// The enrichment's Meta, when present, is what the rules read.
func TestDetectReadsEnrichment(t *testing.T) {
	st := dxNewTestDetect(t, Options{})
	// A human per the enrichment although the username looks like a system one.
	ev := dxDt{verb: "get", uri: "/api/v1/namespaces/web/secrets/x", res: "secrets", ns: "web", name: "x", user: "system:breakglass"}.event(t)
	st.Process(ev)
	assert.NotContains(t, dxAlertNames(ev), "secret-read-by-human")
	ev = dxDt{verb: "get", uri: "/api/v1/namespaces/web/secrets/x", res: "secrets", ns: "web", name: "x", user: "system:breakglass"}.event(t)
	ev.Kaudit.Actor = Actor{Type: "user", Name: "system:breakglass"}
	ev.Kaudit.Outcome = "success"
	st.Process(ev)
	assert.Contains(t, dxAlertNames(ev), "secret-read-by-human")

	// Impersonation: the actor is the impersonated service account.
	ev = dxDt{verb: "get", uri: "/api/v1/namespaces/payments/secrets/x", res: "secrets", ns: "payments", name: "x", impersonate: dxSaWeb}.event(t)
	ev.Kaudit.Actor = Actor{Type: "serviceaccount", Name: dxSaWeb, ServiceAccountNS: "web", ServiceAccount: "frontend", ImpersonatedBy: "alice@example.com"}
	st.Process(ev)
	assert.Equal(t, []string{"secret-read-cross-namespace"}, dxAlertNames(ev))
}

func TestDetectWildcardRoleTracking(t *testing.T) {
	st := dxNewTestDetect(t, Options{})
	bind := func() []string {
		ev := dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/web/rolebindings", res: "rolebindings", group: dxRbacG, ns: "web", req: dxRbPwn}.event(t)
		st.Process(ev)
		return dxAlertNames(ev)
	}
	assert.NotContains(t, bind(), "rbac-binding-to-admin", "role not seen yet")
	ev := dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/web/roles", res: "roles", group: dxRbacG, ns: "web", req: dxRolePwn}.event(t)
	st.Process(ev)
	assert.Contains(t, dxAlertNames(ev), "rbac-wildcard-role")
	assert.Contains(t, bind(), "rbac-binding-to-admin")

	// The same role name in another namespace is another role.
	other := dxDt{verb: "create", uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/db/rolebindings", res: "rolebindings", group: dxRbacG, ns: "db",
		req: `{"kind":"RoleBinding","metadata":{"name":"b2","namespace":"db"},"roleRef":{"kind":"Role","name":"pwn"}}`}.event(t)
	st.Process(other)
	assert.NotContains(t, dxAlertNames(other), "rbac-binding-to-admin")

	// Updated without "*": no longer a wildcard role.
	st.Process(dxDt{verb: "update", uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/web/roles/pwn", res: "roles", group: dxRbacG, ns: "web", name: "pwn", req: dxRoleTame}.event(t))
	assert.NotContains(t, bind(), "rbac-binding-to-admin")
}

func TestDetectDefaultsShipped(t *testing.T) {
	conf, err := os.ReadFile(filepath.Join("..", "conf", "detections.yaml"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(conf, defaultDetections), "conf/detections.yaml must be a byte-identical copy of filter/detections_default.yaml")

	st := dxNewTestDetect(t, Options{})
	var single, corr int
	for _, r := range st.rules {
		if r.corr != nil {
			corr++
		} else {
			single++
		}
	}
	assert.GreaterOrEqual(t, single, 15)
	assert.GreaterOrEqual(t, corr, 6)
	// The file as a detections_file loads the same rules.
	st2 := dxNewTestDetect(t, Options{DetectionsFile: filepath.Join("..", "conf", "detections.yaml")})
	assert.Equal(t, len(st.rules), len(st2.rules))
}

func TestDetectRuleFileErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"syntax", "rules:\n- name: bad\n  severity: high\n  match: verb == \n", `rule "bad": `},
		{"type", "rules:\n- name: bad\n  severity: high\n  match: verb == 3\n", `rule "bad": `},
		{"not bool", "rules:\n- name: bad\n  severity: high\n  match: verb\n", `rule "bad": match must be a bool expression`},
		{"unknown variable", "rules:\n- name: bad\n  severity: high\n  match: usr == 'x'\n", `undeclared reference to 'usr'`},
		{"severity", "rules:\n- name: bad\n  severity: urgent\n", `rule "bad": severity "urgent"`},
		{"technique", "rules:\n- name: bad\n  severity: low\n  techniques: [exec]\n", `technique "exec"`},
		{"unknown key", "rules:\n- name: bad\n  severity: low\n  mtach: 'true'\n", `unknown field "mtach"`},
		{"unknown verb", "rules:\n- name: bad\n  severity: low\n  verbs: [remove]\n", `verbs: unknown value "remove"`},
		{"bad resource", "rules:\n- name: bad\n  severity: low\n  resources: [pods/]\n", `resources: "pods/"`},
		{"duplicate", "rules:\n- name: a\n  severity: low\n- name: a\n  severity: low\n", `rule "a": defined twice`},
		{"window", "rules:\n- name: c\n  severity: low\n  group_by: user\n  window: soon\n", `rule "c": window "soon"`},
		{"no window", "rules:\n- name: c\n  severity: low\n  group_by: user\n", `window is required`},
		{"group_by type", "rules:\n- name: c\n  severity: low\n  group_by: code\n  window: 1m\n", `group_by "code": must be a string expression`},
		{"followed_by", "rules:\n- name: c\n  severity: low\n  group_by: user\n  window: 1m\n  followed_by: nope\n", `rule "c": followed_by: `},
		{"escalate severity", "rules:\n- name: c\n  severity: low\n  group_by: user\n  window: 1m\n  escalate: {severity: x, match: 'true'}\n", `escalate: severity "x"`},
		{"disable unknown", "include_builtin: true\ndisable: [nope]\n", `disable: no rule named "nope"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := dxRuleFileFor(t, c.yaml)
			_, err := newDetectStage(&Options{DetectionsFile: path})
			require.Error(t, err)
			var oe *OptionError
			require.True(t, errors.As(err, &oe), "%T", err)
			assert.Equal(t, "detections_file", oe.Key)
			assert.Equal(t, path, oe.Value)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	_, err := newDetectStage(&Options{DetectionsFile: filepath.Join(t.TempDir(), "missing.yaml")})
	var oe *OptionError
	require.True(t, errors.As(err, &oe))
}

func TestDetectRuleFileMerging(t *testing.T) {
	path := dxRuleFileFor(t, `
include_builtin: true
disable: [pod-exec, mass-delete]
rules:
  - name: namespace-deleted       # replaces the built-in
    severity: critical
    description: mine
    resources: [namespaces]
    verbs: [delete]
  - name: my-rule
    severity: low
    match: verb == "get" && resource == "nodes"
  - name: off
    severity: low
    enabled: false
`)
	st := dxNewTestDetect(t, Options{DetectionsFile: path})
	byName := map[string]*detRule{}
	for _, r := range st.rules {
		byName[r.name] = r
	}
	assert.NotContains(t, byName, "pod-exec")
	assert.NotContains(t, byName, "mass-delete")
	assert.NotContains(t, byName, "off")
	assert.Contains(t, byName, "privileged-pod")
	assert.Equal(t, "critical", byName["namespace-deleted"].severity)
	require.Contains(t, byName, "my-rule")
	assert.Equal(t, []string{"get"}, byName["my-rule"].match.pf.verbs)
	assert.Equal(t, []string{"nodes", "nodes/*"}, byName["my-rule"].match.pf.resources)

	// An empty rule set runs no stage.
	st0, err := newDetectStage(&Options{DetectionsFile: dxRuleFileFor(t, "rules: []\n")})
	require.NoError(t, err)
	assert.Nil(t, st0)
}

func TestDetectPrefilterInference(t *testing.T) {
	st := dxNewTestDetect(t, Options{})
	env, err := newDetectEnv(st)
	require.NoError(t, err)
	for _, c := range []struct {
		src  string
		want detPrefilter
	}{
		{`verb == "delete" && resource == "pods" && subresource == ""`, detPrefilter{verbs: []string{"delete"}, resources: []string{"pods"}}},
		{`"delete" == verb && resource in ["pods", "secrets"] && subresource == "exec"`, detPrefilter{verbs: []string{"delete"}, resources: []string{"pods/exec", "secrets/exec"}}},
		{`code == 401 || code == 403`, detPrefilter{codes: []int{401, 403}}},
		{`(verb == "get" && user == "x") || verb == "list"`, detPrefilter{verbs: []string{"get", "list"}}},
		{`verb == "get" || user == "x"`, detPrefilter{}},
		{`!(verb == "get")`, detPrefilter{}},
		{`outcome == "success" && actor_type in ["user", "anonymous"] && stage == "ResponseStarted"`,
			detPrefilter{outcomes: []string{"success"}, actorTypes: []string{"user", "anonymous"}, stages: []string{"ResponseStarted"}}},
		{`resource == ""`, detPrefilter{}},
	} {
		m, err := compileDetMatcher(env, c.src, detPrefilter{}, nil)
		require.NoError(t, err, c.src)
		assert.Equal(t, c.want, m.pf, c.src)
	}
	// Body references.
	for src, want := range map[string][2]bool{
		`request.spec.replicas > 3`:                        {true, false},
		`has_request && request.spec.replicas > 3`:         {false, false},
		`containers.exists(c, c.image.startsWith("x"))`:    {true, false},
		`response.?status.?phase.orValue("") == "Running"`: {false, true},
		`verb == "get"`: {false, false},
	} {
		m, err := compileDetMatcher(env, src, detPrefilter{}, nil)
		require.NoError(t, err, src)
		assert.Equal(t, want, [2]bool{m.needsRequest, m.needsResponse}, src)
	}
}

// An event that only matches the pre-filter of no rule is not evaluated.
func TestDetectPrefilterSkipsCEL(t *testing.T) {
	st := dxNewTestDetect(t, Options{})
	for _, d := range []dxDt{
		{verb: "get", uri: "/api/v1/namespaces/web/pods/x", res: "pods", ns: "web", name: "x", user: dxSaWeb},
		{verb: "update", uri: "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler", res: "leases", group: "coordination.k8s.io", ns: "kube-system", name: "kube-scheduler", user: "system:kube-scheduler"},
		{verb: "watch", uri: "/api/v1/configmaps?watch=true", res: "configmaps", user: dxNode1, stage: "ResponseStarted"},
		{verb: "get", uri: "/api/v1/namespaces/web/secrets/x", res: "secrets", ns: "web", name: "x", user: dxNode1},
	} {
		ev := d.event(t)
		before := st.Stats().Evaluated
		var buf [4]uint64
		assert.Empty(t, dxNonZero(st.idx.candidates(ev, buf[:0])), d.uri)
		st.Process(ev)
		assert.Equal(t, before, st.Stats().Evaluated, d.uri)
		assert.Empty(t, ev.Kaudit.Alerts)
	}
}

func dxNonZero(b []uint64) []uint64 {
	for _, w := range b {
		if w != 0 {
			return b
		}
	}
	return nil
}

// Pooled activations are not shared between concurrent flushes.
func TestDetectConcurrent(t *testing.T) {
	st := dxNewTestDetect(t, Options{})
	cases := dxDetCases()
	evs := make([][]*Event, runtime.GOMAXPROCS(0)*2)
	for g := range evs {
		for _, c := range cases {
			ev := c.ev.event(t)
			ev.Kaudit.Critical = c.crit
			evs[g] = append(evs[g], ev)
		}
	}
	done := make(chan struct{})
	for g := range evs {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, ev := range evs[g] {
				st.Process(ev)
				ev.TakeEmitted()
			}
		}()
	}
	for range evs {
		<-done
	}
	for g := range evs {
		for i, c := range cases {
			if c.rule == "rbac-binding-to-admin" || c.rule == "rbac-wildcard-role" {
				continue
			}
			assert.Equal(t, c.want, slices.Contains(dxAlertNames(evs[g][i]), c.rule), c.name)
		}
	}
}

// The published samples decode and run through the defaults without errors.
func TestDetectSamples(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/samples/*.jsonl")
	if len(files) == 0 {
		t.Skip("no samples")
	}
	st := dxNewTestDetect(t, Options{})
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			require.NoError(t, DecodeAudit(line, func(a *auditv1.Event) {
				ev := newEvent(a, "t", a.StageTimestamp.Time)
				st.Process(ev)
				n++
			}))
		}
	}
	assert.Positive(t, n)
	assert.Zero(t, st.Stats().EvalErrors)
}
