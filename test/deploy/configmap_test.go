package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const (
	configMapFile = "conf/kubernetes/deploy/20-configmap.yaml"
	// sourcesAnnotation maps each ConfigMap key to the file it copies:
	// "key=path,key=path".
	sourcesAnnotation = "kaudit.io/sources"
)

// configMapSources are the files the ConfigMap embeds, by key. Regenerate
// with: go test ./test/deploy -run TestConfigMapMatchesConf -update
var configMapSources = [][2]string{
	{"fluent-bit.conf", "conf/kubernetes/fluent-bit/fluent-bit.conf"},
	{"fluent-bit-webhook.conf", "conf/kubernetes/fluent-bit/fluent-bit-webhook.conf"},
	{"plugins.conf", "conf/kubernetes/fluent-bit/plugins.conf"},
	{"audit-policy.yaml", "conf/audit-policy.yaml"},
	{"critical-workloads.yaml", "conf/critical-workloads.yaml"},
	{"detections.yaml", "conf/detections.yaml"},
}

func loadConfigMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	obj, err := decodeManifest(readFile(t, configMapFile))
	if err != nil {
		t.Fatalf("%s: %v", configMapFile, err)
	}
	return obj.(*corev1.ConfigMap)
}

// TestConfigMapMatchesConf: every file the ConfigMap embeds is byte-identical
// to its source in conf/ (the annotation names the sources, so a file added
// to the ConfigMap is checked too), and it embeds everything the node needs.
func TestConfigMapMatchesConf(t *testing.T) {
	if *update {
		writeConfigMap(t)
	}
	cm := loadConfigMap(t)
	sources := map[string]string{}
	for _, kv := range strings.Split(cm.Annotations[sourcesAnnotation], ",") {
		k, p, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			t.Fatalf("annotation %s: %q is not key=path", sourcesAnnotation, kv)
		}
		sources[k] = p
	}
	for k, v := range cm.Data {
		src, ok := sources[k]
		if !ok {
			t.Errorf("ConfigMap key %s has no source in %s", k, sourcesAnnotation)
			continue
		}
		want, err := os.ReadFile(filepath.Join(root(t), src))
		if err != nil {
			t.Errorf("ConfigMap key %s: %v", k, err)
			continue
		}
		if !bytes.Equal([]byte(v), want) {
			t.Errorf("ConfigMap key %s differs from %s (regenerate: go test ./test/deploy -run TestConfigMapMatchesConf -update)", k, src)
		}
	}
	for k := range sources {
		if _, ok := cm.Data[k]; !ok {
			t.Errorf("%s names %s, which the ConfigMap lacks", sourcesAnnotation, k)
		}
	}
	for _, s := range configMapSources {
		if sources[s[0]] != s[1] {
			t.Errorf("ConfigMap should embed %s as %s (has %q)", s[1], s[0], sources[s[0]])
		}
	}
	// Every file the Fluent Bit configs name under ${KAUDIT_ETC}/ is in the ConfigMap.
	for _, f := range []string{"fluent-bit.conf", "fluent-bit-webhook.conf"} {
		for _, line := range strings.Split(cm.Data[f], "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if i := strings.Index(line, "${KAUDIT_ETC}/"); i >= 0 {
				name := strings.Fields(line[i+len("${KAUDIT_ETC}/"):])[0]
				if _, ok := cm.Data[name]; !ok {
					t.Errorf("%s refers to ${KAUDIT_ETC}/%s, not in the ConfigMap", f, name)
				}
			}
		}
	}
}

// writeConfigMap regenerates the ConfigMap from its sources, each file as
// a YAML block scalar (so the files stay readable in the manifest).
func writeConfigMap(t *testing.T) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# Generated from the files named in the kaudit.io/sources annotation; do not\n" +
		"# edit by hand. Regenerate after changing one of them:\n" +
		"#   go test ./test/deploy -run TestConfigMapMatchesConf -update\n" +
		"# (the test fails when this copy and conf/ differ).\n")
	var src []string
	for _, s := range configMapSources {
		if _, err := os.Stat(filepath.Join(root(t), s[1])); err != nil {
			t.Errorf("-update: %s left out: %v", s[1], err)
			continue
		}
		src = append(src, s[0]+"="+s[1])
	}
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kaudit\n  namespace: kaudit\n  labels:\n    app.kubernetes.io/name: kaudit\n  annotations:\n    %s: %s\ndata:\n", sourcesAnnotation, strings.Join(src, ","))
	keys := make([]string, 0, len(configMapSources))
	files := map[string][]byte{}
	for _, s := range configMapSources {
		data, err := os.ReadFile(filepath.Join(root(t), s[1]))
		if err != nil {
			continue
		}
		keys = append(keys, s[0])
		files[s[0]] = data
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString("  " + k + ":")
		b.WriteString(blockScalar(files[k], "    "))
	}
	if err := os.WriteFile(filepath.Join(root(t), configMapFile), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// blockScalar renders data as a YAML literal block scalar (with the chomping
// and indentation indicators it needs), or as a JSON string when a literal
// block cannot hold it exactly.
func blockScalar(data []byte, indent string) string {
	s := string(data)
	literalOK := !strings.ContainsAny(s, "\r\t\x00") && s != ""
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimRight(line, " ") != line {
			literalOK = false // trailing spaces survive, but are invisible: keep them explicit
		}
	}
	if !literalOK {
		q, _ := jsonString(s)
		return " " + q + "\n"
	}
	head := " |"
	if strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\n") {
		head += fmt.Sprint(len(indent))
	}
	body := s
	switch {
	case !strings.HasSuffix(s, "\n"):
		head += "-"
		body += "\n"
	case strings.HasSuffix(s, "\n\n"):
		head += "+"
	}
	var out strings.Builder
	out.WriteString(head + "\n")
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if line == "" {
			out.WriteString("\n")
		} else {
			out.WriteString(indent + line + "\n")
		}
	}
	return out.String()
}
