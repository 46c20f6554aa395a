package filter

import (
	"os"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/utils/lru"
)

// criticalStage marks events touching critical workloads
// (critical_workloads_file): which selector matched, whether the actor was
// expected, whether the access fell in a window, and a severity raised one
// step when either is not the case.
//
// It runs after the enrichment stage and reads the actor from Meta.Actor.
type criticalStage struct {
	sels []*selector
	// cache remembers object labels learned from bodies (nil when
	// label_cache_size is 0 or no selector uses labels).
	cache *lru.Cache
}

// selector is a compiled selectorSpec. Within a field any entry may match;
// all fields given must match; an empty field matches everything.
type selector struct {
	name       string
	severity   int
	namespaces globList
	resources  []resourceMatcher
	names      globList
	labels     labels.Selector // nil: no label condition
	actors     *actorMatcher   // nil: every actor is expected
	windows    []window        // none: always in window
}

type resourceMatcher struct {
	group, resource glob
	subresources    globList // empty: with or without a subresource
}

type actorMatcher struct {
	users, groups   globList
	serviceAccounts [][2]glob // namespace, name
}

func newCriticalStage(o *Options) (Stage, error) {
	if o.CriticalFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(o.CriticalFile)
	if err != nil {
		return nil, &OptionError{Key: criticalFileKey, Value: o.CriticalFile, Err: err}
	}
	sels, err := compileSelectors(data)
	if err != nil {
		return nil, &OptionError{Key: criticalFileKey, Value: o.CriticalFile, Err: err}
	}
	return newCritical(sels, o.LabelCacheSize), nil
}

func newCritical(sels []*selector, cacheSize int) *criticalStage {
	st := &criticalStage{sels: sels}
	for _, s := range sels {
		if s.labels != nil && cacheSize > 0 {
			st.cache = lru.New(cacheSize)
			break
		}
	}
	return st
}

// staticMatch checks everything but labels: namespace, group/resource,
// subresource and name.
func (s *selector) staticMatch(r *auditv1.ObjectReference) bool {
	if !s.namespaces.any(r.Namespace) {
		return false
	}
	if len(s.names) > 0 && (r.Name == "" || !s.names.any(r.Name)) {
		return false
	}
	if len(s.resources) == 0 {
		return true
	}
	for i := range s.resources {
		m := &s.resources[i]
		if m.group.match(r.APIGroup) && m.resource.match(r.Resource) &&
			(len(m.subresources) == 0 || r.Subresource != "" && m.subresources.any(r.Subresource)) {
			return true
		}
	}
	return false
}

func (a *actorMatcher) expected(act *Actor) bool {
	if len(a.users) > 0 && a.users.anyNonEmpty(act.Name) {
		return true
	}
	for _, g := range act.Groups {
		if a.groups.anyNonEmpty(g) {
			return true
		}
	}
	if act.Type == ActorServiceAccount {
		for _, sa := range a.serviceAccounts {
			if sa[0].match(act.ServiceAccountNS) && sa[1].match(act.ServiceAccount) {
				return true
			}
		}
	}
	return false
}

// anyNonEmpty is any, except that an empty list matches nothing.
func (l globList) anyNonEmpty(s string) bool { return len(l) > 0 && l.any(s) }

func (s *selector) inWindow(t time.Time) bool {
	if len(s.windows) == 0 {
		return true
	}
	for i := range s.windows {
		if s.windows[i].contains(t) {
			return true
		}
	}
	return false
}

// Reasons for a raised severity.
const (
	reasonActor        = "actor not expected"
	reasonWindow       = "outside every window"
	reasonActorAndTime = "actor not expected; outside every window"
)

