// Package plugin is one kaudit [OUTPUT] instance: its configuration, its
// pipeline, its sink, and what a flush returns to Fluent Bit.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"

	// The sinks register themselves.
	_ "github.com/kaudit/kaudit/plugin/sink/elasticsearch"
	_ "github.com/kaudit/kaudit/plugin/sink/loki"
	_ "github.com/kaudit/kaudit/plugin/sink/stdout"
)

// Return codes Fluent Bit understands (flb_macros.h).
const (
	FlbError = 0
	FlbOK    = 1
	FlbRetry = 2
)

// Instance is one [OUTPUT] section.
type Instance struct {
	Name     string
	Config   *config.Config
	Log      *flblog.Logger
	Stats    Stats
	pipeline *filter.Pipeline
	sink     sink.Sink
	chain    *manifester    // nil unless chain_key_file is set (manifest.go)
	metrics  *metricsHandle // nil unless metrics_port is set (metrics.go)

	stop      chan struct{}
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
}

var instanceSeq atomic.Int64

// NextName names instances like Fluent Bit does (kaudit.0, kaudit.1, …),
// counting this process's kaudit instances.
func NextName() string { return fmt.Sprintf("kaudit.%d", instanceSeq.Add(1)-1) }

// New parses the properties, loads the pipeline and opens the sink. The
// error names the instance and the offending key.
func New(p *config.Props) (*Instance, error) {
	cfg, err := config.Parse(p)
	if err != nil {
		return nil, err
	}
	level, _ := flblog.ParseLevel(cfg.LogLevel)
	log := flblog.New(p.Instance, level)
	return NewWithLogger(p, cfg, log)
}

// NewWithLogger is New with a given config and logger (tests capture the
// log output).
func NewWithLogger(p *config.Props, cfg *config.Config, log *flblog.Logger) (*Instance, error) {
	for _, k := range config.Shadowed(p) {
		log.Warnf("property %q is Fluent Bit's own and is ignored by kaudit; see the README for kaudit's tls_* and hosts keys", k)
	}
	pl, err := filter.NewPipeline(cfg.Filter)
	if err != nil {
		var oe *filter.OptionError
		if errors.As(err, &oe) {
			return nil, &config.Error{Instance: p.Instance, Key: oe.Key, Value: oe.Value, Allowed: oe.Err.Error()}
		}
		return nil, fmt.Errorf("%s: %w", p.Instance, err)
	}
	factory, ok := sink.Lookup(cfg.Output)
	if !ok {
		return nil, &config.Error{Instance: p.Instance, Key: "output", Value: cfg.Output, Allowed: "this build has no such sink"}
	}
	ch, err := openChain(p, cfg, log)
	if err != nil {
		return nil, err
	}
	env := sink.Env{Instance: p.Instance, Log: log, Cluster: cfg.Filter.Cluster, Node: cfg.Filter.Node}
	s, err := factory(p, env)
	if err != nil {
		return nil, err
	}
	in := newInstance(p, cfg, log, pl, s)
	in.chain = ch.withSink(p, cfg, s)
	return in, nil
}

// NewWithSink builds an instance that delivers to s (tests, the CLI).
func NewWithSink(p *config.Props, cfg *config.Config, log *flblog.Logger, s sink.Sink) (*Instance, error) {
	pl, err := filter.NewPipeline(cfg.Filter)
	if err != nil {
		return nil, err
	}
	ch, err := openChain(p, cfg, log)
	if err != nil {
		return nil, err
	}
	in := newInstance(p, cfg, log, pl, s)
	in.chain = ch.withSink(p, cfg, s)
	return in, nil
}

func newInstance(p *config.Props, cfg *config.Config, log *flblog.Logger, pl *filter.Pipeline, s sink.Sink) *Instance {
	in := &Instance{Name: p.Instance, Config: cfg, Log: log, pipeline: pl, sink: s, stop: make(chan struct{})}
	if cfg.StatsInterval > 0 {
		in.wg.Add(1)
		go in.statsLoop(cfg.StatsInterval)
	}
	if cfg.MetricsPort > 0 {
		m, err := startMetrics(in, cfg.MetricsPort)
		if err != nil {
			log.Errorf("metrics not served, running on without them: %v", err)
		}
		in.metrics = m
	}
	log.Infof("initialised: output=%s record_key=%s policy_file=%q critical_workloads_file=%q",
		cfg.Output, cfg.Filter.RecordKey, cfg.Filter.PolicyFile, cfg.Filter.CriticalFile)
	return in
}

