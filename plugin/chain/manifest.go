// Package chain makes delivery tamper-evident: after each successful flush
// an instance appends a signed manifest to a per-instance hash chain,
// listing every document the flush stored (its id and the SHA-256 of its
// exact bytes). The manifest is shipped to the same backend as the events,
// which themselves stay unchanged; `kaudit verify` reads both back and
// reports what was deleted, altered or inserted.
//
// A manifest record (the document body) is
//
//	{"kind":"kaudit.k8s.io/Manifest","apiVersion":"kaudit.k8s.io/v1",
//	 "@timestamp":"…","kaudit":{"kind":"kaudit.k8s.io/Manifest","cluster":"…","node":"…"},
//	 "manifest":{…},"hash":"<sha256 of the manifest bytes>","signature":"<Ed25519, base64>"}
//
// The signature and the hash cover the bytes of the "manifest" value
// exactly as stored; each manifest names the hash of its predecessor
// ("prev"), its epoch and its sequence number (from 1 in each epoch).
package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kaudit/kaudit/filter"
)

// Kind is the kind of manifest records (Document.Kind, kaudit.kind).
const Kind = "kaudit.k8s.io/Manifest"

// APIVersion is the manifest format's version.
const APIVersion = "kaudit.k8s.io/v1"

// Reasons a manifest opens a new epoch (Manifest.NewEpoch).
const (
	EpochNoState    = "no_state" // no state file: first start, or the state was lost
	EpochBadState   = "state_unreadable"
	EpochKeyChanged = "key_changed" // the state belongs to another key
)

// Entry is one stored document listed by a manifest.
type Entry struct {
	// AuditID and Stage identify an audit event (its document id is
	// auditID-stage).
	AuditID string `json:"auditID,omitempty"`
	Stage   string `json:"stage,omitempty"`
	// ID is set instead for documents that are not audit events with an
	// auditID (synthetic records): their document id, possibly empty.
	ID string `json:"id,omitempty"`
	// Kind is the synthetic record's kind; empty for audit events.
	Kind string `json:"kind,omitempty"`
	// SHA256 is the hex SHA-256 of the exact document bytes.
	SHA256 string `json:"sha256"`
	// Index is the index or stream the document went to, when the sink
	// says.
	Index string `json:"index,omitempty"`
}

// Key is how the entry is matched to stored documents: the document id
// (auditID-stage), or "sha256:<hash>" for documents without one.
func (e *Entry) Key() string {
	if e.AuditID != "" {
		return e.AuditID + "-" + e.Stage
	}
	if e.ID != "" {
		return e.ID
	}
	return "sha256:" + e.SHA256
}

// EntryFor lists doc; index is where the sink put it ("" if unknown).
func EntryFor(doc *filter.Document, index string) Entry {
	sum := sha256.Sum256(doc.Body)
	e := Entry{SHA256: hex.EncodeToString(sum[:]), Kind: doc.Kind, Index: index}
	if ev := doc.Event; ev != nil && ev.AuditID != "" && doc.ID == ev.ID() {
		e.AuditID, e.Stage = string(ev.AuditID), string(ev.Stage)
	} else {
		e.ID = doc.ID
	}
	return e
}

