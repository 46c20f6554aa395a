// Package loki is the sink for Grafana Loki's push API (and servers that
// speak it, such as VictoriaLogs): protobuf+snappy or JSON push bodies,
// low-cardinality stream labels, structured metadata, tenants, and retries
// that never duplicate an entry (lines are byte-identical on every re-send,
// so Loki drops the copies).
//
// Files: config.go (keys), fields.go (event fields), labels.go (stream
// labels), batch.go (streams, order, split), encode.go (protobuf and JSON
// bodies), logfmt.go, client.go (HTTP, auth, backoff), reject.go (Loki's
// 400 reasons).
package loki

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/sink"
)

func init() { sink.Register("loki", New) }

// Sink pushes documents to Loki. Deliver is safe for concurrent use.
type Sink struct {
	cfg    *Config
	env    sink.Env
	client *http.Client
	token  tokenCache
	sent   *sentCache

	metaOff  atomic.Bool
	metaOnce sync.Once

	// inflight holds a token per push request in flight (max_in_flight).
	inflight chan struct{}

	stats Stats
}

// Stats counts what the sink did; all fields are read with Snapshot.
type Stats struct {
	Requests      atomic.Int64 // HTTP requests sent
	Entries       atomic.Int64 // entries accepted (2xx, or kept in a partial 400)
	WireBytes     atomic.Int64 // request body bytes sent (compressed)
	Retries       atomic.Int64 // requests repeated after 429/5xx/connection errors
	GaveUp        atomic.Int64 // batches handed back to Fluent Bit (FLB_RETRY)
	TooOld        atomic.Int64 // entries refused as too old
	OutOfOrder    atomic.Int64 // entries refused as out of order / too far behind
	OtherRejected atomic.Int64 // entries refused for any other reason
	MetadataOff   atomic.Bool  // structured metadata was refused and is no longer sent
	SplitOnTooBig atomic.Int64 // requests halved after 413
	Skipped       atomic.Int64 // entries of re-sent chunks already pushed (not sent again)
}

// StatsSnapshot is a copy of Stats.
type StatsSnapshot struct {
	Requests, Entries, WireBytes, Retries, GaveUp int64
	TooOld, OutOfOrder, OtherRejected, Split      int64
	Skipped                                       int64
	MetadataOff                                   bool
}

// Snapshot copies the counters.
func (s *Sink) Snapshot() StatsSnapshot {
	st := &s.stats
	return StatsSnapshot{
		Requests: st.Requests.Load(), Entries: st.Entries.Load(), WireBytes: st.WireBytes.Load(),
		Retries: st.Retries.Load(), GaveUp: st.GaveUp.Load(), TooOld: st.TooOld.Load(),
		OutOfOrder: st.OutOfOrder.Load(), OtherRejected: st.OtherRejected.Load(),
		Split: st.SplitOnTooBig.Load(), MetadataOff: st.MetadataOff.Load(), Skipped: st.Skipped.Load(),
	}
}

// New builds the loki sink from its keys (docs/loki.md).
func New(p *config.Props, env sink.Env) (sink.Sink, error) {
	return NewSink(p, env)
}

// NewSink is New returning the concrete type (tests read its Stats).
func NewSink(p *config.Props, env sink.Env) (*Sink, error) {
	cfg, err := parseConfig(p)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, env: env, client: newHTTPClient(cfg), sent: newSentCache(cfg.SentCacheEntries),
		inflight: make(chan struct{}, max(cfg.MaxInFlight, 1))}
	s.token.path = cfg.BearerTokenFile
	if cfg.BearerTokenFile != "" {
		if _, err := s.token.get(); err != nil {
			return nil, p.Invalid("bearer_token_file", "a file holding a token (%v)", err)
		}
	}
	if len(cfg.HighCardinalityLabels) > 0 {
		env.Log.Warnf("loki: labels %v are high-cardinality (one stream per value): Loki's index and memory grow with them; prefer structured_metadata", cfg.HighCardinalityLabels)
	}
	if cfg.TLS != nil && cfg.TLS.InsecureSkipVerify {
		env.Log.Warnf("loki: tls_verify is off: the server's certificate is not checked, so anyone on the path can read and alter the audit events")
	}
	env.Log.Infof("loki: %s", cfg)
	return s, nil
}

// Close releases idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Deliver groups the documents into streams, splits them at
// batch_max_bytes and pushes each request in turn. A request that still
// fails transiently after retry_max_wait marks its items, and those of the
// requests not yet sent, Retry.
func (s *Sink) Deliver(ctx context.Context, items []sink.Item) error {
	if len(items) == 0 {
		return nil
	}
	streams := s.group(items)
	if len(streams) == 0 {
		return nil // all of it pushed before
	}
	batches := split(streams, s.cfg.BatchMaxBytes, s.withMeta())
	rs := &retryState{}
	for bi, b := range batches {
		if giveUp, reason := s.sendBatch(ctx, items, b, rs); giveUp {
			s.stats.GaveUp.Add(1)
			for _, rest := range batches[bi+1:] {
				mark(items, rest, sink.Retry, "not sent: "+reason)
			}
			return nil
		}
	}
	return nil
}

func (s *Sink) withMeta() bool { return len(s.cfg.Metadata) > 0 && !s.metaOff.Load() }

// disableMetadata switches to lines only after the server refused
// structured metadata, and says so once.
func (s *Sink) disableMetadata(body string) {
	s.metaOff.Store(true)
	s.stats.MetadataOff.Store(true)
	s.metaOnce.Do(func() {
		s.env.Log.Warnf("loki: the server refuses structured metadata (%s); sending the lines only from now on (the fields are still in each line)", firstLine(body, 300))
	})
}

// remember records entries the server now has.
func (s *Sink) remember(streams []stream) {
	if s.sent == nil {
		return
	}
	var keys []sentKey
	for si := range streams {
		for ei := range streams[si].entries {
			keys = append(keys, streams[si].entries[ei].key)
		}
	}
	s.sent.add(keys)
}

// mark sets the outcome of every item of the streams.
func mark(items []sink.Item, streams []stream, o sink.Outcome, reason string) {
	for si := range streams {
		for ei := range streams[si].entries {
			it := &items[streams[si].entries[ei].item]
			it.Outcome = o
			if o != sink.Delivered {
				it.Reason = reason
			}
		}
	}
}

func countEntries(streams []stream) int {
	n := 0
	for i := range streams {
		n += len(streams[i].entries)
	}
	return n
}

func firstLine(s string, max int) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			s = s[:i]
			break
		}
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

var _ fmt.Stringer = (*Config)(nil)