func (st *criticalStage) Process(ev *Event) Drop {
	r := ev.ObjectRef
	if r == nil {
		return Keep
	}
	lk := labelLookup{st: st, ev: ev}
	for _, s := range st.sels {
		if !s.staticMatch(r) {
			continue
		}
		if s.labels != nil {
			ls, known := lk.labels()
			if !known || !s.labels.Matches(ls) {
				continue
			}
		}
		m := CriticalMatch{Name: s.name, ExpectedActor: true, InWindow: true}
		if s.actors != nil {
			m.ExpectedActor = s.actors.expected(&ev.Kaudit.Actor)
		}
		t := ev.RequestReceivedTimestamp.Time
		if t.IsZero() {
			t = ev.Timestamp()
		}
		m.InWindow = s.inWindow(t)
		sev := s.severity
		switch {
		case !m.ExpectedActor && !m.InWindow:
			m.Reason = reasonActorAndTime
		case !m.ExpectedActor:
			m.Reason = reasonActor
		case !m.InWindow:
			m.Reason = reasonWindow
		}
		if m.Reason != "" && sev < len(severities)-1 {
			sev++
		}
		m.Severity = severities[sev]
		ev.Kaudit.Critical = append(ev.Kaudit.Critical, m)
	}
	lk.learnFromBody()
	if st.cache != nil && ev.Verb == "delete" && ev.Stage == auditv1.StageResponseComplete &&
		ev.ResponseStatus != nil && ev.ResponseStatus.Code/100 == 2 && r.Name != "" {
		// The object is gone: forget it, after this event used it.
		st.cache.Remove(cacheKey(r, r.Name))
	}
	return Keep
}

// labelLookup finds an event's object labels once per event: from the
// event's own body when it carries the object, else from the cache.
type labelLookup struct {
	st   *criticalStage
	ev   *Event
	done bool
	set  labels.Set
	ok   bool
	// body: labels came from the body, for the cache; name: the object's
	// name as the body says (creates have none in objectRef before
	// ResponseComplete).
	body bool
	name string
}

func (l *labelLookup) labels() (labels.Set, bool) {
	if l.done {
		return l.set, l.ok
	}
	l.done = true
	r := l.ev.ObjectRef
	if set, name, ok := bodyLabels(l.ev); ok {
		l.set, l.ok, l.body, l.name = set, true, true, name
		return l.set, true
	}
	if l.st.cache != nil && r.Name != "" {
		if v, ok := l.st.cache.Get(cacheKey(r, r.Name)); ok {
			l.set, l.ok = v.(labels.Set), true
		}
	}
	return l.set, l.ok
}

// learnFromBody caches the labels of the event's object when some
// selector with a label condition could be about it.
func (l *labelLookup) learnFromBody() {
	c := l.st.cache
	if c == nil {
		return
	}
	if !l.done {
		need := false
		for _, s := range l.st.sels {
			if s.labels != nil && s.staticMatchIgnoringName(l.ev.ObjectRef) {
				need = true
				break
			}
		}
		if !need {
			return
		}
		l.labels()
	}
	if l.body && l.name != "" {
		c.Add(cacheKey(l.ev.ObjectRef, l.name), l.set)
	}
}

// staticMatchIgnoringName is staticMatch for learning: creates may lack
// the name in objectRef.
func (s *selector) staticMatchIgnoringName(r *auditv1.ObjectReference) bool {
	if r.Name != "" || len(s.names) == 0 {
		return s.staticMatch(r)
	}
	s2 := *s
	s2.names = nil
	return s2.staticMatch(r)
}

// cacheKey is group/resource/namespace/name.
func cacheKey(r *auditv1.ObjectReference, name string) string {
	return r.APIGroup + "/" + r.Resource + "/" + r.Namespace + "/" + name
}

// bodyLabels reads the object's labels from the event's body: the
// response (the object as stored) or, for create and update, the request
// (a patch's body is not the whole object). Only bodies of the object
// itself count: the main resource or its status subresource, and a
// metadata.name equal to objectRef.name when the latter is known.
func bodyLabels(ev *Event) (labels.Set, string, bool) {
	r := ev.ObjectRef
	if r.Subresource != "" && r.Subresource != "status" {
		return nil, "", false
	}
	try := func(raw []byte) (labels.Set, string, bool) {
		if len(raw) == 0 {
			return nil, "", false
		}
		name, ls, ok := pjObjectMeta(raw)
		if !ok || name == "" || r.Name != "" && name != r.Name {
			return nil, "", false
		}
		if ls == nil {
			ls = map[string]string{}
		}
		return ls, name, true
	}
	if u := ev.ResponseObject; u != nil {
		if ls, name, ok := try(u.Raw); ok {
			return ls, name, true
		}
	}
	if u := ev.RequestObject; u != nil && (ev.Verb == "create" || ev.Verb == "update") {
		return try(u.Raw)
	}
	return nil, "", false
}
