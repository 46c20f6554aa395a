package filter

import (
	"slices"
	"strconv"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Document is what a sink ships for one event or synthetic record: the
// exact bytes, with what the sinks need to place them.
type Document struct {
	// ID is the stable id (auditID and stage); empty when unknown.
	ID string
	// Time is the document's @timestamp.
	Time time.Time
	// StageTime is the event's stageTimestamp (zero for synthetic records).
	StageTime time.Time
	// Body is the document, compact JSON. The same event always encodes
	// to the same bytes, so re-sends are recognised as duplicates.
	Body []byte
	// Event is the audit event the body was encoded from; nil for
	// synthetic records.
	Event *Event
	// Kind is empty for audit events, otherwise the synthetic record's
	// kind (kaudit.k8s.io/Alert, kaudit.k8s.io/Manifest).
	Kind string
}

// NewDocument encodes ev into a document, appending to buf.
func NewDocument(ev *Event, buf []byte) Document {
	return Document{
		ID:        ev.ID(),
		Time:      ev.Timestamp(),
		StageTime: ev.StageTimestamp.Time,
		Body:      AppendEvent(buf, ev),
		Event:     ev,
	}
}

// AppendEvent appends the shipped JSON of ev: the audit.k8s.io/v1 Event
// fields in the apiserver's order, then "@timestamp" and "kaudit".
func AppendEvent(b []byte, ev *Event) []byte {
	o := openObject(b)
	o.str("kind", orDefault(ev.Kind, "Event"))
	o.str("apiVersion", orDefault(ev.APIVersion, "audit.k8s.io/v1"))
	o.str("level", string(ev.Level))
	o.str("auditID", string(ev.AuditID))
	o.str("stage", string(ev.Stage))
	o.str("requestURI", ev.RequestURI)
	o.str("verb", ev.Verb)
	o.key("user")
	o.b = appendUser(o.b, &ev.User)
	if ev.ImpersonatedUser != nil {
		o.key("impersonatedUser")
		o.b = appendUser(o.b, ev.ImpersonatedUser)
	}
	if ev.AuthenticationMetadata != nil {
		o.key("authenticationMetadata")
		o.b = appendMarshal(o.b, ev.AuthenticationMetadata)
	}
	if len(ev.SourceIPs) > 0 {
		o.strings("sourceIPs", ev.SourceIPs)
	}
	o.strOpt("userAgent", ev.UserAgent)
	if r := ev.ObjectRef; r != nil {
		o.key("objectRef")
		o.b = appendObjectRef(o.b, r)
	}
	if ev.ResponseStatus != nil {
		o.key("responseStatus")
		o.b = appendStatus(o.b, ev.ResponseStatus)
	}
	if ev.RequestObject != nil && len(ev.RequestObject.Raw) > 0 {
		o.raw("requestObject", ev.RequestObject.Raw)
	}
	if ev.ResponseObject != nil && len(ev.ResponseObject.Raw) > 0 {
		o.raw("responseObject", ev.ResponseObject.Raw)
	}
	o.key("requestReceivedTimestamp")
	o.b = appendTime(o.b, ev.RequestReceivedTimestamp.Time)
	o.key("stageTimestamp")
	o.b = appendTime(o.b, ev.StageTimestamp.Time)
	if len(ev.Annotations) > 0 {
		o.key("annotations")
		o.b = AppendStringMap(o.b, ev.Annotations)
	}
	o.key("@timestamp")
	o.b = appendTime(o.b, ev.Timestamp())
	o.key("kaudit")
	o.b = AppendMeta(o.b, &ev.Kaudit)
	return o.close()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = AppendMicroTime(b, t)
	return append(b, '"')
}

func appendMarshal(b []byte, v any) []byte {
	out, err := auditJSON.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, out...)
}

// appendStatus appends a Status as auditJSON.Marshal does; the common
// status with only a code (what the apiserver records for every success)
// without reflection.
func appendStatus(b []byte, st *metav1.Status) []byte {
	if st.TypeMeta == (metav1.TypeMeta{}) && st.ListMeta == (metav1.ListMeta{}) &&
		st.Status == "" && st.Message == "" && st.Reason == "" && st.Details == nil && st.Code != 0 {
		b = append(b, `{"metadata":{},"code":`...)
		b = strconv.AppendInt(b, int64(st.Code), 10)
		return append(b, '}')
	}
	return appendMarshal(b, st)
}