func (in *Instance) statsLoop(every time.Duration) {
	defer in.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-in.stop:
			return
		case <-t.C:
			in.Log.Infof("stats: %s", &in.Stats)
		}
	}
}

// maxMalformedLogged bounds the malformed-record lines of one flush.
const maxMalformedLogged = 3

// Flush handles one chunk and returns FLB_OK, FLB_RETRY or FLB_ERROR. It
// never panics: a panic is logged with its stack and becomes FLB_RETRY.
func (in *Instance) Flush(data []byte, tag string) (ret int) {
	defer func() {
		if ret == FlbOK {
			in.Stats.LastOK.Store(time.Now().UnixNano())
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			in.Log.Errorf("panic in flush of tag %q (chunk retried): %v\n%s", tag, r, debug.Stack())
			in.Stats.Retried.Add(1)
			ret = FlbRetry
		}
	}()
	if in.closed.Load() {
		in.Log.Warnf("flush after exit (tag %q): retried", tag)
		return FlbRetry
	}
	in.Stats.Flushes.Add(1)

	// Documents of one flush share a few large buffers (docArena) and
	// items are sized from the chunk: a Metadata-level event is ~1 KB.
	items := make([]sink.Item, 0, len(data)/768+8)
	var malformed []filter.Malformed
	docs := newDocArena(len(data))
	emit := func(x *filter.Event) { items = append(items, sink.Item{Doc: docs.document(x)}) }
	keep := func(ev *filter.Event) {
		if d := in.pipeline.Process(ev, emit); d != filter.Keep {
			in.Stats.drop(d, 1)
			return
		}
		in.Stats.event(ev)
		items = append(items, sink.Item{Doc: docs.document(ev)})
	}
	res, err := filter.DecodeChunk(data, tag, in.Config.Filter.RecordKey, keep, func(m filter.Malformed) {
		malformed = append(malformed, m)
	})
	in.Stats.Records.Add(int64(res.Records))
	in.Stats.Events.Add(int64(res.Events))
	in.Stats.Malformed.Add(int64(res.Malformed))
	if err != nil {
		in.Stats.Errors.Add(1)
		in.Log.Errorf("chunk of tag %q (%d bytes) dropped: %v", tag, len(data), err)
		return FlbError
	}
	in.logMalformed(tag, res, malformed)
	if len(items) == 0 {
		return FlbOK
	}
	return in.deliver(tag, items)
}

func (in *Instance) logMalformed(tag string, res filter.ChunkResult, ms []filter.Malformed) {
	if len(ms) == 0 {
		return
	}
	for i, m := range ms {
		if i == maxMalformedLogged {
			in.Log.Warnf("tag %q: %d more malformed records in this chunk", tag, len(ms)-i)
			break
		}
		in.Log.Warnf("tag %q: malformed record %d skipped: %v", tag, m.Record, m.Err)
	}
	if res.Truncated {
		in.Log.Errorf("tag %q: chunk truncated after %d records; the rest of it cannot be decoded", tag, res.Records)
	}
}

func (in *Instance) deliver(tag string, items []sink.Item) int {
	ctx, cancel := context.WithTimeout(context.Background(), in.Config.FlushTimeout)
	defer cancel()
	err := in.sink.Deliver(ctx, items)
	var shipped, dup, rejected, retry int64
	for i := range items {
		switch items[i].Outcome {
		case sink.Delivered:
			shipped++
			if items[i].Duplicate {
				dup++
			}
		case sink.Rejected:
			rejected++
		default:
			retry++
		}
	}
	in.Stats.Shipped.Add(shipped)
	in.Stats.Duplicate.Add(dup)
	in.Stats.Rejected.Add(rejected)
	if err != nil || retry > 0 {
		in.Stats.Retried.Add(1)
		reason := "some documents failed transiently"
		if err != nil {
			reason = err.Error()
		}
		in.Log.Warnf("tag %q: %d of %d documents not delivered, chunk retried: %s", tag, retry, len(items), reason)
		return FlbRetry
	}
	if in.chain != nil {
		if err := in.appendManifest(ctx, items); err != nil {
			in.Stats.Retried.Add(1)
			in.Log.Warnf("tag %q: %d documents delivered but their manifest was not, chunk retried: %v", tag, shipped, err)
			return FlbRetry
		}
	}
	return FlbOK
}

// Close stops the instance and its sink, logging the final counters.
func (in *Instance) Close() error {
	var err error
	in.closeOnce.Do(func() {
		in.closed.Store(true)
		close(in.stop)
		in.wg.Wait()
		err = in.sink.Close()
		in.metrics.stop()
		removeLive(in)
		in.Log.Infof("exit: %s", &in.Stats)
	})
	return err
}
