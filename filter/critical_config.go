package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // windows name IANA zones; don't depend on the host's zoneinfo

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// criticalFileKey is the property named in critical-workload errors.
const criticalFileKey = "critical_workloads_file"

// selectorSpec is one entry of critical_workloads_file, as written.
type selectorSpec struct {
	Name           string         `json:"name"`
	Severity       string         `json:"severity"`
	Namespaces     []string       `json:"namespaces"`
	Resources      []resourceSpec `json:"resources"`
	Names          []string       `json:"names"`
	Labels         string         `json:"labels"`
	ExpectedActors *actorsSpec    `json:"expected_actors"`
	Windows        []windowSpec   `json:"windows"`
}

type resourceSpec struct {
	// Group is the API group: "" (or omitted) for core, "*" for any.
	Group        string   `json:"group"`
	Resource     string   `json:"resource"`
	Subresources []string `json:"subresources"`
}

type actorsSpec struct {
	Users           []string `json:"users"`
	Groups          []string `json:"groups"`
	ServiceAccounts []string `json:"service_accounts"`
}

type windowSpec struct {
	Days     daysSpec `json:"days"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	TimeZone string   `json:"time_zone"`
}

// daysSpec is "daily", "weekdays", "weekends", one day name, or a list of
// day names.
type daysSpec []string

func (d *daysSpec) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = daysSpec{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("days: want daily, weekdays, weekends, a day name or a list of day names")
	}
	*d = l
	return nil
}

// Severities, lowest first.
var severities = []string{"info", "low", "medium", "high", "critical"}

func severityIndex(s string) int {
	for i, x := range severities {
		if x == s {
			return i
		}
	}
	return -1
}

// SelectorError is a critical_workloads_file entry kaudit cannot use.
type SelectorError struct {
	Selector string // name, or "#3" when unnamed
	Field    string
	Err      error
}

func (e *SelectorError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("selector %s: %v", e.Selector, e.Err)
	}
	return fmt.Sprintf("selector %s: field %s: %v", e.Selector, e.Field, e.Err)
}
func (e *SelectorError) Unwrap() error { return e.Err }

// compileSelectors parses and checks the YAML list of selectors.
func compileSelectors(data []byte) ([]*selector, error) {
	var specs []selectorSpec
	if err := yaml.UnmarshalStrict(data, &specs); err != nil {
		return nil, fmt.Errorf("want a YAML list of selectors: %w", err)
	}
	if len(specs) == 0 {
		return nil, errors.New("no selectors")
	}
	seen := map[string]bool{}
	out := make([]*selector, 0, len(specs))
	for i := range specs {
		sp := &specs[i]
		id := strconv.Quote(sp.Name)
		if sp.Name == "" {
			id = "#" + strconv.Itoa(i+1)
		}
		bad := func(field string, err error) error { return &SelectorError{Selector: id, Field: field, Err: err} }
		if sp.Name == "" {
			return nil, bad("name", errors.New("required"))
		}
		if seen[sp.Name] {
			return nil, bad("name", errors.New("duplicate name"))
		}
		seen[sp.Name] = true
		sel, field, err := compileSelector(sp)
		if err != nil {
			return nil, bad(field, err)
		}
		out = append(out, sel)
	}
	return out, nil
}

func compileSelector(sp *selectorSpec) (*selector, string, error) {
	s := &selector{name: sp.Name, severity: 2}
	if sp.Severity != "" {
		if s.severity = severityIndex(sp.Severity); s.severity < 0 {
			return nil, "severity", fmt.Errorf("%q: want one of %s", sp.Severity, strings.Join(severities, ", "))
		}
	}
	var err error
	if s.namespaces, err = compileGlobs(sp.Namespaces); err != nil {
		return nil, "namespaces", err
	}
	if s.names, err = compileGlobs(sp.Names); err != nil {
		return nil, "names", err
	}
	for i, r := range sp.Resources {
		field := fmt.Sprintf("resources[%d]", i)
		if r.Resource == "" {
			return nil, field + ".resource", errors.New("required (a resource such as pods, or \"*\")")
		}
		var m resourceMatcher
		if m.group, err = compileGlob(r.Group); err != nil {
			return nil, field + ".group", err
		}
		if m.resource, err = compileGlob(r.Resource); err != nil {
			return nil, field + ".resource", err
		}
		if m.subresources, err = compileGlobs(r.Subresources); err != nil {
			return nil, field + ".subresources", err
		}
		s.resources = append(s.resources, m)
	}
	if sp.Labels != "" {
		if s.labels, err = labels.Parse(sp.Labels); err != nil {
			return nil, "labels", err
		}
	}
	if len(s.namespaces) == 0 && len(s.names) == 0 && len(s.resources) == 0 && s.labels == nil {
		return nil, "", errors.New("selects everything: set at least one of namespaces, resources, names, labels")
	}
	if a := sp.ExpectedActors; a != nil {
		am := &actorMatcher{}
		if am.users, err = compileGlobs(a.Users); err != nil {
			return nil, "expected_actors.users", err
		}
		if am.groups, err = compileGlobs(a.Groups); err != nil {
			return nil, "expected_actors.groups", err
		}
		for _, sa := range a.ServiceAccounts {
			ns, name, ok := strings.Cut(sa, "/")
			if !ok || ns == "" || name == "" {
				return nil, "expected_actors.service_accounts", fmt.Errorf("%q: want namespace/name (globs allowed)", sa)
			}
			var g [2]glob
			if g[0], err = compileGlob(ns); err == nil {
				g[1], err = compileGlob(name)
			}
			if err != nil {
				return nil, "expected_actors.service_accounts", err
			}
			am.serviceAccounts = append(am.serviceAccounts, g)
		}
		if len(am.users)+len(am.groups)+len(am.serviceAccounts) > 0 {
			s.actors = am
		}
	}
	for i, w := range sp.Windows {
		cw, sub, err := compileWindow(w)
		if err != nil {
			return nil, fmt.Sprintf("windows[%d].%s", i, sub), err
		}
		s.windows = append(s.windows, cw)
	}
	return s, "", nil
}

// globKind picks a matcher that needs no path.Match for the common shapes.
type globKind uint8

const (
	globExact globKind = iota
	globAny
	globPrefix
	globSuffix
	globPattern
)

// glob is a precompiled path.Match pattern ("*" does not cross '/').
type glob struct {
	kind globKind
	lit  string
}

func compileGlob(p string) (glob, error) {
	if _, err := path.Match(p, ""); err != nil {
		return glob{}, fmt.Errorf("bad glob %q: %w", p, err)
	}
	if !strings.ContainsAny(p, `*?[\`) {
		return glob{globExact, p}, nil
	}
	if p == "*" {
		return glob{globAny, ""}, nil
	}
	body := p[:len(p)-1]
	if strings.HasSuffix(p, "*") && !strings.ContainsAny(body, `*?[\/`) {
		return glob{globPrefix, body}, nil
	}
	if strings.HasPrefix(p, "*") && !strings.ContainsAny(p[1:], `*?[\/`) {
		return glob{globSuffix, p[1:]}, nil
	}
	return glob{globPattern, p}, nil
}

func (g glob) match(s string) bool {
	switch g.kind {
	case globExact:
		return s == g.lit
	case globAny:
		return !strings.Contains(s, "/")
	case globPrefix:
		return strings.HasPrefix(s, g.lit) && !strings.Contains(s[len(g.lit):], "/")
	case globSuffix:
		return strings.HasSuffix(s, g.lit) && !strings.Contains(s[:len(s)-len(g.lit)], "/")
	default:
		ok, _ := path.Match(g.lit, s)
		return ok
	}
}

type globList []glob

func compileGlobs(ps []string) (globList, error) {
	var out globList
	for _, p := range ps {
		g, err := compileGlob(p)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// any reports whether one of the globs matches s; an empty list matches
// everything.
func (l globList) any(s string) bool {
	if len(l) == 0 {
		return true
	}
	for _, g := range l {
		if g.match(s) {
			return true
		}
	}
	return false
}

// window is a recurring time range in a time zone: [start, end) minutes
// after local midnight on the given weekdays; end < start crosses
// midnight (the part after midnight belongs to the next day).
type window struct {
	days       [7]bool // indexed by time.Weekday
	start, end int     // minutes, end may be 1440 ("24:00")
	loc        *time.Location
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

func compileWindow(w windowSpec) (window, string, error) {
	var cw window
	days := w.Days
	if len(days) == 0 {
		days = daysSpec{"daily"}
	}
	for _, d := range days {
		switch d = strings.ToLower(strings.TrimSpace(d)); d {
		case "daily", "everyday", "every day":
			cw.days = [7]bool{true, true, true, true, true, true, true}
		case "weekdays":
			for wd := time.Monday; wd <= time.Friday; wd++ {
				cw.days[wd] = true
			}
		case "weekends":
			cw.days[time.Saturday], cw.days[time.Sunday] = true, true
		default:
			wd, ok := dayNames[d]
			if !ok {
				return cw, "days", fmt.Errorf("%q: want daily, weekdays, weekends or a day name (mon … sun)", d)
			}
			cw.days[wd] = true
		}
	}
	var err error
	if cw.start, err = parseClock(w.Start, false); err != nil {
		return cw, "start", err
	}
	if cw.end, err = parseClock(w.End, true); err != nil {
		return cw, "end", err
	}
	if cw.start == cw.end || cw.start == 1440 {
		return cw, "end", fmt.Errorf("window %s–%s is empty", w.Start, w.End)
	}
	tz := w.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if cw.loc, err = time.LoadLocation(tz); err != nil {
		return cw, "time_zone", fmt.Errorf("%q: %w", tz, err)
	}
	return cw, "", nil
}

// parseClock reads "HH:MM" (24h); "24:00" only as an end.
func parseClock(s string, end bool) (int, error) {
	if s == "" {
		return 0, errors.New(`required ("HH:MM", 24-hour)`)
	}
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && (mm != 0 || !end) {
		return 0, fmt.Errorf(`%q: want "HH:MM", 24-hour`, s)
	}
	return hh*60 + mm, nil
}

// contains reports whether t falls in the window.
func (w *window) contains(t time.Time) bool {
	lt := t.In(w.loc)
	min := lt.Hour()*60 + lt.Minute()
	wd := lt.Weekday()
	if w.start < w.end {
		return w.days[wd] && min >= w.start && min < w.end
	}
	// Across midnight: the evening part on a listed day, the morning
	// part on the day after a listed day.
	return w.days[wd] && min >= w.start || w.days[(wd+6)%7] && min < w.end
}