// Manifest is the signed part of a manifest record.
type Manifest struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// Prev is the hash of the previous manifest of the epoch; empty at
	// sequence 1.
	Prev string `json:"prev,omitempty"`
	// NewEpoch says why sequence 1 of an epoch was started.
	NewEpoch string `json:"new_epoch,omitempty"`
	// PrevEpoch names the epoch the state file held when a new one was
	// started for another reason (key change).
	PrevEpoch string    `json:"prev_epoch,omitempty"`
	Cluster   string    `json:"cluster,omitempty"`
	Node      string    `json:"node"`
	Instance  string    `json:"instance"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Count     int       `json:"count"`
	Events    []Entry   `json:"events"`
}

// Record is a manifest record as stored.
type Record struct {
	Manifest Manifest
	// Raw is the "manifest" value's bytes, which the hash and the
	// signature cover.
	Raw       []byte
	Hash      string
	Signature []byte
	// Signed reports whether the record had a signature at all.
	Signed bool
}

// Seal encodes and signs m and returns the document to ship.
func Seal(m *Manifest, key ed25519.PrivateKey) (filter.Document, Record, error) {
	m.Count = len(m.Events)
	raw, err := json.Marshal(m)
	if err != nil {
		return filter.Document{}, Record{}, err
	}
	sum := sha256.Sum256(raw)
	rec := Record{Manifest: *m, Raw: raw, Hash: hex.EncodeToString(sum[:]), Signature: ed25519.Sign(key, raw), Signed: true}
	b := make([]byte, 0, len(raw)+400)
	b = append(b, `{"kind":"`+Kind+`","apiVersion":"`+APIVersion+`","@timestamp":"`...)
	b = filter.AppendMicroTime(b, m.Time)
	b = append(b, `","kaudit":{"kind":"`+Kind+`"`...)
	if m.Cluster != "" {
		b = append(b, `,"cluster":`...)
		b = filter.AppendString(b, m.Cluster)
	}
	b = append(b, `,"node":`...)
	b = filter.AppendString(b, m.Node)
	b = append(b, `},"manifest":`...)
	b = append(b, raw...)
	b = append(b, `,"hash":"`...)
	b = append(b, rec.Hash...)
	b = append(b, `","signature":"`...)
	b = append(b, base64.StdEncoding.EncodeToString(rec.Signature)...)
	b = append(b, `"}`...)
	doc := filter.Document{
		ID:   DocID(m.Epoch, m.Seq, rec.Hash),
		Time: m.Time,
		Body: b,
		Kind: Kind,
	}
	return doc, rec, nil
}

// DocID is a manifest's document id. It includes the hash so that a
// manifest re-built after an unacknowledged delivery never collides with
// the one that may already be stored.
func DocID(epoch string, seq uint64, hash string) string {
	return "kaudit-manifest-" + epoch + "-" + strconv.FormatUint(seq, 10) + "-" + hash[:16]
}

// IsManifest reports whether a stored document body is a manifest record
// (cheaply, without decoding it).
func IsManifest(body []byte) bool {
	i := bytes.Index(body, []byte(`"kind":"`+Kind+`"`))
	return i >= 0 && i < 64
}

// ParseRecord decodes a stored manifest record, keeping the manifest's
// exact bytes. It does not check the signature (Verify does).
func ParseRecord(body []byte) (Record, error) {
	var r struct {
		Kind      string          `json:"kind"`
		Manifest  json.RawMessage `json:"manifest"`
		Signature string          `json:"signature"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Record{}, err
	}
	if r.Kind != Kind {
		return Record{}, fmt.Errorf("kind %q is not %s", r.Kind, Kind)
	}
	if len(r.Manifest) == 0 {
		return Record{}, errors.New("no manifest")
	}
	rec := Record{Raw: []byte(r.Manifest)}
	if err := json.Unmarshal(r.Manifest, &rec.Manifest); err != nil {
		return Record{}, fmt.Errorf("manifest: %v", err)
	}
	sum := sha256.Sum256(rec.Raw)
	rec.Hash = hex.EncodeToString(sum[:])
	if r.Signature != "" {
		sig, err := base64.StdEncoding.DecodeString(r.Signature)
		if err != nil {
			return rec, fmt.Errorf("signature: %v", err)
		}
		rec.Signature, rec.Signed = sig, true
	}
	return rec, nil
}

// Verify checks the record's signature against pub.
func (r *Record) Verify(pub ed25519.PublicKey) bool {
	return r.Signed && len(r.Signature) == ed25519.SignatureSize && ed25519.Verify(pub, r.Raw, r.Signature)
}
