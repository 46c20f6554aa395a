package auditgen

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	certv1 "k8s.io/api/certificates/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// meta describes the server-side state of an object in a response body.
type meta struct {
	ns, name string
	labels   map[string]string
	uid      types.UID
	rv       string
	created  time.Time
	manager  string // field manager for managedFields; "" = no managedFields (request bodies)
	op       metav1.ManagedFieldsOperationType
	gen      int64
}

func (m meta) objectMeta(specFields string) metav1.ObjectMeta {
	om := metav1.ObjectMeta{Name: m.name, Namespace: m.ns, Labels: m.labels, UID: m.uid, ResourceVersion: m.rv, Generation: m.gen}
	if !m.created.IsZero() {
		om.CreationTimestamp = metav1.NewTime(m.created.Truncate(time.Second))
	}
	if m.manager != "" {
		op := m.op
		if op == "" {
			op = metav1.ManagedFieldsOperationUpdate
		}
		t := metav1.NewTime(m.created.Truncate(time.Second))
		var lk []string
		for k := range m.labels {
			lk = append(lk, fmt.Sprintf(`"f:%s":{}`, k))
		}
		sort.Strings(lk)
		fields := `{"f:metadata":{"f:labels":{".":{},` + strings.Join(lk, ",") + `}}`
		if len(lk) == 0 {
			fields = `{"f:metadata":{}`
		}
		if specFields != "" {
			fields += "," + specFields
		}
		fields += "}"
		om.ManagedFields = []metav1.ManagedFieldsEntry{{
			Manager: m.manager, Operation: op, APIVersion: "v1", Time: &t,
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)},
		}}
	}
	return om
}

type podOpts struct {
	image       string
	sa          string
	node        string
	privileged  bool
	hostPID     bool
	hostNetwork bool
	hostPath    string
	status      bool // include a running status (response bodies)
	podIP       string
	owner       *metav1.OwnerReference
	env         int // extra env vars (size padding)
}

func podObj(m meta, o podOpts) []byte {
	ctr := corev1.Container{
		Name:  strings.SplitN(m.name, "-", 2)[0],
		Image: o.image,
		Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
		},
		TerminationMessagePath:   "/dev/termination-log",
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          corev1.PullIfNotPresent,
		VolumeMounts:             []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
	}
	for i := 0; i < o.env; i++ {
		ctr.Env = append(ctr.Env, corev1.EnvVar{Name: fmt.Sprintf("FEATURE_FLAG_%03d", i), Value: fmt.Sprintf("enabled=%t;rollout=%d%%;owner=team-%d", i%3 == 0, (i*7)%100, i%9)})
	}
	vols := []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr[int64](3607)}}}}}}}
	if o.privileged {
		ctr.SecurityContext = &corev1.SecurityContext{Privileged: ptr(true), RunAsUser: ptr[int64](0)}
	} else {
		ctr.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), RunAsNonRoot: ptr(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	}
	if o.hostPath != "" {
		vols = append(vols, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: o.hostPath}}})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "host", MountPath: "/host"})
	}
	p := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: m.objectMeta(`"f:spec":{"f:containers":{"k:{\"name\":\"` + ctr.Name + `\"}":{".":{},"f:image":{},"f:name":{}}}}`),
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{ctr}, Volumes: vols,
			RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
			ServiceAccountName: o.sa, NodeName: o.node, HostPID: o.hostPID, HostNetwork: o.hostNetwork,
			TerminationGracePeriodSeconds: ptr[int64](30), SchedulerName: "default-scheduler",
		},
	}
	if o.owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*o.owner}
	}
	if o.status {
		st := metav1.NewTime(m.created.Add(3 * time.Second).Truncate(time.Second))
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: o.podIP, HostIP: "10.0.1.12", QOSClass: corev1.PodQOSBurstable, StartTime: &st,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: st}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: ctr.Name, Ready: true, Image: o.image, ImageID: "docker.io/library/" + o.image + "@sha256:" + strings.Repeat("ab", 32),
				ContainerID: "containerd://" + strings.Repeat("0f", 32), Started: ptr(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: st}}}}}
	}
	return mustJSON(p)
}

func ptr[T any](v T) *T { return &v }

func statefulSetObj(m meta, image string, replicas int32) []byte {
	s := appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{Kind: "StatefulSet", APIVersion: "apps/v1"},
		ObjectMeta: m.objectMeta(`"f:spec":{"f:replicas":{},"f:serviceName":{}}`),
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: m.name,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": m.labels["app"]}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: m.labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: m.labels["app"], Image: image,
					Env: []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: m.name + "-credentials"}, Key: "password"}}}}}}},
			},
		},
	}
	return mustJSON(s)
}

