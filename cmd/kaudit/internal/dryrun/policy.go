package dryrun

import (
	"fmt"
	"os"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	auditinternal "k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/yaml"
)

// rules is what the report needs to know of a policy beyond what the
// pipeline's policy stage records (the index of the winning rule): each
// rule's level and a short description, and one evaluator per rule alone
// to tell which later rules an event would also have matched.
type rules struct {
	levels []string
	descs  []string
	// single[i] evaluates a policy made of rule i alone, its level set to
	// matchLevel: "does rule i match", with the apiserver's own code.
	single []auditinternal.PolicyRuleEvaluator
}

const matchLevel audit.Level = "kaudit:match"

func loadRules(path string) (*rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pol, err := policy.LoadPolicyFromBytes(data)
	if err != nil {
		return nil, err
	}
	var v1 auditv1.Policy
	if err := yaml.Unmarshal(data, &v1); err != nil || len(v1.Rules) != len(pol.Rules) {
		return nil, fmt.Errorf("%s: cannot read the rules for their descriptions: %v", path, err)
	}
	r := &rules{}
	for i := range pol.Rules {
		rule := *pol.Rules[i].DeepCopy()
		r.levels = append(r.levels, string(rule.Level))
		r.descs = append(r.descs, describe(&v1.Rules[i]))
		rule.Level = matchLevel
		r.single = append(r.single, policy.NewPolicyRuleEvaluator(&audit.Policy{Rules: []audit.PolicyRule{rule}}))
	}
	return r, nil
}

// matches reports whether rule i alone matches the request of ev.
func (r *rules) matches(i int, a authorizer.Attributes) bool {
	return r.single[i].EvaluatePolicyRule(a).Level == matchLevel
}

type eventUser struct{ u *authnv1.UserInfo }

func (e eventUser) GetName() string               { return e.u.Username }
func (e eventUser) GetUID() string                { return e.u.UID }
func (e eventUser) GetGroups() []string           { return e.u.Groups }
func (e eventUser) GetExtra() map[string][]string { return nil }

// attributes are the request attributes the apiserver evaluates its
// policy with (as the policy stage builds them): the requesting user,
// verb, path without query, and the object reference.
func attributes(a *authorizer.AttributesRecord, ev *auditv1.Event) {
	path, _, _ := strings.Cut(ev.RequestURI, "?")
	*a = authorizer.AttributesRecord{User: eventUser{&ev.User}, Verb: ev.Verb, Path: path}
	if r := ev.ObjectRef; r != nil {
		a.ResourceRequest = true
		a.Namespace, a.APIGroup, a.APIVersion = r.Namespace, r.APIGroup, r.APIVersion
		a.Resource, a.Subresource, a.Name = r.Resource, r.Subresource, r.Name
	}
}

// describe is a rule in one short line: its selectors, most telling first.
func describe(r *auditv1.PolicyRule) string {
	var parts []string
	list := func(name string, vs []string) {
		if len(vs) == 0 {
			return
		}
		s := strings.Join(vs[:min(len(vs), 3)], ",")
		if len(vs) > 3 {
			s += fmt.Sprintf(",+%d", len(vs)-3)
		}
		parts = append(parts, name+"="+s)
	}
	list("users", r.Users)
	list("groups", r.UserGroups)
	list("verbs", r.Verbs)
	var res []string
	for _, g := range r.Resources {
		names := g.Resources
		if len(names) == 0 {
			names = []string{"*"}
		}
		for _, n := range names {
			if g.Group != "" {
				n = g.Group + "/" + n
			}
			res = append(res, n)
		}
		for _, n := range g.ResourceNames {
			res = append(res, "name:"+n)
		}
	}
	list("resources", res)
	list("ns", r.Namespaces)
	list("urls", r.NonResourceURLs)
	var omit []string
	for _, s := range r.OmitStages {
		omit = append(omit, string(s))
	}
	list("omit", omit)
	if len(parts) == 0 {
		return "(everything)"
	}
	return strings.Join(parts, " ")
}
