package filter

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"sigs.k8s.io/yaml"
)

// defaultDetections is the built-in rule set; conf/detections.yaml is a
// byte-identical copy shipped for reference (a test checks it).
//
//go:embed detections_default.yaml
var defaultDetections []byte

// DefaultDetections returns the built-in rule file.
func DefaultDetections() []byte { return append([]byte(nil), defaultDetections...) }

// detRuleFile is the detections_file format.
type detRuleFile struct {
	// IncludeBuiltin adds the built-in rules to the file's own; a file
	// rule with a built-in's name replaces it.
	IncludeBuiltin bool `json:"include_builtin"`
	// Disable names rules (built-in or not) to leave out.
	Disable []string      `json:"disable"`
	Rules   []detRuleSpec `json:"rules"`
}

// detRuleSpec is one rule as written. A rule with group_by or window is a
// correlation rule.
type detRuleSpec struct {
	Name        string   `json:"name"`
	Severity    string   `json:"severity"`
	Description string   `json:"description"`
	Techniques  []string `json:"techniques"`
	Enabled     *bool    `json:"enabled"`

	Match string `json:"match"`

	Verbs      []string `json:"verbs"`
	Resources  []string `json:"resources"`
	Outcomes   []string `json:"outcomes"`
	Stages     []string `json:"stages"`
	ActorTypes []string `json:"actor_types"`
	Codes      []int    `json:"codes"`

	GroupBy      detStringList `json:"group_by"`
	Window       string        `json:"window"`
	Threshold    int           `json:"threshold"`
	TogetherWith []detLegSpec  `json:"together_with"`
	FollowedBy   string        `json:"followed_by"`
	Escalate     *detEscSpec   `json:"escalate"`
}

type detLegSpec struct {
	Name      string `json:"name"`
	Match     string `json:"match"`
	Threshold int    `json:"threshold"`
}

type detEscSpec struct {
	Severity string `json:"severity"`
	Match    string `json:"match"`
}

// detStringList accepts a string or a list of strings.
type detStringList []string

func (s *detStringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = detStringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*s = many
	return nil
}

// Severities, lowest first.
var detSeverities = []string{"info", "low", "medium", "high", "critical"}

func detValidSeverity(s string) bool {
	for _, v := range detSeverities {
		if s == v {
			return true
		}
	}
	return false
}

var (
	detTechniqueRE = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
	detRuleNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

var detKnownVerbs = map[string]bool{"get": true, "list": true, "watch": true, "create": true, "update": true, "patch": true,
	"delete": true, "deletecollection": true, "proxy": true, "head": true, "options": true, "post": true, "put": true,
	"connect": true, "impersonate": true, "bind": true, "escalate": true, "approve": true, "sign": true}
var detKnownOutcomes = map[string]bool{"success": true, "failure": true, "denied": true, "error": true, "unknown": true}
var detKnownStages = map[string]bool{"RequestReceived": true, "ResponseStarted": true, "ResponseComplete": true, "Panic": true}
var detKnownActorTypes = map[string]bool{"user": true, "serviceaccount": true, "node": true, "system-component": true, "anonymous": true}

// parseDetectRuleFile reads a rule file, merging the built-in set when asked.
func parseDetectRuleFile(data []byte, builtin bool) ([]detRuleSpec, error) {
	var f detRuleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, err
	}
	rules := f.Rules
	if f.IncludeBuiltin && !builtin {
		def, err := parseDetectRuleFile(defaultDetections, true)
		if err != nil {
			return nil, fmt.Errorf("built-in rules: %v", err)
		}
		own := map[string]bool{}
		for _, r := range f.Rules {
			own[r.Name] = true
		}
		merged := make([]detRuleSpec, 0, len(def)+len(rules))
		for _, r := range def {
			if !own[r.Name] {
				merged = append(merged, r)
			}
		}
		rules = append(merged, rules...)
	}
	if len(f.Disable) > 0 {
		off := map[string]bool{}
		for _, n := range f.Disable {
			off[n] = true
		}
		kept := rules[:0:0]
		for _, r := range rules {
			if off[r.Name] {
				delete(off, r.Name)
				continue
			}
			kept = append(kept, r)
		}
		for n := range off {
			return nil, fmt.Errorf("disable: no rule named %q", n)
		}
		rules = kept
	}
	seen := map[string]bool{}
	kept := rules[:0:0]
	for _, r := range rules {
		if seen[r.Name] {
			return nil, fmt.Errorf("rule %q: defined twice", r.Name)
		}
		seen[r.Name] = true
		if r.Enabled != nil && !*r.Enabled {
			continue
		}
		kept = append(kept, r)
	}
	return kept, nil
}

