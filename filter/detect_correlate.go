package filter

import (
	"encoding/hex"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

const (
	// corrBuckets splits a correlation window: counts are kept per
	// window/corrBuckets slice, so a window is honoured to within one
	// bucket (10%).
	corrBuckets = 10
	// maxLegs bounds match + together_with conditions of one rule.
	maxLegs = 8
	// maxIDs is how many auditIDs a key remembers for alert summaries
	// (the most recent ones).
	maxIDs = 6

	bitEscalate = 1 << 30
	bitFollowed = 1 << 31
	legBits     = 1<<maxLegs - 1
)

// detAuditRef is an auditID kept compactly: a UUID in 16 bytes, anything
// else as a string.
type detAuditRef struct {
	u [16]byte
	s string
}

func makeDetAuditRef(id string) detAuditRef {
	if len(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-' {
		var r detAuditRef
		var hexb [32]byte
		n := 0
		for i := 0; i < 36; i++ {
			if id[i] != '-' {
				if n == 32 {
					return detAuditRef{s: strings.Clone(id)}
				}
				hexb[n] = id[i]
				n++
			}
		}
		if _, err := hex.Decode(r.u[:], hexb[:]); err == nil && n == 32 {
			// Only lower-case hex round-trips.
			if strings.ToLower(id) == id {
				return r
			}
		}
	}
	// A copy: the decoder's id shares its bytes with the event's other
	// high-cardinality strings, which correlation state must not keep.
	return detAuditRef{s: strings.Clone(id)}
}

func (r detAuditRef) String() string {
	if r.s != "" {
		return r.s
	}
	var b [36]byte
	hex.Encode(b[0:8], r.u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], r.u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], r.u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], r.u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], r.u[10:16])
	return string(b[:])
}

// corrEntry is the state of one (rule, group) key.
type corrEntry struct {
	key        string
	rule       *detRule
	prev, next *corrEntry // the rule's list, most recently updated first

	last    int64 // newest event time counted (unix ns)
	nums    [corrBuckets]int64
	counts  []uint32 // corrBuckets × (legs + 1); the last column is escalate
	ids     [maxIDs]detAuditRef
	nids    uint32
	armedAt int64 // followed_by: when the conditions were last met
	firedAt int64
	fired   uint8 // 0 not fired in this window, 1 fired, 2 fired escalated
}

// corrList is a rule's keys in update order.
type corrList struct{ head, tail *corrEntry }

