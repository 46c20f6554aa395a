package elasticsearch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/sink"
)

// Backoff between in-flush attempts: exponential from backoffBase, capped
// at backoffMax, with jitter (a random point in the upper half).
var (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 2 * time.Second
)

func backoff(attempt int) time.Duration {
	d := backoffBase << min(attempt, 16)
	if d > backoffMax || d <= 0 {
		d = backoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// maxRejectLines bounds the per-document rejection lines of one flush.
const maxRejectLines = 5

// authLogEvery spaces the credentials lines while the failure lasts.
const authLogEvery = 5 * time.Minute

// errAuth marks a 401/403 answer: not retried inside the flush.
type authError struct {
	host   string
	status int
	reason string
}

func (e *authError) Error() string {
	return fmt.Sprintf("%s refused the credentials (HTTP %d: %s)", e.host, e.status, e.reason)
}

// Deliver sends items with the bulk API and sets each one's outcome:
// created or already there (409) → Delivered; a document the engine will
// never take → Rejected (and dead-lettered when dead_letter_index is
// set); anything transient → retried inside the flush with backoff for
// at most retry_max_wait, then Retry, so Fluent Bit re-sends the chunk
// (harmless: the ids make re-sends 409s).
func (s *Sink) Deliver(ctx context.Context, items []sink.Item) error {
	if err := s.setupBeforeDelivery(ctx); err != nil {
		for i := range items {
			items[i].Outcome, items[i].Reason = sink.Retry, err.Error()
		}
		return err
	}
	ops := make([]bulkOp, len(items))
	ptrs := make([]*bulkOp, 0, len(items))
	var idx indexCache
	for i := range items {
		d := &items[i].Doc
		op := &ops[i]
		op.item = i
		op.body = d.Body
		if s.cfg.IDKey && d.ID != "" {
			op.id = docID(d.ID)
		}
		if s.cfg.DataStream != "" {
			op.index = s.cfg.DataStream
		} else {
			op.index = idx.name(s.cfg.Index, d.Time)
		}
		if len(d.Body) == 0 || bytes.IndexByte(d.Body, '\n') >= 0 {
			op.state, op.reason = opRejected, "document is empty or not compact JSON (contains a newline)"
			continue
		}
		ptrs = append(ptrs, op)
	}
	err := s.run(ctx, ptrs)

	var rejected []*bulkOp
	for i := range ops {
		op := &ops[i]
		it := &items[op.item]
		switch op.state {
		case opDone:
			it.Outcome = sink.Delivered
		case opDup:
			it.Outcome, it.Duplicate = sink.Delivered, true
		case opRejected:
			it.Outcome, it.Reason = sink.Rejected, rejectReason(op)
			rejected = append(rejected, op)
		default:
			it.Outcome, it.Reason = sink.Retry, op.reason
		}
	}
	if len(rejected) > 0 {
		s.deadLetter(ctx, items, rejected)
	}
	return err
}

func rejectReason(op *bulkOp) string {
	r := op.reason
	if op.errType != "" {
		r = op.errType + ": " + r
	}
	if op.status != 0 {
		r = fmt.Sprintf("HTTP %d %s", op.status, r)
	}
	return r
}

// indexCache remembers the last index name: most documents of a chunk
// fall in the same hour or day.
type indexCache struct {
	key  int64
	last string
	set  bool
}

func (c *indexCache) name(p *Pattern, t time.Time) string {
	if p.Fixed() {
		return p.Source()
	}
	// Every field changes at most once a second; the name is the same for
	// the same second, and for the same UTC day when no field is finer.
	key := t.Unix()
	if !p.subDay() {
		key = floorDiv(key, 86400)
	}
	if !c.set || key != c.key {
		c.key, c.last, c.set = key, p.Format(t), true
	}
	return c.last
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// run sends ops until none is pending, retrying transient failures with
// backoff until retry_max_wait (or ctx) runs out. What is still pending
// then ends as opRetry. The error is non-nil when the whole request
// failed (transport, 429/5xx, credentials) on the last attempt.
func (s *Sink) run(ctx context.Context, ops []*bulkOp) error {
	if len(ops) == 0 {
		return nil
	}
	deadline := time.Now().Add(s.cfg.RetryMaxWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	pending := ops
	for attempt := 0; ; attempt++ {
		err := s.sendAll(ctx, pending)
		next := pending[:0:0]
		for _, op := range pending {
			if op.state == opPending || op.state == opRetry {
				op.state = opRetry
				next = append(next, op)
			}
		}
		pending = next
		if len(pending) == 0 {
			return nil
		}
		var ae *authError
		if errors.As(err, &ae) || ctx.Err() != nil {
			return err
		}
		wait := backoff(attempt)
		if time.Now().Add(wait).After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d documents still failing after %d attempts: %s", len(pending), attempt+1, pending[0].reason)
			}
			return err
		}
		s.log.Debugf("attempt %d: %d documents to retry in %v (%s)", attempt+1, len(pending), wait.Round(time.Millisecond), pending[0].reason)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		for _, op := range pending {
			op.state = opPending
		}
	}
}

// sendAll sends pending ops in requests of at most bulk_max_bytes, up to
// max_in_flight of this instance's requests at once (shared with
// concurrent flushes), so one request is encoded while another is in
// flight. Each op belongs to one request only. A whole-request failure
// leaves that request's ops pending with its reason; the first such error
// is returned once every request has finished.
func (s *Sink) sendAll(ctx context.Context, ops []*bulkOp) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for len(ops) > 0 {
		n := nextBatch(ops, s.cfg.BulkMaxBytes)
		batch := ops[:n]
		select {
		case s.inflight <- struct{}{}:
		case <-ctx.Done():
			for _, op := range ops {
				op.reason = "not sent: " + ctx.Err().Error()
			}
			fail(ctx.Err())
			wg.Wait()
			return firstErr
		}
		ops = ops[n:]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.inflight }()
			if err := s.sendBatch(ctx, batch); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// sendBatch sends one bulk request; on 413 it sends the halves instead.
func (s *Sink) sendBatch(ctx context.Context, ops []*bulkOp) error {
	buf := getBuf()
	defer putBuf(buf)
	*buf = encodeBatch(*buf, ops)
	body := *buf
	req := request{method: http.MethodPost, path: "/_bulk", body: body, ndjson: true}
	if s.cfg.Gzip {
		gz := gzipBody(body)
		defer putGzBuf(gz)
		req.body, req.gzip = gz.Bytes(), true
	}
	s.stats.Requests.Add(1)
	s.stats.Docs.Add(int64(len(ops)))
	s.stats.RawBytes.Add(int64(len(body)))
	s.stats.WireBytes.Add(int64(len(req.body)))

	tooLarge := false
	err := s.client.do(ctx, req, func(host string, resp *http.Response) error {
		switch st := resp.StatusCode; {
		case st == http.StatusOK:
			return s.readItems(host, resp, ops)
		case st == http.StatusRequestEntityTooLarge:
			tooLarge = true
			return nil
		case st == http.StatusUnauthorized || st == http.StatusForbidden:
			ae := &authError{host: host, status: st, reason: errorSummary(readBody(resp))}
			s.logAuth(ae)
			return ae
		default:
			return fmt.Errorf("%s answered HTTP %d: %s", host, st, errorSummary(readBody(resp)))
		}
	})
	if tooLarge {
		if len(ops) == 1 {
			op := ops[0]
			op.state, op.status = opRejected, http.StatusRequestEntityTooLarge
			op.reason = fmt.Sprintf("the document (%d bytes) is larger than the server accepts in one request (http.max_content_length)", len(op.body))
			return nil
		}
		s.log.Debugf("HTTP 413 for %d documents (%d bytes): sending the halves", len(ops), len(body))
		h := len(ops) / 2
		if err := s.sendBatch(ctx, ops[:h]); err != nil {
			for _, op := range ops[h:] {
				op.reason = "not sent: " + err.Error()
			}
			return err
		}
		return s.sendBatch(ctx, ops[h:])
	}
	if err != nil {
		for _, op := range ops {
			if op.state == opPending {
				op.reason = err.Error()
			}
		}
	}
	return err
}

// readItems applies the per-item results of a 200 answer.
func (s *Sink) readItems(host string, resp *http.Response, ops []*bulkOp) error {
	n, err := parseBulk(resp.Body, func(i int, r itemResult) {
		if i >= len(ops) {
			return
		}
		op := ops[i]
		op.status, op.errType, op.reason = r.Status, r.ErrType, r.Reason
		switch st := r.Status; {
		case st == http.StatusOK || st == http.StatusCreated:
			op.state = opDone
		case st == http.StatusConflict && (r.ErrType == "version_conflict_engine_exception" || r.ErrType == ""):
			op.state = opDup
		case st == http.StatusTooManyRequests || st >= 500 || st == http.StatusRequestTimeout:
			op.state, op.reason = opRetry, fmt.Sprintf("HTTP %d %s", st, strings.TrimPrefix(r.ErrType+": "+r.Reason, ": "))
		case st == http.StatusUnauthorized || st == http.StatusForbidden || st == http.StatusNotFound:
			// Missing privileges, a blocked or missing index: fixed by the
			// operator, not by the document. Retried, never dropped.
			op.state, op.reason = opRetry, fmt.Sprintf("HTTP %d %s", st, strings.TrimPrefix(r.ErrType+": "+r.Reason, ": "))
		case st >= 400:
			op.state = opRejected
		default:
			op.state, op.reason = opRetry, fmt.Sprintf("unexpected item status %d", st)
		}
	})
	if err == nil && n != len(ops) {
		err = fmt.Errorf("%d results for %d documents", n, len(ops))
	}
	if err != nil {
		for _, op := range ops {
			if op.state == opPending {
				op.reason = "bulk response from " + host + ": " + err.Error()
			}
		}
		return fmt.Errorf("%s: bulk response: %w", host, err)
	}
	return nil
}

// logAuth writes the credentials line: once, then at most every
// authLogEvery while it lasts.
func (s *Sink) logAuth(ae *authError) {
	now := time.Now().UnixNano()
	last := s.lastAuthLog.Load()
	if last != 0 && now-last < int64(authLogEvery) || !s.lastAuthLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Errorf("%s refused %s with HTTP %d (%s): fix http_user/http_passwd, api_key or bearer_token_file, or the role's privileges; chunks are retried, not dropped",
		ae.host, s.client.auth.who(), ae.status, ae.reason)
}

// deadLetter logs the rejected documents and, with dead_letter_index
// set, writes each one there with the engine's reason. A dead letter
// that cannot be written for a transient reason turns its item back
// into Retry, so nothing vanishes.
func (s *Sink) deadLetter(ctx context.Context, items []sink.Item, rejected []*bulkOp) {
	for i, op := range rejected {
		if i == maxRejectLines {
			s.log.Errorf("%d more documents rejected in this flush", len(rejected)-i)
			break
		}
		s.log.Errorf("document %s rejected by the engine (index %s): %s", orNone(op.id), op.index, items[op.item].Reason)
	}
	if s.cfg.DeadLetter == nil {
		return
	}
	now := time.Now()
	dl := make([]bulkOp, len(rejected))
	ptrs := make([]*bulkOp, len(rejected))
	for i, op := range rejected {
		doc := &items[op.item].Doc
		dl[i] = bulkOp{
			index: s.cfg.DeadLetter.Format(doc.Time),
			id:    op.id,
			body:  appendDeadLetter(nil, doc, op, now),
			item:  op.item,
		}
		ptrs[i] = &dl[i]
	}
	s.run(ctx, ptrs)
	for _, d := range ptrs {
		it := &items[d.item]
		switch d.state {
		case opDone, opDup:
			it.Reason += " (written to " + d.index + ")"
		case opRejected:
			s.log.Errorf("dead letter for %s rejected too (index %s): %s", orNone(d.id), d.index, rejectReason(d))
		default:
			it.Outcome, it.Reason = sink.Retry, "dead letter not written: "+d.reason
		}
	}
}

func orNone(id string) string {
	if id == "" {
		return "(no id)"
	}
	return id
}

// appendDeadLetter encodes the dead-letter document: where the event was
// going, the engine's error, and the original document as a string so it
// can never fail a mapping again.
func appendDeadLetter(b []byte, doc *filter.Document, op *bulkOp, now time.Time) []byte {
	b = append(b, `{"@timestamp":"`...)
	b = filter.AppendMicroTime(b, doc.Time)
	b = append(b, `","failed_at":"`...)
	b = filter.AppendMicroTime(b, now)
	b = append(b, `","index":`...)
	b = filter.AppendString(b, op.index)
	if op.id != "" {
		b = append(b, `,"id":`...)
		b = filter.AppendString(b, op.id)
	}
	b = fmt.Appendf(b, `,"status":%d,"error":{"type":`, op.status)
	b = filter.AppendString(b, op.errType)
	b = append(b, `,"reason":`...)
	b = filter.AppendString(b, op.reason)
	b = append(b, `},"event":`...)
	b = filter.AppendString(b, string(doc.Body))
	return append(b, '}')
}