// detPrefilter is what an event must have for a matcher to be worth
// evaluating. A nil set admits anything.
type detPrefilter struct {
	verbs, outcomes, stages, actorTypes []string
	// resources: "res", "res/sub", "res/*", "*/sub".
	resources []string
	codes     []int
}

// detMatcher is one compiled CEL condition with its pre-filter.
type detMatcher struct {
	id   int // index in detectStage.matchers
	prog cel.Program
	src  string
	pf   detPrefilter
	// needsRequest/needsResponse: the expression reads the body and does
	// not test has_request/has_response, so it is skipped on events
	// without that body.
	needsRequest, needsResponse bool
	always                      bool // the expression is literally true

	rule *detRule
	leg  int // correlation leg: 0.. legs, legEscalate, legFollowed; 0 for single rules
}

const (
	legEscalate = -1
	legFollowed = -2
)

// detRule is a compiled detection rule.
type detRule struct {
	idx         int
	name        string
	severity    string
	description string
	techniques  []string

	match *detMatcher

	// Correlation only.
	corr *corrRule
}

type corrRule struct {
	groupBy     string // as written, for summaries
	groupVar    string // a plain variable name, resolved without CEL
	groupProgs  []cel.Program
	window      time.Duration
	legs        []*detMatcher // legs[0] is match, then together_with
	legNames    []string
	thresholds  []uint32
	followed    *detMatcher
	escalate    *detMatcher
	escSeverity string
	bucketNS    int64
}

// detGroupVars are variables whose value a group_by can read directly.
var detGroupVars = map[string]bool{"user": true, "actor": true, "source_ip": true, "ns": true, "name": true,
	"user_agent": true, "resource": true, "sa_namespace": true, "node_name": true, "impersonated_by": true, "verb": true}

// detCELVars declares the event and enrichment as typed CEL variables; the
// detCtx activation resolves them by name.
var detCELVars = []struct {
	name string
	typ  *cel.Type
	doc  string
}{
	{"verb", cel.StringType, "request verb (get, list, create, …)"},
	{"user", cel.StringType, "user.username as authenticated (the requester, also when impersonating)"},
	{"groups", cel.ListType(cel.StringType), "user.groups"},
	{"actor", cel.StringType, "kaudit.actor.name: the effective identity (impersonated user when impersonating)"},
	{"actor_type", cel.StringType, "kaudit.actor.type: user, serviceaccount, node, system-component, anonymous"},
	{"impersonated_by", cel.StringType, "requesting user of an impersonated request"},
	{"sa_namespace", cel.StringType, "service account namespace of a service-account actor"},
	{"sa_name", cel.StringType, "service account name of a service-account actor"},
	{"node_name", cel.StringType, "node name of a node actor"},
	{"api_group", cel.StringType, "objectRef.apiGroup (\"\" for core)"},
	{"api_version", cel.StringType, "objectRef.apiVersion"},
	{"resource", cel.StringType, "objectRef.resource"},
	{"subresource", cel.StringType, "objectRef.subresource"},
	{"ns", cel.StringType, "objectRef.namespace (namespace is a CEL reserved word)"},
	{"name", cel.StringType, "objectRef.name"},
	{"request_uri", cel.StringType, "requestURI"},
	{"user_agent", cel.StringType, "userAgent"},
	{"stage", cel.StringType, "stage"},
	{"level", cel.StringType, "level"},
	{"audit_id", cel.StringType, "auditID"},
	{"code", cel.IntType, "responseStatus.code (0 when none)"},
	{"outcome", cel.StringType, "kaudit.outcome: success, failure (4xx, 401 included), denied (403, forbid), error (5xx), unknown"},
	{"action", cel.StringType, "kaudit.action"},
	{"source_ip", cel.StringType, "kaudit.source.ip (first of sourceIPs)"},
	{"source_ips", cel.ListType(cel.StringType), "sourceIPs"},
	{"trusted", cel.BoolType, "kaudit.source.trusted: source IP inside trusted_networks"},
	{"critical", cel.BoolType, "the event touches a critical workload"},
	{"critical_names", cel.ListType(cel.StringType), "names of the critical selectors that matched"},
	{"critical_expected", cel.BoolType, "every critical match has an expected actor"},
	{"critical_in_window", cel.BoolType, "every critical match is inside its change window"},
	{"annotations", cel.MapType(cel.StringType, cel.StringType), "annotations"},
	{"has_request", cel.BoolType, "the event carries requestObject"},
	{"has_response", cel.BoolType, "the event carries responseObject"},
	{"request", cel.MapType(cel.StringType, cel.DynType), "requestObject (empty map when absent)"},
	{"response", cel.MapType(cel.StringType, cel.DynType), "responseObject (empty map when absent)"},
	{"pod_spec", cel.MapType(cel.StringType, cel.DynType), "pod spec in requestObject: of a Pod, or the template of a workload or CronJob"},
	{"containers", cel.ListType(cel.DynType), "containers, initContainers and ephemeralContainers of pod_spec"},
}

