// Package config reads a kaudit [OUTPUT] section's properties into typed,
// validated settings. Every error names the instance, the key, the value
// and what is allowed, so one log line tells the operator what to fix.
package config

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Error is an invalid setting.
type Error struct {
	Instance string
	Key      string
	Value    string
	Allowed  string
	// Secret hides the value (passwords, keys, tokens).
	Secret bool
}

func (e *Error) Error() string {
	v := strconv.Quote(e.Value)
	if e.Secret {
		v = "(hidden)"
	}
	return fmt.Sprintf("%s: invalid value for %s: %s: %s", e.Instance, e.Key, v, e.Allowed)
}

// Props reads properties the way Fluent Bit hands them to a Go plugin:
// case-insensitive keys, an unset key and an empty value both "".
type Props struct {
	// Instance names the output instance in errors (e.g. "kaudit.0").
	Instance string
	get      func(key string) string
}

// NewProps wraps a property getter (FLBPluginConfigKey in the plugin,
// a map in tests).
func NewProps(instance string, get func(key string) string) *Props {
	return &Props{Instance: instance, get: get}
}

// MapProps is a getter over a map with case-insensitive keys.
func MapProps(instance string, m map[string]string) *Props {
	lower := make(map[string]string, len(m))
	for k, v := range m {
		lower[strings.ToLower(k)] = v
	}
	return NewProps(instance, func(k string) string { return lower[strings.ToLower(k)] })
}

func (p *Props) errorf(key, value, allowed string, args ...any) *Error {
	return &Error{Instance: p.Instance, Key: key, Value: value, Allowed: fmt.Sprintf(allowed, args...)}
}

// Raw returns the trimmed value of key, "" when unset.
func (p *Props) Raw(key string) string { return strings.TrimSpace(p.get(key)) }

// Set reports whether key has a non-empty value.
func (p *Props) Set(key string) bool { return p.Raw(key) != "" }

// String returns the value of key or def.
func (p *Props) String(key, def string) string {
	if v := p.Raw(key); v != "" {
		return v
	}
	return def
}

// Enum returns the value of key (lower-cased) if it is one of allowed.
func (p *Props) Enum(key, def string, allowed ...string) (string, error) {
	v := strings.ToLower(p.String(key, def))
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", p.errorf(key, p.Raw(key), "allowed: %s", strings.Join(allowed, ", "))
}

// Bool parses on/off, true/false, yes/no, 1/0 like Fluent Bit.
func (p *Props) Bool(key string, def bool) (bool, error) {
	switch strings.ToLower(p.Raw(key)) {
	case "":
		return def, nil
	case "on", "true", "yes", "1":
		return true, nil
	case "off", "false", "no", "0":
		return false, nil
	}
	return false, p.errorf(key, p.Raw(key), "allowed: on, off (also true/false, yes/no)")
}

// Int parses an integer in [min, max].
func (p *Props) Int(key string, def, min, max int) (int, error) {
	raw := p.Raw(key)
	if raw == "" {
		return def, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < min || v > max {
		return 0, p.errorf(key, raw, "an integer from %d to %d", min, max)
	}
	return v, nil
}

// Duration parses a non-negative Go duration ("5s", "250ms") or a plain
// number of seconds, as Fluent Bit's own time settings take.
func (p *Props) Duration(key string, def time.Duration) (time.Duration, error) {
	raw := p.Raw(key)
	if raw == "" {
		return def, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		secs, ferr := strconv.ParseFloat(raw, 64)
		if ferr != nil {
			return 0, p.errorf(key, raw, "a duration such as 500ms, 5s or 1m (or a number of seconds)")
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, p.errorf(key, raw, "a duration that is not negative")
	}
	return d, nil
}

// Size parses a byte size: a number with an optional K, M, G suffix
// (powers of 1024, "KiB"/"KB"/"k" alike).
func (p *Props) Size(key string, def, min int64) (int64, error) {
	raw := p.Raw(key)
	if raw == "" {
		return def, nil
	}
	s := strings.ToUpper(raw)
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || n*float64(mult) < float64(min) || n*float64(mult) > 1<<40 {
		return 0, p.errorf(key, raw, "a size of at least %d bytes such as 512K, 5M or 1G", min)
	}
	return int64(n * float64(mult)), nil
}

// List splits a comma- or space-separated value.
func (p *Props) List(key string, def []string) []string {
	raw := p.Raw(key)
	if raw == "" {
		return def
	}
	return strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// File returns a path that must name a readable file, or "" when unset.
func (p *Props) File(key string) (string, error) {
	path := p.Raw(key)
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", p.errorf(key, path, "a readable file (%v)", unwrapPathErr(err))
	}
	st, err := f.Stat()
	f.Close()
	if err != nil || st.IsDir() {
		return "", p.errorf(key, path, "a readable file, not a directory")
	}
	return path, nil
}

// Dir returns a path that must name a writable directory (created if
// missing), or "" when unset.
func (p *Props) Dir(key string) (string, error) {
	path := p.Raw(key)
	if path == "" {
		return "", nil
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return "", p.errorf(key, path, "a writable directory (%v)", unwrapPathErr(err))
	}
	probe, err := os.CreateTemp(path, ".kaudit-probe-*")
	if err != nil {
		return "", p.errorf(key, path, "a writable directory (%v)", unwrapPathErr(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return path, nil
}

// URLs parses a list of http:// or https:// URLs.
func (p *Props) URLs(key string, def []string) ([]*url.URL, error) {
	var out []*url.URL
	for _, raw := range p.List(key, def) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, p.errorf(key, raw, "http:// or https:// URLs with a host, separated by commas")
		}
		if u.User != nil {
			return nil, &Error{Instance: p.Instance, Key: key, Value: raw, Secret: true,
				Allowed: "a URL without credentials (use http_user/http_passwd)"}
		}
		out = append(out, u)
	}
	return out, nil
}

// Secret reads a credential: the value itself never appears in errors.
func (p *Props) Secret(key string) string { return p.Raw(key) }

// Invalid builds an error for key with a custom explanation.
func (p *Props) Invalid(key, allowed string, args ...any) *Error {
	return p.errorf(key, p.Raw(key), allowed, args...)
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
