package loki

import (
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/sink"
)

// label is one stream label: static (job=kaudit) or taken from an event
// field.
type label struct {
	name    string
	static  string
	field   field
	dynamic bool
}

// SanitizeLabelName maps name onto Loki's label name rules,
// [a-zA-Z_][a-zA-Z0-9_]*, without the reserved "__" prefix: every other
// byte becomes '_', a leading digit gets a '_' in front.
func SanitizeLabelName(name string) string {
	b := make([]byte, 0, len(name)+1)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9':
			if len(b) == 0 {
				b = append(b, '_')
			}
		default:
			c = '_'
		}
		b = append(b, c)
	}
	s := string(b)
	for strings.HasPrefix(s, "__") {
		s = s[1:]
	}
	if strings.Trim(s, "_") == "" {
		return ""
	}
	return s
}

// pair is a name and value (a label or a structured metadata pair).
type pair struct{ name, value string }

// streamLabels returns the canonical label string of d: labels with a
// value, sorted by name, `{a="b", c="d"}` as Loki prints them. Labels
// whose value is empty are left out (Loki has no empty labels).
func streamLabels(labels []label, d *filter.Document, env *sink.Env, scratch []pair) (string, []pair) {
	ps := scratch[:0]
	for i := range labels {
		l := &labels[i]
		v := l.static
		if l.dynamic {
			v = l.field.get(d, env)
		}
		if v != "" {
			ps = append(ps, pair{l.name, v})
		}
	}
	if len(ps) == 0 {
		ps = append(ps, pair{"job", "kaudit"})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
	return formatLabels(ps), ps
}

// formatLabels renders sorted pairs as `{a="b", c="d"}`.
func formatLabels(ps []pair) string {
	n := 2
	for _, p := range ps {
		n += len(p.name) + len(p.value) + 5
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, p.name...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, p.value)
	}
	return string(append(b, '}'))
}

// parseLabels parses a Prometheus-style label set `{a="b", c="d"}` as Loki
// prints it in its errors.
func parseLabelString(s string) ([]pair, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, errors.New("labels must be enclosed in {}")
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	var out []pair
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errors.New("expected name=\"value\"")
		}
		name := strings.TrimSpace(s[:eq])
		rest := strings.TrimSpace(s[eq+1:])
		if rest == "" || rest[0] != '"' {
			return nil, errors.New("expected a quoted value")
		}
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Unquote(q)
		out = append(out, pair{name, v})
		s = strings.TrimSpace(rest[len(q):])
		if strings.HasPrefix(s, ",") {
			s = strings.TrimSpace(s[1:])
		} else if s != "" {
			return nil, errors.New("expected , between labels")
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// canonicalLabels re-renders a label string the way streamLabels does, ""
// when it does not parse.
func canonicalLabels(s string) string {
	ps, err := parseLabelString(s)
	if err != nil {
		return ""
	}
	return formatLabels(ps)
}
