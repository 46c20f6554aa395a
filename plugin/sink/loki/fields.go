package loki

import (
	"sort"
	"strconv"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/sink"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

type filterObjectRef = auditv1.ObjectReference

// field is an event value that can become a label, a structured metadata
// pair or a logfmt key. high marks values with unbounded cardinality.
type field struct {
	name string
	high bool
	get  func(d *filter.Document, env *sink.Env) string
}

func ev(d *filter.Document) *filter.Event { return d.Event }

func objectRef(d *filter.Document, f func(r *filterObjectRef) string) string {
	if e := ev(d); e != nil && e.ObjectRef != nil {
		return f(e.ObjectRef)
	}
	return ""
}

var fields = map[string]field{}

func def(name string, high bool, get func(d *filter.Document, env *sink.Env) string) {
	fields[name] = field{name: name, high: high, get: get}
}

func evStr(f func(e *filter.Event) string) func(d *filter.Document, env *sink.Env) string {
	return func(d *filter.Document, _ *sink.Env) string {
		if e := ev(d); e != nil {
			return f(e)
		}
		return ""
	}
}

func init() {
	// Low cardinality.
	def("cluster", false, func(d *filter.Document, env *sink.Env) string {
		if e := ev(d); e != nil && e.Kaudit.Cluster != "" {
			return e.Kaudit.Cluster
		}
		return env.Cluster
	})
	def("node", false, func(d *filter.Document, env *sink.Env) string {
		if e := ev(d); e != nil && e.Kaudit.Node != "" {
			return e.Kaudit.Node
		}
		return env.Node
	})
	def("verb", false, evStr(func(e *filter.Event) string { return e.Verb }))
	def("resource", false, func(d *filter.Document, _ *sink.Env) string {
		return objectRef(d, func(r *filterObjectRef) string { return r.Resource })
	})
	def("subresource", false, func(d *filter.Document, _ *sink.Env) string {
		return objectRef(d, func(r *filterObjectRef) string { return r.Subresource })
	})
	def("namespace", false, func(d *filter.Document, _ *sink.Env) string {
		return objectRef(d, func(r *filterObjectRef) string { return r.Namespace })
	})
	def("api_group", false, func(d *filter.Document, _ *sink.Env) string {
		return objectRef(d, func(r *filterObjectRef) string { return r.APIGroup })
	})
	def("level", false, evStr(func(e *filter.Event) string { return string(e.Level) }))
	def("stage", false, evStr(func(e *filter.Event) string { return string(e.Stage) }))
	def("critical", false, func(d *filter.Document, _ *sink.Env) string {
		if e := ev(d); e != nil && len(e.Kaudit.Critical) > 0 {
			return "true"
		}
		return "false"
	})
	def("alert", false, func(d *filter.Document, _ *sink.Env) string {
		if e := ev(d); (e != nil && len(e.Kaudit.Alerts) > 0) || d.Kind == "kaudit.k8s.io/Alert" {
			return "true"
		}
		return "false"
	})
	def("action", false, evStr(func(e *filter.Event) string { return e.Kaudit.Action }))
	def("outcome", false, evStr(func(e *filter.Event) string { return e.Kaudit.Outcome }))
	def("actor_type", false, evStr(func(e *filter.Event) string { return e.Kaudit.Actor.Type }))
	def("code", false, evStr(func(e *filter.Event) string {
		if e.ResponseStatus != nil && e.ResponseStatus.Code != 0 {
			return strconv.Itoa(int(e.ResponseStatus.Code))
		}
		return ""
	}))
	def("kind", false, func(d *filter.Document, _ *sink.Env) string {
		if d.Kind != "" {
			return d.Kind
		}
		return "Event"
	})
	// High cardinality: never labels unless asked for.
	def("audit_id", true, func(d *filter.Document, _ *sink.Env) string {
		if e := ev(d); e != nil {
			return string(e.AuditID)
		}
		return d.ID
	})
	def("user", true, evStr(func(e *filter.Event) string { return e.User.Username }))
	def("actor", true, evStr(func(e *filter.Event) string { return e.Kaudit.Actor.Name }))
	def("name", true, func(d *filter.Document, _ *sink.Env) string {
		return objectRef(d, func(r *filterObjectRef) string { return r.Name })
	})
	def("source_ip", true, evStr(func(e *filter.Event) string {
		if e.Kaudit.Source.IP != "" {
			return e.Kaudit.Source.IP
		}
		if len(e.SourceIPs) > 0 {
			return e.SourceIPs[0]
		}
		return ""
	}))
	def("user_agent", true, evStr(func(e *filter.Event) string { return e.UserAgent }))
	def("request_uri", true, evStr(func(e *filter.Event) string { return e.RequestURI }))
}

func lookupField(name string) (field, bool) {
	f, ok := fields[name]
	return f, ok
}

func fieldNames() []string {
	out := make([]string, 0, len(fields))
	for n := range fields {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
