// Package sink defines what a kaudit destination implements: deliver a
// batch of documents and say, for each one, whether it arrived, should be
// retried, or was permanently rejected.
package sink

import (
	"context"
	"fmt"
	"sync"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
)

// Outcome is what became of one document.
type Outcome uint8

// Outcomes.
const (
	// Pending: not attempted (the sink gave up before reaching it).
	Pending Outcome = iota
	// Delivered: stored by the backend, or already there (a duplicate).
	Delivered
	// Retry: failed transiently; the whole chunk goes back to Fluent Bit.
	Retry
	// Rejected: the backend will never take it; logged (and dead-lettered
	// where the sink supports it) and not retried.
	Rejected
)

func (o Outcome) String() string {
	return [...]string{"pending", "delivered", "retry", "rejected"}[o]
}

// Item is one document in a batch with its outcome.
type Item struct {
	Doc     filter.Document
	Outcome Outcome
	// Reason says why an item was rejected or is retried.
	Reason string
	// Duplicate is set when the backend already had the document.
	Duplicate bool
}

// Sink delivers batches. Deliver may be called concurrently (Fluent Bit
// output workers); it must set every item's Outcome and return within
// its own time bound. A non-nil error means the batch failed as a whole
// and every item not marked Delivered or Rejected is retried.
type Sink interface {
	Deliver(ctx context.Context, items []Item) error
	Close() error
}

// Env is what a sink gets from its instance.
type Env struct {
	Instance string
	Log      *flblog.Logger
	// Cluster and Node name where the events were observed.
	Cluster string
	Node    string
}

// Factory builds a sink from the instance's properties; errors name the
// key (a *config.Error).
type Factory func(p *config.Props, env Env) (Sink, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a sink available as `output NAME`. Called from init().
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic(fmt.Sprintf("sink %q registered twice", name))
	}
	factories[name] = f
}

// Lookup returns the factory for name.
func Lookup(name string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := factories[name]
	return f, ok
}

// Names lists the registered sinks.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(factories))
	for n := range factories {
		out = append(out, n)
	}
	return out
}
