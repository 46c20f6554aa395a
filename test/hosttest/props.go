package hosttest

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// KV is one ordered key/value pair: a property, or a msgpack map entry.
type KV struct {
	Key   string
	Value any
}

// WriteProps writes a fluent-bit.conf style [OUTPUT] section ("Key  Value"
// lines) into a new file in dir and returns its path. props is a
// map[string]string (written in key order), a []KV or a [][2]string (written
// in the given order; repeated keys are kept, the host's lookup returns the
// first). A value is written with fmt's %v; an empty value means "unset"
// to the plugin, as in Fluent Bit.
func WriteProps(t testing.TB, dir string, props any) string {
	t.Helper()
	var pairs [][2]string
	switch p := props.(type) {
	case map[string]string:
		keys := make([]string, 0, len(p))
		for k := range p {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			pairs = append(pairs, [2]string{k, p[k]})
		}
	case []KV:
		for _, kv := range p {
			pairs = append(pairs, [2]string{kv.Key, fmt.Sprint(kv.Value)})
		}
	case [][2]string:
		pairs = p
	default:
		t.Fatalf("hosttest.WriteProps: unsupported props type %T", props)
	}
	var b strings.Builder
	b.WriteString("[OUTPUT]\n")
	for _, kv := range pairs {
		if strings.ContainsAny(kv[0], " \t\n") || strings.Contains(kv[1], "\n") {
			t.Fatalf("hosttest.WriteProps: key %q / value %q cannot be written", kv[0], kv[1])
		}
		fmt.Fprintf(&b, "    %s  %s\n", kv[0], kv[1])
	}
	f, err := os.CreateTemp(dir, "props-*.conf")
	if err != nil {
		t.Fatalf("hosttest.WriteProps: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatalf("hosttest.WriteProps: %v", err)
	}
	return f.Name()
}

// WriteFile writes data (a chunk, a log file) into a new file in dir whose
// name matches pattern (as os.CreateTemp) and returns its path.
func WriteFile(t testing.TB, dir, pattern string, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		t.Fatalf("hosttest.WriteFile: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatalf("hosttest.WriteFile: %v", err)
	}
	return f.Name()
}
