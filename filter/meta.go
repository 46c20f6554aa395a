package filter

// Meta is the enrichment kaudit adds to each event, shipped as the
// "kaudit" object. Field names are stable and documented in the README.
type Meta struct {
	// Kind is set on synthetic records (kaudit.k8s.io/Alert, …); empty
	// for audit events.
	Kind string

	Actor   Actor
	Action  string
	Object  Object
	Outcome string
	Reason  string

	LatencyMS float64
	Slow      bool

	Cluster string
	Node    string

	Source    Source
	UserAgent UserAgent

	Policy   PolicyResult
	Critical []CriticalMatch
	Alerts   []Alert

	// Truncated names the bodies cut to max_event_bytes.
	Truncated []string
	// Redacted lists the JSON paths whose values were removed.
	Redacted []string
}

// Actor answers "who or what initiated it".
type Actor struct {
	Type             string // user, serviceaccount, node, system-component, anonymous
	Name             string
	Groups           []string
	ServiceAccountNS string
	ServiceAccount   string
	NodeName         string
	// ImpersonatedBy names the requesting user when the request was
	// impersonated; Name is then the impersonated identity.
	ImpersonatedBy string
}

// Object answers "which object".
type Object struct {
	Group       string
	Version     string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
}

// Source answers "from where".
type Source struct {
	IP      string
	Trusted bool
}

// UserAgent is the client name and version split from the user agent.
type UserAgent struct {
	Name    string
	Version string
}

// PolicyResult records what policy re-evaluation did to the event.
type PolicyResult struct {
	// Evaluated is false when no policy_file is set.
	Evaluated bool
	// Rule is the index of the matching rule, -1 for none.
	Rule int
	// Level is the level the rule asks for.
	Level string
	// RecordedLevel is the level the apiserver recorded.
	RecordedLevel string
	// Stripped is true when bodies were removed down to Level.
	Stripped bool
	// BelowPolicy is true when the recorded level is lower than the
	// rule's: bodies can't be invented, the event passes as it is.
	BelowPolicy bool
}

// CriticalMatch marks an event touching a critical workload.
type CriticalMatch struct {
	Name          string
	Severity      string
	ExpectedActor bool
	InWindow      bool
	Reason        string
}

// Alert is a detection match.
type Alert struct {
	Rule        string
	Severity    string
	Description string
	Techniques  []string
}
