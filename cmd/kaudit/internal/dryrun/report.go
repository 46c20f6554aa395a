package dryrun

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Volume is a number of events and their bytes.
type Volume struct {
	Events int64 `json:"events"`
	Bytes  int64 `json:"bytes"`
}

// DropStats are the events dropped for one reason.
type DropStats struct {
	Reason string `json:"reason"`
	Volume
}

// Stripped are the events whose bodies the policy removed.
type Stripped struct {
	Events     int64 `json:"events"`
	BytesSaved int64 `json:"bytes_saved"`
}

// RuleRef names a policy rule.
type RuleRef struct {
	Index       int    `json:"index"`
	Level       string `json:"level"`
	Description string `json:"description"`
}

// RuleStats is what one rule did. Index -1 is "no rule matched".
type RuleStats struct {
	Index       int    `json:"index"`
	Level       string `json:"level"`
	Description string `json:"description"`
	// Matched counts the events the rule decided (dropped or kept);
	// BytesIn their size as read, BytesOut the documents shipped.
	Matched  int64    `json:"matched"`
	Kept     int64    `json:"kept"`
	BytesIn  int64    `json:"bytes_in"`
	BytesOut int64    `json:"bytes_out"`
	Top      []Triple `json:"top,omitempty"`
}

// Triple is a (user, verb, resource) and its volume.
type Triple struct {
	User     string `json:"user"`
	Verb     string `json:"verb"`
	Resource string `json:"resource"`
	Events   int64  `json:"events"`
	Bytes    int64  `json:"bytes"`
}

// Taken is an earlier rule that took a shadowed rule's events.
type Taken struct {
	Rule   int   `json:"rule"`
	Events int64 `json:"events"`
}

// Shadowed is a rule that matched events on its own, every one of which
// an earlier rule took.
type Shadowed struct {
	RuleRef
	Reached int64   `json:"reached"`
	By      []Taken `json:"by"`
}

// CompareGroup is a set of events whose outcome differs between the
// policy and the --compare policy.
type CompareGroup struct {
	From               string   `json:"from"`
	To                 string   `json:"to"`
	Rule               int      `json:"rule"`
	Description        string   `json:"description,omitempty"`
	CompareRule        int      `json:"compare_rule"`
	CompareDescription string   `json:"compare_description,omitempty"`
	Events             int64    `json:"events"`
	BytesIn            int64    `json:"bytes_in"`
	Top                []Triple `json:"top,omitempty"`
}

// CriticalStats counts kept events touching one critical workload.
type CriticalStats struct {
	Name            string `json:"name"`
	Severity        string `json:"severity"`
	Events          int64  `json:"events"`
	UnexpectedActor int64  `json:"unexpected_actor"`
	OutsideWindow   int64  `json:"outside_window"`
}

// DetectionStats counts one detection rule's hits: on events, and as
// correlation records of their own.
type DetectionStats struct {
	Rule        string `json:"rule"`
	Severity    string `json:"severity"`
	Description string `json:"description,omitempty"`
	Events      int64  `json:"events"`
	Correlated  int64  `json:"correlated,omitempty"`
}

