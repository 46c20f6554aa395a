package filter

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
)

// enrichStage fills Meta: who, what, which object, outcome, when, where
// observed and from where. It reads only decoded fields (no JSON parsing,
// no reflection) and allocates at most the action string, which is cached.
type enrichStage struct {
	trusted []netip.Prefix
	cluster string
	node    string
	slow    time.Duration
	slowBy  map[string]time.Duration // per-verb thresholds
	actions actionCache
}

func newEnrichStage(o *Options) (Stage, error) {
	return &enrichStage{
		trusted: o.TrustedNetworks,
		cluster: o.Cluster,
		node:    o.Node,
		slow:    o.SlowThreshold,
		slowBy:  o.SlowByVerb,
		actions: actionCache{m: make(map[string]string, 256)},
	}, nil
}

// Actor types.
const (
	ActorUser            = "user"
	ActorServiceAccount  = "serviceaccount"
	ActorNode            = "node"
	ActorSystemComponent = "system-component"
	ActorAnonymous       = "anonymous"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
	OutcomeUnknown = "unknown"
)

// Annotation keys the authorizer sets on audit events.
const (
	annDecision = "authorization.k8s.io/decision"
	annReason   = "authorization.k8s.io/reason"
)

func (s *enrichStage) Process(ev *Event) Drop {
	m := &ev.Kaudit
	setActor(&m.Actor, &ev.User, ev.ImpersonatedUser)
	m.Action = s.actions.action(ev)
	if r := ev.ObjectRef; r != nil {
		m.Object = Object{Group: r.APIGroup, Version: r.APIVersion, Resource: r.Resource,
			Subresource: r.Subresource, Namespace: r.Namespace, Name: r.Name}
	} else {
		m.Object = Object{}
	}
	m.Outcome, m.Reason = outcome(ev)
	m.LatencyMS = latencyMS(ev)
	slow := s.slow
	if d, ok := s.slowBy[ev.Verb]; ok {
		slow = d
	}
	m.Slow = slow > 0 && !longRunning(ev) &&
		ev.StageTimestamp.Sub(ev.RequestReceivedTimestamp.Time) > slow &&
		!ev.RequestReceivedTimestamp.IsZero()
	m.Cluster, m.Node = s.cluster, s.node
	m.Source = Source{}
	if len(ev.SourceIPs) > 0 {
		m.Source.IP = ev.SourceIPs[0]
		m.Source.Trusted = s.isTrusted(m.Source.IP)
	}
	m.UserAgent = splitUserAgent(ev.UserAgent)
	return Keep
}

// setActor classifies the acting identity: the impersonated user when the
// request was impersonated (ImpersonatedBy is then the requesting user),
// otherwise the user.
func setActor(a *Actor, u, imp *authnv1.UserInfo) {
	*a = Actor{}
	id := u
	if imp != nil {
		id = imp
		a.ImpersonatedBy = u.Username
	}
	a.Name = id.Username
	a.Groups = id.Groups
	a.Type = ActorUser
	name := id.Username
	switch {
	case name == "" || name == "system:anonymous" || hasGroup(id.Groups, "system:unauthenticated"):
		// An empty user is a request that failed authentication.
		a.Type = ActorAnonymous
	case strings.HasPrefix(name, "system:serviceaccount:"):
		a.Type = ActorServiceAccount
		rest := name[len("system:serviceaccount:"):]
		if ns, sa, ok := strings.Cut(rest, ":"); ok {
			a.ServiceAccountNS, a.ServiceAccount = ns, sa
		}
	case strings.HasPrefix(name, "system:node:"):
		a.Type = ActorNode
		a.NodeName = name[len("system:node:"):]
	case strings.HasPrefix(name, "system:"):
		// system:kube-controller-manager, system:kube-scheduler,
		// system:kube-proxy, system:apiserver, system:volume-scheduler, …
		a.Type = ActorSystemComponent
	}
}

func hasGroup(groups []string, g string) bool {
	for _, x := range groups {
		if x == g {
			return true
		}
	}
	return false
}

