package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	helmValuesFile = "conf/helm/values.yaml"
	chartKeysFile  = "test/deploy/testdata/fluent-bit-chart-keys.txt"
	// chartConfigMount is where the chart (templates/_pod.tpl) mounts the
	// config volume, whatever existingConfigMap says.
	chartConfigMount = "/fluent-bit/etc/conf"
)

// chartKeys reads the key list: exact paths, and prefixes ("a.b.*") below
// which anything goes.
func chartKeys(t *testing.T) (exact map[string]bool, open []string) {
	t.Helper()
	exact = map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, chartKeysFile)))
	source := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "# source: https://github.com/fluent/helm-charts/blob/") {
			source = true
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if p, ok := strings.CutSuffix(line, ".*"); ok {
			open = append(open, p)
			exact[p] = true
		} else {
			exact[line] = true
		}
	}
	if !source {
		t.Errorf("%s does not name the chart commit it was taken from", chartKeysFile)
	}
	if len(exact) < 100 {
		t.Fatalf("%s: only %d keys", chartKeysFile, len(exact))
	}
	return exact, open
}

// valuePaths lists the dotted paths of a values tree, stopping at lists
// and scalars.
func valuePaths(prefix string, v any, out *[]string) {
	m, ok := v.(map[string]any)
	if !ok || (len(m) == 0 && prefix != "") {
		*out = append(*out, prefix)
		return
	}
	for k, x := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		valuePaths(p, x, out)
	}
}

func helmValues(t *testing.T) map[string]any {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(readFile(t, helmValuesFile))
	if err != nil {
		t.Fatalf("%s: %v", helmValuesFile, err)
	}
	var v map[string]any
	if err := json.Unmarshal(j, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHelmValuesKeysExistInChart(t *testing.T) {
	exact, open := chartKeys(t)
	var paths []string
	valuePaths("", helmValues(t), &paths)
	sort.Strings(paths)
	for _, p := range paths {
		if exact[p] {
			continue
		}
		ok := false
		for _, o := range open {
			if strings.HasPrefix(p, o+".") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s sets %s, which the fluent-bit chart does not have", helmValuesFile, p)
		}
	}
}

// helmTyped decodes one value strictly into its Kubernetes type.
func helmTyped(t *testing.T, v map[string]any, key string, dst any) {
	t.Helper()
	x, ok := v[key]
	if !ok {
		t.Fatalf("%s lacks %s", helmValuesFile, key)
	}
	j, _ := json.Marshal(x)
	if err := strictJSON(j, dst); err != nil {
		t.Errorf("%s: %s: %v", helmValuesFile, key, err)
	}
}

// The chart, given these values, runs what conf/kubernetes/deploy runs.
func TestHelmValuesMatchDaemonSet(t *testing.T) {
	v := helmValues(t)
	ds := loadDaemonSet(t, "conf/kubernetes/deploy/30-daemonset.yaml")
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]

	var (
		env         []corev1.EnvVar
		nodeSel     map[string]string
		tols        []corev1.Toleration
		podSC       corev1.PodSecurityContext
		sc          corev1.SecurityContext
		res         corev1.ResourceRequirements
		strategy    appsv1.DaemonSetUpdateStrategy
		vols        []corev1.Volume
		mounts      []corev1.VolumeMount
		image       struct{ Repository, Tag, PullPolicy string }
		command     []string
		args        []string
		existingCM  string
		priority    string
		metricsPort int
	)
	helmTyped(t, v, "env", &env)
	helmTyped(t, v, "nodeSelector", &nodeSel)
	helmTyped(t, v, "tolerations", &tols)
	helmTyped(t, v, "podSecurityContext", &podSC)
	helmTyped(t, v, "securityContext", &sc)
	helmTyped(t, v, "resources", &res)
	helmTyped(t, v, "updateStrategy", &strategy)
	helmTyped(t, v, "daemonSetVolumes", &vols)
	helmTyped(t, v, "daemonSetVolumeMounts", &mounts)
	helmTyped(t, v, "image", &image)
	helmTyped(t, v, "command", &command)
	helmTyped(t, v, "args", &args)
	helmTyped(t, v, "existingConfigMap", &existingCM)
	helmTyped(t, v, "priorityClassName", &priority)
	helmTyped(t, v, "metricsPort", &metricsPort)

	if got := image.Repository + ":" + image.Tag; got != c.Image {
		t.Errorf("image %s, DaemonSet runs %s", got, c.Image)
	}
	if existingCM != pod.Volumes[0].ConfigMap.Name {
		t.Errorf("existingConfigMap %q", existingCM)
	}
	if envValue(env, "KAUDIT_ETC") != chartConfigMount {
		t.Errorf("KAUDIT_ETC=%q, the chart mounts the ConfigMap at %s", envValue(env, "KAUDIT_ETC"), chartConfigMount)
	}
	if !contains(args, "--config="+chartConfigMount+"/fluent-bit.conf") {
		t.Errorf("args %v do not run %s/fluent-bit.conf", args, chartConfigMount)
	}
	if !reflect.DeepEqual(command, c.Command) {
		t.Errorf("command %v, DaemonSet %v", command, c.Command)
	}
	dropETC := func(e []corev1.EnvVar) []corev1.EnvVar {
		var out []corev1.EnvVar
		for _, x := range e {
			if x.Name != "KAUDIT_ETC" {
				out = append(out, x)
			}
		}
		return out
	}
	same := func(what string, a, b any) {
		t.Helper()
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			t.Errorf("%s: helm %s, DaemonSet %s", what, ja, jb)
		}
	}
	same("env", dropETC(env), dropETC(c.Env))
	same("nodeSelector", nodeSel, pod.NodeSelector)
	same("tolerations", tols, pod.Tolerations)
	same("podSecurityContext", &podSC, pod.SecurityContext)
	same("securityContext", &sc, c.SecurityContext)
	same("resources", res, c.Resources)
	same("updateStrategy", strategy, ds.Spec.UpdateStrategy)
	same("priorityClassName", priority, pod.PriorityClassName)
	// The DaemonSet's volumes other than the ConfigMap are the chart's daemonSetVolumes.
	var dsVols []corev1.Volume
	for _, x := range pod.Volumes {
		if x.ConfigMap == nil {
			dsVols = append(dsVols, x)
		}
	}
	same("volumes", vols, dsVols)
	var dsMounts []corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if m.Name != pod.Volumes[0].Name {
			dsMounts = append(dsMounts, m)
		}
	}
	same("volumeMounts", mounts, dsMounts)
	if metricsPort != int(c.Ports[0].ContainerPort) {
		t.Errorf("metricsPort %d, DaemonSet port %d", metricsPort, c.Ports[0].ContainerPort)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
