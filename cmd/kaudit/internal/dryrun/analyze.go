package dryrun

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/config"
)

// Config is one dry run.
type Config struct {
	Policy     string
	Critical   string
	Detections string
	// Compare is a second policy: events whose level differs are grouped.
	Compare string
	// Props are further [OUTPUT] properties (cluster, redact_secrets, …).
	Props  map[string]string
	Inputs []Input
	// Top is how many (user, verb, resource) triples to list per rule.
	Top int
	// Progress gets a progress line now and then; nil for none.
	Progress io.Writer
	// ProgressEvery is the progress period (default 1s).
	ProgressEvery time.Duration
	// Workers decode in parallel (default GOMAXPROCS); the pipeline
	// itself runs on one goroutine, in input order, as in a flush.
	Workers int
}

// pipeline builds filter.NewPipeline from properties, through the same
// config.Parse as the plugin, so the defaults are the plugin's.
func pipeline(props map[string]string) (*filter.Pipeline, error) {
	cfg, err := config.Parse(config.MapProps("dryrun", props))
	if err != nil {
		return nil, err
	}
	return filter.NewPipeline(cfg.Filter)
}

type decoded struct {
	seq       int
	events    []*filter.Event
	sizes     []int
	malformed []Malformed
}

// Malformed is a line that held no audit event.
type Malformed struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Err  string `json:"error"`
}