// outcome maps the response to success, failure, denied, error or
// unknown, with a short reason:
//   - denied: the authorizer forbade it (decision "forbid") or the code is
//     403 (an admission webhook or policy refused it); reason: the
//     authorization reason, else the status message;
//   - error: 5xx, or a Panic stage; failure: any other 4xx (401
//     unauthenticated included); reason: status reason, else message,
//     else the HTTP status text;
//   - success: 1xx–3xx (101 for exec/attach/portforward upgrades);
//   - unknown: no response yet (RequestReceived) or no status code.
func outcome(ev *Event) (string, string) {
	decision := ev.Annotations[annDecision]
	st := ev.ResponseStatus
	code := 0
	if st != nil {
		code = int(st.Code)
	}
	switch {
	case decision == "forbid" || code == http.StatusForbidden:
		if r := ev.Annotations[annReason]; r != "" {
			return OutcomeDenied, short(r)
		}
		if st != nil && st.Message != "" {
			return OutcomeDenied, short(st.Message)
		}
		return OutcomeDenied, statusReason(ev, code)
	case code >= 500 || ev.Stage == "Panic":
		return OutcomeError, statusReason(ev, code)
	case code >= 400:
		return OutcomeFailure, statusReason(ev, code)
	case code >= 100:
		return OutcomeSuccess, ""
	default:
		return OutcomeUnknown, ""
	}
}

const maxReason = 200

func statusReason(ev *Event, code int) string {
	if st := ev.ResponseStatus; st != nil {
		if st.Reason != "" {
			return string(st.Reason)
		}
		if st.Message != "" {
			return short(st.Message)
		}
	}
	return http.StatusText(code)
}

// short cuts s to maxReason bytes on a rune boundary.
func short(s string) string {
	if len(s) <= maxReason {
		return s
	}
	i := maxReason
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}

func latencyMS(ev *Event) float64 {
	if ev.RequestReceivedTimestamp.IsZero() || ev.StageTimestamp.IsZero() {
		return 0
	}
	d := ev.StageTimestamp.Sub(ev.RequestReceivedTimestamp.Time)
	if d < 0 {
		return 0
	}
	return float64(d.Microseconds()) / 1000
}

// longRunning reports requests whose duration is the client's, not the
// apiserver's: watches, exec/attach/portforward, proxy and followed logs.
func longRunning(ev *Event) bool {
	if ev.Verb == "watch" {
		return true
	}
	r := ev.ObjectRef
	if r == nil {
		return false
	}
	switch r.Subresource {
	case "exec", "attach", "portforward", "proxy":
		return true
	case "log":
		_, q, _ := strings.Cut(ev.RequestURI, "?")
		return strings.Contains(q, "follow=true") || strings.Contains(q, "follow=1")
	}
	return false
}

func (s *enrichStage) isTrusted(ip string) bool {
	if len(s.trusted) == 0 {
		return false
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// splitUserAgent splits "kubectl/v1.31.0 (linux/amd64) kubernetes/abc"
// into kubectl and v1.31.0: the first word, at its first '/'.
func splitUserAgent(ua string) UserAgent {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return UserAgent{}
	}
	word, _, _ := strings.Cut(ua, " ")
	name, version, _ := strings.Cut(word, "/")
	return UserAgent{Name: name, Version: version}
}

// actionCache interns action strings ("delete pods/exec", "get /healthz"):
// there are few distinct ones, so after warm-up they cost no allocation.
type actionCache struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxCachedActions = 4096

func (c *actionCache) action(ev *Event) string {
	var buf [128]byte
	b := append(buf[:0], ev.Verb...)
	b = append(b, ' ')
	if r := ev.ObjectRef; r != nil {
		b = append(b, r.Resource...)
		if r.Subresource != "" {
			b = append(b, '/')
			b = append(b, r.Subresource...)
		}
	} else {
		path, _, _ := strings.Cut(ev.RequestURI, "?")
		b = append(b, path...)
	}
	c.mu.RLock()
	s, ok := c.m[string(b)]
	c.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	c.mu.Lock()
	if len(c.m) < maxCachedActions {
		c.m[s] = s
	}
	c.mu.Unlock()
	return s
}
