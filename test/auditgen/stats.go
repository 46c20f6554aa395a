package auditgen

import (
	"fmt"
	"sort"
	"strings"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Stats counts events by a few dimensions; see ComputeStats.
type Stats struct {
	Events   int
	Bytes    int
	MaxLine  int
	Verb     map[string]int
	Resource map[string]int // resource[/subresource], or "(non-resource)"
	UserType map[string]int
	Stage    map[string]int
	Code     map[string]int
	Level    map[string]int
	Other    map[string]int // impersonation, multiple sourceIPs, IPv6, bodies...
}

// UserType classifies an event's user: "unauthenticated" (empty user: a
// failed authentication), "anonymous", "serviceaccount", "node",
// "system" (other system: users), or "human".
func UserType(ev *auditv1.Event) string {
	u := ev.User.Username
	switch {
	case u == "":
		return "unauthenticated"
	case u == "system:anonymous":
		return "anonymous"
	case strings.HasPrefix(u, "system:serviceaccount:"):
		return "serviceaccount"
	case strings.HasPrefix(u, "system:node:"):
		return "node"
	case strings.HasPrefix(u, "system:"):
		return "system"
	default:
		return "human"
	}
}

// ComputeStats computes Stats; lines are the marshalled events (may be nil).
func ComputeStats(events []auditv1.Event, lines [][]byte) Stats {
	s := Stats{Events: len(events), Verb: map[string]int{}, Resource: map[string]int{}, UserType: map[string]int{},
		Stage: map[string]int{}, Code: map[string]int{}, Level: map[string]int{}, Other: map[string]int{}}
	for _, l := range lines {
		s.Bytes += len(l) + 1
		if len(l) > s.MaxLine {
			s.MaxLine = len(l)
		}
		if len(l) > 15000 {
			s.Other["lines > 15 KB"]++
		}
	}
	for i := range events {
		ev := &events[i]
		s.Verb[ev.Verb]++
		res := "(non-resource)"
		if ev.ObjectRef != nil {
			res = ev.ObjectRef.Resource
			if ev.ObjectRef.APIGroup != "" {
				res += "." + ev.ObjectRef.APIGroup
			}
			if ev.ObjectRef.Subresource != "" {
				res += "/" + ev.ObjectRef.Subresource
			}
		}
		s.Resource[res]++
		s.UserType[UserType(ev)]++
		s.Stage[string(ev.Stage)]++
		if ev.ResponseStatus != nil {
			s.Code[fmt.Sprint(ev.ResponseStatus.Code)]++
		} else {
			s.Code["(none)"]++
		}
		s.Level[string(ev.Level)]++
		if ev.ImpersonatedUser != nil {
			s.Other["impersonated"]++
		}
		if len(ev.SourceIPs) > 1 {
			s.Other["several sourceIPs"]++
		}
		for _, ip := range ev.SourceIPs {
			if strings.Contains(ip, ":") {
				s.Other["IPv6 sourceIP"]++
				break
			}
		}
		if ev.RequestObject != nil {
			s.Other["with requestObject"]++
		}
		if ev.ResponseObject != nil {
			s.Other["with responseObject"]++
		}
	}
	return s
}

func table(title string, m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | events |\n|---|---:|\n", title)
	for _, k := range keys {
		fmt.Fprintf(&b, "| `%s` | %d |\n", k, m[k])
	}
	return b.String()
}

// Markdown renders the stats as Markdown tables.
func (s Stats) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events, %d bytes, longest line %d bytes.\n\n", s.Events, s.Bytes, s.MaxLine)
	for _, t := range []struct {
		title string
		m     map[string]int
	}{{"stage", s.Stage}, {"verb", s.Verb}, {"user type", s.UserType}, {"level", s.Level}, {"responseStatus.code", s.Code}, {"resource", s.Resource}, {"other", s.Other}} {
		b.WriteString(table(t.title, t.m))
		b.WriteString("\n")
	}
	return b.String()
}
