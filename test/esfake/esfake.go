// Package esfake is a small in-memory stand-in for Elasticsearch and
// OpenSearch, for what a real OpenSearch node cannot show: an
// Elasticsearch 8/9 `GET /` answer with X-Elastic-Product, basic, API key
// and bearer authentication, TLS with client certificates, and injected
// failures (whole-request statuses, per-item statuses, delays, 413s).
//
// It implements the few calls the elasticsearch sink makes: GET /,
// PUT /_index_template/NAME, PUT /_data_stream/NAME and POST /_bulk with
// create operations (201 for a new id, 409 for a known one, gzip bodies),
// and GET /INDEX/_count for tests.
package esfake

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options shape the fake.
type Options struct {
	// Product is "elasticsearch" (default) or "opensearch".
	Product string
	// Version is version.number (default 8.17.0, or 2.19.0 for OpenSearch).
	Version string
	// NoProductHeader leaves out X-Elastic-Product (a fake "Elasticsearch").
	NoProductHeader bool

	// Credentials the fake demands when set (any one accepted).
	User, Password string
	APIKey         string // the encoded form, as in "Authorization: ApiKey …"
	Bearer         string

	// TLS serves HTTPS with this config (see CA.ServerTLS).
	TLS *tls.Config

	// MaxBodyBytes answers 413 to larger bulk bodies (after gunzip), as
	// http.max_content_length does; 0 for no limit.
	MaxBodyBytes int
}

// Op is one bulk operation as the fake saw it.
type Op struct {
	Action string // create, index, …
	Index  string
	ID     string // "" when the client sent none
	Source []byte
}

// Hooks inject failures. Each may be nil; each may be swapped while the
// server runs (Server.SetHooks).
type Hooks struct {
	// Bulk runs first for each bulk request (n counts bulk requests from
	// 1). A non-zero status is answered as is with body (or a generic
	// error body), and nothing is stored.
	Bulk func(n int, ops []Op) (status int, body string)
	// Item decides one item's result; status 0 stores it normally.
	Item func(n int, op Op) (status int, errType, reason string)
	// Delay sleeps before answering bulk request n.
	Delay func(n int) time.Duration
}

// Server is a running fake.
type Server struct {
	*httptest.Server
	opts Options

	mu        sync.Mutex
	hooks     Hooks
	docs      map[string]map[string][]byte // index → id → source
	templates map[string][]byte
	streams   map[string]bool
	requests  []Request

	bulkN atomic.Int64
	autoN atomic.Int64
}

// Request is one request the fake received.
type Request struct {
	Method, Path string
	Header       http.Header
	BodyBytes    int // on the wire
	Status       int
}

// Start runs a fake until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Product == "" {
		opts.Product = "elasticsearch"
	}
	if opts.Version == "" {
		opts.Version = map[string]string{"elasticsearch": "8.17.0", "opensearch": "2.19.0"}[opts.Product]
	}
	s := &Server{opts: opts, docs: map[string]map[string][]byte{}, templates: map[string][]byte{}, streams: map[string]bool{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if opts.TLS != nil {
		s.Server.TLS = opts.TLS
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// SetHooks replaces the failure hooks.
func (s *Server) SetHooks(h Hooks) {
	s.mu.Lock()
	s.hooks = h
	s.mu.Unlock()
}

// Requests returns what the fake received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Docs returns index's documents by id.
func (s *Server) Docs(index string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for id, d := range s.docs[index] {
		out[id] = d
	}
	return out
}

// Count is the number of documents in index.
func (s *Server) Count(index string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.docs[index])
}

// Indices lists the indices holding documents.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.docs {
		out = append(out, k)
	}
	return out
}

// Template returns an installed template's body.
func (s *Server) Template(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.templates[name]
}

// DataStream reports whether the data stream was created.
func (s *Server) DataStream(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[name]
}

