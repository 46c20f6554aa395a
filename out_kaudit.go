// Command out_kaudit is the Fluent Bit output plugin, built with
// -buildmode=c-shared into out_kaudit.so. This file holds only the
// functions Fluent Bit's Go proxy calls; the work is in plugin/ and filter/.
package main

import "C"

import (
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"

	"github.com/kaudit/kaudit/plugin"
	"github.com/kaudit/kaudit/plugin/flblog"
)

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	return output.FLBPluginRegister(def, "kaudit", "Kubernetes audit events: policy, enrichment, delivery to Elasticsearch/OpenSearch or Loki")
}

//export FLBPluginInit
func FLBPluginInit(p unsafe.Pointer) int {
	in := plugin.Init(func(key string) string { return output.FLBPluginConfigKey(p, key) })
	if in == nil {
		return output.FLB_ERROR
	}
	output.FLBPluginSetContext(p, in)
	return output.FLB_OK
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.int, tag *C.char) int {
	in, ok := output.FLBPluginGetContext(ctx).(*plugin.Instance)
	if !ok {
		flblog.New("", flblog.Error).Errorf("flush without an initialised instance (tag %q): chunk retried", C.GoString(tag))
		return output.FLB_RETRY
	}
	return in.Flush(C.GoBytes(data, length), C.GoString(tag))
}

// FLBPluginFlush is used by Fluent Bit only when FLBPluginFlushCtx is
// missing; it serves a single instance.
//
//export FLBPluginFlush
func FLBPluginFlush(data unsafe.Pointer, length C.int, tag *C.char) int {
	in := plugin.Only()
	if in == nil {
		flblog.New("", flblog.Error).Errorf("context-free flush with other than one instance (tag %q): chunk retried", C.GoString(tag))
		return output.FLB_RETRY
	}
	return in.Flush(C.GoBytes(data, length), C.GoString(tag))
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) int {
	if in, ok := output.FLBPluginGetContext(ctx).(*plugin.Instance); ok {
		in.Close()
	}
	return output.FLB_OK
}

//export FLBPluginExit
func FLBPluginExit() int {
	plugin.CloseAll()
	return output.FLB_OK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	output.FLBPluginUnregister(def)
}

func main() {}
