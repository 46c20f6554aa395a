package filter

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// dt is a real-shaped audit event for detection tests: it is written as
// the apiserver's JSON and decoded the way the plugin decodes it.
type dxDt struct {
	verb, uri   string
	user        string // "" is alice@example.com, "-" none (401)
	groups      []string
	impersonate string
	ip          string
	code        int
	reason      string
	res, sub    string
	ns, name    string
	group       string
	stage       string
	level       string
	req, resp   string
	ann         map[string]string
	at          time.Time
	id          string
}

var detT0 = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)

var detSeq int

func (d dxDt) event(t testing.TB) *Event {
	t.Helper()
	if d.stage == "" {
		d.stage = "ResponseComplete"
	}
	if d.level == "" {
		d.level = "Metadata"
		if d.req != "" {
			d.level = "Request"
		}
		if d.resp != "" {
			d.level = "RequestResponse"
		}
	}
	if d.user == "" {
		d.user = "alice@example.com"
		if d.groups == nil {
			d.groups = []string{"dev", "system:authenticated"}
		}
	}
	if d.groups == nil {
		switch {
		case strings.HasPrefix(d.user, "system:serviceaccount:"):
			ns := strings.Split(d.user, ":")[2]
			d.groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
		case d.user == "system:anonymous":
			d.groups = []string{"system:unauthenticated"}
		default:
			d.groups = []string{"system:authenticated"}
		}
	}
	if d.ip == "" {
		d.ip = "10.0.3.17"
	}
	if d.code == 0 {
		d.code = 200
		if d.verb == "create" {
			d.code = 201
		}
	}
	if d.at.IsZero() {
		d.at = detT0
	}
	if d.id == "" {
		detSeq++
		d.id = fmt.Sprintf("5a0c3f2e-%04x-4d1b-9a57-%012x", detSeq&0xffff, detSeq)
	}
	m := map[string]any{
		"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": d.level, "auditID": d.id, "stage": d.stage,
		"requestURI": d.uri, "verb": d.verb,
		"user":      map[string]any{"username": d.user, "groups": d.groups},
		"sourceIPs": []string{d.ip}, "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
		"requestReceivedTimestamp": d.at.Format("2006-01-02T15:04:05.000000Z07:00"),
		"stageTimestamp":           d.at.Add(7 * time.Millisecond).Format("2006-01-02T15:04:05.000000Z07:00"),
	}
	if d.user == "-" { // failed authentication: no user
		m["user"] = map[string]any{}
	}
	if d.impersonate != "" {
		m["impersonatedUser"] = map[string]any{"username": d.impersonate}
	}
	if d.res != "" {
		ref := map[string]any{"resource": d.res, "apiVersion": "v1"}
		for k, v := range map[string]string{"subresource": d.sub, "namespace": d.ns, "name": d.name, "apiGroup": d.group} {
			if v != "" {
				ref[k] = v
			}
		}
		if d.group != "" {
			ref["apiVersion"] = d.group + "/v1"
		}
		m["objectRef"] = ref
	}
	if d.stage != "RequestReceived" {
		st := map[string]any{"metadata": map[string]any{}, "code": d.code}
		if d.code >= 400 {
			st["status"] = "Failure"
			st["reason"] = d.reason
		}
		m["responseStatus"] = st
	}
	if d.req != "" {
		m["requestObject"] = json.RawMessage(d.req)
	}
	if d.resp != "" {
		m["responseObject"] = json.RawMessage(d.resp)
	}
	ann := map[string]string{"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
	if d.code == 403 {
		ann["authorization.k8s.io/decision"] = "forbid"
	}
	if d.code == 401 {
		ann = nil
	}
	for k, v := range d.ann {
		ann[k] = v
	}
	if ann != nil {
		m["annotations"] = ann
	}
	js, err := json.Marshal(m)
	require.NoError(t, err)
	var ev *Event
	require.NoError(t, DecodeAudit(js, func(a *auditv1.Event) { ev = newEvent(a, "kube.audit", d.at) }))
	return ev
}

// detTrusted is the trusted network of the tests.
var detTrusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

func dxNewTestDetect(t testing.TB, o Options) *detectStage {
	t.Helper()
	if o.TrustedNetworks == nil {
		o.TrustedNetworks = detTrusted
	}
	st, err := newDetectStage(&o)
	require.NoError(t, err)
	require.NotNil(t, st)
	return st.(*detectStage)
}

// ruleFileFor writes a rule file into a temporary directory.
func dxRuleFileFor(t testing.TB, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "detections.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

func dxAlertNames(ev *Event) []string {
	var out []string
	for _, a := range ev.Kaudit.Alerts {
		out = append(out, a.Rule)
	}
	return out
}
