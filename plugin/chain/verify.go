package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Finding kinds.
const (
	FindMalformedManifest = "malformed_manifest" // a manifest record that cannot be read
	FindUnsigned          = "unsigned_manifest"  // a manifest record without a signature
	FindBadSignature      = "bad_signature"      // forged or altered manifest, or another key
	FindMissingManifest   = "missing_manifest"   // a sequence gap: manifests deleted
	FindBrokenChain       = "broken_chain"       // a manifest whose prev matches no predecessor
	FindMissingEvent      = "missing_event"      // listed, not stored: deleted
	FindAlteredEvent      = "altered_event"      // stored bytes differ from every listed hash
	FindInsertedEvent     = "inserted_event"     // stored, listed by no (validly signed) manifest
)

// Finding is one thing verify found wrong.
type Finding struct {
	Kind     string `json:"kind"`
	Node     string `json:"node,omitempty"`
	Instance string `json:"instance,omitempty"`
	Epoch    string `json:"epoch,omitempty"`
	// Seq is the manifest sequence the finding is about (0: none).
	Seq uint64 `json:"seq,omitempty"`
	// SeqTo ends a range of missing manifests.
	SeqTo   uint64 `json:"seq_to,omitempty"`
	AuditID string `json:"auditID,omitempty"`
	Stage   string `json:"stage,omitempty"`
	ID      string `json:"id,omitempty"`
	// Index is the index or stream where the document is (or, for a
	// missing one, where the manifest said it went; "" if unknown).
	Index  string `json:"index,omitempty"`
	Detail string `json:"detail"`
}

