// Package auditgen generates deterministic, realistic kube-apiserver audit
// logs for kaudit's tests and benchmarks.
//
// Every event is the real k8s.io/apiserver/pkg/apis/audit/v1.Event type,
// marshalled with encoding/json, so field names and shapes are exactly what
// kube-apiserver's log and webhook backends write (including "metadata":{} in
// responseStatus, MicroTime timestamps like 2025-06-02T16:00:00.123456Z and
// the HTML-escaped "\u0026" in requestURI query strings).
//
// The generator simulates an audit policy and the apiserver's handler chain:
//
//   - RequestReceived is written (before authorization, so without the
//     authorization annotations, impersonatedUser, request body or the name of
//     a created object) for human requests, secrets, tokens and long-running
//     requests; other rules omit that stage, as most real policies do. A
//     RequestReceived event and the later ResponseComplete/Panic event of the
//     same request share the auditID.
//   - Long-running requests (watch, and the exec/attach/portforward/log
//     subresources) also get a ResponseStarted event; exec/attach/portforward
//     record code 101 (the connection is hijacked).
//   - Failed authentication (401) is recorded by
//     filters.WithFailedAuthenticationAudit: one event only, stage
//     ResponseStarted, an empty user ("user":{}), no authorization
//     annotations and responseStatus {"metadata":{},"message":"Authentication
//     failed, attempted: bearer","code":401}.
//   - 429 from API Priority and Fairness is written with http.Error, so the
//     event only has {"metadata":{},"code":429}.
//   - Panic events carry the 500 status the audit filter sets on recover.
//
// Events are sorted by stageTimestamp (the order in which the apiserver writes
// them), so stageTimestamp is non-decreasing across a generated log while
// requestReceivedTimestamp of long watches lags behind.
package auditgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Fixed, greppable secret material. Tests can assert that none of these
// strings ever leaves kaudit when redaction is on.
const (
	// SecretValue is the plain value of the Secret key "password" (it appears
	// in stringData of Secret create requests).
	SecretValue = "kaudit-test-secret-value"
	// SecretValueBase64 is base64(SecretValue), as found in Secret "data".
	SecretValueBase64 = "a2F1ZGl0LXRlc3Qtc2VjcmV0LXZhbHVl"
	// TestToken is the bearer token returned in TokenRequest status.token and
	// sent in TokenReview spec.token. It looks like a JWT but is not signed.
	TestToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImthdWRpdC10ZXN0In0.eyJzdWIiOiJrYXVkaXQtdGVzdC10b2tlbiJ9.a2F1ZGl0LXRlc3QtdG9rZW4tc2lnbmF0dXJl"
)

// Profiles.
const (
	ProfileMix      = "mix"
	ProfileMetadata = "metadata"
	ProfileLarge    = "large"
)

// DefaultStart is used when Options.Start is zero. The mix profile spans 24h
// from Start; with this default, 00:00-05:00 UTC ("night") falls in the
// middle of the log.
var DefaultStart = time.Date(2025, 6, 2, 16, 0, 0, 0, time.UTC)

// Options controls generation. The zero value generates 2000 "mix" events
// with seed 0 starting at DefaultStart.
type Options struct {
	// Seed makes the output reproducible: the same Options give the same bytes.
	Seed int64
	// Events is the exact number of events (lines) generated; default 2000.
	Events int
	// Start is the time of the first request; default DefaultStart.
	Start time.Time
	// Profile is "mix" (default): a realistic mix over 24h including the
	// scripted security scenarios; "metadata": Metadata-level events only
	// (~1 KB each, background traffic only); "large": RequestResponse
	// ResponseComplete events of ~20 KB each.
	Profile string
}

func (o Options) normalized() Options {
	if o.Events <= 0 {
		o.Events = 2000
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	o.Start = o.Start.UTC().Truncate(time.Microsecond)
	if o.Profile == "" {
		o.Profile = ProfileMix
	}
	return o
}

// GenerateEvents returns o.Events audit events sorted by stageTimestamp.
// It panics on an unknown profile.
func GenerateEvents(o Options) []auditv1.Event {
	o = o.normalized()
	switch o.Profile {
	case ProfileMix, ProfileMetadata, ProfileLarge:
	default:
		panic(fmt.Sprintf("auditgen: unknown profile %q", o.Profile))
	}
	g := newGen(o)
	reqs := g.run()
	type item struct {
		ev  auditv1.Event
		seq int
	}
	var items []item
	for _, r := range reqs {
		for _, ev := range r.events() {
			items = append(items, item{ev, len(items)})
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		return items[i].ev.StageTimestamp.Time.Before(items[j].ev.StageTimestamp.Time)
	})
	out := make([]auditv1.Event, len(items))
	for i := range items {
		out[i] = items[i].ev
	}
	return out
}

// Generate returns the events of GenerateEvents marshalled with
// encoding/json, one JSON document per element, without trailing newline.
func Generate(o Options) [][]byte {
	evs := GenerateEvents(o)
	out := make([][]byte, len(evs))
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			panic(err)
		}
		out[i] = b
	}
	return out
}