// detRequestVars and detResponseVars read the request or response body.
var (
	detRequestVars  = map[string]bool{"request": true, "pod_spec": true, "containers": true}
	detResponseVars = map[string]bool{"response": true}
)

// newDetectEnv builds the environment rules compile in; st serves the
// functions that need state.
func newDetectEnv(st *detectStage) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		ext.Strings(),
		ext.Sets(),
		cel.Function("wildcard_role",
			cel.Overload("wildcard_role_string_string_string",
				[]*cel.Type{cel.StringType, cel.StringType, cel.StringType}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					kind, _ := args[0].Value().(string)
					ns, _ := args[1].Value().(string)
					name, _ := args[2].Value().(string)
					return types.Bool(st.roles.wildcard(kind, ns, name))
				}))),
	}
	for _, v := range detCELVars {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	return cel.NewEnv(opts...)
}

// compileDetectRules type-checks every rule and builds the matchers.
func compileDetectRules(env *cel.Env, specs []detRuleSpec) ([]*detRule, []*detMatcher, error) {
	var rules []*detRule
	var ms []*detMatcher
	for i := range specs {
		r, err := compileDetectRule(env, &specs[i], len(rules))
		if err != nil {
			name := specs[i].Name
			return nil, nil, fmt.Errorf("rule %q: %v", name, err)
		}
		rules = append(rules, r)
		for _, m := range r.matchers() {
			m.id = len(ms)
			ms = append(ms, m)
		}
	}
	return rules, ms, nil
}

func (r *detRule) matchers() []*detMatcher {
	if r.corr == nil {
		return []*detMatcher{r.match}
	}
	out := append([]*detMatcher(nil), r.corr.legs...)
	if r.corr.escalate != nil {
		out = append(out, r.corr.escalate)
	}
	if r.corr.followed != nil {
		out = append(out, r.corr.followed)
	}
	return out
}

