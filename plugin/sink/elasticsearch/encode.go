package elasticsearch

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"unicode/utf8"

	"github.com/kaudit/kaudit/filter"
)

// opState is where one bulk operation stands.
type opState uint8

const (
	opPending  opState = iota // not sent yet, or to be sent again
	opDone                    // 200/201
	opDup                     // 409: already there
	opRejected                // permanent for this document
	opRetry                   // transient; given up for this flush
)

// bulkOp is one create operation: where, which id, the document.
type bulkOp struct {
	index string
	id    string // "" lets the server choose
	body  []byte
	// item is the position of the sink.Item the op belongs to.
	item int

	state   opState
	status  int    // last HTTP status for the item (0 for transport errors)
	errType string // the server's error type, e.g. mapper_parsing_exception
	reason  string
}

// maxIDBytes is Elasticsearch's limit on _id; longer ids are hashed.
const maxIDBytes = 512

// docID returns the _id for a document id: itself, or its SHA-256 when it
// would be too long.
func docID(id string) string {
	if len(id) <= maxIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:])
}

// appendAction appends `{"create":{"_index":"…","_id":"…"}}\n`.
func appendAction(b []byte, index, id string) []byte {
	b = append(b, `{"create":{"_index":`...)
	b = filter.AppendString(b, index)
	if id != "" {
		b = append(b, `,"_id":`...)
		b = filter.AppendString(b, id)
	}
	return append(b, "}}\n"...)
}

// opSize is the bytes op takes in a bulk body.
func opSize(op *bulkOp) int {
	n := len(`{"create":{"_index":"","_id":""}}`) + 2 + len(op.body)
	return n + jsonStringLen(op.index) + jsonStringLen(op.id)
}

// appendOp appends the action line and the document line.
func appendOp(b []byte, op *bulkOp) []byte {
	b = appendAction(b, op.index, op.id)
	b = append(b, op.body...)
	return append(b, '\n')
}

// nextBatch returns how many of ops (at least one) fit in max bytes.
func nextBatch(ops []*bulkOp, max int) int {
	size := 0
	for i, op := range ops {
		size += opSize(op)
		if size > max && i > 0 {
			return i
		}
	}
	return len(ops)
}

// encodeBatch appends the NDJSON body of ops to b.
func encodeBatch(b []byte, ops []*bulkOp) []byte {
	for _, op := range ops {
		b = appendOp(b, op)
	}
	return b
}

// Buffers are pooled: one flush's bulk body, and the gzip output. Buffers
// that grew beyond maxPooled are dropped rather than kept forever.
const maxPooled = 16 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

var gzPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

var gzBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// gzipBody compresses body into a pooled buffer; release it with
// putGzBuf.
func gzipBody(body []byte) *bytes.Buffer {
	out := gzBufPool.Get().(*bytes.Buffer)
	out.Reset()
	w := gzPool.Get().(*gzip.Writer)
	w.Reset(out)
	w.Write(body) // a bytes.Buffer does not fail
	w.Close()
	gzPool.Put(w)
	return out
}

func putGzBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooled {
		gzBufPool.Put(b)
	}
}

// jsonStringLen is len(filter.AppendString(nil, s)) - 2 without allocating
// for the common case of nothing to escape.
func jsonStringLen(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return len(filter.AppendString(nil, s)) - 2
		}
	}
	return len(s)
}
