// Package lokifake is an in-process stand-in for Grafana Loki's push API,
// written from Loki's documentation (HTTP API, push.proto, "Troubleshoot
// log ingestion", "Request validation and rate-limit errors", ordering and
// multi-tenancy pages). No Loki code is used.
//
// What it reproduces:
//   - POST /loki/api/v1/push with snappy+protobuf or JSON (gzip) bodies;
//   - tenants: X-Scope-OrgID, required (401 "no org id") when AuthEnabled,
//     else every push goes to tenant "fake" as in Loki without auth;
//   - validation with Loki's 400 messages: label syntax, no labels,
//     duplicate label names, line too long (max_line_size), too old
//     (reject_old_samples_max_age), too new (creation_grace_period),
//     structured metadata when disallowed;
//   - partial acceptance: valid entries of a request are stored even when
//     others are refused (the answer is then 400 listing the refused ones);
//   - ingester ordering: unordered writes (default) refuse entries more than
//     max_chunk_age/2 behind the stream's newest ("entry too far behind");
//     OrderedWrites refuses any older entry ("entry out of order");
//   - de-duplication: an entry identical to a stored one (same stream,
//     timestamp and line) is dropped silently and the push succeeds;
//   - ingestion rate limit per tenant (token bucket) → 429 with Loki's text;
//   - injected faults (FailNext) for 429/5xx;
//   - GET /loki/api/v1/query_range and /query with an equality stream
//     selector; GET /ready.
package lokifake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure the fake like Loki's limits_config.
type Options struct {
	// AuthEnabled requires X-Scope-OrgID; without it the tenant is "fake".
	AuthEnabled bool
	// MaxLineSize in bytes; 0 means Loki's default 256KB, <0 no limit.
	MaxLineSize int
	// RejectOldSamples with RejectOldSamplesMaxAge (default 168h). Off by
	// default here (Loki has it on) so fixed historical test data passes.
	RejectOldSamples       bool
	RejectOldSamplesMaxAge time.Duration
	// CreationGracePeriod: entries newer than now+this are refused as too
	// new; 0 means Loki's 10m, <0 no check.
	CreationGracePeriod time.Duration
	// OrderedWrites is unordered_writes: false.
	OrderedWrites bool
	// MaxChunkAge (default 2h): unordered writes accept entries down to
	// newest - MaxChunkAge/2 per stream.
	MaxChunkAge time.Duration
	// DisallowStructuredMetadata is allow_structured_metadata: false.
	DisallowStructuredMetadata bool
	// IngestionRateBytes per second and tenant (0: unlimited); burst
	// defaults to the rate.
	IngestionRateBytes  int
	IngestionBurstBytes int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Entry is a stored log entry.
type Entry struct {
	Timestamp time.Time
	Line      string
	Metadata  map[string]string
}

// Stream is a stored stream.
type Stream struct {
	Labels  string // canonical {a="b", c="d"}
	Pairs   map[string]string
	Entries []Entry // in arrival order
}

// Stats counts what the fake saw.
type Stats struct {
	Requests, Protobuf, JSON int
	Accepted, Duplicates     int
	Status                   map[int]int
	Rejected                 map[string]int // by Loki's discard reason
}

type tenant struct {
	streams map[string]*stream
	tokens  float64
	last    time.Time
}

type stream struct {
	Stream
	seen   map[entryKey]bool
	newest time.Time
}

type entryKey struct {
	ts   int64
	line string
}

type fault struct {
	status int
	body   string
}

// Server is a running fake.
type Server struct {
	*httptest.Server
	opts Options

	mu      sync.Mutex
	tenants map[string]*tenant
	faults  []fault
	stats   Stats
	pushes  []Push
}

// Push is one push request as received (for tests that inspect bodies).
type Push struct {
	Tenant      string
	ContentType string
	Encoding    string
	Header      http.Header
	Streams     []PushStream
	Status      int
}

// New starts a fake on a loopback port; it stops when the test ends.
func New(t testing.TB, opts Options) *Server {
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a fake; Close stops it.
func NewServer(opts Options) *Server {
	if opts.MaxLineSize == 0 {
		opts.MaxLineSize = 256 << 10
	}
	if opts.RejectOldSamplesMaxAge == 0 {
		opts.RejectOldSamplesMaxAge = 168 * time.Hour
	}
	if opts.CreationGracePeriod == 0 {
		opts.CreationGracePeriod = 10 * time.Minute
	}
	if opts.MaxChunkAge == 0 {
		opts.MaxChunkAge = 2 * time.Hour
	}
	if opts.IngestionBurstBytes == 0 {
		opts.IngestionBurstBytes = opts.IngestionRateBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, tenants: map[string]*tenant{}}
	s.stats.Status = map[int]int{}
	s.stats.Rejected = map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("/loki/api/v1/push", s.push)
	mux.HandleFunc("/loki/api/v1/query_range", s.query)
	mux.HandleFunc("/loki/api/v1/query", s.query)
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	s.Server = httptest.NewServer(mux)
	return s
}

// PushURL is the push endpoint.
func (s *Server) PushURL() string { return s.URL + "/loki/api/v1/push" }

// FailNext makes the next n pushes answer status with body (Loki's 429
// text when body is empty and status is 429).
func (s *Server) FailNext(n, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.faults = append(s.faults, fault{status, body})
	}
}

// SetDisallowStructuredMetadata switches allow_structured_metadata.
func (s *Server) SetDisallowStructuredMetadata(v bool) {
	s.mu.Lock()
	s.opts.DisallowStructuredMetadata = v
	s.mu.Unlock()
}

// Streams returns the tenant's streams sorted by labels (copies).
func (s *Server) Streams(tenantID string) []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return nil
	}
	out := make([]Stream, 0, len(t.streams))
	for _, st := range t.streams {
		c := st.Stream
		c.Entries = append([]Entry(nil), st.Entries...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Labels < out[j].Labels })
	return out
}