func appendUser(b []byte, u *authnv1.UserInfo) []byte {
	o := openObject(b)
	o.strOpt("username", u.Username)
	o.strOpt("uid", u.UID)
	if len(u.Groups) > 0 {
		o.strings("groups", u.Groups)
	}
	if len(u.Extra) > 0 {
		var arr [16]string
		keys := arr[:0]
		for k := range u.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		o.key("extra")
		e := openObject(o.b)
		for _, k := range keys {
			e.anyKey(k)
			e.b = AppendStrings(e.b, u.Extra[k])
		}
		o.b = e.close()
	}
	return o.close()
}

func appendObjectRef(b []byte, r *auditv1.ObjectReference) []byte {
	o := openObject(b)
	o.strOpt("resource", r.Resource)
	o.strOpt("namespace", r.Namespace)
	o.strOpt("name", r.Name)
	o.strOpt("uid", string(r.UID))
	o.strOpt("apiGroup", r.APIGroup)
	o.strOpt("apiVersion", r.APIVersion)
	o.strOpt("resourceVersion", r.ResourceVersion)
	o.strOpt("subresource", r.Subresource)
	return o.close()
}

// AppendMeta appends the "kaudit" enrichment object.
func AppendMeta(b []byte, m *Meta) []byte {
	o := openObject(b)
	o.strOpt("kind", m.Kind)
	o.key("actor")
	a := openObject(o.b)
	a.str("type", m.Actor.Type)
	a.str("name", m.Actor.Name)
	if len(m.Actor.Groups) > 0 {
		a.strings("groups", m.Actor.Groups)
	}
	if m.Actor.ServiceAccount != "" {
		a.key("serviceaccount")
		sa := openObject(a.b)
		sa.str("namespace", m.Actor.ServiceAccountNS)
		sa.str("name", m.Actor.ServiceAccount)
		a.b = sa.close()
	}
	a.strOpt("node", m.Actor.NodeName)
	a.strOpt("impersonated_by", m.Actor.ImpersonatedBy)
	o.b = a.close()
	o.str("action", m.Action)
	o.key("object")
	ob := openObject(o.b)
	ob.strOpt("group", m.Object.Group)
	ob.strOpt("version", m.Object.Version)
	ob.strOpt("resource", m.Object.Resource)
	ob.strOpt("subresource", m.Object.Subresource)
	ob.strOpt("namespace", m.Object.Namespace)
	ob.strOpt("name", m.Object.Name)
	o.b = ob.close()
	o.str("outcome", m.Outcome)
	o.strOpt("reason", m.Reason)
	o.float("latency_ms", m.LatencyMS)
	o.boolean("slow", m.Slow)
	o.strOpt("cluster", m.Cluster)
	o.strOpt("node", m.Node)
	o.key("source")
	s := openObject(o.b)
	s.strOpt("ip", m.Source.IP)
	s.boolean("trusted", m.Source.Trusted)
	o.b = s.close()
	if m.UserAgent.Name != "" {
		o.key("user_agent")
		u := openObject(o.b)
		u.str("name", m.UserAgent.Name)
		u.strOpt("version", m.UserAgent.Version)
		o.b = u.close()
	}
	if m.Policy.Evaluated {
		o.key("policy")
		p := openObject(o.b)
		p.integer("rule", int64(m.Policy.Rule))
		p.str("level", m.Policy.Level)
		p.str("recorded_level", m.Policy.RecordedLevel)
		p.boolean("stripped", m.Policy.Stripped)
		p.boolean("below_policy", m.Policy.BelowPolicy)
		o.b = p.close()
	}
	o.boolean("critical_workload", len(m.Critical) > 0)
	if len(m.Critical) > 0 {
		o.key("critical")
		o.b = append(o.b, '[')
		for i := range m.Critical {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			c := &m.Critical[i]
			co := openObject(o.b)
			co.str("name", c.Name)
			co.str("severity", c.Severity)
			co.boolean("expected_actor", c.ExpectedActor)
			co.boolean("in_window", c.InWindow)
			co.strOpt("reason", c.Reason)
			o.b = co.close()
		}
		o.b = append(o.b, ']')
	}
	if len(m.Alerts) > 0 {
		o.key("alerts")
		o.b = append(o.b, '[')
		for i := range m.Alerts {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			al := &m.Alerts[i]
			ao := openObject(o.b)
			ao.str("rule", al.Rule)
			ao.str("severity", al.Severity)
			ao.str("description", al.Description)
			if len(al.Techniques) > 0 {
				ao.strings("techniques", al.Techniques)
			}
			o.b = ao.close()
		}
		o.b = append(o.b, ']')
	}
	if len(m.Truncated) > 0 {
		o.strings("truncated", m.Truncated)
	}
	if len(m.Redacted) > 0 {
		o.strings("redacted", m.Redacted)
	}
	return o.close()
}
