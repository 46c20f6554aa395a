package chain

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/kaudit/kaudit/filter"
)

func testKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	privPEM, pubPEM, err := GenerateKey()
	require.NoError(t, err)
	priv, err := ParsePrivateKey(privPEM)
	require.NoError(t, err)
	pub, err := ParsePublicKey(pubPEM)
	require.NoError(t, err)
	require.Equal(t, priv.Public(), pub)
	return priv
}

func testDoc(id int, stage string) filter.Document {
	ev := &filter.Event{}
	ev.AuditID = types.UID("00000000-0000-0000-0000-" + fmt.Sprintf("%012d", id))
	ev.Stage = auditv1.Stage(stage)
	ev.Verb = "get"
	ev.StageTimestamp.Time = time.Date(2025, 6, 2, 16, 0, id, 0, time.UTC)
	return filter.NewDocument(ev, nil)
}

// store is a backend in memory: documents by id, as Elasticsearch keeps
// them with id_key (a re-sent document is a duplicate).
type store struct {
	docs  map[string][]byte
	order []string
	fail  bool
}

func newStore() *store { return &store{docs: map[string][]byte{}} }

func (s *store) put(d filter.Document) error {
	if s.fail {
		return errors.New("backend down")
	}
	if _, ok := s.docs[d.ID]; !ok {
		s.order = append(s.order, d.ID)
		s.docs[d.ID] = d.Body
	}
	return nil
}

// flush ships docs then the manifest over them, like the instance does.
func (s *store) flush(t *testing.T, c *Chain, docs ...filter.Document) error {
	t.Helper()
	var es []Entry
	for i := range docs {
		require.NoError(t, s.put(docs[i]))
		es = append(es, EntryFor(&docs[i], "idx"))
	}
	_, err := c.Append(es, s.put)
	return err
}

func (s *store) verify(pub ed25519.PublicKey) Report {
	v := NewVerifier(pub)
	for _, id := range s.order {
		if b, ok := s.docs[id]; ok {
			v.Add("idx", b)
		}
	}
	return v.Report()
}

func kinds(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Kind)
	}
	return out
}

func open(t *testing.T, key ed25519.PrivateKey, dir string) *Chain {
	t.Helper()
	c, err := Open(Options{Key: key, StateDir: dir, Node: "node-1", Instance: "kaudit.0", Cluster: "prod"})
	require.NoError(t, err)
	return c
}

func TestChainCleanAcrossRestartAndRetries(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	dir := t.TempDir()
	s := newStore()

	c := open(t, key, dir)
	require.NoError(t, s.flush(t, c, testDoc(1, "ResponseComplete"), testDoc(2, "ResponseComplete")))
	require.NoError(t, s.flush(t, c, testDoc(3, "RequestReceived")))
	st := c.State()
	assert.EqualValues(t, 2, st.Seq)

	// The backend fails the manifest: the chain does not advance, and the
	// re-sent batch (duplicates) is listed by the next manifest.
	s.fail = true
	var es []Entry
	d4 := testDoc(4, "ResponseComplete")
	es = append(es, EntryFor(&d4, "idx"))
	_, err := c.Append(es, s.put)
	require.Error(t, err)
	assert.Equal(t, st, c.State())
	s.fail = false
	require.NoError(t, s.flush(t, c, d4))

	// Restart: the state file continues the chain.
	c2 := open(t, key, dir)
	assert.Equal(t, c.State(), c2.State())
	require.NoError(t, s.flush(t, c2, testDoc(5, "ResponseComplete"), testDoc(1, "ResponseComplete")))

	r := s.verify(pub)
	assert.Empty(t, r.Findings)
	require.Len(t, r.Epochs, 1)
	assert.Equal(t, EpochNoState, r.Epochs[0].NewEpoch)
	assert.EqualValues(t, 4, r.Epochs[0].LastSeq)
	assert.Equal(t, 5, r.Events)
	assert.Equal(t, 4, r.Manifests)
}