func (l *corrList) remove(e *corrEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (l *corrList) pushFront(e *corrEntry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}

// corrTable holds every correlation key, capped at max keys; the caller
// holds detectStage.mu.
type corrTable struct {
	m     map[string]*corrEntry
	lists []corrList // by rule index
	max   int
	wm    int64 // watermark: newest event time seen (unix ns)

	evictions, expired, late uint64
}

func newCorrTable(nrules, max int) *corrTable {
	return &corrTable{m: make(map[string]*corrEntry), lists: make([]corrList, nrules), max: max}
}

// expireRule drops the keys of a rule whose window has passed.
func (t *corrTable) expireRule(r *detRule) {
	l := &t.lists[r.idx]
	horizon := t.wm - int64(r.corr.window) - r.corr.bucketNS
	for e := l.tail; e != nil && e.last < horizon; e = l.tail {
		l.remove(e)
		delete(t.m, e.key)
		t.expired++
	}
}

// evictOldest drops the least recently updated key of any rule.
func (t *corrTable) evictOldest() {
	var victim *corrEntry
	for i := range t.lists {
		if e := t.lists[i].tail; e != nil && (victim == nil || e.last < victim.last) {
			victim = e
		}
	}
	if victim == nil {
		return
	}
	t.lists[victim.rule.idx].remove(victim)
	delete(t.m, victim.key)
	t.evictions++
}

// corrFire is what an update decided.
type corrFire struct {
	severity string
	counts   []uint32 // per leg, then escalate
	start    int64    // start of the oldest bucket counted
	ids      []string
}

// update counts one event for a key. mask holds the matched legs
// (bits 0..maxLegs-1), bitEscalate and bitFollowed.
func (t *corrTable) update(r *detRule, key string, ts int64, mask uint32, id string) *corrFire {
	c := r.corr
	if ts > t.wm {
		t.wm = ts
	}
	win := int64(c.window)
	if ts < t.wm-win {
		t.late++
		return nil
	}
	t.expireRule(r)
	nl := len(c.legs)
	e := t.m[key]
	if e == nil {
		if mask&(legBits|bitEscalate) == 0 {
			return nil // followed_by alone does not start a key
		}
		for len(t.m) >= t.max {
			t.evictOldest()
		}
		e = &corrEntry{key: key, rule: r, counts: make([]uint32, corrBuckets*(nl+1))}
		t.m[key] = e
	} else {
		t.lists[r.idx].remove(e)
	}
	t.lists[r.idx].pushFront(e)

	follows := mask&bitFollowed != 0 && e.armedAt != 0 && ts >= e.armedAt && ts-e.armedAt <= win

	if mask&(legBits|bitEscalate) != 0 {
		bn := ts / c.bucketNS
		slot := int(bn % corrBuckets)
		if e.nums[slot] != bn && e.nums[slot] < bn {
			e.nums[slot] = bn
			clear(e.counts[slot*(nl+1) : (slot+1)*(nl+1)])
		}
		if e.nums[slot] == bn {
			row := e.counts[slot*(nl+1) : (slot+1)*(nl+1)]
			for l := 0; l < nl; l++ {
				if mask&(1<<l) != 0 {
					row[l]++
				}
			}
			if mask&bitEscalate != 0 {
				row[nl]++
			}
			if mask&legBits != 0 && id != "" {
				e.ids[e.nids%maxIDs] = makeDetAuditRef(id)
				e.nids++
			}
		}
	}
	if ts > e.last {
		e.last = ts
	}

	// Sum the buckets inside the window.
	ref := t.wm / c.bucketNS
	var sums [maxLegs + 1]uint32
	start := int64(0)
	for s := 0; s < corrBuckets; s++ {
		n := e.nums[s]
		if n <= ref-corrBuckets || n > ref {
			continue
		}
		row := e.counts[s*(nl+1) : (s+1)*(nl+1)]
		any := false
		for l := 0; l <= nl; l++ {
			sums[l] += row[l]
			any = any || row[l] > 0
		}
		if any && (start == 0 || n*c.bucketNS < start) {
			start = n * c.bucketNS
		}
	}
	met := true
	for l := 0; l < nl; l++ {
		if sums[l] < c.thresholds[l] {
			met = false
			break
		}
	}
	escalated := c.escalate != nil && sums[nl] > 0
	if e.fired != 0 && ts-e.firedAt >= win {
		e.fired = 0
	}
	sev := ""
	switch {
	case c.followed != nil:
		if follows && e.fired == 0 {
			sev = r.severity
		}
		if met {
			e.armedAt = ts
		}
	case met && e.fired == 0:
		sev = r.severity
		if escalated {
			sev = c.escSeverity
		}
	case met && e.fired == 1 && escalated:
		sev = c.escSeverity
	}
	if sev == "" {
		return nil
	}
	e.firedAt = ts
	e.fired = 1
	if escalated && sev == c.escSeverity {
		e.fired = 2
	}
	f := &corrFire{severity: sev, counts: append([]uint32(nil), sums[:nl+1]...), start: start}
	n := e.nids
	k := uint32(maxIDs)
	if n < k {
		k = n
	}
	for i := n - k; i < n; i++ {
		f.ids = append(f.ids, e.ids[i%maxIDs].String())
	}
	return f
}

// detRecentSet remembers the ids (hashed) of the last events counted, so a
// chunk re-sent by Fluent Bit is not counted twice.
type detRecentSet struct {
	m    map[uint64]struct{}
	ring []uint64
	pos  int
	full bool
}

func newDetRecentSet(n int) *detRecentSet {
	return &detRecentSet{m: make(map[uint64]struct{}, n), ring: make([]uint64, n)}
}

func (s *detRecentSet) has(h uint64) bool { _, ok := s.m[h]; return ok }

func (s *detRecentSet) add(h uint64) {
	if s.full {
		delete(s.m, s.ring[s.pos])
	}
	s.ring[s.pos] = h
	s.m[h] = struct{}{}
	s.pos++
	if s.pos == len(s.ring) {
		s.pos, s.full = 0, true
	}
}

// detFiredRec is what a correlation attached to an event, kept so a re-sent
// event carries the same alerts and re-emits the same records.
type detFiredRec struct {
	alerts  []Alert
	records []*Event
}

type detFiredSet struct {
	m    map[uint64]*detFiredRec
	ring []uint64
	pos  int
}

func newDetFiredSet(n int) *detFiredSet {
	return &detFiredSet{m: make(map[uint64]*detFiredRec, n), ring: make([]uint64, n)}
}

func (s *detFiredSet) add(h uint64, f *detFiredRec) {
	if old := s.ring[s.pos]; old != 0 {
		delete(s.m, old)
	}
	s.ring[s.pos] = h
	s.m[h] = f
	s.pos = (s.pos + 1) % len(s.ring)
}

// groupKey computes the group value of a correlation rule for an event;
// "" means the event has none and is not counted.
func (st *detectStage) groupKey(r *detRule, ctx *detCtx) string {
	c := r.corr
	if c.groupVar != "" {
		return ctx.groupValue(c.groupVar)
	}
	var parts []string
	for _, p := range c.groupProgs {
		out, _, err := p.Eval(ctx)
		if err != nil {
			st.stats.evalErrors.Add(1)
			return ""
		}
		s, _ := out.Value().(string)
		if s == "" {
			return ""
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "|")
}

// correlate updates the windows of the correlation rules an event
// matched and attaches what fires.
func (st *detectStage) correlate(ev *Event, ctx *detCtx, hits []detCorrHit) {
	type keyed struct {
		hit detCorrHit
		key string
	}
	var buf [8]keyed
	ks := buf[:0]
	for _, h := range hits {
		if k := st.groupKey(h.rule, ctx); k != "" {
			ks = append(ks, keyed{h, k})
		}
	}
	if len(ks) == 0 {
		return
	}
	id := ev.ID()
	var hid uint64
	if id != "" {
		hid = detHashID(id)
	}
	ts := ev.Timestamp()
	if ts.IsZero() {
		ts = st.now()
	}
	tns := ts.UnixNano()

	st.mu.Lock()
	defer st.mu.Unlock()
	if id != "" {
		if st.recent.has(hid) {
			st.stats.duplicates.Add(1)
			if f := st.fired.m[hid]; f != nil {
				ev.Kaudit.Alerts = append(ev.Kaudit.Alerts, f.alerts...)
				for _, x := range f.records {
					ev.Emit(x)
				}
			}
			return
		}
		st.recent.add(hid)
	}
	var rec *detFiredRec
	for _, k := range ks {
		tableKey := k.hit.rule.name + "\x00" + k.key
		f := st.table.update(k.hit.rule, tableKey, tns, k.hit.mask, string(ev.AuditID))
		if f == nil {
			continue
		}
		st.stats.fired.Add(1)
		r := k.hit.rule
		a := Alert{
			Rule:        r.name,
			Severity:    f.severity,
			Description: corrDescription(r, k.key, f),
			Techniques:  r.techniques,
		}
		ev.Kaudit.Alerts = append(ev.Kaudit.Alerts, a)
		if rec == nil {
			rec = &detFiredRec{}
		}
		rec.alerts = append(rec.alerts, a)
		if st.emit {
			x := st.alertRecord(ev, r, k.key, a, f, ts)
			rec.records = append(rec.records, x)
			ev.Emit(x)
		}
	}
	if rec != nil && id != "" {
		st.fired.add(hid, rec)
	}
}

func corrDescription(r *detRule, group string, f *corrFire) string {
	var b strings.Builder
	if r.description != "" {
		b.WriteString(r.description)
		b.WriteByte(' ')
	} else {
		b.WriteString(r.name)
		b.WriteByte(' ')
	}
	b.WriteByte('[')
	b.WriteString(r.corr.groupBy)
	b.WriteByte('=')
	b.WriteString(group)
	b.WriteString(": ")
	b.WriteString(corrCounts(r, f))
	b.WriteString(" within ")
	b.WriteString(r.corr.window.String())
	b.WriteByte(']')
	return b.String()
}

func corrCounts(r *detRule, f *corrFire) string {
	c := r.corr
	var parts []string
	for i, n := range c.legNames {
		parts = append(parts, n+"="+strconv.FormatUint(uint64(f.counts[i]), 10))
	}
	if c.escalate != nil {
		parts = append(parts, "escalate="+strconv.FormatUint(uint64(f.counts[len(c.legs)]), 10))
	}
	return strings.Join(parts, ",")
}

// Annotation keys of a synthetic alert record's summary.
const (
	AlertAnnoRule      = "kaudit.k8s.io/rule"
	AlertAnnoGroupBy   = "kaudit.k8s.io/group-by"
	AlertAnnoGroup     = "kaudit.k8s.io/group"
	AlertAnnoWindow    = "kaudit.k8s.io/window"
	AlertAnnoStart     = "kaudit.k8s.io/window-start"
	AlertAnnoCounts    = "kaudit.k8s.io/counts"
	AlertAnnoThreshold = "kaudit.k8s.io/threshold"
	AlertAnnoAuditIDs  = "kaudit.k8s.io/audit-ids"
	AlertAnnoTrigger   = "kaudit.k8s.io/trigger"
	AlertKind          = "kaudit.k8s.io/Alert"
)

// alertRecord builds the synthetic record of a correlation alert. Until
// Meta has a field for it, the summary travels as annotations.
func (st *detectStage) alertRecord(ev *Event, r *detRule, group string, a Alert, f *corrFire, ts time.Time) *Event {
	c := r.corr
	trigger := ev.ID()
	h := fnv.New128a()
	h.Write([]byte(r.name))
	h.Write([]byte{0})
	h.Write([]byte(group))
	h.Write([]byte{0})
	h.Write([]byte(trigger))
	h.Write([]byte{0})
	h.Write([]byte(a.Severity))
	var sum [16]byte
	id := detAuditRef{u: [16]byte(h.Sum(sum[:0]))}.String()

	var th []string
	for _, t := range c.thresholds {
		th = append(th, strconv.FormatUint(uint64(t), 10))
	}
	x := &Event{
		Event: auditv1.Event{
			TypeMeta:                 metav1.TypeMeta{Kind: "Alert", APIVersion: "kaudit.k8s.io/v1"},
			AuditID:                  k8stypes.UID(id),
			Stage:                    ev.Stage,
			RequestReceivedTimestamp: metav1.NewMicroTime(ts),
			StageTimestamp:           metav1.NewMicroTime(ts),
			Annotations: map[string]string{
				AlertAnnoRule:      r.name,
				AlertAnnoGroupBy:   c.groupBy,
				AlertAnnoGroup:     group,
				AlertAnnoWindow:    c.window.String(),
				AlertAnnoStart:     time.Unix(0, f.start).UTC().Format(time.RFC3339Nano),
				AlertAnnoCounts:    corrCounts(r, f),
				AlertAnnoThreshold: strings.Join(th, ","),
				AlertAnnoAuditIDs:  strings.Join(f.ids, ","),
				AlertAnnoTrigger:   trigger,
			},
		},
		Tag:        ev.Tag,
		RecordTime: ev.RecordTime,
	}
	x.Kaudit.Kind = AlertKind
	x.Kaudit.Cluster, x.Kaudit.Node = ev.Kaudit.Cluster, ev.Kaudit.Node
	if x.Kaudit.Cluster == "" {
		x.Kaudit.Cluster = st.cluster
	}
	if x.Kaudit.Node == "" {
		x.Kaudit.Node = st.node
	}
	x.Kaudit.Alerts = []Alert{a}
	// The grouped dimension, where it is a known one.
	switch c.groupVar {
	case "user":
		x.User.Username = group
	case "actor":
		x.Kaudit.Actor = ev.Kaudit.Actor
		x.Kaudit.Actor.Name = group
	case "source_ip":
		x.SourceIPs = []string{group}
		x.Kaudit.Source = ev.Kaudit.Source
		x.Kaudit.Source.IP = group
	}
	return x
}

// detHashID is FNV-1a of an event id (never 0).
func detHashID(id string) uint64 {
	v := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		v ^= uint64(id[i])
		v *= 1099511628211
	}
	if v == 0 {
		v = 1
	}
	return v
}
