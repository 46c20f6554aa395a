package filter

import (
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/common/types"
)

// detectStage runs the detection rules: single-event rules attach an
// alert to the event they match; correlation rules count matches per
// group key in a time-bucketed window and fire when their conditions are
// met (see docs/detections.md).
type detectStage struct {
	rules    []*detRule
	matchers []*detMatcher
	idx      *detIndex
	trusted  []netip.Prefix
	now      func() time.Time
	emit     bool
	cluster  string
	node     string
	hasCorr  bool
	roles    *detRoleTracker

	mu     sync.Mutex // guards the correlation state
	table  *corrTable
	recent *detRecentSet
	fired  *detFiredSet

	stats detectCounters
}

type detectCounters struct {
	events, evaluated, matched, evalErrors, skippedNoBody atomic.Uint64
	fired, duplicates                                     atomic.Uint64
}

// DetectStats are the detection stage's counters.
type DetectStats struct {
	Rules         int    // rules loaded (single-event and correlation)
	Correlations  int    // correlation rules among them
	Events        uint64 // events examined
	Evaluated     uint64 // CEL evaluations (events that passed a pre-filter)
	Matched       uint64 // rule matches (single-event alerts and correlation legs)
	EvalErrors    uint64 // evaluations that failed (counted as no match)
	SkippedNoBody uint64 // evaluations skipped: the rule reads a body the event lacks
	Fired         uint64 // correlation alerts
	Duplicates    uint64 // re-sent events not counted again
	Keys          int    // correlation keys held
	Evictions     uint64 // keys evicted by correlation_max_keys
	Expired       uint64 // keys dropped when their window passed
	Late          uint64 // events older than a window behind the newest, not counted
}

// detRecentIDs and firedIDs bound the retry de-duplication state.
const (
	detRecentIDs = 1 << 16
	detFiredIDs  = 4096
	detRoleCap   = 10000
)

func newDetectStage(o *Options) (Stage, error) {
	st := &detectStage{
		trusted: o.TrustedNetworks,
		now:     o.Now,
		emit:    o.EmitAlertRecords,
		cluster: o.Cluster,
		node:    o.Node,
		roles:   newDetRoleTracker(detRoleCap),
	}
	if st.now == nil {
		st.now = time.Now
	}
	env, err := newDetectEnv(st)
	if err != nil {
		return nil, err
	}
	rules, ms, err := loadDetectRules(o, env)
	if err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, nil
	}
	st.rules, st.matchers = rules, ms
	st.idx = buildDetIndex(ms)
	for _, r := range rules {
		if r.corr != nil {
			st.hasCorr = true
		}
	}
	if st.hasCorr {
		max := o.CorrelationMaxKeys
		if max <= 0 {
			max = 100_000
		}
		st.table = newCorrTable(len(rules), max)
		st.recent = newDetRecentSet(detRecentIDs)
		st.fired = newDetFiredSet(detFiredIDs)
	}
	return st, nil
}

// detCorrHit is the legs of one correlation rule an event matched.
type detCorrHit struct {
	rule *detRule
	mask uint32
}

// Process implements Stage.
func (st *detectStage) Process(ev *Event) Drop {
	st.stats.events.Add(1)
	st.roles.observe(ev)
	var buf [4]uint64
	cand := st.idx.candidates(ev, buf[:0])
	var ctx *detCtx
	var hitBuf [8]detCorrHit
	hits := hitBuf[:0]
	for w, word := range cand {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			m := st.matchers[i]
			if m.needsRequest && !detHasRequest(ev) || m.needsResponse && !detHasResponse(ev) {
				st.stats.skippedNoBody.Add(1)
				continue
			}
			if !m.always {
				if ctx == nil {
					ctx = st.getCtx(ev)
				}
				st.stats.evaluated.Add(1)
				out, _, err := m.prog.Eval(ctx)
				if err != nil {
					st.stats.evalErrors.Add(1)
					continue
				}
				if out != types.True {
					continue
				}
			}
			st.stats.matched.Add(1)
			r := m.rule
			if r.corr == nil {
				ev.Kaudit.Alerts = append(ev.Kaudit.Alerts, Alert{Rule: r.name, Severity: r.severity, Description: r.description, Techniques: r.techniques})
				continue
			}
			bit := uint32(0)
			switch m.leg {
			case legEscalate:
				bit = bitEscalate
			case legFollowed:
				bit = bitFollowed
			default:
				bit = 1 << m.leg
			}
			if n := len(hits); n > 0 && hits[n-1].rule == r {
				hits[n-1].mask |= bit
			} else {
				hits = append(hits, detCorrHit{r, bit})
			}
		}
	}
	if len(hits) > 0 {
		if ctx == nil {
			ctx = st.getCtx(ev)
		}
		st.correlate(ev, ctx, hits)
	}
	if ctx != nil {
		putDetCtx(ctx)
	}
	return Keep
}

