package plugin

import (
	"context"
	"fmt"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/chain"
	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
	"github.com/kaudit/kaudit/plugin/sink/elasticsearch"
)

// Locator is implemented by sinks that can say which index or stream a
// document goes to; manifests then name it.
type Locator interface {
	Location(doc *filter.Document) string
}

// manifester is an instance's manifest chain and how it names where
// documents went.
type manifester struct {
	chain  *chain.Chain
	locate func(doc *filter.Document) string
}

// openChain opens the manifest chain when chain_key_file is set.
func openChain(p *config.Props, cfg *config.Config, log *flblog.Logger) (*manifester, error) {
	if cfg.ChainKeyFile == "" {
		return nil, nil
	}
	if cfg.Output == "loki" && p.Raw("line_format") == "logfmt" {
		return nil, &config.Error{Instance: p.Instance, Key: "chain_key_file", Value: cfg.ChainKeyFile,
			Allowed: "only with line_format json: manifests list the exact document bytes, which a logfmt line does not keep"}
	}
	key, err := chain.LoadPrivateKey(cfg.ChainKeyFile)
	if err != nil {
		return nil, &config.Error{Instance: p.Instance, Key: "chain_key_file", Value: cfg.ChainKeyFile,
			Allowed: "an Ed25519 private key in PEM (kaudit keygen): " + err.Error()}
	}
	c, err := chain.Open(chain.Options{
		Key: key, StateDir: cfg.StateDir, Cluster: cfg.Filter.Cluster, Node: cfg.Filter.Node,
		Instance: p.Instance, Now: cfg.Filter.Now, Logf: log.Infof,
	})
	if err != nil {
		return nil, err
	}
	return &manifester{chain: c}, nil
}

// withSink picks how to name the index of each document: the sink's own
// Locator, or for elasticsearch the index pattern (or data stream) of its
// configuration, applied to the document time as the sink does.
func (m *manifester) withSink(p *config.Props, cfg *config.Config, s sink.Sink) *manifester {
	if m == nil {
		return nil
	}
	if l, ok := s.(Locator); ok {
		m.locate = l.Location
	} else if cfg.Output == "elasticsearch" {
		if ec, err := elasticsearch.ParseConfig(p); err == nil {
			if ds := ec.DataStream; ds != "" {
				m.locate = func(*filter.Document) string { return ds }
			} else if ec.Index != nil {
				pat := ec.Index
				m.locate = func(d *filter.Document) string { return pat.Format(d.Time.UTC()) }
			}
		}
	}
	return m
}

// appendManifest lists the delivered items in a signed manifest and
// delivers it to the same sink. An error means the manifest is not stored:
// the flush is retried and the chain has not moved.
func (in *Instance) appendManifest(ctx context.Context, items []sink.Item) error {
	m := in.chain
	entries := make([]chain.Entry, 0, len(items))
	for i := range items {
		if items[i].Outcome != sink.Delivered {
			continue
		}
		index := ""
		if m.locate != nil {
			index = m.locate(&items[i].Doc)
		}
		entries = append(entries, chain.EntryFor(&items[i].Doc, index))
	}
	if len(entries) == 0 {
		return nil
	}
	_, err := m.chain.Append(entries, func(doc filter.Document) error {
		batch := []sink.Item{{Doc: doc}}
		if err := in.sink.Deliver(ctx, batch); err != nil {
			return err
		}
		if batch[0].Outcome != sink.Delivered {
			return fmt.Errorf("%s: %s", batch[0].Outcome, batch[0].Reason)
		}
		return nil
	})
	return err
}