// Report is the outcome of a dry run.
type Report struct {
	Inputs         []string `json:"inputs"`
	Policy         string   `json:"policy,omitempty"`
	Compare        string   `json:"compare,omitempty"`
	CriticalFile   string   `json:"critical_workloads_file,omitempty"`
	DetectionsFile string   `json:"detections_file,omitempty"`

	In  Volume `json:"in"`
	Out Volume `json:"out"`
	// Synthetic are records the pipeline produced itself (correlation
	// alerts), shipped in addition to Out.
	Synthetic        Volume      `json:"synthetic"`
	Dropped          []DropStats `json:"dropped"`
	Stripped         Stripped    `json:"stripped"`
	BelowPolicy      int64       `json:"below_policy"`
	Malformed        int64       `json:"malformed"`
	MalformedSamples []Malformed `json:"malformed_samples,omitempty"`

	Rules        []RuleStats `json:"rules,omitempty"`
	NoRule       *RuleStats  `json:"no_rule,omitempty"`
	NeverMatched []RuleRef   `json:"never_matched,omitempty"`
	Shadowed     []Shadowed  `json:"shadowed,omitempty"`

	CompareChanged int64          `json:"compare_changed,omitempty"`
	CompareGroups  []CompareGroup `json:"compare_groups,omitempty"`

	Critical   []CriticalStats  `json:"critical,omitempty"`
	Detections []DetectionStats `json:"detections,omitempty"`

	Duration        float64 `json:"duration_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
}

func (r *Report) dropped(reason string) *DropStats {
	for i := range r.Dropped {
		if r.Dropped[i].Reason == reason {
			return &r.Dropped[i]
		}
	}
	r.Dropped = append(r.Dropped, DropStats{Reason: reason})
	return &r.Dropped[len(r.Dropped)-1]
}

// DroppedBy returns the events dropped for reason (a filter.Drop).
func (r *Report) DroppedBy(reason string) Volume {
	for _, d := range r.Dropped {
		if d.Reason == reason {
			return d.Volume
		}
	}
	return Volume{}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Size renders a byte count: B, KiB, MiB, GiB.
func Size(n int64) string {
	switch {
	case n < 1024 && n > -1024:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20 && n > -(1<<20):
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30 && n > -(1<<30):
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

func pct(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

// table renders aligned columns; columns whose header starts with '>' are
// right-aligned (numbers).
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer, indent string) {
	n := len(t.head)
	width := make([]int, n)
	right := make([]bool, n)
	head := make([]string, n)
	for i, h := range t.head {
		if strings.HasPrefix(h, ">") {
			right[i], h = true, h[1:]
		}
		head[i] = h
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == len(cells)-1 && !right[i] {
				b.WriteString(c)
				break
			}
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
			if i < len(cells)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(head)
	for _, r := range t.rows {
		line(r)
	}
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// WriteText writes the human-readable report.
func (r *Report) WriteText(w io.Writer) {
	files := "file"
	if len(r.Inputs) != 1 {
		files = "files"
	}
	fmt.Fprintf(w, "kaudit dryrun: %d %s, %d events in %.2fs (%.0f events/s)\n", len(r.Inputs), files, r.In.Events, r.Duration, r.EventsPerSecond)
	if r.Policy != "" {
		fmt.Fprintf(w, "policy: %s\n", r.Policy)
	}
	fmt.Fprintln(w)
	t := table{head: []string{"", ">events", ">bytes", ">% events", ">% bytes"}}
	t.add("in", itoa(r.In.Events), Size(r.In.Bytes), "100.0%", "100.0%")
	t.add("out", itoa(r.Out.Events), Size(r.Out.Bytes), pct(r.Out.Events, r.In.Events), pct(r.Out.Bytes, r.In.Bytes))
	names := map[string]string{"policy_none": "dropped: level None", "omit_stage": "dropped: omitStages",
		"not_critical": "dropped: only_critical", "no_alert": "dropped: alerts_only"}
	for _, d := range r.Dropped {
		name := names[d.Reason]
		if name == "" {
			name = "dropped: " + d.Reason
		}
		t.add(name, itoa(d.Events), Size(d.Bytes), pct(d.Events, r.In.Events), pct(d.Bytes, r.In.Bytes))
	}
	t.add("stripped (saved)", itoa(r.Stripped.Events), Size(r.Stripped.BytesSaved), pct(r.Stripped.Events, r.In.Events), pct(r.Stripped.BytesSaved, r.In.Bytes))
	if r.BelowPolicy > 0 {
		t.add("recorded below policy", itoa(r.BelowPolicy), "", pct(r.BelowPolicy, r.In.Events), "")
	}
	if r.Synthetic.Events > 0 {
		t.add("alert records (extra)", itoa(r.Synthetic.Events), Size(r.Synthetic.Bytes), "", "")
	}
	t.add("malformed lines", itoa(r.Malformed), "", "", "")
	t.write(w, "  ")
	for _, m := range r.MalformedSamples {
		fmt.Fprintf(w, "    %s:%d: %s\n", m.File, m.Line, clip(m.Err, 100))
	}

	if len(r.Rules) > 0 {
		fmt.Fprintln(w, "\nRules (matched: events the rule decided; out: what is shipped)")
		t := table{head: []string{">#", "level", ">matched", ">bytes in", ">out", ">bytes out", "rule"}}
		all := r.Rules
		if r.NoRule != nil {
			all = append(append([]RuleStats(nil), r.Rules...), *r.NoRule)
		}
		for _, s := range all {
			idx := strconv.Itoa(s.Index)
			if s.Index < 0 {
				idx = "-"
			}
			t.add(idx, s.Level, itoa(s.Matched), Size(s.BytesIn), itoa(s.Kept), Size(s.BytesOut), clip(s.Description, 70))
		}
		t.write(w, "  ")
	}
	if len(r.NeverMatched) > 0 {
		fmt.Fprintln(w, "\nNever matched (no event reached them, alone or in order)")
		for _, n := range r.NeverMatched {
			fmt.Fprintf(w, "  #%d %s  %s\n", n.Index, n.Level, clip(n.Description, 90))
		}
	}
	if len(r.Shadowed) > 0 {
		fmt.Fprintln(w, "\nShadowed (every event the rule matches is taken by an earlier rule)")
		for _, s := range r.Shadowed {
			var by []string
			for _, b := range s.By {
				by = append(by, fmt.Sprintf("#%d (%d)", b.Rule, b.Events))
			}
			fmt.Fprintf(w, "  #%d %s  %s\n      %d events, taken by %s\n", s.Index, s.Level, clip(s.Description, 80), s.Reached, strings.Join(by, ", "))
		}
	}
	noisy := false
	for _, s := range r.Rules {
		noisy = noisy || len(s.Top) > 0
	}
	if noisy {
		fmt.Fprintln(w, "\nNoisiest (user, verb, resource) per rule, by events shipped")
		for _, s := range r.Rules {
			if len(s.Top) == 0 {
				continue
			}
			fmt.Fprintf(w, "  #%d %s  %s\n", s.Index, s.Level, clip(s.Description, 80))
			t := table{head: []string{">events", ">bytes out", "user", "verb", "resource"}}
			for _, x := range s.Top {
				t.add(itoa(x.Events), Size(x.Bytes), clip(x.User, 60), x.Verb, clip(x.Resource, 50))
			}
			t.write(w, "    ")
		}
	}
	if r.Compare != "" {
		fmt.Fprintf(w, "\nCompared with %s: %d events change level\n", r.Compare, r.CompareChanged)
		if len(r.CompareGroups) > 0 {
			t := table{head: []string{">events", ">bytes in", "from", "to", ">rule", ">rule'", "top (user verb resource)"}}
			for _, g := range r.CompareGroups {
				top := ""
				if len(g.Top) > 0 {
					top = fmt.Sprintf("%s %s %s (%d)", clip(g.Top[0].User, 40), g.Top[0].Verb, g.Top[0].Resource, g.Top[0].Events)
				}
				t.add(itoa(g.Events), Size(g.BytesIn), g.From, g.To, ruleIdx(g.Rule), ruleIdx(g.CompareRule), top)
			}
			t.write(w, "  ")
		}
	}
	if r.CriticalFile != "" || len(r.Critical) > 0 {
		fmt.Fprintln(w, "\nCritical workloads (events shipped)")
		if len(r.Critical) == 0 {
			fmt.Fprintln(w, "  none touched")
		} else {
			t := table{head: []string{"name", "severity", ">events", ">unexpected actor", ">outside window"}}
			for _, c := range r.Critical {
				t.add(c.Name, c.Severity, itoa(c.Events), itoa(c.UnexpectedActor), itoa(c.OutsideWindow))
			}
			t.write(w, "  ")
		}
	}
	fmt.Fprintln(w, "\nDetections")
	if len(r.Detections) == 0 {
		fmt.Fprintln(w, "  no hits")
	} else {
		t := table{head: []string{"rule", "severity", ">events", ">correlated"}}
		for _, d := range r.Detections {
			t.add(d.Rule, d.Severity, itoa(d.Events), itoa(d.Correlated))
		}
		t.write(w, "  ")
	}
}

func ruleIdx(i int) string {
	if i < 0 {
		return "-"
	}
	return strconv.Itoa(i)
}