func (s *Server) authorized(r *http.Request) bool {
	o := s.opts
	if o.User == "" && o.APIKey == "" && o.Bearer == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	if o.User != "" {
		if u, p, ok := r.BasicAuth(); ok && u == o.User && p == o.Password {
			return true
		}
	}
	if o.APIKey != "" && h == "ApiKey "+o.APIKey {
		return true
	}
	if o.Bearer != "" && h == "Bearer "+o.Bearer {
		return true
	}
	return false
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rec := &recorder{ResponseWriter: w, status: 200}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), BodyBytes: len(raw), Status: rec.status})
		s.mu.Unlock()
	}()
	w = rec
	if s.opts.Product == "elasticsearch" && !s.opts.NoProductHeader {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	w.Header().Set("Content-Type", "application/json")
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="security"`)
		writeError(w, http.StatusUnauthorized, "security_exception", "unable to authenticate user for REST request [/_bulk]")
		return
	}
	body := raw
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			writeError(w, 400, "parse_exception", "bad gzip body: "+err.Error())
			return
		}
	}
	path := strings.TrimRight(r.URL.Path, "/")
	switch {
	case r.Method == http.MethodGet && path == "":
		s.root(w)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/_index_template/"):
		if !json.Valid(body) {
			writeError(w, 400, "x_content_parse_exception", "not JSON")
			return
		}
		s.mu.Lock()
		s.templates[strings.TrimPrefix(path, "/_index_template/")] = body
		s.mu.Unlock()
		io.WriteString(w, `{"acknowledged":true}`)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/_data_stream/"):
		name := strings.TrimPrefix(path, "/_data_stream/")
		s.mu.Lock()
		exists := s.streams[name]
		s.streams[name] = true
		s.mu.Unlock()
		if exists {
			writeError(w, 400, "resource_already_exists_exception", "data_stream ["+name+"] already exists")
			return
		}
		io.WriteString(w, `{"acknowledged":true}`)
	case r.Method == http.MethodPost && path == "/_bulk":
		s.bulk(w, body)
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/_count"):
		fmt.Fprintf(w, `{"count":%d}`, s.Count(strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/_count")))
	default:
		writeError(w, 404, "no_handler", r.Method+" "+path)
	}
}

func (s *Server) root(w http.ResponseWriter) {
	v := map[string]any{"number": s.opts.Version, "build_flavor": "default", "lucene_version": "9.12.0"}
	tagline := "You Know, for Search"
	if s.opts.Product == "opensearch" {
		v = map[string]any{"distribution": "opensearch", "number": s.opts.Version, "lucene_version": "9.12.1"}
		tagline = "The OpenSearch Project: https://opensearch.org/"
	}
	json.NewEncoder(w).Encode(map[string]any{"name": "fake-0", "cluster_name": "esfake", "version": v, "tagline": tagline})
}

func writeError(w http.ResponseWriter, status int, typ, reason string) {
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"type": typ, "reason": reason, "root_cause": []any{map[string]any{"type": typ, "reason": reason}}}, "status": status})
	w.Write(b)
}

// ParseBulk splits an NDJSON bulk body into operations.
func ParseBulk(body []byte) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			return nil, fmt.Errorf("action line %q: %v", line, err)
		}
		var op Op
		for k, v := range action {
			op.Action, op.Index, op.ID = k, v.Index, v.ID
		}
		if !sc.Scan() {
			return nil, fmt.Errorf("action without a document")
		}
		op.Source = append([]byte(nil), sc.Bytes()...)
		ops = append(ops, op)
	}
	return ops, sc.Err()
}

func (s *Server) bulk(w http.ResponseWriter, body []byte) {
	n := int(s.bulkN.Add(1))
	s.mu.Lock()
	h := s.hooks
	s.mu.Unlock()
	if h.Delay != nil {
		if d := h.Delay(n); d > 0 {
			time.Sleep(d)
		}
	}
	if s.opts.MaxBodyBytes > 0 && len(body) > s.opts.MaxBodyBytes {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	ops, err := ParseBulk(body)
	if err != nil {
		writeError(w, 400, "illegal_argument_exception", err.Error())
		return
	}
	if h.Bulk != nil {
		if st, b := h.Bulk(n, ops); st != 0 {
			if b == "" {
				writeError(w, st, map[bool]string{true: "es_rejected_execution_exception", false: "fake_exception"}[st == 429], fmt.Sprintf("injected HTTP %d", st))
				return
			}
			w.WriteHeader(st)
			io.WriteString(w, b)
			return
		}
	}
	type item struct {
		Index  string         `json:"_index"`
		ID     string         `json:"_id"`
		Status int            `json:"status"`
		Result string         `json:"result,omitempty"`
		Error  map[string]any `json:"error,omitempty"`
	}
	items := make([]map[string]item, 0, len(ops))
	errors := false
	for _, op := range ops {
		it := item{Index: op.Index, ID: op.ID}
		st, typ, reason := 0, "", ""
		if h.Item != nil {
			st, typ, reason = h.Item(n, op)
		}
		if st == 0 {
			s.mu.Lock()
			idx := s.docs[op.Index]
			if idx == nil {
				idx = map[string][]byte{}
				s.docs[op.Index] = idx
			}
			if it.ID == "" {
				it.ID = fmt.Sprintf("auto-%d", s.autoN.Add(1))
			}
			if _, dup := idx[it.ID]; dup && op.Action == "create" {
				st, typ, reason = 409, "version_conflict_engine_exception", fmt.Sprintf("[%s]: version conflict, document already exists (current version [1])", it.ID)
			} else {
				idx[it.ID] = op.Source
				st, it.Result = 201, "created"
			}
			s.mu.Unlock()
		}
		it.Status = st
		if st >= 300 {
			errors = true
			it.Error = map[string]any{"type": typ, "reason": reason, "index": op.Index}
		}
		items = append(items, map[string]item{op.Action: it})
	}
	json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": errors, "items": items})
}

// BasicHeader is the Authorization value for user and password.
func BasicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}
