package filter

import (
	"os"
	"strings"
	"sync"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	audit "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	auditinternal "k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// policyStage re-evaluates each event against an audit.k8s.io/v1 Policy
// with k8s.io/apiserver's own loader, validation and rule evaluator.
type policyStage struct {
	// eval is the apiserver's evaluator of the whole policy; it answers
	// for requests no rule matches.
	eval auditinternal.PolicyRuleEvaluator
	// rules holds one evaluator per rule, each over a policy made of that
	// rule alone (with the policy's omitStages and omitManagedFields) and
	// its level replaced by matchLevel: it answers "does rule i match"
	// with the apiserver's matching code, which the real evaluator does
	// not expose, and returns the config the real evaluator returns when
	// rule i is the first to match, but for the level.
	rules []auditinternal.PolicyRuleEvaluator
	// levels[i] is rule i's level.
	levels []audit.Level
}

// matchLevel is the sentinel level of the single-rule evaluators.
const matchLevel audit.Level = "kaudit:match"

// policyFileKey is the property named in policy errors.
const policyFileKey = "policy_file"

func newPolicyStage(o *Options) (Stage, error) {
	if o.PolicyFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(o.PolicyFile)
	if err != nil {
		return nil, &OptionError{Key: policyFileKey, Value: o.PolicyFile, Err: err}
	}
	st, err := compilePolicy(data)
	if err != nil {
		return nil, &OptionError{Key: policyFileKey, Value: o.PolicyFile, Err: err}
	}
	return st, nil
}

// compilePolicy loads and validates a policy exactly as kube-apiserver
// does for --audit-policy-file (policy.LoadPolicyFromBytes: strict
// decoding with lenient fallback, group version check, validation, at
// least one rule); its errors are the apiserver's own text.
func compilePolicy(data []byte) (*policyStage, error) {
	pol, err := policy.LoadPolicyFromBytes(data)
	if err != nil {
		return nil, err
	}
	st := &policyStage{
		rules:  make([]auditinternal.PolicyRuleEvaluator, len(pol.Rules)),
		levels: make([]audit.Level, len(pol.Rules)),
	}
	for i := range pol.Rules {
		r := *pol.Rules[i].DeepCopy()
		st.levels[i] = r.Level
		r.Level = matchLevel
		st.rules[i] = policy.NewPolicyRuleEvaluator(&audit.Policy{Rules: []audit.PolicyRule{r},
			OmitStages: pol.OmitStages, OmitManagedFields: pol.OmitManagedFields})
	}
	// NewPolicyRuleEvaluator folds the policy's omitStages into each rule.
	st.eval = policy.NewPolicyRuleEvaluator(pol)
	return st, nil
}

// attrsPool recycles the evaluator's request attributes: one record per
// call, shared by the real and the single-rule evaluators.
var attrsPool = sync.Pool{New: func() any { return new(authorizer.AttributesRecord) }}

// eventUser is the event's requesting user as a user.Info, without
// copying: the evaluator reads name and groups; Extra is converted only
// if something asks for it.
type eventUser struct{ u *authnv1.UserInfo }

func (e eventUser) GetName() string     { return e.u.Username }
func (e eventUser) GetUID() string      { return e.u.UID }
func (e eventUser) GetGroups() []string { return e.u.Groups }
func (e eventUser) GetExtra() map[string][]string {
	if len(e.u.Extra) == 0 {
		return nil
	}
	m := make(map[string][]string, len(e.u.Extra))
	for k, v := range e.u.Extra {
		m[k] = v
	}
	return m
}

var _ user.Info = eventUser{}

// fillAttributes builds the attributes kube-apiserver's audit filter
// evaluates the policy with. The user is the event's user, the requesting
// identity: the audit filter runs after authentication and before
// impersonation in the handler chain, so impersonatedUser is never what
// the rules see. Path is the request URI without its query, for resource
// and non-resource requests alike (as RequestInfo.Path).
func fillAttributes(a *authorizer.AttributesRecord, ev *auditv1.Event) {
	path, _, _ := strings.Cut(ev.RequestURI, "?")
	*a = authorizer.AttributesRecord{
		User: eventUser{&ev.User},
		Verb: ev.Verb,
		Path: path,
	}
	if r := ev.ObjectRef; r != nil {
		a.ResourceRequest = true
		a.Namespace = r.Namespace
		a.APIGroup = r.APIGroup
		a.APIVersion = r.APIVersion
		a.Resource = r.Resource
		a.Subresource = r.Subresource
		a.Name = r.Name
	}
}

// evaluate returns the apiserver's audit config for ev and the index of
// the rule that produced it (-1 when no rule matches). The first rule
// whose single-rule evaluator matches is the rule the apiserver's
// evaluator would apply, and that evaluator's config is the apiserver's
// (TestPolicySinglePassMatchesEvaluator), so the whole policy is
// evaluated only when no rule matches.
func (p *policyStage) evaluate(ev *auditv1.Event) (auditinternal.RequestAuditConfig, int) {
	a := attrsPool.Get().(*authorizer.AttributesRecord)
	fillAttributes(a, ev)
	var cfg auditinternal.RequestAuditConfig
	idx := -1
	for i, r := range p.rules {
		if c := r.EvaluatePolicyRule(a); c.Level == matchLevel {
			cfg, idx = c, i
			cfg.Level = p.levels[i]
			break
		}
	}
	if idx < 0 {
		cfg = p.eval.EvaluatePolicyRule(a)
	}
	*a = authorizer.AttributesRecord{}
	attrsPool.Put(a)
	return cfg, idx
}

// Process applies the policy: None and omitted stages drop the event,
// otherwise bodies above the rule's level are removed (and managedFields
// when the rule says so); an event recorded below the rule's level keeps
// its level and bodies and is marked BelowPolicy.
func (p *policyStage) Process(ev *Event) Drop {
	cfg, idx := p.evaluate(&ev.Event)
	want := auditv1.Level(cfg.Level)
	res := &ev.Kaudit.Policy
	*res = PolicyResult{Evaluated: true, Rule: idx, Level: string(want), RecordedLevel: string(ev.Level)}
	if cfg.Level == audit.LevelNone {
		return DropPolicy
	}
	for _, s := range cfg.OmitStages {
		if string(s) == string(ev.Stage) {
			return DropOmitStage
		}
	}
	recorded := audit.Level(ev.Level)
	switch {
	case ev.Level != "" && recorded.Less(cfg.Level):
		// Bodies cannot be invented: the event passes with what it has.
		res.BelowPolicy = true
	case cfg.Level.Less(recorded) || ev.Level == "":
		res.Stripped = cfg.Level.Less(recorded)
		if !cfg.Level.GreaterOrEqual(audit.LevelRequest) {
			ev.RequestObject = nil
		}
		if !cfg.Level.GreaterOrEqual(audit.LevelRequestResponse) {
			ev.ResponseObject = nil
		}
		ev.Level = want
	}
	if cfg.OmitManagedFields {
		omitManagedFields(ev.RequestObject)
		omitManagedFields(ev.ResponseObject)
	}
	return Keep
}

func omitManagedFields(u *runtime.Unknown) {
	if u == nil || len(u.Raw) == 0 {
		return
	}
	u.Raw, _ = stripManagedFields(u.Raw)
}