func compileDetectRule(env *cel.Env, s *detRuleSpec, idx int) (*detRule, error) {
	if !detRuleNameRE.MatchString(s.Name) {
		return nil, errors.New("name must be lower-case letters, digits, '.', '_' or '-'")
	}
	if !detValidSeverity(s.Severity) {
		return nil, fmt.Errorf("severity %q: want one of %s", s.Severity, strings.Join(detSeverities, ", "))
	}
	for _, t := range s.Techniques {
		if !detTechniqueRE.MatchString(t) {
			return nil, fmt.Errorf("technique %q: want a MITRE ATT&CK id such as T1609 or T1552.007", t)
		}
	}
	declared, err := detDeclaredPrefilter(s)
	if err != nil {
		return nil, err
	}
	r := &detRule{idx: idx, name: s.Name, severity: s.Severity, description: strings.TrimSpace(s.Description), techniques: s.Techniques}
	isCorr := len(s.GroupBy) > 0 || s.Window != "" || s.Threshold != 0 || s.FollowedBy != "" || len(s.TogetherWith) > 0 || s.Escalate != nil
	newMatcher := func(src, what string, leg int, defStages []string) (*detMatcher, error) {
		m, err := compileDetMatcher(env, src, declared, defStages)
		if err != nil {
			if what != "match" {
				return nil, fmt.Errorf("%s: %v", what, err)
			}
			return nil, err
		}
		m.rule, m.leg = r, leg
		return m, nil
	}
	if !isCorr {
		if r.match, err = newMatcher(s.Match, "match", 0, []string{"ResponseStarted", "ResponseComplete", "Panic"}); err != nil {
			return nil, err
		}
		return r, nil
	}
	// Correlation rule.
	c := &corrRule{}
	r.corr = c
	if len(s.GroupBy) == 0 {
		return nil, errors.New("group_by is required for a correlation rule")
	}
	if s.Window == "" {
		return nil, errors.New("window is required for a correlation rule")
	}
	if c.window, err = time.ParseDuration(s.Window); err != nil || c.window <= 0 {
		return nil, fmt.Errorf("window %q: want a positive duration such as 5m", s.Window)
	}
	if c.window > 24*time.Hour {
		return nil, fmt.Errorf("window %q: at most 24h", s.Window)
	}
	c.bucketNS = int64(c.window) / corrBuckets
	if c.bucketNS == 0 {
		c.bucketNS = 1
	}
	c.groupBy = strings.Join(s.GroupBy, ",")
	if len(s.GroupBy) == 1 && s.GroupBy[0] == "namespace" {
		c.groupVar = "ns"
	} else if len(s.GroupBy) == 1 && detGroupVars[s.GroupBy[0]] {
		c.groupVar = s.GroupBy[0]
	} else {
		for _, g := range s.GroupBy {
			p, err := compileDetString(env, g)
			if err != nil {
				return nil, fmt.Errorf("group_by %q: %v", g, err)
			}
			c.groupProgs = append(c.groupProgs, p)
		}
	}
	corrStages := []string{"ResponseComplete", "Panic"}
	th := s.Threshold
	if th == 0 {
		th = 1
	}
	if th < 0 {
		return nil, fmt.Errorf("threshold %d: want at least 1", s.Threshold)
	}
	m, err := newMatcher(s.Match, "match", 0, corrStages)
	if err != nil {
		return nil, err
	}
	c.legs = append(c.legs, m)
	c.legNames = append(c.legNames, "match")
	c.thresholds = append(c.thresholds, uint32(th))
	for i, l := range s.TogetherWith {
		name := l.Name
		if name == "" {
			name = fmt.Sprintf("together_with_%d", i+1)
		}
		if !detRuleNameRE.MatchString(name) || name == "match" || name == "escalate" || slices.Contains(c.legNames, name) {
			return nil, fmt.Errorf("together_with name %q: want a unique lower-case name other than match and escalate", name)
		}
		if l.Match == "" {
			return nil, fmt.Errorf("together_with %s: match is required", name)
		}
		m, err := newMatcher(l.Match, "together_with "+name, len(c.legs), corrStages)
		if err != nil {
			return nil, err
		}
		t := l.Threshold
		if t <= 0 {
			t = 1
		}
		c.legs = append(c.legs, m)
		c.legNames = append(c.legNames, name)
		c.thresholds = append(c.thresholds, uint32(t))
	}
	if len(c.legs) > maxLegs {
		return nil, fmt.Errorf("at most %d together_with conditions", maxLegs-1)
	}
	if s.FollowedBy != "" {
		if c.followed, err = newMatcher(s.FollowedBy, "followed_by", legFollowed, corrStages); err != nil {
			return nil, err
		}
	}
	if e := s.Escalate; e != nil {
		if !detValidSeverity(e.Severity) {
			return nil, fmt.Errorf("escalate: severity %q: want one of %s", e.Severity, strings.Join(detSeverities, ", "))
		}
		if e.Match == "" {
			return nil, errors.New("escalate: match is required")
		}
		if c.escalate, err = newMatcher(e.Match, "escalate", legEscalate, corrStages); err != nil {
			return nil, err
		}
		c.escSeverity = e.Severity
	}
	return r, nil
}