func deploymentObj(m meta, image string, replicas int32, env int) []byte {
	ctr := corev1.Container{Name: m.name, Image: image, Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}
	for i := 0; i < env; i++ {
		ctr.Env = append(ctr.Env, corev1.EnvVar{Name: fmt.Sprintf("CONFIG_%03d", i), Value: fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", 20+i%17))})
	}
	d := appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"},
		ObjectMeta: m.objectMeta(`"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{}}}}`),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": m.name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": m.name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{ctr}}},
		},
	}
	return mustJSON(d)
}

func secretObj(m meta, data, stringData bool) []byte {
	s := corev1.Secret{TypeMeta: metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"}, ObjectMeta: m.objectMeta(`"f:data":{".":{},"f:password":{},"f:username":{}},"f:type":{}`), Type: corev1.SecretTypeOpaque}
	if data {
		// encoding/json base64-encodes []byte, exactly like the apiserver
		s.Data = map[string][]byte{"password": []byte(SecretValue), "username": []byte("app")}
	}
	if stringData {
		s.StringData = map[string]string{"password": SecretValue}
	}
	return mustJSON(s)
}

func configMapObj(m meta, data map[string]string) []byte {
	return mustJSON(corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"}, ObjectMeta: m.objectMeta(`"f:data":{}`), Data: data})
}

func clusterRoleBindingObj(m meta, role string, subj rbacv1.Subject) []byte {
	return mustJSON(rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{Kind: "ClusterRoleBinding", APIVersion: "rbac.authorization.k8s.io/v1"},
		ObjectMeta: m.objectMeta(`"f:roleRef":{},"f:subjects":{}`), RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{subj}})
}

func roleBindingObj(m meta, role string, subj rbacv1.Subject) []byte {
	return mustJSON(rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{Kind: "RoleBinding", APIVersion: "rbac.authorization.k8s.io/v1"},
		ObjectMeta: m.objectMeta(`"f:roleRef":{},"f:subjects":{}`), RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{subj}})
}

func webhookConfigObj(m meta, mutating bool) []byte {
	fail := admregv1.Fail
	none := admregv1.SideEffectClassNone
	cc := admregv1.WebhookClientConfig{Service: &admregv1.ServiceReference{Namespace: "policy", Name: "policy-webhook", Path: ptr("/validate"), Port: ptr[int32](443)},
		CABundle: []byte("-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKaudittestCAwDQYJKoZIhvcNAQELBQAwDTELMAkGA1UEBhMCVVMw\n-----END CERTIFICATE-----\n")}
	rules := []admregv1.RuleWithOperations{{Operations: []admregv1.OperationType{admregv1.Create, admregv1.Update},
		Rule: admregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: ptr(admregv1.AllScopes)}}}
	if mutating {
		return mustJSON(admregv1.MutatingWebhookConfiguration{TypeMeta: metav1.TypeMeta{Kind: "MutatingWebhookConfiguration", APIVersion: "admissionregistration.k8s.io/v1"},
			ObjectMeta: m.objectMeta(`"f:webhooks":{}`),
			Webhooks: []admregv1.MutatingWebhook{{Name: "mutate.policy.example.com", ClientConfig: cc, Rules: rules, FailurePolicy: &fail, SideEffects: &none,
				AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: ptr[int32](10)}}})
	}
	return mustJSON(admregv1.ValidatingWebhookConfiguration{TypeMeta: metav1.TypeMeta{Kind: "ValidatingWebhookConfiguration", APIVersion: "admissionregistration.k8s.io/v1"},
		ObjectMeta: m.objectMeta(`"f:webhooks":{}`),
		Webhooks: []admregv1.ValidatingWebhook{{Name: "validate.policy.example.com", ClientConfig: cc, Rules: rules, FailurePolicy: &fail, SideEffects: &none,
			AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: ptr[int32](10)}}})
}

