// Package filter turns Fluent Bit records into audit events, re-evaluates
// them against an audit policy, marks critical workloads, enriches them,
// runs detections, and encodes the document that the sinks ship.
//
// A record travels: DecodeChunk (msgpack) → DecodeAudit (JSON → Event) →
// Pipeline.Process (policy, critical, enrich, detect) → AppendDocument.
package filter

import (
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Event is one audit event on its way through the pipeline: the
// apiserver's own audit.k8s.io/v1 Event plus what kaudit adds to it.
type Event struct {
	auditv1.Event

	// Kaudit is the enrichment object shipped under the "kaudit" key.
	Kaudit Meta

	// Tag is the Fluent Bit tag of the chunk the record came in.
	Tag string
	// RecordTime is the Fluent Bit record timestamp.
	RecordTime time.Time

	// emitted are synthetic records a stage produced while processing
	// this event (correlation alerts); they ship in the same flush.
	emitted []*Event

	// id caches ID() when the fast decoder built it (sharing auditID's
	// bytes); ID() checks it still matches AuditID and Stage.
	id string
}

// Emit attaches a synthetic record to the event that caused it.
func (e *Event) Emit(x *Event) { e.emitted = append(e.emitted, x) }

// TakeEmitted returns and clears the synthetic records attached to e.
func (e *Event) TakeEmitted() []*Event {
	out := e.emitted
	e.emitted = nil
	return out
}

// ID is the stable document id of the event: auditID and stage, so a
// re-sent event maps to the same id across retries and restarts. Events
// without an auditID have no id.
func (e *Event) ID() string {
	if e.AuditID == "" {
		return ""
	}
	if n := len(e.AuditID); len(e.id) == n+1+len(e.Stage) && e.id[:n] == string(e.AuditID) && e.id[n+1:] == string(e.Stage) {
		return e.id
	}
	return string(e.AuditID) + "-" + string(e.Stage)
}

// Timestamp is the event's @timestamp: when the apiserver received the
// request, falling back to the stage time and then the record time.
func (e *Event) Timestamp() time.Time {
	switch {
	case !e.RequestReceivedTimestamp.IsZero():
		return e.RequestReceivedTimestamp.Time
	case !e.StageTimestamp.IsZero():
		return e.StageTimestamp.Time
	default:
		return e.RecordTime
	}
}