// Count is the number of stored entries of the tenant.
func (s *Server) Count(tenantID string) int {
	n := 0
	for _, st := range s.Streams(tenantID) {
		n += len(st.Entries)
	}
	return n
}

// Tenants lists the tenants with data.
func (s *Server) Tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.tenants {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.stats
	c.Status = map[int]int{}
	for k, v := range s.stats.Status {
		c.Status[k] = v
	}
	c.Rejected = map[string]int{}
	for k, v := range s.stats.Rejected {
		c.Rejected[k] = v
	}
	return c
}

// Pushes returns the requests received so far.
func (s *Server) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes...)
}

// Loki's messages (docs: troubleshoot-ingest, request-validation-rate-limits).
const (
	msgTooOld       = "entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s"
	msgTooNew       = "entry for stream '%s' has timestamp too new: %s"
	msgLineTooLong  = "max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes"
	msgSMDisallowed = "stream '%s' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
	msgOutOfOrder   = "entry with timestamp %s ignored, reason: 'entry out of order' for stream: %s,"
	msgTooFarBehind = "entry with timestamp %s ignored, reason: 'entry too far behind, entry timestamp is: %s, oldest acceptable timestamp is: %s',  for stream: %s,"
	msgRateLimited  = "ingestion rate limit exceeded for user %s (limit: %d bytes/sec) while attempting to ingest '%d' lines totaling '%d' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
	msgNoLabels     = "error at least one label pair is required per stream"
	msgDupLabel     = "stream '%s' has duplicate label name: '%s'"
	msgBadLabels    = "error parsing labels '%s' with error: %s"
)

