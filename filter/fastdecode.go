package filter

import (
	"bytes"
	"hash/maphash"
	"strings"
	"time"
	"unicode/utf8"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// The fast decoder reads the common shape of an audit Event straight into
// an Event without reflection, and declines (returns false) on anything it
// is not sure to decode exactly as auditJSON would: an unknown or
// differently-cased key, a duplicate key, null where a value is expected,
// an EventList, a string escape it does not mirror, a control character,
// a timestamp ParseTime rejects, trailing bytes. A declined record is
// decoded from scratch by DecodeAudit, so the result (event or error) is
// always the reflective decoder's; the fast path only decides how fast.
//
// Sub-values it does not walk itself (bodies, responseStatus other than
// the common {"metadata":{},"code":N}, authenticationMetadata,
// impersonatedUser, user.extra, annotations, string lists) are delimited
// and handed to auditJSON.Unmarshal, which validates them.
//
// Allocation per event: one eventAlloc (Event, its ObjectReference and its
// Status), one string holding every high-cardinality string of the event
// (auditID, the document id, requestURI, uids, names, resourceVersion), and
// what bodies need. Low-cardinality values (verbs, stages, user names,
// resources, namespaces, user agents, group and source IP lists, user
// extra and annotation maps, failure statuses) are interned: equal raw JSON
// yields the same string, slice or map, shared between events (lists, maps
// and statuses from their second occurrence on). Shared slices and maps are
// read-only for every stage; TestInternedValuesNotMutated runs the whole
// pipeline and checks they are unchanged.

// eventAlloc puts an event and the sub-objects almost every event has in
// one allocation.
type eventAlloc struct {
	ev     Event
	ref    auditv1.ObjectReference
	status metav1.Status
}

// eventSlab is how many eventAllocs are allocated at once. Each is handed
// out once and never reused, so sharing an allocation is only a matter of
// memory: a pointer into one event kept past its flush keeps its slab
// alive. Nothing keeps one (the sinks drop their items when Deliver
// returns; correlation state and alert records hold strings, which are
// separate allocations, never *Event, ObjectRef or ResponseStatus
// pointers), and a slab is ~20 KB.
const eventSlab = 16

// nextEventAlloc returns the slab's next eventAlloc, zero; it is handed
// out only by taken.
func (d *fastDecoder) nextEventAlloc() *eventAlloc {
	if len(d.slab) == 0 {
		d.slab = make([]eventAlloc, eventSlab)
	}
	return &d.slab[0]
}

func (d *fastDecoder) taken() { d.slab = d.slab[1:] }

// Interning bounds: a value longer than this is not interned; a table
// holding more entries or key bytes than this is cleared.
const (
	internMaxStr     = 256
	internMaxRaw     = 2048
	internMaxEntries = 4096
	internMaxBytes   = 1 << 20
	// internDoorkeeper slots remember hashes of lists, maps and statuses
	// seen once: only a value seen twice is interned, so the many unique
	// annotation maps (latency annotations) and extras (credential ids)
	// do not fill the table and push out the values that do repeat.
	internDoorkeeper = 4096
)

// internTable maps the raw JSON text of a value (string contents without
// the quotes, or a whole array or object) to its decoded value.
type internTable struct {
	strs    map[string]string
	lists   map[string][]string
	smaps   map[string]map[string]string
	extras  map[string]map[string]authnv1.ExtraValue
	status  map[string]*metav1.Status
	entries int
	bytes   int

	seed maphash.Seed
	seen [internDoorkeeper]uint64
}

// admit reports whether a composite value with this raw text was seen
// before (and so is worth interning), remembering it otherwise.
func (t *internTable) admit(raw []byte) bool {
	if len(raw) > internMaxRaw {
		return false
	}
	h := maphash.Bytes(t.seed, raw) | 1 // never 0, the empty slot
	slot := &t.seen[h%internDoorkeeper]
	if *slot == h {
		return true
	}
	*slot = h
	return false
}

func newInternTable() *internTable {
	return &internTable{
		strs:   make(map[string]string, 256),
		lists:  make(map[string][]string, 64),
		smaps:  make(map[string]map[string]string, 64),
		extras: make(map[string]map[string]authnv1.ExtraValue, 64),
		status: make(map[string]*metav1.Status, 64),
		seed:   maphash.MakeSeed(),
	}
}

// room makes room for one entry of n key bytes, clearing the table when
// it is full (values already handed out stay valid: they are never
// changed).
func (t *internTable) room(n int) {
	if t.entries >= internMaxEntries || t.bytes+n > internMaxBytes {
		clear(t.strs)
		clear(t.lists)
		clear(t.smaps)
		clear(t.extras)
		clear(t.status)
		t.entries, t.bytes = 0, 0
	}
	t.entries++
	t.bytes += n
}

// fastStates are decoder states (each with its intern table) kept across
// flushes and garbage collections; concurrent flushes take different ones.
var fastStates = make(chan *fastDecoder, 8)

func getFastDecoder() *fastDecoder {
	select {
	case d := <-fastStates:
		return d
	default:
		return &fastDecoder{in: newInternTable()}
	}
}

func putFastDecoder(d *fastDecoder) {
	d.b, d.ea, d.ev = nil, nil, nil
	select {
	case fastStates <- d:
	default:
	}
}

// Unique string fields, assembled into one string per event.
const (
	uAuditID = iota
	uRequestURI
	uRefName
	uRefUID
	uRefRV
	uCount
)

type uniqueRef struct {
	set      bool
	escaped  bool // bytes are in tmp[start:end], else in b[start:end]
	start    int
	end      int
	fieldIdx int
}

type fastDecoder struct {
	in  *internTable
	b   []byte
	i   int
	ea  *eventAlloc
	ev  *Event
	tmp []byte // unescaped strings
	uq  [uCount]uniqueRef
	// slab holds the eventAllocs not handed out yet.
	slab []eventAlloc
	// seen bits of top-level, user and objectRef keys, for duplicates.
	seen uint64
}

// Bits of seen.
const (
	kKind = 1 << iota
	kAPIVersion
	kLevel
	kAuditID
	kStage
	kRequestURI
	kVerb
	kUser
	kImpUser
	kAuthMeta
	kSourceIPs
	kUserAgent
	kObjectRef
	kRespStatus
	kReqObj
	kRespObj
	kRRT
	kST
	kAnnotations
	kUUsername
	kUUID
	kUGroups
	kUExtra
	kRResource
	kRNamespace
	kRName
	kRUID
	kRAPIGroup
	kRAPIVersion
	kRRV
	kRSub
)

// decodeFast decodes one trimmed audit JSON document holding a single
// Event; false means "use DecodeAudit".
func (d *fastDecoder) decode(data []byte, tag string, ts time.Time) (*Event, bool) {
	d.b, d.i, d.seen, d.tmp = data, 0, 0, d.tmp[:0]
	d.uq = [uCount]uniqueRef{}
	d.ea = d.nextEventAlloc()
	d.ev = &d.ea.ev
	ok := d.object(d.topField) && d.end()
	if ok {
		d.assembleUnique()
		ok = d.ev.Kind != "EventList" && checkEvent(&d.ev.Event) == nil
	}
	if !ok {
		*d.ea = eventAlloc{} // not handed out: zero again for the next record
		return nil, false
	}
	d.taken()
	ev := d.ev
	ev.Tag, ev.RecordTime = tag, ts
	return ev, true
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\n', '\t', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *fastDecoder) end() bool { return d.peek() == 0 && d.i == len(d.b) }

// object walks {"key": value, ...}, calling field for each key with the
// position at the value; field returns false to decline.
func (d *fastDecoder) object(field func(key []byte) bool) bool {
	if d.peek() != '{' {
		return false
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		return true
	}
	for {
		if d.peek() != '"' {
			return false
		}
		key, esc, ok := d.str()
		if !ok || esc {
			return false
		}
		if d.peek() != ':' {
			return false
		}
		d.i++
		if d.peek() == 0 || !field(key) {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// once records a key and reports whether it was new.
func (d *fastDecoder) once(bit uint64) bool {
	if d.seen&bit != 0 {
		return false
	}
	d.seen |= bit
	return true
}

func (d *fastDecoder) topField(key []byte) bool {
	ev := d.ev
	switch string(key) {
	case "kind":
		return d.once(kKind) && d.internStr(&ev.Kind)
	case "apiVersion":
		return d.once(kAPIVersion) && d.internStr(&ev.APIVersion)
	case "level":
		var s string
		ok := d.once(kLevel) && d.internStr(&s)
		ev.Level = auditv1.Level(s)
		return ok
	case "auditID":
		return d.once(kAuditID) && d.unique(uAuditID)
	case "stage":
		var s string
		ok := d.once(kStage) && d.internStr(&s)
		ev.Stage = auditv1.Stage(s)
		return ok
	case "requestURI":
		return d.once(kRequestURI) && d.unique(uRequestURI)
	case "verb":
		return d.once(kVerb) && d.internStr(&ev.Verb)
	case "user":
		return d.once(kUser) && d.object(d.userField)
	case "impersonatedUser":
		return d.once(kImpUser) && d.unmarshal(&ev.ImpersonatedUser)
	case "authenticationMetadata":
		return d.once(kAuthMeta) && d.unmarshal(&ev.AuthenticationMetadata)
	case "sourceIPs":
		return d.once(kSourceIPs) && d.internList(&ev.SourceIPs)
	case "userAgent":
		return d.once(kUserAgent) && d.internStr(&ev.UserAgent)
	case "objectRef":
		if !d.once(kObjectRef) || d.peek() != '{' {
			return false
		}
		ev.ObjectRef = &d.ea.ref
		return d.object(d.refField)
	case "responseStatus":
		return d.once(kRespStatus) && d.status()
	case "requestObject":
		return d.once(kReqObj) && d.unknown(&ev.RequestObject)
	case "responseObject":
		return d.once(kRespObj) && d.unknown(&ev.ResponseObject)
	case "requestReceivedTimestamp":
		return d.once(kRRT) && d.time(&ev.RequestReceivedTimestamp)
	case "stageTimestamp":
		return d.once(kST) && d.time(&ev.StageTimestamp)
	case "annotations":
		return d.once(kAnnotations) && d.internMap(&ev.Annotations)
	}
	return false
}

func (d *fastDecoder) userField(key []byte) bool {
	u := &d.ev.User
	switch string(key) {
	case "username":
		return d.once(kUUsername) && d.internStr(&u.Username)
	case "uid":
		return d.once(kUUID) && d.internStr(&u.UID)
	case "groups":
		return d.once(kUGroups) && d.internList(&u.Groups)
	case "extra":
		return d.once(kUExtra) && d.internExtra(&u.Extra)
	}
	return false
}

func (d *fastDecoder) refField(key []byte) bool {
	r := &d.ea.ref
	switch string(key) {
	case "resource":
		return d.once(kRResource) && d.internStr(&r.Resource)
	case "namespace":
		return d.once(kRNamespace) && d.internStr(&r.Namespace)
	case "name":
		return d.once(kRName) && d.unique(uRefName)
	case "uid":
		return d.once(kRUID) && d.unique(uRefUID)
	case "apiGroup":
		return d.once(kRAPIGroup) && d.internStr(&r.APIGroup)
	case "apiVersion":
		return d.once(kRAPIVersion) && d.internStr(&r.APIVersion)
	case "resourceVersion":
		return d.once(kRRV) && d.unique(uRefRV)
	case "subresource":
		return d.once(kRSub) && d.internStr(&r.Subresource)
	}
	return false
}

// str reads a JSON string at d.i ('"'). Without escapes it returns the
// bytes inside the quotes (a slice of the input); with escapes it returns
// them decoded, appended to d.tmp (esc true). ok is false for what the
// fast path does not mirror of jsoniter's string reading: control
// characters, \u escapes of surrogates, invalid escapes, no closing quote.
func (d *fastDecoder) str() (s []byte, esc bool, ok bool) {
	b := d.b
	start := d.i + 1
	i := start
	for i < len(b) {
		for i+8 <= len(b) && plain8b(b[i:i+8]) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		if c == '"' {
			d.i = i + 1
			return b[start:i], false, true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, false, false
		}
		i++
	}
	if i >= len(b) {
		return nil, false, false
	}
	t0 := len(d.tmp)
	out := append(d.tmp, b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			d.tmp = out
			d.i = i + 1
			return out[t0:], true, true
		case c < 0x20:
			return nil, false, false
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			return nil, false, false
		}
		switch b[i+1] {
		case '"', '\\', '/':
			out = append(out, b[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(b) {
				return nil, false, false
			}
			r, ok := hex4(b[i+2 : i+6])
			if !ok || r >= 0xD800 && r <= 0xDFFF {
				return nil, false, false
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			return nil, false, false
		}
		i += 2
	}
	return nil, false, false
}

// internStr reads a string value into *dst, interned.
func (d *fastDecoder) internStr(dst *string) bool {
	if d.peek() != '"' {
		return false
	}
	rawStart := d.i + 1
	s, esc, ok := d.str()
	if !ok {
		return false
	}
	raw := d.b[rawStart : d.i-1]
	if len(raw) > internMaxStr {
		*dst = string(s)
		return true
	}
	if v, hit := d.in.strs[string(raw)]; hit {
		*dst = v
		return true
	}
	v := string(s)
	k := v
	if esc {
		k = string(raw)
	}
	d.in.room(len(k))
	d.in.strs[k] = v
	*dst = v
	return true
}

// unique reads a string value that goes into the event's own string.
func (d *fastDecoder) unique(field int) bool {
	if d.peek() != '"' {
		return false
	}
	s, esc, ok := d.str()
	if !ok {
		return false
	}
	u := &d.uq[field]
	u.set, u.escaped = true, esc
	if esc {
		u.end = len(d.tmp)
		u.start = u.end - len(s)
	} else {
		u.end = d.i - 1
		u.start = u.end - len(s)
	}
	return true
}

func (d *fastDecoder) uniqueBytes(u *uniqueRef) []byte {
	if u.escaped {
		return d.tmp[u.start:u.end]
	}
	return d.b[u.start:u.end]
}

// assembleUnique builds the event's one string of high-cardinality
// values and points the fields into it. The document id
// (auditID + "-" + stage) is placed right after auditID so that both
// share bytes.
func (d *fastDecoder) assembleUnique() {
	ev := d.ev
	n := 0
	for i := range d.uq {
		if d.uq[i].set {
			n += d.uq[i].end - d.uq[i].start
		}
	}
	withID := d.uq[uAuditID].set && d.uq[uAuditID].end > d.uq[uAuditID].start
	if withID {
		n += 1 + len(ev.Stage)
	}
	if n == 0 {
		return
	}
	var sb strings.Builder
	sb.Grow(n)
	var off [uCount][2]int
	for i := range d.uq {
		u := &d.uq[i]
		if !u.set {
			continue
		}
		off[i][0] = sb.Len()
		sb.Write(d.uniqueBytes(u))
		off[i][1] = sb.Len()
		if i == uAuditID && withID {
			sb.WriteByte('-')
			sb.WriteString(string(ev.Stage))
		}
	}
	all := sb.String()
	get := func(i int) string { return all[off[i][0]:off[i][1]] }
	if d.uq[uAuditID].set {
		ev.AuditID = types.UID(get(uAuditID))
		if withID {
			ev.id = all[off[uAuditID][0] : off[uAuditID][1]+1+len(ev.Stage)]
		}
	}
	if d.uq[uRequestURI].set {
		ev.RequestURI = get(uRequestURI)
	}
	if d.uq[uRefName].set {
		d.ea.ref.Name = get(uRefName)
	}
	if d.uq[uRefUID].set {
		d.ea.ref.UID = types.UID(get(uRefUID))
	}
	if d.uq[uRefRV].set {
		d.ea.ref.ResourceVersion = get(uRefRV)
	}
}

// skip moves past one JSON object, array or string and returns its
// bytes. It only needs to delimit valid JSON correctly: what it returns is
// validated by auditJSON.Unmarshal, and the caller checks what follows.
// Deep nesting is declined, so that depth limits are jsoniter's alone.
func (d *fastDecoder) skip() ([]byte, bool) {
	b := d.b
	start := d.i
	if start >= len(b) || b[start] != '{' && b[start] != '[' && b[start] != '"' {
		return nil, false
	}
	depth := 0
	for i := start; i < len(b); {
		switch b[i] {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return nil, false
			}
		case '{', '[':
			depth++
			if depth > 1000 {
				return nil, false
			}
		case '}', ']':
			depth--
		}
		i++
		if depth <= 0 {
			if depth < 0 {
				return nil, false
			}
			d.i = i
			return b[start:i], true
		}
	}
	return nil, false
}

// unmarshal decodes the next value into v with auditJSON, declining null
// (the reflective decoder's handling of null is left to it).
func (d *fastDecoder) unmarshal(v any) bool {
	if d.peek() == 'n' {
		return false
	}
	raw, ok := d.skip()
	return ok && auditJSON.Unmarshal(raw, v) == nil
}

func (d *fastDecoder) unknown(dst **runtime.Unknown) bool { return d.unmarshal(dst) }

var statusOK = []byte(`{"metadata":{},"code":`)

// status reads responseStatus: the common {"metadata":{},"code":N} into
// the event's own Status, anything else with auditJSON, shared between
// events with the same raw text (failures repeat: NotFound, Forbidden).
func (d *fastDecoder) status() bool {
	if d.peek() != '{' {
		return false
	}
	rest := d.b[d.i:]
	if bytes.HasPrefix(rest, statusOK) {
		j := len(statusOK)
		code := int32(0)
		k := j
		for k < len(rest) && k-j < 4 && rest[k] >= '0' && rest[k] <= '9' {
			code = code*10 + int32(rest[k]-'0')
			k++
		}
		if k > j && k < len(rest) && rest[k] == '}' && (rest[j] != '0' || k == j+1) {
			d.ea.status.Code = code
			d.ev.ResponseStatus = &d.ea.status
			d.i += k + 1
			return true
		}
	}
	raw, ok := d.skip()
	if !ok {
		return false
	}
	if v, hit := d.in.status[string(raw)]; hit {
		d.ev.ResponseStatus = v
		return true
	}
	var v *metav1.Status
	if auditJSON.Unmarshal(raw, &v) != nil {
		return false
	}
	if d.in.admit(raw) {
		d.in.room(len(raw))
		d.in.status[string(raw)] = v
	}
	d.ev.ResponseStatus = v
	return true
}

func (d *fastDecoder) time(dst *metav1.MicroTime) bool {
	if d.peek() != '"' {
		return false
	}
	s, esc, ok := d.str()
	if !ok || esc {
		return false
	}
	t, err := ParseTime(s)
	if err != nil {
		return false
	}
	dst.Time = t
	return true
}

// internList reads an array of strings, shared between events with the
// same raw text.
func (d *fastDecoder) internList(dst *[]string) bool {
	if d.peek() != '[' {
		return false
	}
	raw, ok := d.skip()
	if !ok {
		return false
	}
	if v, hit := d.in.lists[string(raw)]; hit {
		*dst = v
		return true
	}
	var v []string
	if auditJSON.Unmarshal(raw, &v) != nil {
		return false
	}
	v = v[:len(v):len(v)] // an append never writes into the shared array
	if d.in.admit(raw) {
		d.in.room(len(raw))
		d.in.lists[string(raw)] = v
	}
	*dst = v
	return true
}

// internMap reads a string map (annotations), shared between events with
// the same raw text.
func (d *fastDecoder) internMap(dst *map[string]string) bool {
	if d.peek() != '{' {
		return false
	}
	raw, ok := d.skip()
	if !ok {
		return false
	}
	if v, hit := d.in.smaps[string(raw)]; hit {
		*dst = v
		return true
	}
	var v map[string]string
	if auditJSON.Unmarshal(raw, &v) != nil {
		return false
	}
	if d.in.admit(raw) {
		d.in.room(len(raw))
		d.in.smaps[string(raw)] = v
	}
	*dst = v
	return true
}

// internExtra reads user.extra, shared between events with the same raw
// text.
func (d *fastDecoder) internExtra(dst *map[string]authnv1.ExtraValue) bool {
	if d.peek() != '{' {
		return false
	}
	raw, ok := d.skip()
	if !ok {
		return false
	}
	if v, hit := d.in.extras[string(raw)]; hit {
		*dst = v
		return true
	}
	var v map[string]authnv1.ExtraValue
	if auditJSON.Unmarshal(raw, &v) != nil {
		return false
	}
	for k, x := range v {
		v[k] = x[:len(x):len(x)]
	}
	if d.in.admit(raw) {
		d.in.room(len(raw))
		d.in.extras[string(raw)] = v
	}
	*dst = v
	return true
}
