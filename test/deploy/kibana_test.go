package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const kibanaFile = "conf/kibana/kaudit-saved-objects.ndjson"

// templateFields flattens an index template's mappings to path -> type.
func templateFieldTypes(t *testing.T, rel string) map[string]string {
	t.Helper()
	var tmpl struct {
		Template struct {
			Mappings struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(readFile(t, rel), &tmpl); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	out := map[string]string{}
	var walk func(prefix string, props map[string]json.RawMessage)
	walk = func(prefix string, props map[string]json.RawMessage) {
		for name, raw := range props {
			var f struct {
				Type       string                     `json:"type"`
				Properties map[string]json.RawMessage `json:"properties"`
				Fields     map[string]struct {
					Type string `json:"type"`
				} `json:"fields"`
			}
			json.Unmarshal(raw, &f)
			path := prefix + name
			if f.Properties != nil {
				walk(path+".", f.Properties)
				continue
			}
			out[path] = f.Type
			for sub, sf := range f.Fields {
				out[path+"."+sub] = sf.Type
			}
		}
	}
	walk("", tmpl.Template.Mappings.Properties)
	if len(out) < 50 {
		t.Fatalf("%s: only %d fields", rel, len(out))
	}
	return out
}

// The templates the elasticsearch sink installs; the saved objects and
// queries must work with each (conf/elasticsearch/embed.go).
var templateFiles = []string{"conf/elasticsearch/elasticsearch.json", "conf/elasticsearch/opensearch.json"}

// fieldUse is one field a saved object or query relies on, with the kind
// of operation: "terms" (aggregatable exact values), "date", "number",
// "bool", "exists" or "any".
type fieldUse struct {
	where, field, need string
}

func typeFits(typ, need string) bool {
	switch need {
	case "any", "exists":
		return typ != ""
	case "terms":
		switch typ {
		case "keyword", "ip", "boolean", "integer", "long", "short", "byte", "constant_keyword":
			return true
		}
	case "date":
		return typ == "date" || typ == "date_nanos"
	case "number":
		switch typ {
		case "integer", "long", "short", "byte", "float", "double", "half_float", "scaled_float":
			return true
		}
	case "bool":
		return typ == "boolean"
	case "keyword":
		return typ == "keyword" || typ == "constant_keyword"
	}
	return false
}

func checkFieldUses(t *testing.T, uses []fieldUse) {
	t.Helper()
	for _, tf := range templateFiles {
		types := templateFieldTypes(t, tf)
		for _, u := range uses {
			typ, ok := types[u.field]
			if !ok {
				t.Errorf("%s: field %s is not mapped in %s (dynamic: false leaves it unsearchable)", u.where, u.field, tf)
				continue
			}
			if !typeFits(typ, u.need) {
				t.Errorf("%s: field %s is %q in %s; the use needs %s", u.where, u.field, typ, tf, u.need)
			}
		}
	}
}

var kqlField = regexp.MustCompile(`(?:^|[\s(])(?:not\s+)?([A-Za-z@_][A-Za-z0-9@_.]*)\s*:\s*(\(([^)]*)\)|"[^"]*"|\*|[^\s)]+)`)

// kqlUses reads the field names of a KQL query and what their values need.
func kqlUses(where, q string) []fieldUse {
	var out []fieldUse
	for _, m := range kqlField.FindAllStringSubmatch(q, -1) {
		val := m[2]
		if m[3] != "" {
			val = strings.TrimSpace(strings.Split(m[3], " or ")[0])
		}
		need := "keyword"
		switch {
		case val == "*":
			need = "exists"
		case val == "true" || val == "false":
			need = "bool"
		case regexp.MustCompile(`^[0-9.]+$`).MatchString(val):
			need = "number"
		}
		out = append(out, fieldUse{where, m[1], need})
	}
	return out
}

type savedObject struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	Attributes json.RawMessage `json:"attributes"`
	References []struct {
		Name string `json:"name"`
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"references"`
	CoreMigrationVersion string `json:"coreMigrationVersion"`
	TypeMigrationVersion string `json:"typeMigrationVersion"`
}

func TestKibanaSavedObjects(t *testing.T) {
	var objs []savedObject
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, kibanaFile)))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var o savedObject
		if err := strictJSON(sc.Bytes(), &o); err != nil {
			t.Fatalf("%s: line %d: %v", kibanaFile, len(objs)+1, err)
		}
		objs = append(objs, o)
	}
	byKey := map[string]*savedObject{}
	types := map[string]int{}
	for i := range objs {
		o := &objs[i]
		key := o.Type + "/" + o.ID
		if byKey[key] != nil {
			t.Errorf("duplicate saved object %s", key)
		}
		byKey[key] = o
		types[o.Type]++
	}
	if types["index-pattern"] != 1 || types["search"] < 6 || types["dashboard"] != 1 || types["lens"] < 4 {
		t.Errorf("saved objects by type: %v", types)
	}
	var uses []fieldUse
	for _, o := range objs {
		where := o.Type + "/" + o.ID
		refs := map[string]string{}
		for _, r := range o.References {
			if byKey[r.Type+"/"+r.ID] == nil {
				t.Errorf("%s: reference %s to %s/%s, which the file does not hold", where, r.Name, r.Type, r.ID)
			}
			refs[r.Name] = r.Type + "/" + r.ID
		}
		switch o.Type {
		case "index-pattern":
			var a struct {
				Title, Name, TimeFieldName string
			}
			json.Unmarshal(o.Attributes, &a)
			pats := strings.Split(a.Title, ",")
			if !contains(pats, "kaudit-*") || !strings.Contains(a.Title, "logs-kubernetes.audit-") {
				t.Errorf("data view %s covers %q: want the index pattern kaudit-* and the data stream", o.ID, a.Title)
			}
			uses = append(uses, fieldUse{where, a.TimeFieldName, "date"})
		case "search":
			var a struct {
				Title, Description string
				Columns            []string
				Sort               [][]string
				Meta               struct {
					SearchSourceJSON string `json:"searchSourceJSON"`
				} `json:"kibanaSavedObjectMeta"`
			}
			json.Unmarshal(o.Attributes, &a)
			if a.Description == "" {
				t.Errorf("%s: no description of the question it answers", where)
			}
			var ss struct {
				Query struct {
					Query    string `json:"query"`
					Language string `json:"language"`
				} `json:"query"`
				IndexRefName string `json:"indexRefName"`
			}
			if err := json.Unmarshal([]byte(a.Meta.SearchSourceJSON), &ss); err != nil {
				t.Errorf("%s: searchSourceJSON: %v", where, err)
			}
			if !strings.HasPrefix(refs[ss.IndexRefName], "index-pattern/") {
				t.Errorf("%s: indexRefName %q does not resolve to a data view", where, ss.IndexRefName)
			}
			for _, c := range a.Columns {
				uses = append(uses, fieldUse{where, c, "any"})
			}
			for _, s := range a.Sort {
				uses = append(uses, fieldUse{where, s[0], "date"})
			}
			uses = append(uses, kqlUses(where, ss.Query.Query)...)
		case "lens":
			var a struct {
				Title, Description, VisualizationType string
				State                                 struct {
					DatasourceStates struct {
						FormBased struct {
							Layers map[string]struct {
								Columns map[string]struct {
									OperationType string `json:"operationType"`
									SourceField   string `json:"sourceField"`
								} `json:"columns"`
								ColumnOrder []string `json:"columnOrder"`
							} `json:"layers"`
						} `json:"formBased"`
					} `json:"datasourceStates"`
					Visualization json.RawMessage `json:"visualization"`
					Query         struct {
						Query string `json:"query"`
					} `json:"query"`
				} `json:"state"`
			}
			json.Unmarshal(o.Attributes, &a)
			for id, l := range a.State.DatasourceStates.FormBased.Layers {
				if !strings.HasPrefix(refs["indexpattern-datasource-layer-"+id], "index-pattern/") {
					t.Errorf("%s: layer %s has no data view reference", where, id)
				}
				for _, cid := range l.ColumnOrder {
					c, ok := l.Columns[cid]
					if !ok {
						t.Errorf("%s: columnOrder names %s, not a column", where, cid)
						continue
					}
					if !strings.Contains(string(a.State.Visualization), `"`+cid+`"`) {
						t.Errorf("%s: column %s is not shown by the visualization", where, cid)
					}
					switch c.OperationType {
					case "count":
					case "terms":
						uses = append(uses, fieldUse{where, c.SourceField, "terms"})
					case "date_histogram":
						uses = append(uses, fieldUse{where, c.SourceField, "date"})
					case "percentile", "average", "max", "min", "sum", "median":
						uses = append(uses, fieldUse{where, c.SourceField, "number"})
					default:
						t.Errorf("%s: operation %s not checked", where, c.OperationType)
					}
				}
			}
			uses = append(uses, kqlUses(where, a.State.Query.Query)...)
		case "dashboard":
			var a struct {
				Title      string
				PanelsJSON string `json:"panelsJSON"`
			}
			json.Unmarshal(o.Attributes, &a)
			var panels []struct {
				Type         string `json:"type"`
				PanelIndex   string `json:"panelIndex"`
				PanelRefName string `json:"panelRefName"`
			}
			if err := json.Unmarshal([]byte(a.PanelsJSON), &panels); err != nil {
				t.Fatalf("%s: panelsJSON: %v", where, err)
			}
			shown := map[string]bool{}
			for _, p := range panels {
				target := refs[p.PanelIndex+":"+p.PanelRefName]
				if target == "" || !strings.HasPrefix(target, p.Type+"/") {
					t.Errorf("%s: panel %s (%s) does not resolve (%q)", where, p.PanelIndex, p.PanelRefName, target)
				}
				shown[target] = true
			}
			for k, so := range byKey {
				if (so.Type == "search" || so.Type == "lens") && !shown[k] {
					t.Errorf("%s does not show %s", where, k)
				}
			}
		}
	}
	if len(uses) < 50 {
		t.Errorf("only %d field uses found; is the parser reading the objects?", len(uses))
	}
	checkFieldUses(t, uses)
}

// esQueryUses walks a query DSL body for the fields it names.
func esQueryUses(where string, v any, parent string, out *[]fieldUse) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			switch k {
			case "term", "terms":
				if _, agg := val.(map[string]any)["field"]; agg {
					esQueryUses(where, val, k, out) // the terms aggregation
					continue
				}
				for f, fv := range val.(map[string]any) {
					need := "keyword"
					switch y := fv.(type) {
					case bool:
						need = "bool"
					case float64:
						need = "number"
					case []any:
						if len(y) > 0 {
							if _, ok := y[0].(float64); ok {
								need = "number"
							}
						}
					}
					*out = append(*out, fieldUse{where, f, need})
				}
				continue
			case "range":
				for f := range val.(map[string]any) {
					*out = append(*out, fieldUse{where, f, "date"})
				}
				continue
			case "exists":
				*out = append(*out, fieldUse{where, val.(map[string]any)["field"].(string), "exists"})
				continue
			case "field":
				if s, ok := val.(string); ok {
					need := "terms"
					if parent == "date_histogram" {
						need = "date"
					}
					*out = append(*out, fieldUse{where, s, need})
				}
				continue
			case "sort":
				for _, s := range val.([]any) {
					for f := range s.(map[string]any) {
						*out = append(*out, fieldUse{where, f, "date"})
					}
				}
				continue
			case "_source":
				continue
			}
			esQueryUses(where, val, k, out)
		}
	case []any:
		for _, e := range x {
			esQueryUses(where, e, parent, out)
		}
	}
}

func queryFiles(t *testing.T) []string {
	files, _ := filepath.Glob(filepath.Join(root(t), "conf", "elasticsearch", "queries", "*.json"))
	if len(files) < 5 {
		t.Fatalf("only %d query files", len(files))
	}
	return files
}

func TestElasticsearchQueryFields(t *testing.T) {
	var uses []fieldUse
	for _, f := range queryFiles(t) {
		var q map[string]any
		data, _ := os.ReadFile(f)
		if err := json.Unmarshal(data, &q); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		esQueryUses(filepath.Base(f), q, "", &uses)
	}
	if len(uses) < 20 {
		t.Errorf("only %d field uses", len(uses))
	}
	checkFieldUses(t, uses)
	t.Logf("%d field uses checked", len(uses))
}