func (s *Server) push(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tenantID := r.Header.Get("X-Scope-OrgID")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	reply := func(status int, msg string) {
		s.stats.Status[status]++
		if n := len(s.pushes); n > 0 && s.pushes[n-1].Status == 0 {
			s.pushes[n-1].Status = status
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, msg+"\n")
	}
	if tenantID == "" {
		if s.opts.AuthEnabled {
			reply(http.StatusUnauthorized, "no org id")
			return
		}
		tenantID = "fake"
	}
	streams, err := DecodeBody(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), body)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		s.stats.JSON++
	} else {
		s.stats.Protobuf++
	}
	s.pushes = append(s.pushes, Push{Tenant: tenantID, ContentType: r.Header.Get("Content-Type"),
		Encoding: r.Header.Get("Content-Encoding"), Header: r.Header.Clone(), Streams: streams})
	if err != nil {
		reply(http.StatusBadRequest, err.Error())
		return
	}
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		if f.body == "" && f.status == http.StatusTooManyRequests {
			f.body = fmt.Sprintf(msgRateLimited, tenantID, s.opts.IngestionRateBytes, 0, 0)
		}
		reply(f.status, f.body)
		return
	}
	now := s.opts.Now()

	// Distributor: validate streams and entries.
	type valid struct {
		labels string
		pairs  []Pair
		e      PushEntry
	}
	var keep []valid
	var errs []string
	reject := func(reason, msg string) {
		s.stats.Rejected[reason]++
		errs = append(errs, msg)
	}
	total := 0
	for _, ps := range streams {
		total += len(ps.Entries)
		pairs, err := ParseLabels(ps.Labels)
		if err != nil {
			reply(http.StatusBadRequest, fmt.Sprintf(msgBadLabels, ps.Labels, err))
			return
		}
		if len(pairs) == 0 {
			reply(http.StatusBadRequest, msgNoLabels)
			return
		}
		labels := FormatLabels(pairs)
		for i := 1; i < len(pairs); i++ {
			if pairs[i].Name == pairs[i-1].Name {
				reply(http.StatusBadRequest, fmt.Sprintf(msgDupLabel, labels, pairs[i].Name))
				return
			}
		}
		for _, e := range ps.Entries {
			switch {
			case s.opts.MaxLineSize > 0 && len(e.Line) > s.opts.MaxLineSize:
				reject("line_too_long", fmt.Sprintf(msgLineTooLong, s.opts.MaxLineSize, labels, len(e.Line)))
			case s.opts.RejectOldSamples && e.Timestamp.Before(now.Add(-s.opts.RejectOldSamplesMaxAge)):
				reject("greater_than_max_sample_age", fmt.Sprintf(msgTooOld, labels,
					e.Timestamp.UTC().Format(time.RFC3339), now.Add(-s.opts.RejectOldSamplesMaxAge).UTC().Format(time.RFC3339)))
			case s.opts.CreationGracePeriod > 0 && e.Timestamp.After(now.Add(s.opts.CreationGracePeriod)):
				reject("too_far_in_future", fmt.Sprintf(msgTooNew, labels, e.Timestamp.UTC().Format(time.RFC3339)))
			case len(e.Metadata) > 0 && s.opts.DisallowStructuredMetadata:
				reject("disallowed_structured_metadata", fmt.Sprintf(msgSMDisallowed, labels))
			default:
				keep = append(keep, valid{labels, pairs, e})
			}
		}
	}
	if len(keep) == 0 && len(errs) > 0 {
		reply(http.StatusBadRequest, strings.Join(errs, "\n"))
		return
	}

	// Rate limit: the whole request or nothing.
	t := s.tenants[tenantID]
	if t == nil {
		t = &tenant{streams: map[string]*stream{}, tokens: float64(s.opts.IngestionBurstBytes), last: now}
		s.tenants[tenantID] = t
	}
	if s.opts.IngestionRateBytes > 0 {
		size := 0
		for _, v := range keep {
			size += len(v.e.Line)
			for _, m := range v.e.Metadata {
				size += len(m.Name) + len(m.Value)
			}
		}
		t.tokens += now.Sub(t.last).Seconds() * float64(s.opts.IngestionRateBytes)
		if max := float64(s.opts.IngestionBurstBytes); t.tokens > max {
			t.tokens = max
		}
		t.last = now
		if float64(size) > t.tokens {
			s.stats.Rejected["rate_limited"] += len(keep)
			reply(http.StatusTooManyRequests, fmt.Sprintf(msgRateLimited, tenantID, s.opts.IngestionRateBytes, len(keep), size))
			return
		}
		t.tokens -= float64(size)
	}

	// Ingester: ordering and de-duplication, per stream.
	var ignored []string
	for _, v := range keep {
		st := t.streams[v.labels]
		if st == nil {
			pm := map[string]string{}
			for _, p := range v.pairs {
				pm[p.Name] = p.Value
			}
			st = &stream{Stream: Stream{Labels: v.labels, Pairs: pm}, seen: map[entryKey]bool{}}
			t.streams[v.labels] = st
		}
		k := entryKey{v.e.Timestamp.UnixNano(), v.e.Line}
		if st.seen[k] {
			s.stats.Duplicates++
			continue
		}
		if s.opts.OrderedWrites && v.e.Timestamp.Before(st.newest) {
			s.stats.Rejected["out_of_order"]++
			ignored = append(ignored, fmt.Sprintf(msgOutOfOrder, v.e.Timestamp.String(), v.labels))
			continue
		}
		if cutoff := st.newest.Add(-s.opts.MaxChunkAge / 2); !s.opts.OrderedWrites && !st.newest.IsZero() && v.e.Timestamp.Before(cutoff) {
			s.stats.Rejected["too_far_behind"]++
			ignored = append(ignored, fmt.Sprintf(msgTooFarBehind, v.e.Timestamp.String(),
				v.e.Timestamp.UTC().Format(time.RFC3339), cutoff.UTC().Format(time.RFC3339), v.labels))
			continue
		}
		st.seen[k] = true
		if v.e.Timestamp.After(st.newest) {
			st.newest = v.e.Timestamp
		}
		var md map[string]string
		if len(v.e.Metadata) > 0 {
			md = map[string]string{}
			for _, m := range v.e.Metadata {
				md[m.Name] = m.Value
			}
		}
		st.Entries = append(st.Entries, Entry{Timestamp: v.e.Timestamp, Line: v.e.Line, Metadata: md})
		s.stats.Accepted++
	}
	if len(ignored) > 0 {
		errs = append(errs, strings.Join(ignored, "\n")+fmt.Sprintf("\ntotal ignored: %d out of %d", len(ignored), total))
	}
	if len(errs) > 0 {
		reply(http.StatusBadRequest, strings.Join(errs, "\n"))
		return
	}
	reply(http.StatusNoContent, "")
}