func detDeclaredPrefilter(s *detRuleSpec) (detPrefilter, error) {
	var pf detPrefilter
	check := func(what string, vals []string, known map[string]bool) ([]string, error) {
		if vals == nil {
			return nil, nil
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("%s: empty list (leave it out to admit any)", what)
		}
		for _, v := range vals {
			if v == "*" {
				return nil, nil
			}
			if known != nil && !known[v] {
				return nil, fmt.Errorf("%s: unknown value %q", what, v)
			}
		}
		return vals, nil
	}
	var err error
	if pf.verbs, err = check("verbs", s.Verbs, detKnownVerbs); err != nil {
		return pf, err
	}
	if pf.outcomes, err = check("outcomes", s.Outcomes, detKnownOutcomes); err != nil {
		return pf, err
	}
	if pf.stages, err = check("stages", s.Stages, detKnownStages); err != nil {
		return pf, err
	}
	if pf.actorTypes, err = check("actor_types", s.ActorTypes, detKnownActorTypes); err != nil {
		return pf, err
	}
	if s.Codes != nil {
		if len(s.Codes) == 0 {
			return pf, errors.New("codes: empty list (leave it out to admit any)")
		}
		for _, c := range s.Codes {
			if c < 0 || c > 999 {
				return pf, fmt.Errorf("codes: %d is not an HTTP status code", c)
			}
		}
		pf.codes = s.Codes
	}
	if pf.resources, err = check("resources", s.Resources, nil); err != nil {
		return pf, err
	}
	for _, r := range pf.resources {
		res, sub, _ := strings.Cut(r, "/")
		if res == "" || strings.Count(r, "/") > 1 || strings.HasSuffix(r, "/") || res == "*" && (sub == "" || sub == "*") {
			return pf, fmt.Errorf("resources: %q: want resource, resource/subresource, resource/* or */subresource", r)
		}
	}
	return pf, nil
}

// compileDetMatcher compiles a bool expression ("" means true) and derives
// its pre-filter: declared dimensions win, the others are inferred from
// top-level conjuncts such as verb == "delete" or resource in [...].
func compileDetMatcher(env *cel.Env, src string, declared detPrefilter, defStages []string) (*detMatcher, error) {
	if strings.TrimSpace(src) == "" {
		src = "true"
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("match must be a bool expression, not %s", ast.OutputType())
	}
	prog, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	m := &detMatcher{prog: prog, src: src}
	native := ast.NativeRep()
	refs := detReferencedVars(native)
	m.needsRequest = detAnyOf(refs, detRequestVars) && !refs["has_request"]
	m.needsResponse = detAnyOf(refs, detResponseVars) && !refs["has_response"]
	if lit, ok := native.Expr().AsLiteral().(types.Bool); native.Expr().Kind() == celast.LiteralKind && ok && bool(lit) {
		m.always = true
	}
	inf := detInferPrefilter(native.Expr())
	m.pf = declared
	if m.pf.verbs == nil {
		m.pf.verbs = inf.verbs
	}
	if m.pf.outcomes == nil {
		m.pf.outcomes = inf.outcomes
	}
	if m.pf.stages == nil {
		m.pf.stages = inf.stages
	}
	if m.pf.stages == nil {
		m.pf.stages = defStages
	}
	if m.pf.actorTypes == nil {
		m.pf.actorTypes = inf.actorTypes
	}
	if m.pf.resources == nil {
		m.pf.resources = inf.resources
	}
	if m.pf.codes == nil {
		m.pf.codes = inf.codes
	}
	return m, nil
}

// compileDetString compiles a string expression (a group_by key).
func compileDetString(env *cel.Env, src string) (cel.Program, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(cel.StringType) {
		return nil, fmt.Errorf("must be a string expression, not %s", ast.OutputType())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize))
}

func detAnyOf(refs, set map[string]bool) bool {
	for k := range set {
		if refs[k] {
			return true
		}
	}
	return false
}

// detReferencedVars lists the declared variables an expression reads.
func detReferencedVars(a *celast.AST) map[string]bool {
	out := map[string]bool{}
	for _, r := range a.ReferenceMap() {
		if r != nil && r.Value == nil && len(r.OverloadIDs) == 0 && r.Name != "" {
			out[r.Name] = true
		}
	}
	return out
}

