package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kaudit/kaudit/plugin/sink/loki"
)

const (
	dashboardFile = "conf/grafana/dashboards/kaudit-audit.json"
	lokiRulesDir  = "conf/loki/rules"
)

// The Loki sink's defaults (plugin/sink/loki: DefaultLabels,
// DefaultMetadata). Queries may select streams by these labels only.
var lokiLabels, lokiMetadata, lokiJob = func() (map[string]bool, map[string]bool, string) {
	labels, meta, job := map[string]bool{}, map[string]bool{}, ""
	for _, l := range loki.DefaultLabels {
		name, value, static := strings.Cut(l, "=")
		labels[name] = true
		if static && name == "job" {
			job = value
		}
	}
	for _, m := range loki.DefaultMetadata {
		meta[m] = true
	}
	return labels, meta, job
}()

// labelValue is the value the sink gives a default label for a document.
func labelValue(doc map[string]any, label string) string {
	str := func(p string) string {
		v, _ := lookup(doc, p)
		s, _ := v.(string)
		return s
	}
	switch label {
	case "job":
		return lokiJob
	case "cluster":
		return str("kaudit.cluster")
	case "node":
		return str("kaudit.node")
	case "verb":
		return str("verb")
	case "resource":
		return str("objectRef.resource")
	case "namespace":
		return str("objectRef.namespace")
	case "level":
		return str("level")
	case "critical":
		if b, _ := lookup(doc, "kaudit.critical_workload"); b == true {
			return "true"
		}
		return "false"
	case "user":
		return str("user.username")
	case "source_ip":
		if s := str("kaudit.source.ip"); s != "" {
			return s
		}
		return str("sourceIPs[0]")
	case "audit_id":
		return str("auditID")
	}
	return ""
}

// extractedValues returns what `| json` gives for path in doc: scalars as
// Loki renders them; ok false when absent.
func extractedValue(doc map[string]any, path string) (string, bool) {
	v, ok := lookup(doc, path)
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case nil:
		return "", true
	default:
		b, _ := json.Marshal(x)
		return string(b), true
	}
}

// pathInSomeDoc: the path exists in a shipped document; an array index
// other than 0 is checked as "some element has the rest of the path".
var indexRe = regexp.MustCompile(`\[[1-9][0-9]*\]`)

func pathInSomeDoc(docs []map[string]any, path string) bool {
	_, ok := pathExists(docs, indexRe.ReplaceAllString(path, "[0]"))
	return ok
}

func matchValue(m matcher, v string) bool {
	switch m.Op {
	case "=", "==":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		return err == nil && re.MatchString(v)
	case "!~":
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		return err == nil && !re.MatchString(v)
	}
	return true
}

