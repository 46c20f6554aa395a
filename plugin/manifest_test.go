package plugin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/plugin/chain"
	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/test/auditgen"
)

func chainInstance(t testing.TB, s sink.Sink, extra map[string]string) (*Instance, ed25519.PublicKey, string) {
	t.Helper()
	dir := t.TempDir()
	priv, pub, err := chain.GenerateKey()
	require.NoError(t, err)
	keyPath := filepath.Join(dir, "chain.key")
	require.NoError(t, os.WriteFile(keyPath, priv, 0o600))
	props := map[string]string{"stats_interval": "0", "node": "n1", "chain_key_file": keyPath, "state_dir": filepath.Join(dir, "state")}
	for k, v := range extra {
		props[k] = v
	}
	p := config.MapProps("kaudit.t", props)
	cfg, err := config.Parse(p)
	require.NoError(t, err)
	in, err := NewWithSink(p, cfg, flblog.NewTo(&bytes.Buffer{}, &sync.Mutex{}, "kaudit.t", flblog.Debug), s)
	require.NoError(t, err)
	t.Cleanup(func() { in.Close() })
	k, err := chain.ParsePublicKey(pub)
	require.NoError(t, err)
	return in, k, filepath.Join(dir, "state")
}

// memSink stores documents by id; manifests fail while failManifests > 0.
type memSink struct {
	mu            sync.Mutex
	docs          map[string][]byte
	order         []string
	failManifests int
	rejectID      string
}

func (m *memSink) Deliver(_ context.Context, items []sink.Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.docs == nil {
		m.docs = map[string][]byte{}
	}
	for i := range items {
		d := &items[i].Doc
		switch {
		case d.Kind == chain.Kind && m.failManifests > 0:
			m.failManifests--
			items[i].Outcome, items[i].Reason = sink.Retry, "backend busy"
			continue
		case d.ID == m.rejectID:
			items[i].Outcome = sink.Rejected
			continue
		}
		if _, ok := m.docs[d.ID]; ok {
			items[i].Duplicate = true
		} else {
			m.docs[d.ID] = d.Body
			m.order = append(m.order, d.ID)
		}
		items[i].Outcome = sink.Delivered
	}
	return nil
}

func (m *memSink) Close() error { return nil }

func (m *memSink) verify(pub ed25519.PublicKey) chain.Report {
	v := chain.NewVerifier(pub)
	for _, id := range m.order {
		v.Add("mem", m.docs[id])
	}
	return v.Report()
}

func TestFlushRetriedUntilManifestStored(t *testing.T) {
	s := &memSink{failManifests: 2, rejectID: "id-2-ResponseComplete"}
	in, pub, _ := chainInstance(t, s, nil)
	data := chunk(ev1, ev2)
	assert.Equal(t, FlbRetry, in.Flush(data, "kube.audit"))
	assert.EqualValues(t, 0, in.chain.chain.State().Seq, "the chain does not move until the manifest is stored")
	assert.Equal(t, FlbRetry, in.Flush(data, "kube.audit"))
	assert.Equal(t, FlbOK, in.Flush(data, "kube.audit"))
	st := in.chain.chain.State()
	assert.EqualValues(t, 1, st.Seq)

	r := s.verify(pub)
	assert.Empty(t, r.Findings)
	require.Len(t, r.Epochs, 1)
	assert.Equal(t, 1, r.Epochs[0].Listed, "the rejected event is not listed")
	assert.Equal(t, 1, r.Events)
}

func TestChainConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	for _, c := range []struct {
		props map[string]string
		want  string
	}{
		{map[string]string{"chain_key_file": bad}, "invalid value for state_dir"},
		{map[string]string{"chain_key_file": bad, "state_dir": dir}, "invalid value for chain_key_file"},
		{map[string]string{"chain_key_file": filepath.Join(dir, "missing"), "state_dir": dir}, "invalid value for chain_key_file"},
	} {
		p := config.MapProps("kaudit.t", c.props)
		cfg, err := config.Parse(p)
		if err == nil {
			_, err = NewWithSink(p, cfg, flblog.NewTo(&bytes.Buffer{}, &sync.Mutex{}, "kaudit.t", flblog.Debug), &memSink{})
		}
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
	}
}

// discard accepts everything.
type discard struct{}

func (discard) Deliver(_ context.Context, items []sink.Item) error {
	for i := range items {
		items[i].Outcome = sink.Delivered
	}
	return nil
}
func (discard) Close() error { return nil }

// BenchmarkFlushChain is the cost of chaining: the same chunks flushed
// with and without chain_key_file, to a sink that does nothing (so the
// difference is hashing, the manifest, its signature and the state file).
func BenchmarkFlushChain(b *testing.B) {
	lines := auditgen.Generate(auditgen.Options{Seed: 5, Events: 500})
	var strs []string
	for _, l := range lines {
		strs = append(strs, string(l))
	}
	data := chunk(strs...)
	for _, chained := range []bool{false, true} {
		b.Run(fmt.Sprintf("chain=%v", chained), func(b *testing.B) {
			var in *Instance
			if chained {
				in, _, _ = chainInstance(b, discard{}, nil)
			} else {
				p := config.MapProps("kaudit.t", map[string]string{"stats_interval": "0"})
				cfg, _ := config.Parse(p)
				var err error
				in, err = NewWithSink(p, cfg, flblog.NewTo(&bytes.Buffer{}, &sync.Mutex{}, "kaudit.t", flblog.Error), discard{})
				require.NoError(b, err)
				b.Cleanup(func() { in.Close() })
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if in.Flush(data, "kube.audit") != FlbOK {
					b.Fatal("flush failed")
				}
			}
			b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