func decodeBlock(b block, path string) decoded {
	d := decoded{seq: b.seq}
	data := b.data
	line := b.line
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var l []byte
		if i < 0 {
			l, data = data, nil
		} else {
			l, data = data[:i], data[i+1:]
		}
		l = bytes.TrimSpace(l)
		if len(l) > 0 {
			n0 := len(d.events)
			err := filter.DecodeAudit(l, func(a *auditv1.Event) {
				d.events = append(d.events, &filter.Event{Event: *a, Tag: "dryrun"})
			})
			if n := len(d.events) - n0; n > 0 {
				// An EventList's bytes are shared out among its items.
				for k := 0; k < n; k++ {
					d.sizes = append(d.sizes, len(l)/n+btoi(k < len(l)%n))
				}
			}
			if err != nil {
				d.malformed = append(d.malformed, Malformed{File: path, Line: line, Err: err.Error()})
			}
		}
		line++
	}
	return d
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Run reads the inputs through the pipeline and returns the report.
func Run(c Config) (*Report, error) {
	if c.Top == 0 {
		c.Top = 5
	}
	props := map[string]string{}
	for k, v := range c.Props {
		props[k] = v
	}
	if c.Policy != "" {
		props["policy_file"] = c.Policy
	}
	if c.Critical != "" {
		props["critical_workloads_file"] = c.Critical
	}
	if c.Detections != "" {
		props["detections_file"] = c.Detections
	}
	pl, err := pipeline(props)
	if err != nil {
		return nil, err
	}
	a := newAnalyzer(c, pl)
	if c.Policy != "" {
		if a.rules, err = loadRules(c.Policy); err != nil {
			return nil, err
		}
		a.initRules()
	}
	if c.Compare != "" {
		// Only the policy stage matters for the comparison.
		if a.cmp, err = pipeline(map[string]string{"policy_file": c.Compare, "redact_secrets": "off"}); err != nil {
			return nil, fmt.Errorf("--compare: %w", err)
		}
		if a.cmpRules, err = loadRules(c.Compare); err != nil {
			return nil, fmt.Errorf("--compare: %w", err)
		}
	}

	workers := c.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var read atomic.Int64
	var total int64
	for _, in := range c.Inputs {
		total += in.Size
	}
	start := time.Now()
	blocks := make(chan block, workers*2)
	results := make(chan decoded, workers*2)
	stop := make(chan struct{})
	var readErr error
	go func() { readErr = readBlocks(c.Inputs, &read, blocks, stop) }()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range blocks {
				results <- decodeBlock(b, c.Inputs[b.file].Path)
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	prog := newProgress(c.Progress, c.ProgressEvery, &read, total, start)
	pending := map[int]decoded{}
	next := 0
	for d := range results {
		pending[d.seq] = d
		for {
			d, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			for i, ev := range d.events {
				a.event(ev, d.sizes[i])
			}
			a.malformed(d.malformed)
			prog.tick(a.rep.In.Events)
		}
	}
	close(stop)
	prog.done(a.rep.In.Events)
	if readErr != nil {
		return nil, readErr
	}
	a.rep.Duration = time.Since(start).Seconds()
	if a.rep.Duration > 0 {
		a.rep.EventsPerSecond = float64(a.rep.In.Events) / a.rep.Duration
	}
	for _, in := range c.Inputs {
		a.rep.Inputs = append(a.rep.Inputs, in.Path)
	}
	return a.finish(), nil
}

type triple struct{ user, verb, resource string }

type count struct {
	events         int64
	bytesIn, bytes int64
}

type ruleAcc struct {
	RuleStats
	triples map[triple]*count
	// reached counts events this rule alone would have matched; takenBy
	// the earlier rules that got them instead.
	reached int64
	takenBy map[int]int64
}

type cmpKey struct {
	from, to    string
	rule, rule2 int
}

type analyzer struct {
	cfg       Config
	pl        *filter.Pipeline
	cmp       *filter.Pipeline
	rules     *rules
	cmpRules  *rules
	rep       Report
	perRule   map[int]*ruleAcc
	cmpGroups map[cmpKey]*cmpAcc
	critical  map[string]*CriticalStats
	alerts    map[string]*DetectionStats
	attrs     authorizer.AttributesRecord
	buf       []byte
	emitted   []*filter.Event
}

type cmpAcc struct {
	CompareGroup
	triples map[triple]*count
}

func newAnalyzer(c Config, pl *filter.Pipeline) *analyzer {
	return &analyzer{cfg: c, pl: pl, perRule: map[int]*ruleAcc{}, cmpGroups: map[cmpKey]*cmpAcc{},
		critical: map[string]*CriticalStats{}, alerts: map[string]*DetectionStats{}}
}

func (a *analyzer) initRules() {
	for i := range a.rules.levels {
		a.rule(i)
	}
}

func (a *analyzer) rule(i int) *ruleAcc {
	r := a.perRule[i]
	if r == nil {
		r = &ruleAcc{RuleStats: RuleStats{Index: i}, triples: map[triple]*count{}, takenBy: map[int]int64{}}
		if a.rules != nil && i >= 0 && i < len(a.rules.levels) {
			r.Level, r.Description = a.rules.levels[i], a.rules.descs[i]
		} else if i < 0 {
			r.Level, r.Description = "None", "(no rule matched: the policy's default, None)"
		}
		a.perRule[i] = r
	}
	return r
}

func bodies(ev *filter.Event) int64 {
	n := 0
	if ev.RequestObject != nil {
		n += len(ev.RequestObject.Raw)
	}
	if ev.ResponseObject != nil {
		n += len(ev.ResponseObject.Raw)
	}
	return int64(n)
}

func tripleOf(ev *filter.Event) triple {
	res, _, _ := strings.Cut(ev.RequestURI, "?") // a non-resource path
	if r := ev.ObjectRef; r != nil {
		res = r.Resource
		if r.APIGroup != "" {
			res = r.APIGroup + "/" + res
		}
		if r.Subresource != "" {
			res += "/" + r.Subresource
		}
	}
	return triple{ev.User.Username, ev.Verb, res}
}

// outcome is what a policy made of an event: its level, or why it was
// dropped.
func outcome(ev *filter.Event, d filter.Drop) string {
	switch d {
	case filter.DropPolicy:
		return "None"
	case filter.DropOmitStage:
		return "omitted stage"
	}
	return ev.Kaudit.Policy.Level
}

func copyForCompare(ev *filter.Event) *filter.Event {
	c := &filter.Event{Event: ev.Event, Tag: ev.Tag, RecordTime: ev.RecordTime}
	if ev.RequestObject != nil {
		c.RequestObject = &k8sruntime.Unknown{Raw: ev.RequestObject.Raw, ContentType: ev.RequestObject.ContentType}
	}
	if ev.ResponseObject != nil {
		c.ResponseObject = &k8sruntime.Unknown{Raw: ev.ResponseObject.Raw, ContentType: ev.ResponseObject.ContentType}
	}
	return c
}

func (a *analyzer) event(ev *filter.Event, size int) {
	rep := &a.rep
	rep.In.Events++
	rep.In.Bytes += int64(size)
	var cmpOut string
	cmpRule := -1
	if a.cmp != nil {
		c := copyForCompare(ev)
		d := a.cmp.Process(c, nil)
		cmpOut, cmpRule = outcome(c, d), c.Kaudit.Policy.Rule
	}
	pre := bodies(ev)
	a.emitted = a.emitted[:0]
	d := a.pl.Process(ev, func(x *filter.Event) { a.emitted = append(a.emitted, x) })
	pol := &ev.Kaudit.Policy
	var r *ruleAcc
	if pol.Evaluated {
		r = a.rule(pol.Rule)
		r.Matched++
		r.BytesIn += int64(size)
		a.shadow(ev, pol.Rule)
	}
	switch d {
	case filter.Keep:
		a.buf = filter.AppendEvent(a.buf[:0], ev)
		out := int64(len(a.buf))
		rep.Out.Events++
		rep.Out.Bytes += out
		if pol.Stripped {
			rep.Stripped.Events++
			rep.Stripped.BytesSaved += pre - bodies(ev)
		}
		if pol.BelowPolicy {
			rep.BelowPolicy++
		}
		if r != nil {
			r.Kept++
			r.BytesOut += out
			t := tripleOf(ev)
			c := r.triples[t]
			if c == nil {
				c = &count{}
				r.triples[t] = c
			}
			c.events++
			c.bytes += out
		}
		for _, m := range ev.Kaudit.Critical {
			cs := a.critical[m.Name]
			if cs == nil {
				cs = &CriticalStats{Name: m.Name, Severity: m.Severity}
				a.critical[m.Name] = cs
			}
			cs.Events++
			if !m.ExpectedActor {
				cs.UnexpectedActor++
			}
			if !m.InWindow {
				cs.OutsideWindow++
			}
		}
		a.countAlerts(ev.Kaudit.Alerts, false)
	default:
		dr := rep.dropped(string(d))
		dr.Events++
		dr.Bytes += int64(size)
	}
	for _, x := range a.emitted {
		rep.Synthetic.Events++
		rep.Synthetic.Bytes += int64(len(filter.AppendEvent(a.buf[:0], x)))
		a.countAlerts(x.Kaudit.Alerts, true)
	}
	if a.cmp != nil {
		from := outcome(ev, d)
		if from != cmpOut {
			k := cmpKey{from, cmpOut, pol.Rule, cmpRule}
			g := a.cmpGroups[k]
			if g == nil {
				g = &cmpAcc{CompareGroup: CompareGroup{From: from, To: cmpOut, Rule: pol.Rule, CompareRule: cmpRule}, triples: map[triple]*count{}}
				a.cmpGroups[k] = g
			}
			g.Events++
			g.BytesIn += int64(size)
			t := tripleOf(ev)
			c := g.triples[t]
			if c == nil {
				c = &count{}
				g.triples[t] = c
			}
			c.events++
			c.bytesIn += int64(size)
		}
	}
}

func (a *analyzer) countAlerts(as []filter.Alert, synthetic bool) {
	for _, al := range as {
		ds := a.alerts[al.Rule]
		if ds == nil {
			ds = &DetectionStats{Rule: al.Rule, Severity: al.Severity, Description: al.Description}
			a.alerts[al.Rule] = ds
		}
		if synthetic {
			ds.Correlated++
		} else {
			ds.Events++
		}
	}
}

// shadow counts, for each rule after the winner, whether it alone would
// have matched: a rule reached by events that an earlier rule always took
// is shadowed.
func (a *analyzer) shadow(ev *filter.Event, winner int) {
	if a.rules == nil || winner < 0 {
		return // no rule matched: none of them alone matches either
	}
	attributes(&a.attrs, &ev.Event)
	for j := winner + 1; j < len(a.rules.single); j++ {
		if a.rules.matches(j, &a.attrs) {
			r := a.rule(j)
			r.reached++
			r.takenBy[winner]++
		}
	}
	a.attrs = authorizer.AttributesRecord{}
}

func (a *analyzer) malformed(ms []Malformed) {
	a.rep.Malformed += int64(len(ms))
	for _, m := range ms {
		if len(a.rep.MalformedSamples) < 5 {
			a.rep.MalformedSamples = append(a.rep.MalformedSamples, m)
		}
	}
}

func topTriples(m map[triple]*count, n int) []Triple {
	out := make([]Triple, 0, len(m))
	for t, c := range m {
		out = append(out, Triple{User: t.user, Verb: t.verb, Resource: t.resource, Events: c.events, Bytes: c.bytes + c.bytesIn})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Events != out[j].Events {
			return out[i].Events > out[j].Events
		}
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].User+out[i].Verb+out[i].Resource < out[j].User+out[j].Verb+out[j].Resource
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func (a *analyzer) finish() *Report {
	rep := &a.rep
	rep.Policy, rep.Compare = a.cfg.Policy, a.cfg.Compare
	rep.CriticalFile, rep.DetectionsFile = a.cfg.Critical, a.cfg.Detections
	idx := make([]int, 0, len(a.perRule))
	for i := range a.perRule {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		r := a.perRule[i]
		r.Top = topTriples(r.triples, a.cfg.Top)
		if i >= 0 {
			rep.Rules = append(rep.Rules, r.RuleStats)
		} else if r.Matched > 0 {
			nr := r.RuleStats
			rep.NoRule = &nr
		}
		if i < 0 || r.Matched > 0 {
			continue
		}
		if r.reached == 0 {
			rep.NeverMatched = append(rep.NeverMatched, RuleRef{Index: i, Level: r.Level, Description: r.Description})
			continue
		}
		sh := Shadowed{RuleRef: RuleRef{Index: i, Level: r.Level, Description: r.Description}, Reached: r.reached}
		for w, n := range r.takenBy {
			sh.By = append(sh.By, Taken{Rule: w, Events: n})
		}
		sort.Slice(sh.By, func(x, y int) bool {
			if sh.By[x].Events != sh.By[y].Events {
				return sh.By[x].Events > sh.By[y].Events
			}
			return sh.By[x].Rule < sh.By[y].Rule
		})
		rep.Shadowed = append(rep.Shadowed, sh)
	}
	for _, g := range a.cmpGroups {
		cg := g.CompareGroup
		cg.Top = topTriples(g.triples, a.cfg.Top)
		rep.CompareGroups = append(rep.CompareGroups, cg)
		rep.CompareChanged += cg.Events
	}
	sort.Slice(rep.CompareGroups, func(i, j int) bool {
		x, y := rep.CompareGroups[i], rep.CompareGroups[j]
		if x.Events != y.Events {
			return x.Events > y.Events
		}
		if x.Rule != y.Rule {
			return x.Rule < y.Rule
		}
		return x.CompareRule < y.CompareRule
	})
	if a.cmpRules != nil {
		for i := range rep.CompareGroups {
			g := &rep.CompareGroups[i]
			if g.CompareRule >= 0 && g.CompareRule < len(a.cmpRules.descs) {
				g.CompareDescription = a.cmpRules.descs[g.CompareRule]
			}
			if a.rules != nil && g.Rule >= 0 && g.Rule < len(a.rules.descs) {
				g.Description = a.rules.descs[g.Rule]
			}
		}
	}
	for _, c := range a.critical {
		rep.Critical = append(rep.Critical, *c)
	}
	sort.Slice(rep.Critical, func(i, j int) bool { return rep.Critical[i].Name < rep.Critical[j].Name })
	for _, d := range a.alerts {
		rep.Detections = append(rep.Detections, *d)
	}
	sort.Slice(rep.Detections, func(i, j int) bool { return rep.Detections[i].Rule < rep.Detections[j].Rule })
	sort.Slice(rep.Dropped, func(i, j int) bool { return rep.Dropped[i].Reason < rep.Dropped[j].Reason })
	return rep
}
