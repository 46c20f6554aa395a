package plugin

import (
	"sync"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
)

// The live instances, only for Fluent Bit's context-free callbacks
// (FLBPluginFlush, FLBPluginExit), which cannot say which instance they
// mean. Flushes with a context never look here.
var (
	liveMu sync.Mutex
	live   []*Instance
)

func addLive(in *Instance) {
	liveMu.Lock()
	live = append(live, in)
	liveMu.Unlock()
}

func removeLive(in *Instance) {
	liveMu.Lock()
	defer liveMu.Unlock()
	for i, x := range live {
		if x == in {
			live = append(live[:i], live[i+1:]...)
			return
		}
	}
}

// Only returns the single live instance, or nil when there are none or
// several (a context-free flush cannot tell them apart).
func Only() *Instance {
	liveMu.Lock()
	defer liveMu.Unlock()
	if len(live) == 1 {
		return live[0]
	}
	return nil
}

// CloseAll closes every live instance (FLBPluginExit without a context).
func CloseAll() {
	liveMu.Lock()
	all := append([]*Instance(nil), live...)
	liveMu.Unlock()
	for _, in := range all {
		in.Close()
	}
}

// Init is FLBPluginInit's body: build an instance from the properties
// get returns, or log one line naming the key and return nil.
func Init(get func(key string) string) (in *Instance) {
	name := NextName()
	defer func() {
		if r := recover(); r != nil {
			flblog.New(name, flblog.Error).Errorf("init failed: panic: %v", r)
			in = nil
		}
	}()
	in, err := New(config.NewProps(name, get))
	if err != nil {
		flblog.New("", flblog.Error).Errorf("init failed: %v", err)
		return nil
	}
	addLive(in)
	return in
}