// Stats returns the stage's counters.
func (st *detectStage) Stats() DetectStats {
	s := DetectStats{
		Rules:         len(st.rules),
		Events:        st.stats.events.Load(),
		Evaluated:     st.stats.evaluated.Load(),
		Matched:       st.stats.matched.Load(),
		EvalErrors:    st.stats.evalErrors.Load(),
		SkippedNoBody: st.stats.skippedNoBody.Load(),
		Fired:         st.stats.fired.Load(),
		Duplicates:    st.stats.duplicates.Load(),
	}
	for _, r := range st.rules {
		if r.corr != nil {
			s.Correlations++
		}
	}
	if st.table != nil {
		st.mu.Lock()
		s.Keys = len(st.table.m)
		s.Evictions, s.Expired, s.Late = st.table.evictions, st.table.expired, st.table.late
		st.mu.Unlock()
	}
	return s
}

// DetectStats returns the detection counters; false when the pipeline
// runs no detections.
func (p *Pipeline) DetectStats() (DetectStats, bool) {
	for _, s := range p.stages {
		if d, ok := s.(*detectStage); ok {
			return d.Stats(), true
		}
	}
	return DetectStats{}, false
}

// detIndex maps an event's verb, resource, outcome, stage and actor type
// to the matchers that can match it: the AND of one bitset per dimension.
type detIndex struct {
	words                       int
	verb, outcome, stage, actor detDim
	res                         detDim // "res" or "res/sub"
	code                        detDimOf[int32]
	resWild                     map[string][]uint64
	subWild                     map[string][]uint64
}

type detDim = detDimOf[string]

// detDimOf is one dimension: the matchers admitting each value named by
// some matcher, and those admitting any other value.
type detDimOf[K comparable] struct {
	m     map[K][]uint64
	other []uint64
}

func (d *detDimOf[K]) get(k K) []uint64 {
	if b, ok := d.m[k]; ok {
		return b
	}
	return d.other
}

func buildDetDim[K comparable](ms []*detMatcher, words int, vals func(*detMatcher) []K) detDimOf[K] {
	d := detDimOf[K]{m: map[K][]uint64{}, other: make([]uint64, words)}
	for _, m := range ms {
		for _, v := range vals(m) {
			if d.m[v] == nil {
				d.m[v] = make([]uint64, words)
			}
		}
	}
	for _, m := range ms {
		w, b := m.id/64, uint64(1)<<(m.id%64)
		vs := vals(m)
		if vs == nil {
			d.other[w] |= b
			for _, set := range d.m {
				set[w] |= b
			}
			continue
		}
		for _, v := range vs {
			d.m[v][w] |= b
		}
	}
	return d
}

func buildDetIndex(ms []*detMatcher) *detIndex {
	words := (len(ms) + 63) / 64
	x := &detIndex{words: words, resWild: map[string][]uint64{}, subWild: map[string][]uint64{}}
	x.verb = buildDetDim(ms, words, func(m *detMatcher) []string { return m.pf.verbs })
	x.outcome = buildDetDim(ms, words, func(m *detMatcher) []string { return m.pf.outcomes })
	x.stage = buildDetDim(ms, words, func(m *detMatcher) []string { return m.pf.stages })
	x.actor = buildDetDim(ms, words, func(m *detMatcher) []string { return m.pf.actorTypes })
	x.code = buildDetDim(ms, words, func(m *detMatcher) []int32 {
		if m.pf.codes == nil {
			return nil
		}
		out := make([]int32, len(m.pf.codes))
		for i, c := range m.pf.codes {
			out[i] = int32(c)
		}
		return out
	})
	x.res = buildDetDim(ms, words, func(m *detMatcher) []string {
		if m.pf.resources == nil {
			return nil
		}
		exact := []string{}
		for _, r := range m.pf.resources {
			res, sub, _ := detCutSlash(r)
			if res != "*" && sub != "*" {
				exact = append(exact, r)
			}
		}
		return exact
	})
	for _, m := range ms {
		w, b := m.id/64, uint64(1)<<(m.id%64)
		for _, r := range m.pf.resources {
			res, sub, _ := detCutSlash(r)
			var set map[string][]uint64
			var k string
			switch {
			case sub == "*":
				set, k = x.resWild, res
			case res == "*":
				set, k = x.subWild, sub
			default:
				continue
			}
			if set[k] == nil {
				set[k] = make([]uint64, words)
			}
			set[k][w] |= b
		}
	}
	return x
}