// detInferPrefilter reads what a checked expression requires of verb,
// outcome, stage, actor_type, resource, subresource and code: from
// top-level conjuncts `x == lit`, `lit == x`, `x in [lits]`, and from
// disjunctions of such tests on the same variable (`code == 401 ||
// code == 403`).
func detInferPrefilter(e celast.Expr) detPrefilter {
	sets := detInferSets(e)
	pf := detPrefilter{verbs: sets["verb"], outcomes: sets["outcome"], stages: sets["stage"], actorTypes: sets["actor_type"]}
	for _, c := range sets["code"] {
		n, err := strconv.Atoi(c)
		if err != nil {
			pf.codes = nil
			break
		}
		pf.codes = append(pf.codes, n)
	}
	if res := sets["resource"]; len(res) > 0 {
		subs, haveSub := sets["subresource"]
		for _, r := range res {
			if r == "" {
				pf.resources = nil
				return pf // non-resource requests: not indexed
			}
			if !haveSub {
				pf.resources = append(pf.resources, r, r+"/*")
				continue
			}
			for _, s := range subs {
				if s == "" {
					pf.resources = append(pf.resources, r)
				} else {
					pf.resources = append(pf.resources, r+"/"+s)
				}
			}
		}
	}
	return pf
}

// detInferSets maps a variable to the values an expression requires it to
// have (one of).
func detInferSets(e celast.Expr) map[string][]string {
	if e.Kind() != celast.CallKind {
		return nil
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case "_&&_":
		out := map[string][]string{}
		for _, a := range args {
			for k, v := range detInferSets(a) {
				if _, dup := out[k]; !dup {
					out[k] = v
				}
			}
		}
		return out
	case "_||_":
		if len(args) == 0 {
			return nil
		}
		out := detInferSets(args[0])
		for _, a := range args[1:] {
			other := detInferSets(a)
			for k, v := range out {
				ov, ok := other[k]
				if !ok {
					delete(out, k)
					continue
				}
				out[k] = detUnionStrings(v, ov)
			}
		}
		return out
	case "_==_":
		if len(args) != 2 {
			return nil
		}
		id, lit := args[0], args[1]
		if id.Kind() != celast.IdentKind {
			id, lit = lit, id
		}
		if id.Kind() != celast.IdentKind || lit.Kind() != celast.LiteralKind {
			return nil
		}
		if s, ok := detLiteralString(lit.AsLiteral()); ok {
			return map[string][]string{id.AsIdent(): {s}}
		}
	case "@in":
		if len(args) != 2 || args[0].Kind() != celast.IdentKind || args[1].Kind() != celast.ListKind {
			return nil
		}
		var vals []string
		for _, el := range args[1].AsList().Elements() {
			if el.Kind() != celast.LiteralKind {
				return nil
			}
			s, ok := detLiteralString(el.AsLiteral())
			if !ok {
				return nil
			}
			vals = append(vals, s)
		}
		if len(vals) > 0 {
			return map[string][]string{args[0].AsIdent(): vals}
		}
	}
	return nil
}

func detLiteralString(v ref.Val) (string, bool) {
	switch x := v.(type) {
	case types.String:
		return string(x), true
	case types.Int:
		return strconv.FormatInt(int64(x), 10), true
	}
	return "", false
}

func detUnionStrings(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// loadDetectRules reads detections_file (or the built-in set) and compiles it.
func loadDetectRules(o *Options, env *cel.Env) ([]*detRule, []*detMatcher, error) {
	data, path, builtin := defaultDetections, "", true
	if o.DetectionsFile != "" {
		path, builtin = o.DetectionsFile, false
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, &OptionError{Key: "detections_file", Value: path, Err: err}
		}
		data = b
	}
	specs, err := parseDetectRuleFile(data, builtin)
	if err != nil {
		return nil, nil, &OptionError{Key: "detections_file", Value: path, Err: err}
	}
	rules, ms, err := compileDetectRules(env, specs)
	if err != nil {
		return nil, nil, &OptionError{Key: "detections_file", Value: path, Err: err}
	}
	return rules, ms, nil
}