// EventList wraps events into an audit.k8s.io/v1 EventList JSON body, as
// the apiserver's webhook backend POSTs it.
func EventList(events ...auditv1.Event) []byte {
	l := auditv1.EventList{
		TypeMeta: metav1.TypeMeta{Kind: "EventList", APIVersion: "audit.k8s.io/v1"},
		Items:    events,
	}
	if l.Items == nil {
		l.Items = []auditv1.Event{}
	}
	b, err := json.Marshal(&l)
	if err != nil {
		panic(err)
	}
	return b
}

// request is one API request; it expands into 1-3 audit events.
type request struct {
	at       time.Time
	latency  time.Duration
	verb     string
	uri      string
	user     authnv1.UserInfo
	imp      *authnv1.UserInfo
	ips      []string
	ua       string
	ref      *auditv1.ObjectReference
	level    auditv1.Level
	code     int32
	status   *metav1.Status // failure status; nil means {metadata:{},code}
	reqObj   []byte
	respObj  []byte
	ann      map[string]string
	received bool // emit RequestReceived
	started  bool // emit ResponseStarted (long-running)
	panicked bool // final stage is Panic
	authnErr bool // failed authentication (401)
	auditID  types.UID
}

func (r *request) eventCount() int {
	if r.authnErr {
		return 1
	}
	n := 1
	if r.received {
		n++
	}
	if r.started {
		n++
	}
	return n
}

func mt(t time.Time) metav1.MicroTime {
	return metav1.NewMicroTime(t.UTC().Truncate(time.Microsecond))
}

func unknown(b []byte) *runtime.Unknown {
	if b == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		panic(err)
	}
	return &runtime.Unknown{Raw: buf.Bytes(), ContentType: runtime.ContentTypeJSON}
}

func copyRef(r *auditv1.ObjectReference) *auditv1.ObjectReference {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

func (r *request) base() auditv1.Event {
	return auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:                    r.level,
		AuditID:                  r.auditID,
		RequestURI:               r.uri,
		Verb:                     r.verb,
		User:                     r.user,
		SourceIPs:                append([]string(nil), r.ips...),
		UserAgent:                r.ua,
		ObjectRef:                copyRef(r.ref),
		RequestReceivedTimestamp: mt(r.at),
	}
}

func (r *request) finalStatus() *metav1.Status {
	if r.status != nil {
		s := *r.status
		s.Code = r.code
		return &s
	}
	return &metav1.Status{Code: r.code}
}

func (r *request) events() []auditv1.Event {
	if r.authnErr {
		ev := r.base()
		ev.Stage = auditv1.StageResponseStarted
		ev.StageTimestamp = mt(r.at.Add(r.latency))
		ev.ResponseStatus = &metav1.Status{Message: "Authentication failed, attempted: bearer", Code: 401}
		return []auditv1.Event{ev}
	}
	var out []auditv1.Event
	if r.received {
		ev := r.base()
		ev.Stage = auditv1.StageRequestReceived
		ev.StageTimestamp = mt(r.at)
		if ev.ObjectRef != nil && r.verb == "create" && ev.ObjectRef.Subresource == "" {
			// the name of a created object comes from the body, which is
			// only decoded after this stage
			ev.ObjectRef.Name = ""
		}
		if ev.ObjectRef != nil {
			ev.ObjectRef.UID, ev.ObjectRef.ResourceVersion = "", ""
		}
		out = append(out, ev)
	}
	if r.started {
		ev := r.base()
		ev.Stage = auditv1.StageResponseStarted
		ev.ImpersonatedUser = r.imp
		d := r.latency / 100
		if d > 3*time.Millisecond {
			d = 3 * time.Millisecond
		}
		ev.StageTimestamp = mt(r.at.Add(d + 300*time.Microsecond))
		ev.ResponseStatus = &metav1.Status{Code: r.code}
		ev.Annotations = r.ann
		out = append(out, ev)
	}
	ev := r.base()
	ev.ImpersonatedUser = r.imp
	ev.StageTimestamp = mt(r.at.Add(r.latency))
	ev.Annotations = r.ann
	if r.panicked {
		ev.Stage = auditv1.StagePanic
		ev.ResponseStatus = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError,
			Message: "APIServer panic'd: runtime error: invalid memory address or nil pointer dereference", Code: 500}
	} else {
		ev.Stage = auditv1.StageResponseComplete
		ev.ResponseStatus = r.finalStatus()
	}
	if r.level == auditv1.LevelRequest || r.level == auditv1.LevelRequestResponse {
		ev.RequestObject = unknown(r.reqObj)
	}
	if r.level == auditv1.LevelRequestResponse && !r.panicked {
		if r.status != nil && r.code >= 300 {
			// a failed request's response body is the Status itself
			ev.ResponseObject = unknown(statusObj(ev.ResponseStatus))
		} else {
			ev.ResponseObject = unknown(r.respObj)
		}
	}
	out = append(out, ev)
	return out
}