func csrObj(m meta, signer, requester string, groups []string, approved bool, approver string) []byte {
	c := certv1.CertificateSigningRequest{TypeMeta: metav1.TypeMeta{Kind: "CertificateSigningRequest", APIVersion: "certificates.k8s.io/v1"},
		ObjectMeta: m.objectMeta(`"f:spec":{"f:request":{},"f:signerName":{},"f:usages":{}}`),
		Spec: certv1.CertificateSigningRequestSpec{
			Request:    []byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIBETCBuAIBADBWMRUwEwYDVQQKEwxzeXN0ZW06bm9kZXMxPTA7BgNVBAMTNHN5c3Rl\n-----END CERTIFICATE REQUEST-----\n"),
			SignerName: signer, Usages: []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth},
			Username: requester, Groups: groups, ExpirationSeconds: ptr[int32](86400)},
	}
	if approved {
		c.Status.Conditions = []certv1.CertificateSigningRequestCondition{{Type: certv1.CertificateApproved, Status: corev1.ConditionTrue,
			Reason: "KubectlApprove", Message: "This CSR was approved by " + approver, LastUpdateTime: metav1.NewTime(m.created.Truncate(time.Second)), LastTransitionTime: metav1.NewTime(m.created.Truncate(time.Second))}}
		if strings.HasPrefix(approver, "kube-controller-manager") {
			c.Status.Conditions[0].Reason = "AutoApproved"
			c.Status.Conditions[0].Message = "Auto approving kubelet client certificate after SubjectAccessReview."
		}
	}
	return mustJSON(c)
}

func tokenRequestObjs(sa, ns, pod string, podUID types.UID, exp time.Time, withStatus bool) []byte {
	tr := authnv1.TokenRequest{TypeMeta: metav1.TypeMeta{Kind: "TokenRequest", APIVersion: "authentication.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		Spec: authnv1.TokenRequestSpec{Audiences: []string{"https://kubernetes.default.svc.cluster.local"}, ExpirationSeconds: ptr[int64](3607),
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod, UID: podUID}}}
	if withStatus {
		tr.Status = authnv1.TokenRequestStatus{Token: TestToken, ExpirationTimestamp: metav1.NewTime(exp.Truncate(time.Second))}
	}
	return mustJSON(tr)
}

func tokenReviewObj(status bool, user authnv1.UserInfo) []byte {
	tr := authnv1.TokenReview{TypeMeta: metav1.TypeMeta{Kind: "TokenReview", APIVersion: "authentication.k8s.io/v1"},
		Spec: authnv1.TokenReviewSpec{Token: TestToken}}
	if status {
		tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: user, Audiences: []string{"https://kubernetes.default.svc.cluster.local"}}
	}
	return mustJSON(tr)
}

func sarObj(user string, groups []string, attrs *authzv1.ResourceAttributes, nonRes *authzv1.NonResourceAttributes, allowed bool, reason string, status bool) []byte {
	s := authzv1.SubjectAccessReview{TypeMeta: metav1.TypeMeta{Kind: "SubjectAccessReview", APIVersion: "authorization.k8s.io/v1"},
		Spec: authzv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: attrs, NonResourceAttributes: nonRes}}
	if status {
		s.Status = authzv1.SubjectAccessReviewStatus{Allowed: allowed, Reason: reason}
	}
	return mustJSON(s)
}

func leaseObj(m meta, holder string, renew time.Time, dur int32) []byte {
	r := metav1.NewMicroTime(renew.UTC().Truncate(time.Microsecond))
	return mustJSON(coordv1.Lease{TypeMeta: metav1.TypeMeta{Kind: "Lease", APIVersion: "coordination.k8s.io/v1"}, ObjectMeta: m.objectMeta(""),
		Spec: coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &r}})
}

func scaleObj(m meta, replicas int32, withStatus bool) []byte {
	s := autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"}, ObjectMeta: m.objectMeta(""), Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	if withStatus {
		s.Status = autoscalingv1.ScaleStatus{Replicas: replicas - 1, Selector: "app=" + m.name}
	}
	return mustJSON(s)
}

func namespaceObj(m meta, status bool) []byte {
	n := corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: m.objectMeta("")}
	if status {
		n.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		n.Status.Phase = corev1.NamespaceTerminating
	}
	return mustJSON(n)
}

func coreEventObj(m meta, involved corev1.ObjectReference, reason, msg, component string) []byte {
	t := metav1.NewTime(m.created.Truncate(time.Second))
	return mustJSON(corev1.Event{TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "v1"}, ObjectMeta: m.objectMeta(""),
		InvolvedObject: involved, Reason: reason, Message: msg, Source: corev1.EventSource{Component: component},
		FirstTimestamp: t, LastTimestamp: t, Count: 1, Type: corev1.EventTypeNormal})
}

// customObj is an object of the custom resource group db.example.com.
func customObj(m meta, spec map[string]any) []byte {
	om := m.objectMeta(`"f:spec":{}`)
	return mustJSON(map[string]any{"apiVersion": "db.example.com/v1", "kind": "PostgresCluster", "metadata": om, "spec": spec})
}

func statusObj(s *metav1.Status) []byte {
	c := *s
	c.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	return mustJSON(c)
}