// EpochSummary is one verified chain: a node's instance in one epoch.
type EpochSummary struct {
	Node      string `json:"node"`
	Cluster   string `json:"cluster,omitempty"`
	Instance  string `json:"instance"`
	Epoch     string `json:"epoch"`
	NewEpoch  string `json:"new_epoch,omitempty"`
	PrevEpoch string `json:"prev_epoch,omitempty"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Manifests int    `json:"manifests"`
	// Forks counts sequence numbers held by more than one validly signed
	// manifest (a manifest re-built after an unacknowledged delivery or
	// a restart before the state was saved): benign.
	Forks    int `json:"forks,omitempty"`
	Listed   int `json:"listed"`
	Findings int `json:"findings"`
}

// Report is the outcome of a verification.
type Report struct {
	Documents  int            `json:"documents"`
	Events     int            `json:"events"`
	Manifests  int            `json:"manifests"`
	Duplicates int            `json:"duplicates"`
	Epochs     []EpochSummary `json:"epochs"`
	Findings   []Finding      `json:"findings"`
}

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

type storedDoc struct {
	sum [32]byte
	loc string
}

type storedManifest struct {
	rec Record
	loc string
}

type listing struct {
	sum   [32]byte
	entry *Entry
	m     *Manifest
}

// Verifier collects stored documents (events and manifests, in any order)
// and checks them against the chains the manifests form.
type Verifier struct {
	pub       ed25519.PublicKey
	docs      map[string][]storedDoc
	manifests []storedManifest
	locs      map[string]string
	report    Report
}

// NewVerifier verifies against pub.
func NewVerifier(pub ed25519.PublicKey) *Verifier {
	return &Verifier{pub: pub, docs: map[string][]storedDoc{}, locs: map[string]string{}}
}

func (v *Verifier) intern(s string) string {
	if x, ok := v.locs[s]; ok {
		return x
	}
	v.locs[s] = s
	return s
}

// eventKey is the part of a stored event that identifies it.
type eventKey struct {
	AuditID string `json:"auditID"`
	Stage   string `json:"stage"`
}

// Add records one stored document found at loc (index, stream, file:line).
func (v *Verifier) Add(loc string, body []byte) {
	v.report.Documents++
	loc = v.intern(loc)
	if IsManifest(body) {
		v.report.Manifests++
		rec, err := ParseRecord(body)
		if err != nil {
			v.find(Finding{Kind: FindMalformedManifest, Index: loc, Detail: err.Error()})
			return
		}
		rec.Raw = bytes.Clone(rec.Raw)
		v.manifests = append(v.manifests, storedManifest{rec: rec, loc: loc})
		return
	}
	v.report.Events++
	sum := sha256.Sum256(body)
	var k eventKey
	json.Unmarshal(body, &k) // a body that is not JSON has no key: listed by hash only
	key := "sha256:" + hex.EncodeToString(sum[:])
	if k.AuditID != "" {
		key = k.AuditID + "-" + k.Stage
	}
	v.docs[key] = append(v.docs[key], storedDoc{sum: sum, loc: loc})
}

func (v *Verifier) find(f Finding) { v.report.Findings = append(v.report.Findings, f) }

// Report checks everything added so far.
func (v *Verifier) Report() Report {
	listed := map[string][]listing{}
	byEpoch := map[string]map[uint64][]*storedManifest{}
	for i := range v.manifests {
		sm := &v.manifests[i]
		m := &sm.rec.Manifest
		base := Finding{Node: m.Node, Instance: m.Instance, Epoch: m.Epoch, Seq: m.Seq, Index: sm.loc}
		switch {
		case !sm.rec.Signed:
			base.Kind, base.Detail = FindUnsigned, "manifest has no signature; its listings are not trusted"
			v.find(base)
			continue
		case !sm.rec.Verify(v.pub):
			base.Kind = FindBadSignature
			base.Detail = fmt.Sprintf("signature does not verify with key %s (manifest names key %s): forged or altered manifest; its listings are not trusted", KeyID(v.pub), m.KeyID)
			v.find(base)
			continue
		}
		seqs := byEpoch[m.Epoch]
		if seqs == nil {
			seqs = map[uint64][]*storedManifest{}
			byEpoch[m.Epoch] = seqs
		}
		dup := false
		for _, o := range seqs[m.Seq] {
			if o.rec.Hash == sm.rec.Hash {
				dup = true // the same manifest stored twice (a backend without de-duplication)
			}
		}
		if dup {
			v.report.Duplicates++
			continue
		}
		seqs[m.Seq] = append(seqs[m.Seq], sm)
		for j := range m.Events {
			e := &m.Events[j]
			var l listing
			l.entry, l.m = e, m
			if b, err := hex.DecodeString(e.SHA256); err == nil && len(b) == 32 {
				copy(l.sum[:], b)
			}
			listed[e.Key()] = append(listed[e.Key()], l)
		}
	}

	epochs := make([]string, 0, len(byEpoch))
	for e := range byEpoch {
		epochs = append(epochs, e)
	}
	sort.Strings(epochs)
	perEpoch := map[string]*EpochSummary{}
	for _, ep := range epochs {
		seqs := byEpoch[ep]
		var nums []uint64
		for s := range seqs {
			nums = append(nums, s)
		}
		sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
		first := seqs[nums[0]][0].rec.Manifest
		sum := &EpochSummary{Node: first.Node, Cluster: first.Cluster, Instance: first.Instance, Epoch: ep,
			FirstSeq: nums[0], LastSeq: nums[len(nums)-1]}
		if one := seqs[1]; len(one) > 0 {
			sum.NewEpoch, sum.PrevEpoch = one[0].rec.Manifest.NewEpoch, one[0].rec.Manifest.PrevEpoch
		}
		base := Finding{Node: first.Node, Instance: first.Instance, Epoch: ep}
		expect := uint64(1)
		for _, s := range nums {
			cands := seqs[s]
			sum.Manifests += len(cands)
			if len(cands) > 1 {
				sum.Forks++
			}
			for _, c := range cands {
				sum.Listed += len(c.rec.Manifest.Events)
			}
			if s > expect {
				f := base
				f.Kind, f.Seq = FindMissingManifest, expect
				if s-1 > expect {
					f.SeqTo = s - 1
					f.Detail = fmt.Sprintf("manifests %d to %d of the epoch are missing (deleted); the events they listed cannot be checked", expect, s-1)
				} else {
					f.Detail = fmt.Sprintf("manifest %d of the epoch is missing (deleted); the events it listed cannot be checked", expect)
				}
				f.Index = cands[0].loc
				v.find(f)
			}
			expect = s + 1
			for _, c := range cands {
				m := &c.rec.Manifest
				f := base
				f.Seq, f.Index, f.Kind = s, c.loc, FindBrokenChain
				if s == 1 {
					if m.Prev != "" || m.NewEpoch == "" {
						f.Detail = "first manifest of the epoch names a predecessor or no reason for the new epoch"
						v.find(f)
					}
					continue
				}
				prev, ok := seqs[s-1]
				if !ok {
					continue // the gap is reported
				}
				linked := false
				for _, p := range prev {
					linked = linked || p.rec.Hash == m.Prev
				}
				if !linked {
					f.Detail = fmt.Sprintf("prev %.16s… matches no manifest %d of the epoch: the chain is broken", m.Prev, s-1)
					v.find(f)
				}
			}
		}
		perEpoch[ep] = sum
	}

	// Listed documents: each must be stored, and every stored copy must
	// carry one of the hashes listed for it.
	keys := make([]string, 0, len(listed))
	for k := range listed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ls := listed[k]
		stored := v.docs[k]
		if len(stored) == 0 {
			l := ls[len(ls)-1]
			v.find(entryFinding(FindMissingEvent, l, l.entry.Index,
				fmt.Sprintf("listed by manifest %d (sha256 %.16s…) but not stored: deleted", l.m.Seq, l.entry.SHA256)))
			continue
		}
		for _, d := range stored {
			ok := false
			for _, l := range ls {
				ok = ok || l.sum == d.sum
			}
			if !ok {
				l := ls[len(ls)-1]
				v.find(entryFinding(FindAlteredEvent, l, d.loc,
					fmt.Sprintf("stored bytes hash to %.16s…, manifest %d lists %.16s…: altered", hex.EncodeToString(d.sum[:]), l.m.Seq, l.entry.SHA256)))
			}
		}
	}
	// Stored documents listed by nothing.
	keys = keys[:0]
	for k := range v.docs {
		if _, ok := listed[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, d := range v.docs[k] {
			f := Finding{Kind: FindInsertedEvent, Index: d.loc, Detail: "stored but listed by no validly signed manifest: inserted (or shipped after the last stored manifest)"}
			f.AuditID, f.Stage, f.ID = splitKey(k)
			v.find(f)
		}
	}

	r := v.report
	r.Findings = append([]Finding(nil), v.report.Findings...)
	for _, f := range r.Findings {
		if s := perEpoch[f.Epoch]; s != nil && f.Epoch != "" {
			s.Findings++
		}
	}
	for _, ep := range epochs {
		r.Epochs = append(r.Epochs, *perEpoch[ep])
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := &r.Findings[i], &r.Findings[j]
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Epoch != b.Epoch {
			return a.Epoch < b.Epoch
		}
		return a.Seq < b.Seq
	})
	return r
}

func entryFinding(kind string, l listing, index, detail string) Finding {
	return Finding{Kind: kind, Node: l.m.Node, Instance: l.m.Instance, Epoch: l.m.Epoch, Seq: l.m.Seq,
		AuditID: l.entry.AuditID, Stage: l.entry.Stage, ID: l.entry.ID, Index: index, Detail: detail}
}

// splitKey turns a document key back into auditID and stage (audit
// events) or an id.
func splitKey(k string) (auditID, stage, id string) {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '-' {
			switch k[i+1:] {
			case "RequestReceived", "ResponseStarted", "ResponseComplete", "Panic":
				return k[:i], k[i+1:], ""
			}
			break
		}
	}
	return "", "", k
}

// String renders a finding on one line.
func (f *Finding) String() string {
	var b bytes.Buffer
	b.WriteString(f.Kind)
	if f.Node != "" {
		b.WriteString(" node=" + f.Node)
	}
	if f.Epoch != "" {
		b.WriteString(" epoch=" + f.Epoch)
	}
	if f.Seq != 0 {
		b.WriteString(" seq=" + strconv.FormatUint(f.Seq, 10))
		if f.SeqTo != 0 {
			b.WriteString(".." + strconv.FormatUint(f.SeqTo, 10))
		}
	}
	if f.AuditID != "" {
		b.WriteString(" auditID=" + f.AuditID + " stage=" + f.Stage)
	}
	if f.ID != "" {
		b.WriteString(" id=" + f.ID)
	}
	idx := f.Index
	if idx == "" {
		idx = "?"
	}
	b.WriteString(" index=" + idx)
	b.WriteString(": " + f.Detail)
	return b.String()
}
