package loki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"

	"github.com/kaudit/kaudit/plugin/sink"
)

func newHTTPClient(cfg *Config) *http.Client {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   cfg.Timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       cfg.TLS,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   16, // keep-alive reuse across concurrent flushes
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}
}

// tokenCache re-reads the bearer token file at most once a minute, so a
// rotated (projected service account) token is picked up.
type tokenCache struct {
	path string
	mu   sync.Mutex
	tok  string
	read time.Time
}

func (c *tokenCache) get() (string, error) {
	if c.path == "" {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != "" && time.Since(c.read) < time.Minute {
		return c.tok, nil
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		if c.tok != "" {
			return c.tok, nil // keep the last good token
		}
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("the file is empty")
	}
	c.tok, c.read = tok, time.Now()
	return tok, nil
}

// response is the outcome of one HTTP attempt.
type response struct {
	status     int
	body       string
	retryAfter time.Duration
	err        error // transport error (connection refused, timeout, …)
}

// maxErrorBody bounds what is read of an error response.
const maxErrorBody = 64 << 10

// post sends one push request.
func (s *Sink) post(ctx context.Context, streams []stream, withMeta bool) response {
	raw, z := getBuf(), getBuf()
	var body []byte
	var ctype string
	if s.cfg.Format == "json" {
		*raw = appendJSONPush((*raw)[:0], streams, withMeta)
		body, ctype = *raw, "application/json"
	} else {
		*raw = appendPush((*raw)[:0], streams, withMeta)
		n := snappy.MaxEncodedLen(len(*raw))
		if cap(*z) < n {
			*z = make([]byte, n)
		}
		body = snappy.Encode((*z)[:n], *raw)
		*z = body[:0]
		ctype = "application/x-protobuf"
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	rb := &requestBody{Reader: bytes.NewReader(body), closed: make(chan struct{})}
	// The transport may still hold the body after Do returns; the pooled
	// buffers are reused only once it has closed it.
	defer func() {
		if rb.wait() {
			putBuf(raw)
			putBuf(z)
		}
	}()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.cfg.URL.String(), rb)
	if err != nil {
		rb.Close()
		return response{err: err}
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "kaudit")
	if s.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", s.cfg.TenantID)
	}
	if s.cfg.User != "" {
		req.SetBasicAuth(s.cfg.User, s.cfg.Password)
	}
	if tok, err := s.token.get(); err != nil {
		rb.Close()
		return response{err: fmt.Errorf("bearer_token_file: %w", err)}
	} else if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	s.stats.Requests.Add(1)
	s.stats.WireBytes.Add(int64(len(body)))
	resp, err := s.client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		r.body = strings.TrimSpace(string(b))
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
				r.retryAfter = time.Duration(secs) * time.Second
			}
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	return r
}

// requestBody tells when the transport is done with the request body.
type requestBody struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *requestBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// wait reports whether the transport closed the body in good time; if
// not, the buffers are left to the garbage collector instead of the pool.
func (b *requestBody) wait() bool {
	select {
	case <-b.closed:
		return true
	case <-time.After(time.Second):
		return false
	}
}

// retryState is the backoff budget of one Deliver call.
type retryState struct {
	attempt int
	waited  time.Duration
}

// Backoff bounds: the first wait and the longest single wait.
const (
	backoffBase = 100 * time.Millisecond
	backoffCap  = time.Second
)

