package elasticsearch

import (
	"crypto/tls"
	"net/url"
	"strings"
	"time"

	"github.com/kaudit/kaudit/plugin/config"
)

// Config is the sink's validated settings. Every key is read through
// config.Props, so an invalid value fails start-up with an error naming
// the instance, the key and what is allowed.
type Config struct {
	Hosts      []*url.URL
	PathPrefix string // "" or "/prefix" without a trailing slash

	// Index is the strftime pattern of the target index; unused when
	// DataStream is set.
	Index      *Pattern
	DataStream string
	IDKey      bool

	BulkMaxBytes int
	// MaxInFlight bounds the bulk requests of this instance in flight at
	// once, across concurrent flushes and the requests one flush is split
	// into.
	MaxInFlight int
	Gzip        bool

	User       string
	Password   string // secret
	APIKey     string // secret
	BearerFile string
	// TLS is the client TLS configuration (tls_* keys, config.ClientTLS).
	TLS *tls.Config

	Timeout      time.Duration
	RetryMaxWait time.Duration

	DeadLetter *Pattern // nil when unset

	InstallTemplate bool
	// BodyMapping is "auto" (flattened / flat_object where the engine has
	// it) or "disabled" (bodies kept in _source only).
	BodyMapping      string
	TemplateName     string
	TemplatePriority int
	TemplateFile     string
}

// Keys are the sink's keys, as docs/elasticsearch.md lists them (a test
// keeps the two in step).
var Keys = []string{
	"hosts", "path_prefix", "index", "data_stream", "id_key", "bulk_max_bytes", "max_in_flight", "compress",
	"http_user", "http_passwd", "api_key", "bearer_token_file",
	"tls_verify", "tls_ca_file", "tls_crt_file", "tls_key_file", "tls_server_name",
	"timeout", "retry_max_wait", "dead_letter_index", "body_mapping",
	"install_template", "template_name", "template_priority", "template_file",
}

// Key defaults.
const (
	DefaultMaxInFlight  = 2
	DefaultHost         = "http://127.0.0.1:9200"
	DefaultIndex        = "kaudit-%Y.%m.%d"
	DefaultBulkMaxBytes = 5 << 20
	DefaultTimeout      = 10 * time.Second
	DefaultRetryMaxWait = 5 * time.Second
	DefaultPriority     = 200
)

// ParseConfig reads the sink's keys.
func ParseConfig(p *config.Props) (*Config, error) {
	c := &Config{}
	var err error
	if c.Hosts, err = p.URLs("hosts", []string{DefaultHost}); err != nil {
		return nil, err
	}
	for _, u := range c.Hosts {
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, p.Invalid("hosts", "URLs of the form scheme://host:port (use path_prefix for a path)")
		}
		u.Path = ""
	}
	if pp := p.Raw("path_prefix"); pp != "" {
		pp = "/" + strings.Trim(pp, "/")
		if strings.ContainsAny(pp, "?# ") {
			return nil, p.Invalid("path_prefix", "a URL path such as /es (no query, no spaces)")
		}
		if pp != "/" {
			c.PathPrefix = pp
		}
	}

	c.DataStream = p.Raw("data_stream")
	if c.DataStream != "" {
		if p.Set("index") {
			return nil, p.Invalid("data_stream", "either index or data_stream, not both (data_stream is set and so is index)")
		}
		if err := validIndexName(c.DataStream); err != "" {
			return nil, p.Invalid("data_stream", "a data stream name: %s", err)
		}
	} else {
		if c.Index, err = CompilePattern(p.String("index", DefaultIndex)); err != nil {
			return nil, p.Invalid("index", "an index name, optionally with strftime fields (%%Y %%m %%d %%H %%j …): %v", err)
		}
	}
	if c.IDKey, err = p.Bool("id_key", true); err != nil {
		return nil, err
	}
	size, err := p.Size("bulk_max_bytes", DefaultBulkMaxBytes, 4<<10)
	if err != nil {
		return nil, err
	}
	if size > 1<<30 {
		return nil, p.Invalid("bulk_max_bytes", "at most 1G (Elasticsearch's http.max_content_length is 100M by default)")
	}
	c.BulkMaxBytes = int(size)
	if c.MaxInFlight, err = p.Int("max_in_flight", DefaultMaxInFlight, 1, 64); err != nil {
		return nil, err
	}
	comp, err := p.Enum("compress", "none", "none", "gzip", "off")
	if err != nil {
		return nil, err
	}
	c.Gzip = comp == "gzip"

	c.User = p.Raw("http_user")
	c.Password = p.Secret("http_passwd")
	c.APIKey = p.Secret("api_key")
	if c.Password != "" && c.User == "" {
		return nil, p.Invalid("http_user", "set together with http_passwd")
	}
	if c.BearerFile, err = p.File("bearer_token_file"); err != nil {
		return nil, err
	}
	methods := 0
	for _, set := range []bool{c.User != "", c.APIKey != "", c.BearerFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		key := "api_key"
		if c.APIKey == "" {
			key = "bearer_token_file"
		}
		return nil, &config.Error{Instance: p.Instance, Key: key, Value: "", Secret: true,
			Allowed: "one authentication method: http_user/http_passwd, api_key or bearer_token_file"}
	}

	if c.TLS, err = p.ClientTLS(); err != nil {
		return nil, err
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
	if dl := p.Raw("dead_letter_index"); dl != "" {
		if c.DeadLetter, err = CompilePattern(dl); err != nil {
			return nil, p.Invalid("dead_letter_index", "an index name, optionally with strftime fields: %v", err)
		}
		if c.DataStream != "" && dl == c.DataStream || c.Index != nil && c.Index.Source() == dl {
			return nil, p.Invalid("dead_letter_index", "an index other than the one the events go to")
		}
	}

	if c.InstallTemplate, err = p.Bool("install_template", true); err != nil {
		return nil, err
	}
	if c.BodyMapping, err = p.Enum("body_mapping", "auto", "auto", "disabled"); err != nil {
		return nil, err
	}
	c.TemplateName = p.String("template_name", c.defaultTemplateName())
	if err := validIndexName(c.TemplateName); err != "" {
		return nil, p.Invalid("template_name", "a template name: %s", err)
	}
	if c.TemplatePriority, err = p.Int("template_priority", DefaultPriority, 0, 1<<31-1); err != nil {
		return nil, err
	}
	if c.TemplateFile, err = p.File("template_file"); err != nil {
		return nil, err
	}
	return c, nil
}

// defaultTemplateName is the data stream's name or the index pattern's
// literal prefix ("kaudit" for kaudit-%Y.%m.%d).
func (c *Config) defaultTemplateName() string {
	if c.DataStream != "" {
		return c.DataStream
	}
	n := strings.TrimRight(c.Index.Prefix(), "-_.")
	if n == "" {
		return "kaudit"
	}
	return n
}

// IndexPattern is the index_patterns entry of the event template.
func (c *Config) IndexPattern() string {
	if c.DataStream != "" {
		return c.DataStream
	}
	return c.Index.Glob()
}

// validIndexName checks the rules Elasticsearch applies to index, data
// stream and template names; "" when valid.
func validIndexName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case s != strings.ToLower(s):
		return "must be lower case"
	case strings.HasPrefix(s, "-") || strings.HasPrefix(s, "_") || strings.HasPrefix(s, "+"):
		return "must not start with -, _ or +"
	case s == "." || s == "..":
		return "must not be . or .."
	case strings.ContainsAny(s, `\/*?"<>| ,#:`):
		return `must not contain \ / * ? " < > | space , # :`
	case len(s) > 255:
		return "must be at most 255 bytes"
	}
	return ""
}
