package loki

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/kaudit/kaudit/plugin/config"
)

// DefaultPushPath is appended to a url without a path.
const DefaultPushPath = "/loki/api/v1/push"

// Defaults of the keys (docs/loki.md lists them).
const (
	DefaultURL           = "http://127.0.0.1:3100" + DefaultPushPath
	DefaultTimeout       = 10 * time.Second
	DefaultRetryMaxWait  = 5 * time.Second
	DefaultBatchMaxBytes = 1 << 20
	DefaultMaxInFlight   = 2
	// DefaultSentCacheEntries is about 4 MB of hashes.
	DefaultSentCacheEntries = 100_000
)

// DefaultLabels are the stream labels: low-cardinality by design.
var DefaultLabels = []string{"job=kaudit", "cluster", "node", "verb", "resource", "namespace", "level", "critical"}

// DefaultMetadata are the structured metadata fields of each entry.
var DefaultMetadata = []string{"audit_id", "user", "source_ip"}

// DefaultLogfmtFields are the keys of a `line_format logfmt` line.
var DefaultLogfmtFields = []string{"audit_id", "stage", "verb", "user", "resource", "subresource",
	"namespace", "name", "code", "action", "outcome", "source_ip", "user_agent", "critical"}

// Config is the loki sink's settings.
type Config struct {
	URL      *url.URL
	TenantID string

	User, Password  string
	BearerTokenFile string

	TLS *tls.Config // nil for http://

	Timeout       time.Duration
	RetryMaxWait  time.Duration
	BatchMaxBytes int
	// MaxInFlight bounds the push requests of this instance in flight at
	// once across concurrent flushes; the requests of one flush go one
	// after another so each stream's entries arrive in order.
	MaxInFlight int

	// Format is "protobuf" (snappy) or "json".
	Format string
	// LineFormat is "json" (the document) or "logfmt".
	LineFormat   string
	LogfmtFields []field

	Labels   []label
	Metadata []field
	// HighCardinalityLabels names the labels the user asked for that are
	// high-cardinality (warned about once).
	HighCardinalityLabels []string

	// TimestampField is stageTimestamp or requestReceivedTimestamp.
	TimestampField string

	// SentCacheEntries bounds the memory of recently pushed entries that
	// a re-sent chunk does not push again (0: off).
	SentCacheEntries int
}

// parseConfig reads every key through config.Props, so errors name the key.
func parseConfig(p *config.Props) (*Config, error) {
	c := &Config{}
	urls, err := p.URLs("url", []string{DefaultURL})
	if err != nil {
		return nil, err
	}
	if len(urls) != 1 {
		return nil, p.Invalid("url", "exactly one http:// or https:// URL (Loki has one push endpoint)")
	}
	c.URL = urls[0]
	if c.URL.Path == "" || c.URL.Path == "/" {
		c.URL.Path = DefaultPushPath
	}
	c.TenantID = p.String("tenant_id", "")
	if strings.ContainsAny(c.TenantID, "\r\n") {
		return nil, p.Invalid("tenant_id", "a tenant id on one line")
	}
	c.User = p.String("http_user", "")
	c.Password = p.Secret("http_passwd")
	if c.Password != "" && c.User == "" {
		return nil, p.Invalid("http_user", "a user name (http_passwd is set)")
	}
	if c.BearerTokenFile, err = p.File("bearer_token_file"); err != nil {
		return nil, err
	}
	if c.BearerTokenFile != "" && c.User != "" {
		return nil, p.Invalid("bearer_token_file", "unset when http_user is set (basic auth or a bearer token, not both)")
	}
	tc, err := p.ClientTLS()
	if err != nil {
		return nil, err
	}
	if c.URL.Scheme == "https" {
		c.TLS = tc
	}
	if c.Timeout, err = p.Duration("timeout", DefaultTimeout); err != nil {
		return nil, err
	}
	if c.Timeout == 0 {
		return nil, p.Invalid("timeout", "a duration above zero such as 10s")
	}
	if c.RetryMaxWait, err = p.Duration("retry_max_wait", DefaultRetryMaxWait); err != nil {
		return nil, err
	}
	size, err := p.Size("batch_max_bytes", DefaultBatchMaxBytes, 1024)
	if err != nil {
		return nil, err
	}
	if size > 1<<30 {
		return nil, p.Invalid("batch_max_bytes", "a size from 1K to 1G")
	}
	c.BatchMaxBytes = int(size)
	if c.MaxInFlight, err = p.Int("max_in_flight", DefaultMaxInFlight, 1, 64); err != nil {
		return nil, err
	}
	if c.Format, err = p.Enum("format", "protobuf", "protobuf", "json"); err != nil {
		return nil, err
	}
	if c.LineFormat, err = p.Enum("line_format", "json", "json", "logfmt"); err != nil {
		return nil, err
	}
	if c.LogfmtFields, err = parseFields(p, "logfmt_fields", DefaultLogfmtFields, false); err != nil {
		return nil, err
	}
	if c.Labels, c.HighCardinalityLabels, err = parseLabels(p, "labels", DefaultLabels); err != nil {
		return nil, err
	}
	if c.Metadata, err = parseFields(p, "structured_metadata", DefaultMetadata, true); err != nil {
		return nil, err
	}
	switch strings.ToLower(p.String("timestamp_field", "stageTimestamp")) {
	case "stagetimestamp":
		c.TimestampField = "stageTimestamp"
	case "requestreceivedtimestamp":
		c.TimestampField = "requestReceivedTimestamp"
	default:
		return nil, p.Invalid("timestamp_field", "allowed: stageTimestamp, requestReceivedTimestamp")
	}
	if c.SentCacheEntries, err = p.Int("sent_cache_entries", DefaultSentCacheEntries, 0, 10_000_000); err != nil {
		return nil, err
	}
	return c, nil
}

