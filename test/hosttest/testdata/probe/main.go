// Command probe is a throwaway Fluent Bit Go output plugin used by hosttest's
// smoke test to check flbhost against fluent-bit-go itself. It is built from a
// temporary copy with its own go.mod; the go tool ignores testdata.
package main

/*
#include <stdlib.h>

struct probe_api {
    void *get_property[4];
    void (*log_print)(int, const char *, int, const char *, ...);
    void *input_log_check;
    int (*output_log_check)(void *, int);
};

struct probe_plugin {
    void *name;
    struct probe_api *api;
    void *o_ins;
    void *context;
};

static void probe_log(void *plugin, int level, const char *msg)
{
    struct probe_plugin *p = plugin;
    if (p->api->output_log_check(p->o_ins, level)) {
        p->api->log_print(level, __FILE__, __LINE__, "probe: %s", msg);
    }
}
*/
import "C"

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
)

type probe struct {
	id, mode, dump   string
	calls, records   atomic.Int64
	running, maxConc atomic.Int64
}

func logf(plugin unsafe.Pointer, level int, format string, args ...any) {
	msg := C.CString(fmt.Sprintf(format, args...))
	C.probe_log(plugin, C.int(level), msg)
	C.free(unsafe.Pointer(msg))
}

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	return output.FLBPluginRegister(def, "probe", "hosttest probe plugin")
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	key := func(k string) string { return output.FLBPluginConfigKey(plugin, k) }
	id := key("probe_id")
	fmt.Fprintf(os.Stderr, "probe: init id=%s upper=%s mode=%s match=%q workers=%q retry_limit=%q env=%q empty=%q unset=%q\n",
		id, key("PROBE_ID"), key("mode"), key("match"), key("workers"), key("retry_limit"),
		key("from_env"), key("empty_key"), key("no_such_key"))
	logf(plugin, 3, "info from init id=%s", id)
	logf(plugin, 4, "debug from init id=%s", id)
	if key("fail_init") == "yes" {
		return output.FLB_ERROR
	}
	output.FLBPluginSetContext(plugin, &probe{id: id, mode: key("mode"), dump: key("dump_dir")})
	return output.FLB_OK
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.int, tag *C.char) int {
	p := output.FLBPluginGetContext(ctx).(*probe)
	call := p.calls.Add(1)
	n := p.running.Add(1)
	for m := p.maxConc.Load(); n > m && !p.maxConc.CompareAndSwap(m, n); m = p.maxConc.Load() {
	}
	defer p.running.Add(-1)

	if p.dump != "" {
		name := fmt.Sprintf("%s/%s-%d.bin", p.dump, p.id, call)
		if err := os.WriteFile(name, C.GoBytes(data, length), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "probe: dump: %v\n", err)
		}
	}
	dec := output.NewDecoder(data, int(length))
	n = 0
	var tsType string
	for {
		ret, ts, _ := output.GetRecord(dec)
		if ret != 0 {
			break
		}
		if n == 0 {
			tsType = fmt.Sprintf("%T", ts)
		}
		n++
	}
	p.records.Add(int64(n))
	fmt.Fprintf(os.Stderr, "probe: flush id=%s tag=%s records=%d ts=%s call=%d\n",
		p.id, C.GoString(tag), n, tsType, call)

	switch p.mode {
	case "slow":
		time.Sleep(150 * time.Millisecond)
	case "retry_first":
		if call == 1 {
			return output.FLB_RETRY
		}
	case "always_retry":
		return output.FLB_RETRY
	case "error":
		return output.FLB_ERROR
	case "weird":
		return 7
	}
	return output.FLB_OK
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) int {
	p, _ := output.FLBPluginGetContext(ctx).(*probe)
	if p == nil {
		fmt.Fprintf(os.Stderr, "probe: exit nil-context\n")
		return output.FLB_OK
	}
	fmt.Fprintf(os.Stderr, "probe: exit id=%s calls=%d records=%d maxconc=%d\n",
		p.id, p.calls.Load(), p.records.Load(), p.maxConc.Load())
	return output.FLB_OK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	fmt.Fprintf(os.Stderr, "probe: unregister\n")
	output.FLBPluginUnregister(def)
}

func main() {}
