package filter

import (
	"net/netip"
	"strings"
	"sync"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// detCtx is the CEL activation for one event: it resolves the declared
// variables by name from the event, computing each at most once and
// decoding the bodies only when a rule reads them. Pooled.
type detCtx struct {
	st *detectStage
	ev *Event

	done                          uint32 // lazy bits below
	groups, sourceIPs, critNames  ref.Val
	annotations                   ref.Val
	request, response             ref.Val
	requestMap                    map[string]any
	podSpec, containers           ref.Val
	actorType, saNS, saName, node string
	outcome, sourceIP             string
	trusted                       bool
}

const (
	lzGroups = 1 << iota
	lzSourceIPs
	lzCritNames
	lzAnnotations
	lzRequest
	lzResponse
	lzPod
	lzActor
	lzOutcome
	lzSource
)

var _ interpreter.Activation = (*detCtx)(nil)

var detCtxPool = sync.Pool{New: func() any { return new(detCtx) }}

func (st *detectStage) getCtx(ev *Event) *detCtx {
	c := detCtxPool.Get().(*detCtx)
	c.st, c.ev = st, ev
	return c
}

func putDetCtx(c *detCtx) {
	*c = detCtx{}
	detCtxPool.Put(c)
}

// Parent implements interpreter.Activation.
func (c *detCtx) Parent() interpreter.Activation { return nil }

var (
	detEmptyMap  = types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{})
	detEmptyList = types.NewStringList(types.DefaultTypeAdapter, nil)
	detEmptyDyn  = types.NewDynamicList(types.DefaultTypeAdapter, []any{})
)

// ResolveName implements interpreter.Activation.
func (c *detCtx) ResolveName(name string) (any, bool) {
	ev := c.ev
	switch name {
	case "verb":
		return types.String(ev.Verb), true
	case "user":
		return types.String(ev.User.Username), true
	case "groups":
		if c.done&lzGroups == 0 {
			c.done |= lzGroups
			c.groups = detStringVal(ev.User.Groups)
		}
		return c.groups, true
	case "actor":
		return types.String(c.actorName()), true
	case "actor_type":
		c.resolveActor()
		return types.String(c.actorType), true
	case "impersonated_by":
		if ev.Kaudit.Actor.ImpersonatedBy != "" {
			return types.String(ev.Kaudit.Actor.ImpersonatedBy), true
		}
		if ev.ImpersonatedUser != nil {
			return types.String(ev.User.Username), true
		}
		return types.String(""), true
	case "sa_namespace":
		c.resolveActor()
		return types.String(c.saNS), true
	case "sa_name":
		c.resolveActor()
		return types.String(c.saName), true
	case "node_name":
		c.resolveActor()
		return types.String(c.node), true
	case "api_group":
		if r := ev.ObjectRef; r != nil {
			return types.String(r.APIGroup), true
		}
		return types.String(ev.Kaudit.Object.Group), true
	case "api_version":
		if r := ev.ObjectRef; r != nil {
			return types.String(r.APIVersion), true
		}
		return types.String(ev.Kaudit.Object.Version), true
	case "resource":
		return types.String(detResource(ev)), true
	case "subresource":
		return types.String(detSubresource(ev)), true
	case "ns":
		if r := ev.ObjectRef; r != nil {
			return types.String(r.Namespace), true
		}
		return types.String(ev.Kaudit.Object.Namespace), true
	case "name":
		if r := ev.ObjectRef; r != nil {
			return types.String(r.Name), true
		}
		return types.String(ev.Kaudit.Object.Name), true
	case "request_uri":
		return types.String(ev.RequestURI), true
	case "user_agent":
		return types.String(ev.UserAgent), true
	case "stage":
		return types.String(ev.Stage), true
	case "level":
		return types.String(ev.Level), true
	case "audit_id":
		return types.String(ev.AuditID), true
	case "code":
		return types.Int(detCode(ev)), true
	case "outcome":
		return types.String(c.getOutcome()), true
	case "action":
		return types.String(ev.Kaudit.Action), true
	case "source_ip":
		c.resolveSource()
		return types.String(c.sourceIP), true
	case "source_ips":
		if c.done&lzSourceIPs == 0 {
			c.done |= lzSourceIPs
			c.sourceIPs = detStringVal(ev.SourceIPs)
		}
		return c.sourceIPs, true
	case "trusted":
		c.resolveSource()
		return types.Bool(c.trusted), true
	case "critical":
		return types.Bool(len(ev.Kaudit.Critical) > 0), true
	case "critical_names":
		if c.done&lzCritNames == 0 {
			c.done |= lzCritNames
			names := make([]string, len(ev.Kaudit.Critical))
			for i := range ev.Kaudit.Critical {
				names[i] = ev.Kaudit.Critical[i].Name
			}
			c.critNames = detStringVal(names)
		}
		return c.critNames, true
	case "critical_expected":
		all := len(ev.Kaudit.Critical) > 0
		for i := range ev.Kaudit.Critical {
			all = all && ev.Kaudit.Critical[i].ExpectedActor
		}
		return types.Bool(all), true
	case "critical_in_window":
		all := len(ev.Kaudit.Critical) > 0
		for i := range ev.Kaudit.Critical {
			all = all && ev.Kaudit.Critical[i].InWindow
		}
		return types.Bool(all), true
	case "annotations":
		if c.done&lzAnnotations == 0 {
			c.done |= lzAnnotations
			if ev.Annotations == nil {
				c.annotations = types.NewStringStringMap(types.DefaultTypeAdapter, map[string]string{})
			} else {
				c.annotations = types.NewStringStringMap(types.DefaultTypeAdapter, ev.Annotations)
			}
		}
		return c.annotations, true
	case "has_request":
		return types.Bool(detHasRequest(ev)), true
	case "has_response":
		return types.Bool(detHasResponse(ev)), true
	case "request":
		c.resolveRequest()
		return c.request, true
	case "response":
		if c.done&lzResponse == 0 {
			c.done |= lzResponse
			c.response = detEmptyMap
			if detHasResponse(ev) {
				if m := detDecodeBody(ev.ResponseObject.Raw); m != nil {
					c.response = types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
				}
			}
		}
		return c.response, true
	case "pod_spec":
		c.resolvePod()
		return c.podSpec, true
	case "containers":
		c.resolvePod()
		return c.containers, true
	}
	return nil, false
}

