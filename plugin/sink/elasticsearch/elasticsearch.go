// Package elasticsearch is the sink for Elasticsearch (7.17, 8, 9) and
// OpenSearch (2.x): the bulk API with idempotent create operations, item
// by item results, bounded in-flush retries, a dead-letter index, and the
// index template installed at start-up.
//
// Files by concern: config.go (keys), strftime.go (index names),
// encode.go (NDJSON bulk bodies), response.go (bulk results), client.go
// (hosts, TLS, auth), version.go (GET /), template.go (templates),
// deliver.go (the retry loop and dead letters).
package elasticsearch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
)

func init() { sink.Register("elasticsearch", New) }

// Sink delivers to Elasticsearch or OpenSearch. Deliver is safe for
// concurrent use (Fluent Bit output workers).
type Sink struct {
	cfg    *Config
	log    *flblog.Logger
	client *client

	info  atomic.Pointer[ServerInfo]
	ready atomic.Bool // version known and templates installed (or not wanted)
	// setupMu serialises setup attempts (start-up, background, flushes);
	// lastSetup is when the last one started (unix nanos).
	setupMu   sync.Mutex
	lastSetup atomic.Int64
	// setupUnreachable: the last setup attempt got no HTTP answer.
	setupUnreachable atomic.Bool

	// inflight holds a token for each bulk request in flight
	// (max_in_flight).
	inflight chan struct{}

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	lastAuthLog atomic.Int64 // unix nanos of the last credentials line

	stats Stats
}

// Stats are the sink's own counters.
type Stats struct {
	Requests  atomic.Int64 // bulk requests sent (each attempt)
	Docs      atomic.Int64 // documents sent (each attempt)
	RawBytes  atomic.Int64 // NDJSON bytes before compression
	WireBytes atomic.Int64 // request body bytes on the wire
}

// setupTimeout bounds the start-up calls (GET /, templates).
const setupTimeout = 10 * time.Second

// New builds the sink from the instance's properties: it validates every
// key, then asks the engine for its product and version and installs the
// templates. Neither step blocks start-up when the engine is down; they
// are retried in the background.
func New(p *config.Props, env sink.Env) (sink.Sink, error) {
	cfg, err := ParseConfig(p)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(cfg, env)
}

// NewWithConfig builds the sink from parsed settings (tests, benchmarks).
func NewWithConfig(cfg *Config, env sink.Env) (*Sink, error) {
	c := newClient(cfg)
	log := env.Log
	if log == nil {
		log = flblog.New(env.Instance, flblog.Warn)
	}
	s := &Sink{cfg: cfg, log: log, client: c, stop: make(chan struct{}), inflight: make(chan struct{}, max(cfg.MaxInFlight, 1))}
	s.info.Store(&ServerInfo{})
	if cfg.TLS.InsecureSkipVerify {
		log.Warnf("tls_verify is off: the server's certificate is not checked, so anyone on the path can read and alter the audit events")
	}
	where := "data stream " + cfg.DataStream
	if cfg.DataStream == "" {
		where = "index " + cfg.Index.Source()
	}
	log.Infof("elasticsearch: hosts=%s %s id_key=%v compress=%v bulk_max_bytes=%d timeout=%v retry_max_wait=%v auth=%s",
		c.hostList(), where, cfg.IDKey, map[bool]string{true: "gzip", false: "none"}[cfg.Gzip], cfg.BulkMaxBytes,
		cfg.Timeout, cfg.RetryMaxWait, c.auth.who())

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	err := s.setup(ctx)
	cancel()
	if err != nil {
		s.log.Warnf("start-up: %v; delivery goes on, retrying in the background", err)
		s.wg.Add(1)
		go s.setupLoop()
	}
	return s, nil
}

// setup asks GET / and installs the templates; nil once both are done.
func (s *Sink) setup(ctx context.Context) error {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	return s.setupLocked(ctx)
}

func (s *Sink) setupLocked(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	s.lastSetup.Store(time.Now().UnixNano())
	err := s.setupSteps(ctx)
	var te *transportError
	s.setupUnreachable.Store(errors.As(err, &te))
	return err
}

func (s *Sink) setupSteps(ctx context.Context) error {
	info := s.info.Load()
	if info.Version == "" {
		got, err := s.detect(ctx)
		if err != nil {
			return err
		}
		info = &got
		s.info.Store(info)
		msg := "engine: " + got.String()
		if got.Cluster != "" {
			msg += ", cluster " + got.Cluster
		}
		if bt := got.BodyType(); bt != "" && s.cfg.BodyMapping == "auto" {
			msg += ", bodies mapped as " + bt
		} else {
			msg += ", bodies kept in _source only (enabled: false)"
		}
		s.log.Infof("%s", msg)
		if got.Warning != "" {
			s.log.Warnf("%s", got.Warning)
		}
		if s.cfg.DataStream != "" && !got.DataStreams() {
			s.log.Errorf("data_stream %q: %s has no data streams (Elasticsearch 7.9+ or OpenSearch needed)", s.cfg.DataStream, got)
		}
	}
	if s.cfg.InstallTemplate {
		if err := s.install(ctx, *info); err != nil {
			return err
		}
	}
	s.ready.Store(true)
	return nil
}

// setupBeforeDelivery keeps documents from creating an index before its
// template is in. While start-up is unfinished a flush waits for a setup
// attempt in progress, then makes one itself when the last attempt could
// not reach the engine; if its own attempt cannot reach the engine either,
// it returns that error and the flush sends nothing (the bulk would fail
// the same way, or, worse, reach an engine that came back a moment later
// and create the index without its template). When the engine answered
// but refused (no privilege, say), attempts are left to the background
// loop and delivery goes on.
func (s *Sink) setupBeforeDelivery(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if s.ready.Load() {
		return nil
	}
	if last := s.lastSetup.Load(); last != 0 && !s.setupUnreachable.Load() && time.Now().UnixNano()-last < int64(30*time.Second) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, min(setupTimeout, s.cfg.Timeout))
	defer cancel()
	err := s.setupLocked(ctx)
	if err == nil {
		s.log.Infof("start-up completed before delivery")
		return nil
	}
	if s.setupUnreachable.Load() {
		return err
	}
	return nil
}

// setupLoop retries setup with a growing pause until it succeeds or the
// sink closes.
func (s *Sink) setupLoop() {
	defer s.wg.Done()
	wait := 5 * time.Second
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(wait):
		}
		if s.ready.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		err := s.setup(ctx)
		cancel()
		if err == nil {
			s.log.Infof("start-up completed")
			return
		}
		s.log.Warnf("start-up retry: %v", err)
		wait = min(wait*2, 5*time.Minute)
	}
}

// Info is what GET / said (zero until it answered).
func (s *Sink) Info() ServerInfo { return *s.info.Load() }

// Ready reports whether the version is known and the templates are in.
func (s *Sink) Ready() bool { return s.ready.Load() }

// Counters returns the sink's counters.
func (s *Sink) Counters() *Stats { return &s.stats }

// Close stops the background start-up retries and closes idle
// connections.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.client.http.CloseIdleConnections()
	})
	return nil
}