// checkQuery applies the rules every Loki query of the project follows.
func checkQuery(t *testing.T, where string, q *logQuery, docs []map[string]any) {
	t.Helper()
	known := map[string]bool{}
	for l := range lokiLabels {
		known[l] = true
	}
	for l := range lokiMetadata {
		known[l] = true
	}
	if q.BareJSON {
		t.Errorf("%s: `| json` without parameters: name the paths (json name=\"path\") so they can be checked: %s", where, q.Expr)
	}
	for name, path := range q.Extracted {
		if lokiLabels[name] || lokiMetadata[name] {
			t.Errorf("%s: json extracts %q, which is already a label or metadata (Loki renames it %s_extracted)", where, name, name)
		}
		if !pathInSomeDoc(docs, path) {
			t.Errorf("%s: json path %q (%s) is in no document the plugin ships for the sample log", where, path, name)
		}
		known[name] = true
	}
	for _, sel := range q.Selectors {
		hasJob := false
		for _, m := range sel {
			if !lokiLabels[m.Name] {
				t.Errorf("%s: stream selector label %q is not one the Loki sink sets by default", where, m.Name)
			}
			if m.Name == "job" && m.Op == "=" && m.Value == lokiJob {
				hasJob = true
			}
			// A static equality or regex must select some shipped document.
			if (m.Op == "=" || m.Op == "=~") && !strings.Contains(m.Value, "$") {
				found := false
				for _, d := range docs {
					if matchValue(m, labelValue(d, m.Name)) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("%s: selector %s%s%q matches no shipped document", where, m.Name, m.Op, m.Value)
				}
			}
		}
		if !hasJob {
			t.Errorf("%s: stream selector without job=%q", where, lokiJob)
		}
	}
	for _, chain := range q.Filters {
		anyMatch, static := false, false
		for _, m := range chain {
			if !known[m.Name] {
				t.Errorf("%s: label filter on %q, which is neither a default label, structured metadata nor extracted", where, m.Name)
				continue
			}
			path, extracted := q.Extracted[m.Name]
			if !extracted || strings.Contains(m.Value, "$") || (m.Op != "=" && m.Op != "=~") {
				continue
			}
			static = true
			for _, d := range docs {
				if v, ok := extractedValue(d, path); ok && matchValue(m, v) {
					anyMatch = true
					break
				}
			}
		}
		if static && !anyMatch && !severityChain(chain, q) {
			t.Errorf("%s: label filter %v matches no shipped document", where, chain)
		}
	}
	for _, f := range q.Formats {
		for _, name := range templateFields(f) {
			if !known[name] {
				t.Errorf("%s: line_format uses {{.%s}}, which the query neither extracts nor has as a label", where, name)
			}
		}
	}
	for _, name := range append(append([]string{}, q.Unwrapped...), q.Grouping...) {
		if !known[name] {
			t.Errorf("%s: %q (unwrap or by) is neither a label, metadata nor extracted", where, name)
		}
	}
}

// severityChain: a filter on alert severities, checked against the
// severities the detections use instead of the sample (which may hold no
// alert of that severity).
func severityChain(chain []matcher, q *logQuery) bool {
	for _, m := range chain {
		if !strings.HasSuffix(q.Extracted[m.Name], ".severity") {
			return false
		}
		switch m.Value {
		case "low", "medium", "high", "critical":
		default:
			return false
		}
	}
	return true
}

type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) *grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

var dollarVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		// Variable queries select streams too.
		var qs string
		switch x := v.Query.(type) {
		case map[string]any:
			qs, _ = x["query"].(string)
		case string:
			qs = x
		}
		if m := regexp.MustCompile(`label_values\((\{.*\}),\s*(\w+)\)`).FindStringSubmatch(qs); m != nil {
			q, err := parseLogQL(m[1])
			if err != nil {
				t.Errorf("variable %s: %v", v.Name, err)
				continue
			}
			for _, m2 := range q.Selectors[0] {
				if !lokiLabels[m2.Name] {
					t.Errorf("variable %s selects by %q", v.Name, m2.Name)
				}
			}
			if !lokiLabels[m[2]] {
				t.Errorf("variable %s takes the values of %q, not a label the sink sets", v.Name, m[2])
			}
		}
	}
	for _, want := range []string{"datasource", "cluster", "node", "namespace", "user"} {
		if _, ok := vars[want]; !ok {
			t.Errorf("dashboard lacks the %s variable", want)
		}
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("datasource variable has type %q", vars["datasource"])
	}
	titles := ""
	queries := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		titles += strings.ToLower(p.Title) + "\n"
		if p.Title == "" || len(p.Description) < 20 {
			t.Errorf("panel %d %q: each panel says which question it answers (title and description)", p.ID, p.Title)
		}
		if p.Datasource == nil || p.Datasource.Type != "loki" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource must be the ${datasource} Loki variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range dollarVar.FindAllStringSubmatch(tg.Expr, -1) {
				if _, ok := vars[m[1]]; !ok && !strings.HasPrefix(m[1], "__") {
					t.Errorf("panel %q uses undefined variable $%s", p.Title, m[1])
				}
			}
			q, err := parseLogQL(tg.Expr)
			if err != nil {
				t.Errorf("panel %q %s: %v\n%s", p.Title, tg.RefID, err, tg.Expr)
				continue
			}
			for _, sel := range q.Selectors {
				for _, v := range []string{"cluster", "node", "namespace"} {
					if !hasMatcher(sel, v, "$"+v) {
						t.Errorf("panel %q: selector does not filter by $%s", p.Title, v)
					}
				}
			}
			if !strings.Contains(tg.Expr, `user=~"$user"`) {
				t.Errorf("panel %q: query does not filter by $user", p.Title)
			}
			queries++
			if !testing.Short() {
				checkQuery(t, fmt.Sprintf("panel %q", p.Title), q, shippedDocs(t))
			}
		}
	}
	// The panels the issue asks for.
	for _, want := range []string{"activity over time by verb and outcome", "top users and service accounts",
		"changes to critical workloads", "secret and configmap", "deletions", "failed authentications", "trusted vs unknown",
		"alerts by rule and severity", "slow requests", "latest alerts"} {
		if !strings.Contains(titles, want) {
			t.Errorf("no panel titled like %q", want)
		}
	}
	t.Logf("%d panel queries checked", queries)
}

