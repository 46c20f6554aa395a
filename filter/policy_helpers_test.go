package filter

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Test events are built the way kube-apiserver fills them: objectRef from
// the request URI (RequestInfo), the user as authenticated, the stage, and
// the level the apiserver recorded.

var testT0 = time.Date(2025, 6, 2, 16, 0, 0, 0, time.UTC)

type evOpt func(*Event)

// mkEvent builds a ResponseComplete event at level RequestResponse by
// default for the user "alice" (groups system:authenticated).
func mkEvent(verb, uri string, opts ...evOpt) *Event {
	ev := &Event{Event: auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: "audit.k8s.io/v1"},
		Level:                    auditv1.LevelRequestResponse,
		AuditID:                  types.UID("a1b2c3d4-0000-4000-8000-" + strings.Repeat("0", 12)),
		Stage:                    auditv1.StageResponseComplete,
		RequestURI:               uri,
		Verb:                     verb,
		User:                     authnv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}},
		SourceIPs:                []string{"10.0.0.7"},
		UserAgent:                "kubectl/v1.31.0 (linux/amd64) kubernetes/9d86e63",
		ObjectRef:                refFromURI(uri),
		ResponseStatus:           &metav1.Status{Code: 200},
		RequestReceivedTimestamp: metav1.NewMicroTime(testT0),
		StageTimestamp:           metav1.NewMicroTime(testT0.Add(12 * time.Millisecond)),
		Annotations:              map[string]string{annDecision: "allow", annReason: ""},
	}}
	for _, o := range opts {
		o(ev)
	}
	return ev
}

func withUser(name string, groups ...string) evOpt {
	return func(e *Event) { e.User = authnv1.UserInfo{Username: name, Groups: groups} }
}
func withImpersonated(name string, groups ...string) evOpt {
	return func(e *Event) { e.ImpersonatedUser = &authnv1.UserInfo{Username: name, Groups: groups} }
}
func withStage(s auditv1.Stage) evOpt {
	return func(e *Event) {
		e.Stage = s
		if s == auditv1.StageRequestReceived {
			e.ResponseStatus = nil
			e.ResponseObject = nil
			e.StageTimestamp = e.RequestReceivedTimestamp
			delete(e.Annotations, annDecision)
			delete(e.Annotations, annReason)
		}
	}
}
func withLevel(l auditv1.Level) evOpt { return func(e *Event) { e.Level = l } }
func withCode(code int32) evOpt {
	return func(e *Event) { e.ResponseStatus = &metav1.Status{Code: code} }
}
func withRequest(js string) evOpt {
	return func(e *Event) {
		e.RequestObject = &runtime.Unknown{Raw: []byte(js), ContentType: runtime.ContentTypeJSON}
	}
}
func withResponse(js string) evOpt {
	return func(e *Event) {
		e.ResponseObject = &runtime.Unknown{Raw: []byte(js), ContentType: runtime.ContentTypeJSON}
	}
}
func withReceived(t time.Time, latency time.Duration) evOpt {
	return func(e *Event) {
		e.RequestReceivedTimestamp = metav1.NewMicroTime(t)
		e.StageTimestamp = metav1.NewMicroTime(t.Add(latency))
	}
}

// refFromURI parses a request URI as the apiserver's RequestInfoFactory
// does for the shapes the tests use: /api/v1/…, /apis/group/version/…,
// namespaces/{ns}/resource/name/subresource; nil for other paths.
func refFromURI(uri string) *auditv1.ObjectReference {
	p, _, _ := strings.Cut(uri, "?")
	parts := strings.Split(strings.Trim(p, "/"), "/")
	var r auditv1.ObjectReference
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		r.APIVersion, parts = parts[1], parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		r.APIGroup, r.APIVersion, parts = parts[1], parts[2], parts[3:]
	default:
		return nil
	}
	if parts[0] == "namespaces" && len(parts) > 1 {
		r.Namespace = parts[1]
		if len(parts) > 2 {
			parts = parts[2:]
		}
	}
	r.Resource = parts[0]
	if len(parts) > 1 {
		r.Name = parts[1]
	}
	if len(parts) > 2 {
		r.Subresource = parts[2]
	}
	return &r
}

func mustPolicy(t testing.TB, file string) *policyStage {
	t.Helper()
	st, err := newPolicyStage(&Options{PolicyFile: file})
	require.NoError(t, err)
	return st.(*policyStage)
}