func detCutSlash(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// candidates returns the matchers an event can reach, as a bitset.
func (x *detIndex) candidates(ev *Event, buf []uint64) []uint64 {
	res, sub := detResource(ev), detSubresource(ev)
	var rb []uint64
	if sub == "" {
		rb = x.res.get(res)
	} else {
		// Concatenation without allocating for the common lookup.
		var kb [96]byte
		k := append(append(append(kb[:0], res...), '/'), sub...)
		rb = x.res.get(string(k))
	}
	out := append(buf[:0], rb...)
	if sub != "" {
		if w := x.resWild[res]; w != nil {
			for i := range out {
				out[i] |= w[i]
			}
		}
		if w := x.subWild[sub]; w != nil {
			for i := range out {
				out[i] |= w[i]
			}
		}
	}
	stage := string(ev.Stage)
	if stage == "" {
		stage = "ResponseComplete"
	}
	actorType := ev.Kaudit.Actor.Type
	if actorType == "" {
		u := ev.User.Username
		if ev.ImpersonatedUser != nil && ev.ImpersonatedUser.Username != "" {
			u = ev.ImpersonatedUser.Username
		}
		if ev.Kaudit.Actor.Name != "" {
			u = ev.Kaudit.Actor.Name
		}
		actorType, _, _, _ = detClassifyUser(u, ev.User.Groups)
	}
	any := uint64(0)
	for _, d := range [...][]uint64{x.verb.get(ev.Verb), x.stage.get(stage), x.actor.get(actorType), x.outcome.get(detOutcome(ev)), x.code.get(detCode(ev))} {
		any = 0
		for i := range out {
			out[i] &= d[i]
			any |= out[i]
		}
		if any == 0 {
			return nil
		}
	}
	return out
}

// detRoleTracker remembers the Roles and ClusterRoles seen created or
// updated with "*" verbs (from the request body), for wildcard_role().
type detRoleTracker struct {
	mu    sync.Mutex
	set   map[string]struct{}
	order []string
	pos   int
}

func newDetRoleTracker(n int) *detRoleTracker {
	return &detRoleTracker{set: map[string]struct{}{}, order: make([]string, n)}
}

func detRoleKey(kind, ns, name string) string {
	if kind == "ClusterRole" {
		return "ClusterRole/" + name
	}
	return "Role/" + ns + "/" + name
}

// wildcard reports whether a role grants "*" verbs: cluster-admin always,
// others when this stage saw them written so.
func (t *detRoleTracker) wildcard(kind, ns, name string) bool {
	if kind == "ClusterRole" && name == "cluster-admin" {
		return true
	}
	if kind != "ClusterRole" && kind != "Role" {
		return false
	}
	t.mu.Lock()
	_, ok := t.set[detRoleKey(kind, ns, name)]
	t.mu.Unlock()
	return ok
}

// observe updates the set from successful role writes.
func (t *detRoleTracker) observe(ev *Event) {
	r := ev.ObjectRef
	if r == nil || r.Subresource != "" || r.APIGroup != "rbac.authorization.k8s.io" || (r.Resource != "roles" && r.Resource != "clusterroles") {
		return
	}
	code := detCode(ev)
	if code < 200 || code >= 300 || (ev.Stage != "ResponseComplete" && ev.Stage != "") {
		return
	}
	kind := "Role"
	if r.Resource == "clusterroles" {
		kind = "ClusterRole"
	}
	switch ev.Verb {
	case "delete":
		t.mu.Lock()
		delete(t.set, detRoleKey(kind, r.Namespace, r.Name))
		t.mu.Unlock()
		return
	case "create", "update", "patch":
	default:
		return
	}
	if !detHasRequest(ev) {
		return
	}
	body := detDecodeBody(ev.RequestObject.Raw)
	if body == nil {
		return
	}
	name := r.Name
	if name == "" { // create: the name is in the body
		if md, ok := body["metadata"].(map[string]any); ok {
			name, _ = md["name"].(string)
		}
	}
	if name == "" {
		return
	}
	rules, hasRules := body["rules"].([]any)
	if !hasRules && ev.Verb == "patch" {
		return // a patch that does not touch rules changes nothing
	}
	wild := false
	for _, x := range rules {
		pr, _ := x.(map[string]any)
		verbs, _ := pr["verbs"].([]any)
		for _, v := range verbs {
			if v == "*" {
				wild = true
			}
		}
	}
	k := detRoleKey(kind, r.Namespace, name)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !wild {
		delete(t.set, k)
		return
	}
	if _, ok := t.set[k]; ok {
		return
	}
	if old := t.order[t.pos]; old != "" {
		delete(t.set, old)
	}
	t.order[t.pos] = k
	t.pos = (t.pos + 1) % len(t.order)
	t.set[k] = struct{}{}
}