// query answers a stream selector with equality matchers, newest first
// (direction=backward, Loki's default) or oldest first (forward).
func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tenantID := r.Header.Get("X-Scope-OrgID")
	if tenantID == "" {
		if s.opts.AuthEnabled {
			http.Error(w, "no org id", http.StatusUnauthorized)
			return
		}
		tenantID = "fake"
	}
	sel, err := ParseLabels(r.Form.Get("query"))
	if err != nil || len(sel) == 0 {
		http.Error(w, fmt.Sprintf("parse error: only {name=\"value\", …} selectors are supported: %v", err), http.StatusBadRequest)
		return
	}
	limit := 100
	if l := r.Form.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit <= 0 {
			http.Error(w, "invalid limit", http.StatusBadRequest)
			return
		}
	}
	forward := r.Form.Get("direction") == "forward"
	categorize := strings.Contains(r.Header.Get("X-Loki-Response-Encoding-Flags"), "categorize-labels")
	type hit struct {
		st *Stream
		e  Entry
	}
	var hits []hit
	for _, st := range s.Streams(tenantID) {
		ok := true
		for _, m := range sel {
			if st.Pairs[m.Name] != m.Value {
				ok = false
				break
			}
		}
		if ok {
			st := st
			for _, e := range st.Entries {
				hits = append(hits, hit{&st, e})
			}
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if forward {
			return hits[i].e.Timestamp.Before(hits[j].e.Timestamp)
		}
		return hits[i].e.Timestamp.After(hits[j].e.Timestamp)
	})
	if len(hits) > limit {
		hits = hits[:limit]
	}
	type result struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	var results []*result
	byKey := map[string]*result{}
	for _, h := range hits {
		lbls := map[string]string{}
		for k, v := range h.st.Pairs {
			lbls[k] = v
		}
		val := []any{strconv.FormatInt(h.e.Timestamp.UnixNano(), 10), h.e.Line}
		if categorize {
			if len(h.e.Metadata) > 0 {
				val = append(val, map[string]any{"structuredMetadata": h.e.Metadata})
			}
		} else {
			for k, v := range h.e.Metadata { // Loki merges them into the labels
				lbls[k] = v
			}
		}
		ps := make([]Pair, 0, len(lbls))
		for k, v := range lbls {
			ps = append(ps, Pair{k, v})
		}
		key := FormatLabels(ps)
		res := byKey[key]
		if res == nil {
			res = &result{Stream: lbls}
			byKey[key] = res
			results = append(results, res)
		}
		res.Values = append(res.Values, val)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": "streams", "result": results, "stats": map[string]any{}},
	})
}