func detStringVal(s []string) ref.Val {
	if len(s) == 0 {
		return detEmptyList
	}
	return types.NewStringList(types.DefaultTypeAdapter, s)
}

func detHasRequest(ev *Event) bool { return ev.RequestObject != nil && len(ev.RequestObject.Raw) > 0 }
func detHasResponse(ev *Event) bool {
	return ev.ResponseObject != nil && len(ev.ResponseObject.Raw) > 0
}

func detCode(ev *Event) int32 {
	if ev.ResponseStatus != nil {
		return ev.ResponseStatus.Code
	}
	return 0
}

func detResource(ev *Event) string {
	if r := ev.ObjectRef; r != nil {
		return r.Resource
	}
	return ev.Kaudit.Object.Resource
}

func detSubresource(ev *Event) string {
	if r := ev.ObjectRef; r != nil {
		return r.Subresource
	}
	return ev.Kaudit.Object.Subresource
}

// detDecodeBody decodes a JSON object body; nil when it is not one (a JSON
// patch is a list; a truncated body does not parse).
func detDecodeBody(raw []byte) map[string]any {
	var m map[string]any
	if err := auditJSON.Unmarshal(raw, &m); err != nil {
		return nil
	}
	return m
}

func (c *detCtx) resolveRequest() {
	if c.done&lzRequest != 0 {
		return
	}
	c.done |= lzRequest
	c.request = detEmptyMap
	if detHasRequest(c.ev) {
		if m := detDecodeBody(c.ev.RequestObject.Raw); m != nil {
			c.requestMap = m
			c.request = types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
		}
	}
}

// resolvePod finds the pod spec in the request body: spec of a Pod,
// spec.template.spec of a workload, spec.jobTemplate.spec.template.spec
// of a CronJob.
func (c *detCtx) resolvePod() {
	if c.done&lzPod != 0 {
		return
	}
	c.done |= lzPod
	c.podSpec, c.containers = detEmptyMap, detEmptyDyn
	c.resolveRequest()
	spec := detPodSpecOf(c.requestMap, detResource(c.ev))
	if spec == nil {
		return
	}
	c.podSpec = types.NewStringInterfaceMap(types.DefaultTypeAdapter, spec)
	var all []any
	for _, k := range [...]string{"containers", "initContainers", "ephemeralContainers"} {
		if l, ok := spec[k].([]any); ok {
			all = append(all, l...)
		}
	}
	if len(all) > 0 {
		c.containers = types.NewDynamicList(types.DefaultTypeAdapter, all)
	}
}