func TestStateWrittenAtomically(t *testing.T) {
	key := testKey(t)
	dir := t.TempDir()
	c := open(t, key, dir)
	s := newStore()
	require.NoError(t, s.flush(t, c, testDoc(1, "ResponseComplete")))
	path := StatePath(dir, "node-1", "kaudit.0")
	st, err := ReadState(path)
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.Seq)
	assert.Equal(t, c.State().Last, st.Last)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary file left behind")
	assert.Equal(t, filepath.Base(path), ents[0].Name())
}

func TestLostStateStartsMarkedEpoch(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	dir := t.TempDir()
	s := newStore()
	c := open(t, key, dir)
	require.NoError(t, s.flush(t, c, testDoc(1, "ResponseComplete")))
	first := c.State().Epoch

	// A corrupt state file: a new epoch, marked as such.
	require.NoError(t, os.WriteFile(StatePath(dir, "node-1", "kaudit.0"), []byte("{garbage"), 0o600))
	c2 := open(t, key, dir)
	assert.NotEqual(t, first, c2.State().Epoch)
	require.NoError(t, s.flush(t, c2, testDoc(2, "ResponseComplete")))

	// A deleted one: another.
	require.NoError(t, os.Remove(StatePath(dir, "node-1", "kaudit.0")))
	c3 := open(t, key, dir)
	require.NoError(t, s.flush(t, c3, testDoc(3, "ResponseComplete")))

	// Another key: another, naming the epoch it replaces.
	c4 := open(t, testKey(t), dir)
	assert.NotEqual(t, c3.State().Epoch, c4.State().Epoch)
	rec, err := c4.Append(nil, s.put)
	require.NoError(t, err)
	assert.Equal(t, EpochKeyChanged, rec.Manifest.NewEpoch)
	assert.Equal(t, c3.State().Epoch, rec.Manifest.PrevEpoch)

	r := s.verify(pub)
	// c4's manifest is signed by another key.
	assert.Equal(t, []string{FindBadSignature}, kinds(r))
	require.Len(t, r.Epochs, 3)
	reasons := map[string]bool{}
	for _, e := range r.Epochs {
		reasons[e.NewEpoch] = true
		assert.EqualValues(t, 1, e.FirstSeq)
	}
	assert.Equal(t, map[string]bool{EpochNoState: true, EpochBadState: true}, reasons)
}

func TestSignatureCoversManifestBytes(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	d := testDoc(1, "ResponseComplete")
	m := Manifest{Epoch: "e", Seq: 1, NewEpoch: EpochNoState, Node: "n", Instance: "i", Events: []Entry{EntryFor(&d, "")}}
	doc, rec, err := Seal(&m, key)
	require.NoError(t, err)
	assert.Equal(t, Kind, doc.Kind)
	assert.True(t, strings.HasPrefix(doc.ID, "kaudit-manifest-e-1-"))
	assert.True(t, IsManifest(doc.Body))

	back, err := ParseRecord(doc.Body)
	require.NoError(t, err)
	assert.True(t, back.Verify(pub))
	assert.Equal(t, rec.Hash, back.Hash)
	assert.Equal(t, d.ID, back.Manifest.Events[0].Key())

	// One byte of the manifest changed: the signature fails.
	forged := strings.Replace(string(doc.Body), `"seq":1`, `"seq":2`, 1)
	back, err = ParseRecord([]byte(forged))
	require.NoError(t, err)
	assert.False(t, back.Verify(pub))
	// Another key.
	assert.False(t, rec.Verify(testKey(t).Public().(ed25519.PublicKey)))
	// No signature.
	unsigned := strings.Replace(string(doc.Body), `"signature":"`, `"x":"`, 1)
	back, err = ParseRecord([]byte(unsigned))
	require.NoError(t, err)
	assert.False(t, back.Signed)
}

