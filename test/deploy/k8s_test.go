// Package deploy checks the deployment manifests, dashboards, alert rules
// and saved searches in conf/ against the Kubernetes API types and against
// the documents the plugin really ships for the sample audit log.
package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/yaml"

	"github.com/kaudit/kaudit/test/hosttest"
)

var update = flag.Bool("update", false, "regenerate conf/kubernetes/deploy/20-configmap.yaml from the files it embeds")

// root returns the repository root.
func root(t testing.TB) string { return hosttest.RepoRoot(t) }

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// strictYAML decodes one YAML document into v, rejecting duplicate keys and
// fields v's type does not have.
func strictYAML(data []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	return strictJSON(j, v)
}

func strictJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the document")
	}
	return nil
}

// kubeadm's v1beta4 ClusterConfiguration, the part the snippets use
// (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go; kubeadm's module is
// k8s.io/kubernetes, which a project does not import).
type kubeadmClusterConfiguration struct {
	metav1.TypeMeta `json:",inline"`
	APIServer       struct {
		ExtraArgs []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"extraArgs"`
		ExtraVolumes []struct {
			Name      string              `json:"name"`
			HostPath  string              `json:"hostPath"`
			MountPath string              `json:"mountPath"`
			ReadOnly  bool                `json:"readOnly"`
			PathType  corev1.HostPathType `json:"pathType"`
		} `json:"extraVolumes"`
	} `json:"apiServer"`
}

// kubeconfig v1 (k8s.io/client-go/tools/clientcmd/api/v1), the fields a
// webhook kubeconfig uses.
type kubeconfig struct {
	metav1.TypeMeta `json:",inline"`
	Preferences     struct{} `json:"preferences"`
	Clusters        []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority,omitempty"`
			CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
			InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify,omitempty"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificate string `json:"client-certificate,omitempty"`
			ClientKey         string `json:"client-key,omitempty"`
			Token             string `json:"token,omitempty"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	CurrentContext string `json:"current-context"`
}

// manifestFiles lists every YAML file under conf/kubernetes.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	base := filepath.Join(root(t), "conf", "kubernetes")
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			rel, _ := filepath.Rel(root(t), p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// decodeManifest decodes one file strictly into the typed object its
// apiVersion and kind name.
func decodeManifest(data []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Namespace":
		obj = &corev1.Namespace{}
	case "v1/ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/Pod":
		obj = &corev1.Pod{}
	case "apps/v1/DaemonSet":
		obj = &appsv1.DaemonSet{}
	case "kubeadm.k8s.io/v1beta4/ClusterConfiguration":
		obj = &kubeadmClusterConfiguration{}
	case "v1/Config":
		obj = &kubeconfig{}
	case "audit.k8s.io/v1/Policy":
		obj = &auditv1.Policy{}
	default:
		return nil, fmt.Errorf("unexpected apiVersion/kind %s/%s", tm.APIVersion, tm.Kind)
	}
	if err := strictYAML(data, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	files := manifestFiles(t)
	if len(files) < 10 {
		t.Fatalf("only %d manifests under conf/kubernetes: %v", len(files), files)
	}
	for _, f := range files {
		data := readFile(t, f)
		if bytes.Contains(data, []byte("\n---")) {
			t.Errorf("%s: one object per file, please", f)
			continue
		}
		if _, err := decodeManifest(data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The strict decoder must really reject an unknown field, or the test above
// proves nothing.
func TestStrictDecoderRejectsUnknownFields(t *testing.T) {
	bad := []string{
		"apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      nodeSelectr: {}\n",
		"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n  a: c\n",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs: {audit-log-path: x}\n",
	}
	for _, b := range bad {
		if _, err := decodeManifest([]byte(b)); err == nil {
			t.Errorf("accepted:\n%s", b)
		}
	}
}

func loadDaemonSet(t *testing.T, rel string) *appsv1.DaemonSet {
	t.Helper()
	obj, err := decodeManifest(readFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		t.Fatalf("%s is a %T", rel, obj)
	}
	return ds
}

func TestDaemonSet(t *testing.T) {
	ds := loadDaemonSet(t, "conf/kubernetes/deploy/30-daemonset.yaml")
	spec := ds.Spec.Template.Spec
	if spec.NodeSelector["node-role.kubernetes.io/control-plane"] != "" || len(spec.NodeSelector) != 1 {
		t.Errorf("nodeSelector %v: want only node-role.kubernetes.io/control-plane", spec.NodeSelector)
	}
	if _, ok := spec.NodeSelector["node-role.kubernetes.io/control-plane"]; !ok {
		t.Errorf("nodeSelector lacks the control-plane role")
	}
	tolerated := false
	for _, tol := range spec.Tolerations {
		if tol.Key == "node-role.kubernetes.io/control-plane" && tol.Effect == corev1.TaintEffectNoSchedule &&
			tol.Operator == corev1.TolerationOpExists {
			tolerated = true
		}
	}
	if !tolerated {
		t.Errorf("no toleration for the control-plane taint: %+v", spec.Tolerations)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != "ghcr.io/kaudit/kaudit:0.1.0" {
		t.Errorf("image %q", c.Image)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		len(sc.Capabilities.Add) != 0 || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("securityContext not restrictive: %+v", sc)
	}
	if psc := spec.SecurityContext; psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext lacks seccomp RuntimeDefault")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("host namespaces shared")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("service account token mounted; kaudit does not call the API")
	}

	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	conf := readFile(t, "conf/kubernetes/fluent-bit/fluent-bit.conf")
	// The audit log directory: hostPath, read-only, and where the tail input reads.
	logMount, ok := mounts["/var/log/kubernetes/audit"]
	if !ok || !logMount.ReadOnly || vols[logMount.Name].HostPath == nil || vols[logMount.Name].HostPath.Path != "/var/log/kubernetes/audit" {
		t.Errorf("audit log dir not mounted read-only from the host: %+v", logMount)
	}
	if !bytes.Contains(conf, []byte("Path              /var/log/kubernetes/audit/audit.log")) {
		t.Errorf("fluent-bit.conf does not tail /var/log/kubernetes/audit/audit.log")
	}
	// Buffer and tail DB on a writable hostPath.
	state, ok := mounts["/var/lib/kaudit"]
	if !ok || state.ReadOnly || vols[state.Name].HostPath == nil {
		t.Errorf("/var/lib/kaudit is not a writable hostPath: %+v", state)
	}
	for _, want := range []string{"storage.path              /var/lib/kaudit/buffer", "DB                /var/lib/kaudit/tail.db", "storage.type      filesystem"} {
		if !bytes.Contains(conf, []byte(want)) {
			t.Errorf("fluent-bit.conf lacks %q", want)
		}
	}
	// The ConfigMap at /fluent-bit/etc.
	cfg, ok := mounts["/fluent-bit/etc"]
	if !ok || vols[cfg.Name].ConfigMap == nil || vols[cfg.Name].ConfigMap.Name != "kaudit" {
		t.Errorf("ConfigMap kaudit not mounted at /fluent-bit/etc")
	}
	if envValue(c.Env, "KAUDIT_ETC") != cfg.MountPath {
		t.Errorf("KAUDIT_ETC=%q, the ConfigMap is mounted at %s", envValue(c.Env, "KAUDIT_ETC"), cfg.MountPath)
	}
	// Credentials from the Secret, never inline.
	secretEnv := 0
	for _, e := range c.Env {
		if strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "USER") {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "kaudit-backend" {
				t.Errorf("env %s not from the kaudit-backend Secret", e.Name)
			}
			secretEnv++
		}
	}
	if secretEnv != 2 {
		t.Errorf("%d credential variables from the Secret, want 2", secretEnv)
	}
	// Every ${VAR} the Fluent Bit configs use is set in the pod.
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	for _, f := range []string{"conf/kubernetes/fluent-bit/fluent-bit.conf", "conf/kubernetes/fluent-bit/fluent-bit-webhook.conf"} {
		for _, v := range envRefs(readFile(t, f)) {
			if !env[v] {
				t.Errorf("%s uses ${%s}, which the DaemonSet does not set", f, v)
			}
		}
	}
	// The container's --config names a file of the ConfigMap.
	cm := loadConfigMap(t)
	for _, a := range c.Args {
		if p, ok := strings.CutPrefix(a, "--config=/fluent-bit/etc/"); ok {
			if _, ok := cm.Data[p]; !ok {
				t.Errorf("--config names %s, not in the ConfigMap", p)
			}
		}
	}
	// The service account exists.
	sa, err := decodeManifest(readFile(t, "conf/kubernetes/deploy/10-serviceaccount.yaml"))
	if err != nil || sa.(*corev1.ServiceAccount).Name != spec.ServiceAccountName || sa.(*corev1.ServiceAccount).Namespace != ds.Namespace {
		t.Errorf("service account %q not defined in namespace %s (%v)", spec.ServiceAccountName, ds.Namespace, err)
	}
}

func envRefs(b []byte) []string {
	var out []string
	s := string(b)
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, s[i+2:i+j])
		s = s[i+j:]
	}
}

func TestWebhookPatch(t *testing.T) {
	ds := loadDaemonSet(t, "conf/kubernetes/webhook/daemonset-patch.yaml")
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("webhook variant needs hostNetwork and ClusterFirstWithHostNet")
	}
	base := loadDaemonSet(t, "conf/kubernetes/deploy/30-daemonset.yaml")
	if ds.Name != base.Name || ds.Namespace != base.Namespace || spec.Containers[0].Name != base.Spec.Template.Spec.Containers[0].Name {
		t.Errorf("patch does not address the DaemonSet's container")
	}
	obj, err := decodeManifest(readFile(t, "conf/kubernetes/apiserver/audit-webhook-kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kc := obj.(*kubeconfig)
	conf := string(readFile(t, "conf/kubernetes/fluent-bit/fluent-bit-webhook.conf"))
	if len(kc.Clusters) != 1 || !strings.HasPrefix(kc.Clusters[0].Cluster.Server, "http://127.0.0.1:9880/") {
		t.Fatalf("webhook kubeconfig server: %+v", kc.Clusters)
	}
	if !strings.Contains(conf, "Name              http") || !strings.Contains(conf, "Port              9880") ||
		!strings.Contains(conf, "Listen            127.0.0.1") {
		t.Errorf("fluent-bit-webhook.conf has no http input on 127.0.0.1:9880")
	}
	if kc.CurrentContext != kc.Contexts[0].Name || kc.Contexts[0].Context.Cluster != kc.Clusters[0].Name {
		t.Errorf("kubeconfig context does not resolve")
	}
}

// The kubeadm snippets and the static-pod manifests set the same flags,
// with the paths the DaemonSet mounts.
func TestApiserverFlags(t *testing.T) {
	for _, v := range []struct{ kubeadm, pod string }{
		{"conf/kubernetes/apiserver/kubeadm-audit-log.yaml", "conf/kubernetes/apiserver/kube-apiserver-audit-log.yaml"},
		{"conf/kubernetes/apiserver/kubeadm-audit-webhook.yaml", "conf/kubernetes/apiserver/kube-apiserver-audit-webhook.yaml"},
	} {
		obj, err := decodeManifest(readFile(t, v.kubeadm))
		if err != nil {
			t.Fatal(err)
		}
		kc := obj.(*kubeadmClusterConfiguration)
		var fromKubeadm []string
		for _, a := range kc.APIServer.ExtraArgs {
			fromKubeadm = append(fromKubeadm, "--"+a.Name+"="+a.Value)
		}
		obj, err = decodeManifest(readFile(t, v.pod))
		if err != nil {
			t.Fatal(err)
		}
		pod := obj.(*corev1.Pod)
		fromPod := pod.Spec.Containers[0].Command[1:]
		if strings.Join(fromKubeadm, " ") != strings.Join(fromPod, " ") {
			t.Errorf("%s and %s differ:\n%v\n%v", v.kubeadm, v.pod, fromKubeadm, fromPod)
		}
		mounts := map[string]bool{}
		for _, m := range pod.Spec.Containers[0].VolumeMounts {
			mounts[m.MountPath] = true
		}
		for _, ev := range kc.APIServer.ExtraVolumes {
			if !mounts[ev.MountPath] {
				t.Errorf("%s mounts %s, %s does not", v.kubeadm, ev.MountPath, v.pod)
			}
		}
		flags := strings.Join(fromPod, " ")
		for _, want := range []string{"--audit-policy-file=/etc/kubernetes/audit/policy.yaml"} {
			if !strings.Contains(flags, want) {
				t.Errorf("%s lacks %s", v.pod, want)
			}
		}
		if strings.Contains(v.pod, "log") {
			for _, want := range []string{"--audit-log-path=/var/log/kubernetes/audit/audit.log", "--audit-log-format=json",
				"--audit-log-maxage=", "--audit-log-maxbackup=", "--audit-log-maxsize="} {
				if !strings.Contains(flags, want) {
					t.Errorf("%s lacks %s", v.pod, want)
				}
			}
		} else if !strings.Contains(flags, "--audit-webhook-config-file=/etc/kubernetes/audit/webhook-kubeconfig.yaml") {
			t.Errorf("%s lacks --audit-webhook-config-file", v.pod)
		}
	}
}

// The policy the apiserver is given (conf/audit-policy.yaml) is a valid
// audit.k8s.io/v1 Policy.
func TestAuditPolicyDecodes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "conf", "audit-policy.yaml"))
	if os.IsNotExist(err) {
		t.Skip("conf/audit-policy.yaml not written yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	var p auditv1.Policy
	if err := strictYAML(data, &p); err != nil {
		t.Fatalf("conf/audit-policy.yaml: %v", err)
	}
	if len(p.Rules) == 0 {
		t.Errorf("policy has no rules")
	}
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