func detPodSpecOf(obj map[string]any, resource string) map[string]any {
	if obj == nil {
		return nil
	}
	path := []string{"spec", "template", "spec"}
	switch resource {
	case "pods":
		path = path[:1]
	case "cronjobs":
		path = []string{"spec", "jobTemplate", "spec", "template", "spec"}
	case "deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "replicationcontrollers", "podtemplates":
		if resource == "podtemplates" {
			path = []string{"template", "spec"}
		}
	default:
		return nil
	}
	cur := obj
	for _, k := range path {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

func (c *detCtx) actorName() string {
	if n := c.ev.Kaudit.Actor.Name; n != "" {
		return n
	}
	if iu := c.ev.ImpersonatedUser; iu != nil && iu.Username != "" {
		return iu.Username
	}
	return c.ev.User.Username
}

// resolveActor reads the enrichment's actor, or classifies the username
// itself when enrichment did not run.
func (c *detCtx) resolveActor() {
	if c.done&lzActor != 0 {
		return
	}
	c.done |= lzActor
	a := &c.ev.Kaudit.Actor
	if a.Type != "" {
		c.actorType, c.saNS, c.saName, c.node = a.Type, a.ServiceAccountNS, a.ServiceAccount, a.NodeName
		return
	}
	c.actorType, c.saNS, c.saName, c.node = detClassifyUser(c.actorName(), c.ev.User.Groups)
}

// detClassifyUser is the fallback actor classification.
func detClassifyUser(u string, groups []string) (typ, saNS, saName, node string) {
	switch {
	case u == "system:anonymous" || u == "":
		return "anonymous", "", "", ""
	case strings.HasPrefix(u, "system:serviceaccount:"):
		ns, n, _ := strings.Cut(strings.TrimPrefix(u, "system:serviceaccount:"), ":")
		return "serviceaccount", ns, n, ""
	case strings.HasPrefix(u, "system:node:"):
		return "node", "", "", strings.TrimPrefix(u, "system:node:")
	case strings.HasPrefix(u, "system:"):
		return "system-component", "", "", ""
	}
	for _, g := range groups {
		if g == "system:unauthenticated" {
			return "anonymous", "", "", ""
		}
	}
	return "user", "", "", ""
}

func (c *detCtx) getOutcome() string {
	if c.done&lzOutcome == 0 {
		c.done |= lzOutcome
		c.outcome = detOutcome(c.ev)
	}
	return c.outcome
}

// detOutcome is kaudit.outcome, or derived the way enrichment does when
// it did not run: denied (forbid decision or 403), error (5xx, Panic),
// failure (other 4xx, 401 included), success (1xx-3xx), else unknown.
func detOutcome(ev *Event) string {
	if ev.Kaudit.Outcome != "" {
		return ev.Kaudit.Outcome
	}
	code := detCode(ev)
	switch {
	case code == 403 || ev.Annotations["authorization.k8s.io/decision"] == "forbid":
		return "denied"
	case code >= 500 || ev.Stage == "Panic":
		return "error"
	case code >= 400:
		return "failure"
	case code >= 100:
		return "success"
	}
	return "unknown"
}

func (c *detCtx) resolveSource() {
	if c.done&lzSource != 0 {
		return
	}
	c.done |= lzSource
	s := &c.ev.Kaudit.Source
	if s.IP != "" {
		c.sourceIP, c.trusted = s.IP, s.Trusted
		return
	}
	if len(c.ev.SourceIPs) > 0 {
		c.sourceIP = c.ev.SourceIPs[0]
		if addr, err := netip.ParseAddr(c.sourceIP); err == nil {
			addr = addr.Unmap()
			for _, p := range c.st.trusted {
				if p.Contains(addr) {
					c.trusted = true
					break
				}
			}
		}
	}
}

// groupValue returns a variable's value as a string for group_by.
func (c *detCtx) groupValue(name string) string {
	switch name {
	case "actor":
		return c.actorName()
	case "source_ip":
		c.resolveSource()
		return c.sourceIP
	case "sa_namespace":
		c.resolveActor()
		return c.saNS
	case "node_name":
		c.resolveActor()
		return c.node
	}
	v, ok := c.ResolveName(name)
	if !ok {
		return ""
	}
	s, _ := v.(types.String)
	return string(s)
}
