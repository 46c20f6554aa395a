// Package loki is the loki sink (being written).
package loki

import (
	"errors"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/sink"
)

func init() { sink.Register("loki", New) }

// New builds the sink.
func New(p *config.Props, env sink.Env) (sink.Sink, error) {
	return nil, p.Invalid("output", "the loki sink is not built yet: %v", errors.ErrUnsupported)
}
