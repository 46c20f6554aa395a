package filter

import (
	"fmt"
	"net/netip"
	"time"
)

// Options configure a Pipeline. The plugin fills them from its [OUTPUT]
// properties, the CLI from its flags.
type Options struct {
	// RecordKey is the record field holding the raw audit JSON ("log").
	RecordKey string

	PolicyFile     string
	CriticalFile   string
	DetectionsFile string

	TrustedNetworks []netip.Prefix
	Cluster         string
	Node            string
	SlowThreshold   time.Duration
	// SlowByVerb overrides SlowThreshold for the verbs it names.
	SlowByVerb map[string]time.Duration

	OnlyCritical bool
	AlertsOnly   bool

	RedactSecrets      bool
	MaxEventBytes      int
	LabelCacheSize     int
	CorrelationMaxKeys int
	EmitAlertRecords   bool

	// Now is the clock (tests use a fake one); nil means time.Now.
	Now func() time.Time
}

// OptionError is an option the pipeline cannot work with; Key is the
// plugin property it came from.
type OptionError struct {
	Key   string
	Value string
	Err   error
}

func (e *OptionError) Error() string { return fmt.Sprintf("%s %q: %v", e.Key, e.Value, e.Err) }
func (e *OptionError) Unwrap() error { return e.Err }

// Drop is why an event is not shipped; "" means it is kept.
type Drop string

// Drop reasons, as counted in the statistics.
const (
	Keep          Drop = ""
	DropPolicy    Drop = "policy_none"
	DropOmitStage Drop = "omit_stage"
	DropNotCrit   Drop = "not_critical"
	DropNoAlert   Drop = "no_alert"
)

// Stage is one step of the pipeline.
type Stage interface {
	// Process examines and may change ev; a non-empty Drop stops it.
	Process(ev *Event) Drop
}

// Pipeline runs the stages in order: policy, redaction, enrichment,
// critical workloads, detections, then the only_critical/alerts_only
// gates.
type Pipeline struct {
	opts   Options
	stages []Stage
}

// NewPipeline loads the files the options name and builds the stages.
func NewPipeline(opts Options) (*Pipeline, error) {
	if opts.RecordKey == "" {
		opts.RecordKey = "log"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pipeline{opts: opts}
	// Each constructor returns nil when its stage has nothing to do.
	for _, build := range []func(*Options) (Stage, error){
		newPolicyStage,   // policy.go: re-evaluate level, drop None/omitStages, strip bodies
		newRedactStage,   // redact.go: Secret data, tokens, max_event_bytes
		newEnrichStage,   // enrich.go: actor, action, object, outcome, latency, source, user agent
		newCriticalStage, // critical.go: critical workloads, expected actors, windows, label cache
		newDetectStage,   // detect.go: single-event rules and windowed correlation
		newGateStage,     // only_critical / alerts_only
	} {
		st, err := build(&p.opts)
		if err != nil {
			return nil, err
		}
		if st != nil {
			p.stages = append(p.stages, st)
		}
	}
	return p, nil
}

// gateStage ships only what only_critical / alerts_only ask for.
type gateStage struct{ onlyCritical, alertsOnly bool }

func newGateStage(o *Options) (Stage, error) {
	if !o.OnlyCritical && !o.AlertsOnly {
		return nil, nil
	}
	return gateStage{o.OnlyCritical, o.AlertsOnly}, nil
}

func (g gateStage) Process(ev *Event) Drop {
	crit := len(ev.Kaudit.Critical) > 0
	if g.onlyCritical && !crit {
		return DropNotCrit
	}
	if g.alertsOnly && !crit && len(ev.Kaudit.Alerts) == 0 {
		return DropNoAlert
	}
	return Keep
}

// Options returns the options the pipeline was built with.
func (p *Pipeline) Options() Options { return p.opts }

// Process runs ev through every stage; it returns why ev is dropped, or
// Keep. Synthetic records a stage attached to ev (Event.Emit) are passed
// to emit, whether ev itself is kept or not.
func (p *Pipeline) Process(ev *Event, emit func(*Event)) Drop {
	d := Keep
	for _, s := range p.stages {
		if d = s.Process(ev); d != Keep {
			break
		}
	}
	for _, x := range ev.TakeEmitted() {
		if emit != nil {
			emit(x)
		}
	}
	return d
}