func hasMatcher(sel []matcher, name, value string) bool {
	for _, m := range sel {
		if m.Name == name && m.Value == value {
			return true
		}
	}
	return false
}

func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name           string            `json:"name"`
			UID            string            `json:"uid"`
			Type           string            `json:"type"`
			Access         string            `json:"access"`
			URL            string            `json:"url"`
			Editable       bool              `json:"editable"`
			JSONData       map[string]any    `json:"jsonData"`
			SecureJSONData map[string]string `json:"secureJsonData"`
		} `json:"datasources"`
	}
	if err := strictYAML(readFile(t, "conf/grafana/provisioning/datasources/kaudit-loki.yaml"), &ds); err != nil {
		t.Fatal(err)
	}
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "loki" {
		t.Fatalf("datasource provisioning: %+v", ds)
	}
	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			OrgID                 int    `json:"orgId"`
			Folder                string `json:"folder"`
			FolderUID             string `json:"folderUid"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `json:"path"`
				FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
			} `json:"options"`
		} `json:"providers"`
	}
	if err := strictYAML(readFile(t, "conf/grafana/provisioning/dashboards/kaudit.yaml"), &prov); err != nil {
		t.Fatal(err)
	}
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path == "" {
		t.Fatalf("dashboard provisioning: %+v", prov)
	}
	// The dashboard's datasource variable defaults to the provisioned datasource.
	var raw struct {
		Templating struct {
			List []map[string]any `json:"list"`
		} `json:"templating"`
	}
	json.Unmarshal(readFile(t, dashboardFile), &raw)
	for _, v := range raw.Templating.List {
		if v["name"] == "datasource" {
			cur, _ := v["current"].(map[string]any)
			if cur["value"] != ds.Datasources[0].UID {
				t.Errorf("datasource variable defaults to %v, provisioned uid is %s", cur["value"], ds.Datasources[0].UID)
			}
		}
	}
}

type lokiRuleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval"`
		Rules    []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

var thresholdRe = regexp.MustCompile(`\)\s*(>=|>)\s*([0-9]+)\s*$`)