func TestVerifyNamesEachTampering(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	s := newStore()
	c := open(t, key, t.TempDir())
	var manifests []string
	for i := 0; i < 5; i++ {
		require.NoError(t, s.flush(t, c, testDoc(10*i+1, "ResponseComplete"), testDoc(10*i+2, "ResponseComplete")))
		manifests = append(manifests, s.order[len(s.order)-1])
	}
	require.Empty(t, s.verify(pub).Findings)

	d1, d12 := testDoc(1, "ResponseComplete"), testDoc(12, "ResponseComplete")
	delete(s.docs, d1.ID)                                                                  // deletion (seq 1)
	s.docs[d12.ID] = []byte(strings.Replace(string(s.docs[d12.ID]), `"get"`, `"list"`, 1)) // alteration (seq 2)
	forged := testDoc(99, "ResponseComplete")                                              // insertion
	require.NoError(t, s.put(forged))
	delete(s.docs, manifests[2]) // manifest 3 deleted: its events become unlisted
	// A forged manifest: a copy of manifest 4 with its listing changed.
	m4 := string(s.docs[manifests[3]])
	s.docs["forged-manifest"] = []byte(strings.Replace(m4, `"seq":4`, `"seq":6`, 1))
	s.order = append(s.order, "forged-manifest")

	r := s.verify(pub)
	got := map[string][]Finding{}
	for _, f := range r.Findings {
		got[f.Kind] = append(got[f.Kind], f)
		assert.NotEmpty(t, f.Index, f.String())
	}
	require.Len(t, got[FindMissingEvent], 1)
	assert.Equal(t, string(d1.Event.AuditID), got[FindMissingEvent][0].AuditID)
	assert.EqualValues(t, 1, got[FindMissingEvent][0].Seq)
	require.Len(t, got[FindAlteredEvent], 1)
	assert.Equal(t, string(d12.Event.AuditID), got[FindAlteredEvent][0].AuditID)
	assert.EqualValues(t, 2, got[FindAlteredEvent][0].Seq)
	require.Len(t, got[FindMissingManifest], 1)
	assert.EqualValues(t, 3, got[FindMissingManifest][0].Seq)
	require.Len(t, got[FindBadSignature], 1)
	// Inserted: the forged event, and the two whose manifest was deleted.
	require.Len(t, got[FindInsertedEvent], 3)
	ids := map[string]bool{}
	for _, f := range got[FindInsertedEvent] {
		ids[f.AuditID] = true
	}
	assert.True(t, ids[string(forged.Event.AuditID)])
	assert.Len(t, r.Findings, 7)
}

func TestVerifyBrokenChain(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	s := newStore()
	c := open(t, key, t.TempDir())
	require.NoError(t, s.flush(t, c, testDoc(1, "ResponseComplete")))
	// Someone holding the key re-writes history: manifest 2 names a
	// predecessor that is not stored.
	c.mu.Lock()
	c.st.Last = strings.Repeat("0", 64)
	c.mu.Unlock()
	require.NoError(t, s.flush(t, c, testDoc(2, "ResponseComplete")))
	assert.Equal(t, []string{FindBrokenChain}, kinds(s.verify(pub)))
}

func BenchmarkEntryFor(b *testing.B) {
	d := testDoc(1, "ResponseComplete")
	d.Body = append(d.Body, make([]byte, 1500-len(d.Body))...)
	b.SetBytes(int64(len(d.Body)))
	for b.Loop() {
		_ = EntryFor(&d, "idx")
	}
}

func BenchmarkWriteState(b *testing.B) {
	dir := b.TempDir()
	st := State{Epoch: "e", Seq: 1, Last: strings.Repeat("a", 64), KeyID: "k"}
	for b.Loop() {
		st.Seq++
		if err := WriteState(filepath.Join(dir, "s.json"), st); err != nil {
			b.Fatal(err)
		}
	}
}
