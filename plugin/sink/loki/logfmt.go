package loki

import (
	"unicode/utf8"

	"github.com/kaudit/kaudit/filter"
	"github.com/kaudit/kaudit/plugin/sink"
)

// appendLogfmt appends `key=value` pairs of the selected fields, in the
// configured order, skipping empty values. Values with spaces, quotes,
// '=' or control characters are double-quoted with Go-style escapes.
func appendLogfmt(b []byte, fs []field, d *filter.Document, env *sink.Env) []byte {
	first := true
	for _, f := range fs {
		v := f.get(d, env)
		if v == "" {
			continue
		}
		if !first {
			b = append(b, ' ')
		}
		first = false
		b = append(b, f.name...)
		b = append(b, '=')
		b = appendLogfmtValue(b, v)
	}
	return b
}

func appendLogfmtValue(b []byte, v string) []byte {
	quote := false
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			quote = true
			break
		}
	}
	if !quote {
		return append(b, v...)
	}
	return filter.AppendString(b, v)
}