// nextWait returns how long to wait before the next attempt, or false
// when the budget (retry_max_wait, the flush deadline) is spent.
func (s *Sink) nextWait(ctx context.Context, rs *retryState, retryAfter time.Duration) (time.Duration, bool) {
	d := backoffBase << min(rs.attempt, 10)
	if d > backoffCap {
		d = backoffCap
	}
	d = d/2 + rand.N(d/2+1) // jitter: [d/2, d]
	if retryAfter > d {
		d = retryAfter
	}
	if rs.waited+d > s.cfg.RetryMaxWait {
		return 0, false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d+s.cfg.Timeout/4 {
		return 0, false
	}
	rs.attempt++
	rs.waited += d
	return d, true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sendBatch pushes one request and sets its items' outcomes. giveUp
// reports that the server is unavailable (the items are Retry) and the
// rest of the Deliver call should not be attempted.
func (s *Sink) sendBatch(ctx context.Context, items []sink.Item, streams []stream, rs *retryState) (giveUp bool, reason string) {
	for {
		withMeta := s.withMeta()
		var r response
		select {
		case s.inflight <- struct{}{}:
			r = s.post(ctx, streams, withMeta)
			<-s.inflight
		case <-ctx.Done():
			r = response{err: ctx.Err()}
		}
		switch {
		case r.err == nil && r.status/100 == 2:
			mark(items, streams, sink.Delivered, "")
			s.remember(streams)
			s.stats.Entries.Add(int64(countEntries(streams)))
			return false, ""

		case r.err != nil || r.status == http.StatusTooManyRequests || r.status >= 500:
			reason = describe(r)
			wait, ok := s.nextWait(ctx, rs, r.retryAfter)
			if !ok || !sleep(ctx, wait) {
				mark(items, streams, sink.Retry, reason)
				return true, reason
			}
			s.stats.Retries.Add(1)
			s.env.Log.Debugf("loki: %s; retrying in %s", reason, wait.Round(time.Millisecond))

		case r.status == http.StatusBadRequest:
			if withMeta && structuredMetadataDisallowed(r.body) {
				s.disableMetadata(r.body)
				continue // the same lines again, without metadata
			}
			s.rejected(items, streams, r.body)
			return false, ""

		case r.status == http.StatusRequestEntityTooLarge && countEntries(streams) > 1:
			s.stats.SplitOnTooBig.Add(1)
			a, b := halve(streams)
			if g, why := s.sendBatch(ctx, items, a, rs); g {
				mark(items, b, sink.Retry, "not sent: "+why)
				return g, why
			}
			return s.sendBatch(ctx, items, b, rs)

		case r.status == http.StatusRequestEntityTooLarge:
			s.stats.OtherRejected.Add(1)
			s.env.Log.Errorf("loki: entry of stream %s rejected: request too large: %s", streams[0].labels, firstLine(r.body, 500))
			mark(items, streams, sink.Rejected, "request too large: "+firstLine(r.body, 200))
			return false, ""

		default:
			// 401, 403, 404, …: a setting to fix; keep the data and let
			// Fluent Bit retry rather than drop it.
			reason = describe(r)
			s.env.Log.Errorf("loki: %s (check url, tenant_id and credentials)", reason)
			mark(items, streams, sink.Retry, reason)
			return true, reason
		}
	}
}

func describe(r response) string {
	if r.err != nil {
		return "push failed: " + r.err.Error()
	}
	return fmt.Sprintf("push answered %d %s: %s", r.status, http.StatusText(r.status), firstLine(r.body, 300))
}

// halve splits a request into two with about half the entries each.
func halve(streams []stream) (a, b []stream) {
	total := countEntries(streams)
	half := total / 2
	n := 0
	for i := range streams {
		st := streams[i]
		if n+len(st.entries) <= half {
			a = append(a, st)
			n += len(st.entries)
			continue
		}
		cut := half - n
		if cut > 0 {
			a = append(a, stream{labels: st.labels, pairs: st.pairs, entries: st.entries[:cut]})
		}
		b = append(b, stream{labels: st.labels, pairs: st.pairs, entries: st.entries[cut:]})
		b = append(b, streams[i+1:]...)
		break
	}
	return a, b
}

// rejected handles a 400. Loki keeps the valid entries of a request and
// lists the refused ones; those are counted and logged per stream with the
// reason, the rest are Delivered. A 400 that names no entry refuses the
// whole request: its message is logged and every item Rejected.
func (s *Sink) rejected(items []sink.Item, streams []stream, body string) {
	rej := parseRejections(body)
	if len(rej) == 0 {
		n := countEntries(streams)
		s.stats.OtherRejected.Add(int64(n))
		s.env.Log.Errorf("loki: push of %d entries rejected (400): %s", n, firstLine(body, 1000))
		mark(items, streams, sink.Rejected, "rejected by Loki: "+firstLine(body, 300))
		return
	}
	type key struct{ stream, reason string }
	perStream := map[key]int{}
	var order []key
	delivered := 0
	var kept []sentKey
	for si := range streams {
		st := &streams[si]
		for ei := range st.entries {
			e := &st.entries[ei]
			it := &items[e.item]
			var hit *rejection
			for ri := range rej {
				if rej[ri].match(st.labels, e) {
					hit = &rej[ri]
					break
				}
			}
			if hit == nil {
				it.Outcome = sink.Delivered
				delivered++
				if s.sent != nil {
					kept = append(kept, e.key)
				}
				continue
			}
			it.Outcome, it.Reason = sink.Rejected, "Loki refused the entry: "+hit.reason
			switch hit.reason {
			case ReasonTooOld:
				s.stats.TooOld.Add(1)
			case ReasonOutOfOrder, ReasonTooFarBehind:
				s.stats.OutOfOrder.Add(1)
			default:
				s.stats.OtherRejected.Add(1)
			}
			k := key{st.labels, hit.reason}
			if perStream[k] == 0 {
				order = append(order, k)
			}
			perStream[k]++
		}
	}
	s.stats.Entries.Add(int64(delivered))
	if s.sent != nil {
		s.sent.add(kept)
	}
	const maxLines = 5
	for i, k := range order {
		if i == maxLines {
			s.env.Log.Warnf("loki: … and %d more streams with refused entries", len(order)-i)
			break
		}
		s.env.Log.Warnf("loki: %d entries of stream %s refused for good: %s", perStream[k], k.stream, k.reason)
	}
	s.env.Log.Debugf("loki: 400 body: %s", firstLine(body, 2000))
}