// parseFields reads a list of event fields; allowNone lets "none" (or
// "off") mean the empty list.
func parseFields(p *config.Props, key string, def []string, allowNone bool) ([]field, error) {
	names := p.List(key, def)
	if allowNone && len(names) == 1 && (strings.EqualFold(names[0], "none") || strings.EqualFold(names[0], "off")) {
		return nil, nil
	}
	out := make([]field, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		f, ok := lookupField(n)
		if !ok {
			return nil, p.Invalid(key, "event fields from: %s%s", strings.Join(fieldNames(), ", "), noneHint(allowNone))
		}
		if seen[f.name] {
			return nil, p.Invalid(key, "each field once (%s is repeated)", f.name)
		}
		seen[f.name] = true
		out = append(out, f)
	}
	return out, nil
}

func noneHint(allowNone bool) string {
	if allowNone {
		return "; or none"
	}
	return ""
}

// parseLabels reads `labels`: NAME=VALUE is a static label, a bare field
// name a label taken from the event. Names are sanitised to Loki's rules.
func parseLabels(p *config.Props, key string, def []string) ([]label, []string, error) {
	var out []label
	var high []string
	seen := map[string]bool{}
	for _, item := range p.List(key, def) {
		var l label
		if name, value, static := strings.Cut(item, "="); static {
			l = label{name: SanitizeLabelName(name), static: value}
			if value == "" {
				return nil, nil, p.Invalid(key, "a static label %q with a value (NAME=VALUE)", name)
			}
		} else {
			f, ok := lookupField(item)
			if !ok {
				return nil, nil, p.Invalid(key, "NAME=VALUE static labels and event fields from: %s", strings.Join(fieldNames(), ", "))
			}
			l = label{name: SanitizeLabelName(f.name), field: f, dynamic: true}
			if f.high {
				high = append(high, f.name)
			}
		}
		if l.name == "" {
			return nil, nil, p.Invalid(key, "label names with at least one letter, digit or underscore (%q)", item)
		}
		if seen[l.name] {
			return nil, nil, p.Invalid(key, "each label name once (%s is repeated)", l.name)
		}
		seen[l.name] = true
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, nil, p.Invalid(key, "at least one label (Loki needs one per stream)")
	}
	if len(out) > 15 {
		return nil, nil, p.Invalid(key, "at most 15 labels (Loki's default max_label_names_per_series)")
	}
	return out, high, nil
}

func (c *Config) String() string {
	names := make([]string, len(c.Labels))
	for i, l := range c.Labels {
		names[i] = l.name
	}
	meta := make([]string, len(c.Metadata))
	for i, f := range c.Metadata {
		meta[i] = f.name
	}
	return fmt.Sprintf("url=%s format=%s line_format=%s labels=%s structured_metadata=%s timestamp_field=%s tenant=%q",
		c.URL.Redacted(), c.Format, c.LineFormat, strings.Join(names, ","), strings.Join(meta, ","), c.TimestampField, c.TenantID)
}