func TestLokiRules(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root(t), lokiRulesDir, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no rule files in %s", lokiRulesDir)
	}
	if lokiJob != "kaudit" {
		t.Fatalf("the Loki sink's default job label is %q; the rules and dashboard select job=\"kaudit\"", lokiJob)
	}
	detections := detectionRules(t)
	seen := map[string]bool{}
	severities := map[string]bool{}
	for _, f := range files {
		var rf lokiRuleFile
		data, _ := os.ReadFile(f)
		if err := strictYAML(data, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			if g.Name == "" || len(g.Rules) == 0 {
				t.Errorf("%s: group %q empty", f, g.Name)
			}
			for _, r := range g.Rules {
				where := fmt.Sprintf("rule %s", r.Alert)
				if r.Alert == "" {
					t.Errorf("%s: recording rule or unnamed alert %q", f, r.Expr)
					continue
				}
				forDur, err := time.ParseDuration(r.For)
				if err != nil || forDur <= 0 {
					t.Errorf("%s: for %q", where, r.For)
				}
				switch r.Labels["severity"] {
				case "low", "medium", "high", "critical":
					severities[r.Labels["severity"]] = true
				default:
					t.Errorf("%s: severity label %q", where, r.Labels["severity"])
				}
				if strings.TrimSpace(r.Annotations["summary"]) == "" {
					t.Errorf("%s: no summary annotation", where)
				}
				q, err := parseLogQL(r.Expr)
				if err != nil {
					t.Errorf("%s: %v\n%s", where, err, r.Expr)
					continue
				}
				for _, w := range q.RangeWidth {
					if d, err := time.ParseDuration(w); err != nil || d < forDur {
						t.Errorf("%s: range [%s] shorter than for %s: the alert could never fire", where, w, r.For)
					}
				}
				// The labels templated into annotations are kept by the aggregation.
				for _, a := range r.Annotations {
					for _, m := range regexp.MustCompile(`\$labels\.(\w+)`).FindAllStringSubmatch(a, -1) {
						if !contains(q.Grouping, m[1]) {
							t.Errorf("%s: annotation uses $labels.%s, which the expression does not keep (by %v)", where, m[1], q.Grouping)
						}
					}
				}
				if !testing.Short() {
					checkQuery(t, where, q, shippedDocs(t))
				}
				if name := r.Labels["kaudit_detection"]; name != "" {
					seen[name] = true
					checkCorrelation(t, where, q, r.Expr, detections[name], r.Labels["severity"])
				}
			}
		}
	}
	for _, want := range []string{"auth-failures-inside-and-outside", "secret-read-burst", "mass-delete"} {
		if !seen[want] {
			t.Errorf("no Loki rule for the %s correlation", want)
		}
	}
	if !severities["high"] || !severities["critical"] {
		t.Errorf("no rules for events with alerts of severity high and critical")
	}
}

// checkCorrelation: a cross-node rule uses the detection's window,
// threshold and severity, and neither selects nor groups by node.
func checkCorrelation(t *testing.T, where string, q *logQuery, expr string, det map[string]any, severity string) {
	t.Helper()
	if det == nil {
		t.Errorf("%s: names a detection conf/detections.yaml does not have", where)
		return
	}
	if w, _ := det["window"].(string); len(q.RangeWidth) != 1 || q.RangeWidth[0] != w {
		t.Errorf("%s: range %v, the detection's window is %v", where, q.RangeWidth, det["window"])
	}
	if th, ok := det["threshold"].(float64); ok && th > 1 {
		m := thresholdRe.FindStringSubmatch(strings.TrimSpace(expr))
		if m == nil || m[1] != ">=" || m[2] != strconv.Itoa(int(th)) {
			t.Errorf("%s: threshold %v, the detection's is >= %v", where, m, th)
		}
	}
	if s, _ := det["severity"].(string); s != severity {
		t.Errorf("%s: severity %s, the detection's is %s", where, severity, s)
	}
	for _, sel := range q.Selectors {
		for _, m := range sel {
			if m.Name == "node" {
				t.Errorf("%s: selects by node; a cross-node correlation must see every apiserver", where)
			}
		}
	}
	if contains(q.Grouping, "node") {
		t.Errorf("%s: groups by node; a cross-node correlation must add up every apiserver", where)
	}
}

// detectionRules reads conf/detections.yaml (or the built-in copy) by rule name.
func detectionRules(t *testing.T) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "conf", "detections.yaml"))
	if err != nil {
		data, err = os.ReadFile(filepath.Join(root(t), "filter", "detections_default.yaml"))
	}
	if err != nil {
		t.Fatalf("no detections file: %v", err)
	}
	var f struct {
		Rules []map[string]any `json:"rules"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	names := []string{}
	for _, r := range f.Rules {
		n, _ := r["name"].(string)
		out[n] = r
		names = append(names, n)
	}
	sort.Strings(names)
	return out
}
