package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/kaudit/kaudit/filter"
)

// Options configure a Chain.
type Options struct {
	Key      ed25519.PrivateKey
	StateDir string
	Cluster  string
	Node     string
	Instance string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logf, when set, is told about epochs started and state not saved.
	Logf func(format string, args ...any)
}

// Chain is one instance's manifest chain. Append is safe for concurrent
// flushes: manifests are built, delivered and committed one at a time.
type Chain struct {
	mu   sync.Mutex
	opts Options
	path string

	keyID string
	st    State // st.Seq == 0: nothing in this epoch yet
	// newEpoch is why the current epoch was started; prevEpoch the
	// epoch the state held before, if any.
	newEpoch, prevEpoch string
}

// Open loads the instance's state from StateDir, or starts a new epoch
// (marked with the reason) when there is none, it cannot be read, or it
// belongs to another key.
func Open(o Options) (*Chain, error) {
	if o.Key == nil {
		return nil, errors.New("chain: no key")
	}
	if o.StateDir == "" {
		return nil, errors.New("chain: no state directory")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	c := &Chain{opts: o, path: StatePath(o.StateDir, o.Node, o.Instance), keyID: KeyID(o.Key.Public().(ed25519.PublicKey))}
	st, err := ReadState(c.path)
	switch {
	case err == nil && st.KeyID != c.keyID:
		c.startEpoch(EpochKeyChanged, st.Epoch)
		o.Logf("chain: state %s belongs to key %s, not %s: new epoch %s", c.path, st.KeyID, c.keyID, c.st.Epoch)
	case err == nil:
		c.st = st
		o.Logf("chain: continuing epoch %s after manifest %d", st.Epoch, st.Seq)
	case os.IsNotExist(err):
		c.startEpoch(EpochNoState, "")
		o.Logf("chain: no state in %s: new epoch %s", o.StateDir, c.st.Epoch)
	default:
		c.startEpoch(EpochBadState, "")
		o.Logf("chain: state unreadable (%v): new epoch %s", err, c.st.Epoch)
	}
	return c, nil
}

func (c *Chain) startEpoch(reason, prev string) {
	var r [6]byte
	rand.Read(r[:])
	c.st = State{
		Version:  stateVersion,
		Epoch:    c.opts.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:]),
		KeyID:    c.keyID,
		Node:     c.opts.Node,
		Instance: c.opts.Instance,
	}
	c.newEpoch, c.prevEpoch = reason, prev
}

// State returns where the chain stands.
func (c *Chain) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// Append builds the next manifest over entries, hands its document to
// deliver, and — only when deliver returns nil, i.e. the manifest is
// stored — advances the chain and persists the state. When deliver fails
// the chain stays where it was, so the next manifest (over the re-sent
// events) takes the same place. A state that cannot be saved is logged:
// the chain goes on in memory, and a restart before the next successful
// save re-uses a sequence number, which verify accepts as a fork of
// signed manifests.
func (c *Chain) Append(entries []Entry, deliver func(filter.Document) error) (Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := Manifest{
		Epoch:    c.st.Epoch,
		Seq:      c.st.Seq + 1,
		Prev:     c.st.Last,
		Cluster:  c.opts.Cluster,
		Node:     c.opts.Node,
		Instance: c.opts.Instance,
		Time:     c.opts.Now().UTC(),
		KeyID:    c.keyID,
		Events:   entries,
	}
	if m.Seq == 1 {
		m.NewEpoch, m.PrevEpoch = c.newEpoch, c.prevEpoch
	}
	doc, rec, err := Seal(&m, c.opts.Key)
	if err != nil {
		return rec, err
	}
	if err := deliver(doc); err != nil {
		return rec, fmt.Errorf("manifest %s/%d not stored: %w", m.Epoch, m.Seq, err)
	}
	c.st.Seq, c.st.Last, c.st.Updated = m.Seq, rec.Hash, m.Time
	if err := WriteState(c.path, c.st); err != nil {
		c.opts.Logf("chain: state not saved to %s (the chain goes on in memory): %v", c.path, err)
	}
	return rec, nil
}
