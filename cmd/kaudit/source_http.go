package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// httpClient is what the backend readers share: base URL, auth, TLS.
type httpClient struct {
	base    *url.URL
	c       *http.Client
	headers http.Header
	user    string
	pass    string
}

func newHTTPClient(raw, def string, f verifyFlags) (*httpClient, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http(s)://host:port", raw)
	}
	tc := &tls.Config{InsecureSkipVerify: f.insecure}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no certificates", f.caFile)
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &httpClient{base: u, c: &http.Client{Transport: tr, Timeout: 5 * time.Minute}, headers: http.Header{},
		user: f.user, pass: f.password}, nil
}

func (h *httpClient) do(ctx context.Context, method, path string, query url.Values, body []byte, ctype string) ([]byte, error) {
	u := *h.base
	u.Path += path
	if query != nil {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range h.headers {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if h.user != "" {
		req.SetBasicAuth(h.user, h.pass)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, u.Path, resp.StatusCode, excerpt(b))
	}
	return b, nil
}

func excerpt(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// --- Elasticsearch / OpenSearch: scroll over the index pattern ---------

type esSource struct {
	h     *httpClient
	index string
	size  int
}

func newESSource(f verifyFlags) (source, error) {
	h, err := newHTTPClient(f.url, "http://127.0.0.1:9200", f)
	if err != nil {
		return nil, err
	}
	if f.apiKey != "" {
		h.headers.Set("Authorization", "ApiKey "+f.apiKey)
	}
	return &esSource{h: h, index: f.index, size: f.pageSize}, nil
}

func (s *esSource) Describe() string { return "elasticsearch " + s.h.base.String() + "/" + s.index }

type esPage struct {
	ScrollID string `json:"_scroll_id"`
	Hits     struct {
		Hits []struct {
			Index  string          `json:"_index"`
			ID     string          `json:"_id"`
			Source json.RawMessage `json:"_source"`
		} `json:"hits"`
	} `json:"hits"`
}

// Read scrolls through every document of the pattern, in index order
// (_doc). _source comes back as the exact bytes that were indexed.
func (s *esSource) Read(ctx context.Context, add func(string, []byte)) error {
	q := url.Values{"scroll": {"2m"}, "ignore_unavailable": {"true"}, "allow_no_indices": {"true"}}
	body := []byte(`{"size":` + strconv.Itoa(s.size) + `,"sort":["_doc"],"query":{"match_all":{}}}`)
	b, err := s.h.do(ctx, http.MethodPost, "/"+s.index+"/_search", q, body, "application/json")
	if err != nil {
		return err
	}
	var scrollID string
	defer func() {
		if scrollID != "" {
			s.h.do(context.Background(), http.MethodDelete, "/_search/scroll", nil, []byte(`{"scroll_id":`+strconv.Quote(scrollID)+`}`), "application/json")
		}
	}()
	for {
		var p esPage
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("search response: %v", err)
		}
		scrollID = p.ScrollID
		if len(p.Hits.Hits) == 0 {
			return nil
		}
		for _, h := range p.Hits.Hits {
			add(h.Index, h.Source)
		}
		if scrollID == "" {
			return nil
		}
		b, err = s.h.do(ctx, http.MethodPost, "/_search/scroll", nil,
			[]byte(`{"scroll":"2m","scroll_id":`+strconv.Quote(scrollID)+`}`), "application/json")
		if err != nil {
			return err
		}
	}
}

// --- Loki: query_range over a time range, paged forward ----------------

type lokiSource struct {
	h          *httpClient
	query      string
	start, end time.Time
	limit      int
}

func newLokiSource(f verifyFlags) (source, error) {
	h, err := newHTTPClient(f.url, "http://127.0.0.1:3100", f)
	if err != nil {
		return nil, err
	}
	if f.tenant != "" {
		h.headers.Set("X-Scope-OrgID", f.tenant)
	}
	s := &lokiSource{h: h, query: f.query, limit: f.pageSize, end: time.Now()}
	if s.query == "" {
		s.query = `{job="kaudit"}`
	}
	if f.end != "" {
		if s.end, err = time.Parse(time.RFC3339Nano, f.end); err != nil {
			return nil, fmt.Errorf("--end: %v", err)
		}
	}
	s.start = s.end.Add(-f.since)
	if f.start != "" {
		if s.start, err = time.Parse(time.RFC3339Nano, f.start); err != nil {
			return nil, fmt.Errorf("--start: %v", err)
		}
	}
	return s, nil
}

func (s *lokiSource) Describe() string {
	return fmt.Sprintf("loki %s %s from %s to %s", s.h.base, s.query, s.start.UTC().Format(time.RFC3339), s.end.UTC().Format(time.RFC3339))
}

type lokiResp struct {
	Data struct {
		Result []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

func streamName(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// Read pages forward by timestamp. Entries at the boundary timestamp that
// were already read are skipped, so entries sharing a nanosecond across
// pages are neither lost nor read twice.
func (s *lokiSource) Read(ctx context.Context, add func(string, []byte)) error {
	start := s.start.UnixNano()
	end := s.end.UnixNano()
	seenAtBoundary := map[string]bool{}
	for {
		q := url.Values{"query": {s.query}, "start": {strconv.FormatInt(start, 10)}, "end": {strconv.FormatInt(end, 10)},
			"limit": {strconv.Itoa(s.limit)}, "direction": {"forward"}}
		b, err := s.h.do(ctx, http.MethodGet, "/loki/api/v1/query_range", q, nil, "")
		if err != nil {
			return err
		}
		var r lokiResp
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("query_range response: %v", err)
		}
		type ent struct {
			ts     int64
			stream string
			line   string
		}
		var ents []ent
		for _, res := range r.Data.Result {
			name := streamName(res.Stream)
			for _, v := range res.Values {
				if len(v) < 2 {
					continue
				}
				var tsS, line string
				if json.Unmarshal(v[0], &tsS) != nil || json.Unmarshal(v[1], &line) != nil {
					return fmt.Errorf("query_range: unexpected value %s", v)
				}
				ts, err := strconv.ParseInt(tsS, 10, 64)
				if err != nil {
					return fmt.Errorf("query_range: timestamp %q", tsS)
				}
				ents = append(ents, ent{ts, name, line})
			}
		}
		sort.SliceStable(ents, func(i, j int) bool { return ents[i].ts < ents[j].ts })
		fresh := 0
		last := start
		for _, e := range ents {
			k := e.stream + "\x00" + e.line
			if e.ts < start || e.ts == start && seenAtBoundary[k] {
				continue
			}
			fresh++
			add(e.stream, []byte(e.line))
			if e.ts > last {
				last = e.ts
				seenAtBoundary = map[string]bool{}
			}
			if e.ts == last {
				seenAtBoundary[k] = true
			}
		}
		if len(ents) < s.limit || fresh == 0 {
			return nil
		}
		start = last
	}
}

// --- VictoriaLogs: LogsQL query, every row streamed --------------------

type vlSource struct {
	h     *httpClient
	query string
}

func newVLSource(f verifyFlags) (source, error) {
	h, err := newHTTPClient(f.url, "http://127.0.0.1:9428", f)
	if err != nil {
		return nil, err
	}
	if f.account != "" {
		h.headers.Set("AccountID", f.account)
	}
	if f.project != "" {
		h.headers.Set("ProjectID", f.project)
	}
	q := f.query
	if q == "" {
		q = "*"
	}
	return &vlSource{h: h, query: q}, nil
}

func (s *vlSource) Describe() string { return "victorialogs " + s.h.base.String() + " " + s.query }

// Read runs the LogsQL query; each row's _msg is the stored line (the
// Loki sink pushes with message parsing off), _stream its stream.
func (s *vlSource) Read(ctx context.Context, add func(string, []byte)) error {
	u := *s.h.base
	u.Path += "/select/logsql/query"
	form := url.Values{"query": {s.query}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range s.h.headers {
		req.Header[k] = v
	}
	if s.h.user != "" {
		req.SetBasicAuth(s.h.user, s.h.pass)
	}
	resp, err := s.h.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, excerpt(b))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var row struct {
			Msg    string `json:"_msg"`
			Stream string `json:"_stream"`
		}
		if err := dec.Decode(&row); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		add(row.Stream, []byte(row.Msg))
	}
}
