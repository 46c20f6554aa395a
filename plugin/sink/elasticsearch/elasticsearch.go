// Package elasticsearch is the elasticsearch sink (being written).
package elasticsearch

import (
	"errors"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/sink"
)

func init() { sink.Register("elasticsearch", New) }

// New builds the sink.
func New(p *config.Props, env sink.Env) (sink.Sink, error) {
	return nil, p.Invalid("output", "the elasticsearch sink is not built yet: %v", errors.ErrUnsupported)
}
