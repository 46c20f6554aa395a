package config

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kaudit/kaudit/filter"
)

// Config is an instance's core settings; each sink reads its own keys.
type Config struct {
	Instance string
	// Output is the sink: stdout, elasticsearch or loki.
	Output string
	// LogLevel is kaudit's own log level (Fluent Bit keeps log_level for
	// itself and does not pass it to Go plugins).
	LogLevel string

	Filter filter.Options

	// FlushTimeout bounds one flush, delivery and in-flush retries included.
	FlushTimeout  time.Duration
	StatsInterval time.Duration
	MetricsPort   int

	// ChainKeyFile (an Ed25519 private key) turns on signed manifests;
	// StateDir keeps the chain state between restarts.
	ChainKeyFile string
	StateDir     string
}

// Outputs lists the allowed values of `output`.
var Outputs = []string{"stdout", "elasticsearch", "loki"}

// Parse reads the core keys. It does not open the files the filter
// options name; filter.NewPipeline does, and its errors name the key too.
func Parse(p *Props) (*Config, error) {
	c := &Config{Instance: p.Instance}
	var err error
	if c.Output, err = p.Enum("output", "stdout", Outputs...); err != nil {
		return nil, err
	}
	if c.LogLevel, err = p.Enum("kaudit_log_level", "info", "error", "warn", "info", "debug"); err != nil {
		return nil, err
	}
	f := &c.Filter
	f.RecordKey = p.String("record_key", "log")
	for _, k := range []struct {
		key string
		dst *string
	}{{"policy_file", &f.PolicyFile}, {"critical_workloads_file", &f.CriticalFile}, {"detections_file", &f.DetectionsFile}} {
		if *k.dst, err = p.File(k.key); err != nil {
			return nil, err
		}
	}
	for _, cidr := range p.List("trusted_networks", nil) {
		pfx, perr := netip.ParsePrefix(cidr)
		if perr != nil {
			if addr, aerr := netip.ParseAddr(cidr); aerr == nil {
				pfx = netip.PrefixFrom(addr, addr.BitLen())
			} else {
				return nil, p.errorf("trusted_networks", cidr, "CIDR prefixes such as 10.0.0.0/8, fd00::/8, separated by commas")
			}
		}
		f.TrustedNetworks = append(f.TrustedNetworks, pfx.Masked())
	}
	host, _ := os.Hostname()
	f.Cluster = p.String("cluster", "")
	f.Node = p.String("node", host)
	if f.SlowThreshold, f.SlowByVerb, err = slowThresholds(p); err != nil {
		return nil, err
	}
	if f.OnlyCritical, err = p.Bool("only_critical", false); err != nil {
		return nil, err
	}
	if f.AlertsOnly, err = p.Bool("alerts_only", false); err != nil {
		return nil, err
	}
	if f.RedactSecrets, err = p.Bool("redact_secrets", true); err != nil {
		return nil, err
	}
	maxEvent, err := p.Size("max_event_bytes", 4<<20, 4<<10)
	if err != nil {
		return nil, err
	}
	f.MaxEventBytes = int(maxEvent)
	if f.LabelCacheSize, err = p.Int("label_cache_size", 10000, 0, 10_000_000); err != nil {
		return nil, err
	}
	if f.CorrelationMaxKeys, err = p.Int("correlation_max_keys", 100_000, 1, 100_000_000); err != nil {
		return nil, err
	}
	if f.EmitAlertRecords, err = p.Bool("emit_alert_records", false); err != nil {
		return nil, err
	}
	if c.FlushTimeout, err = p.Duration("flush_timeout", 30*time.Second); err != nil {
		return nil, err
	}
	if c.StatsInterval, err = p.Duration("stats_interval", time.Minute); err != nil {
		return nil, err
	}
	if c.MetricsPort, err = p.Int("metrics_port", 0, 0, 65535); err != nil {
		return nil, err
	}
	if c.ChainKeyFile, err = p.File("chain_key_file"); err != nil {
		return nil, err
	}
	if c.StateDir, err = p.Dir("state_dir"); err != nil {
		return nil, err
	}
	if c.ChainKeyFile != "" && c.StateDir == "" {
		return nil, p.errorf("state_dir", "", "a writable directory for the chain state (required with chain_key_file)")
	}
	return c, nil
}

// FluentBitOwned lists keys Fluent Bit consumes itself for an output and
// never passes to a Go plugin; kaudit's names for them differ on purpose.
var FluentBitOwned = []string{"tls", "tls.verify", "tls.ca_file", "tls.crt_file", "tls.key_file", "tls.vhost", "host", "port"}

// Shadowed returns the Fluent Bit-owned keys that still reached the
// plugin (a Fluent Bit that lets them through), so the instance can warn.
func Shadowed(p *Props) []string {
	var out []string
	for _, k := range FluentBitOwned {
		if p.Set(k) {
			out = append(out, k)
		}
	}
	return out
}

// IsSecretKey reports whether a key holds a credential.
func IsSecretKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "passwd") || strings.Contains(k, "password") || k == "api_key" || strings.Contains(k, "token")
}

// slowThresholds reads slow_request_threshold: one duration for every
// verb ("1s"), or a default and per-verb durations ("1s,list=5s,
// deletecollection=30s"; "*=1s" also names the default).
func slowThresholds(p *Props) (time.Duration, map[string]time.Duration, error) {
	const key = "slow_request_threshold"
	def := time.Second
	var byVerb map[string]time.Duration
	for _, part := range p.List(key, nil) {
		verb, val, named := strings.Cut(part, "=")
		if !named {
			verb, val = "*", part
		}
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil {
			// A plain number of seconds, as Fluent Bit's own time settings.
			secs, ferr := strconv.ParseFloat(strings.TrimSpace(val), 64)
			d, err = time.Duration(secs*float64(time.Second)), ferr
		}
		if err != nil || d < 0 || strings.TrimSpace(verb) == "" {
			return 0, nil, p.errorf(key, p.Raw(key), "a duration that is not negative (1s), or a default and VERB=DURATION pairs (1s,list=5s,deletecollection=30s)")
		}
		if verb = strings.ToLower(strings.TrimSpace(verb)); verb == "*" {
			def = d
			continue
		}
		if byVerb == nil {
			byVerb = map[string]time.Duration{}
		}
		byVerb[verb] = d
	}
	return def, byVerb, nil
}
