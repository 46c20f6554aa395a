package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse(MapProps("kaudit.0", nil))
	require.NoError(t, err)
	assert.Equal(t, "stdout", c.Output)
	assert.Equal(t, "log", c.Filter.RecordKey)
	assert.Equal(t, time.Second, c.Filter.SlowThreshold)
	assert.True(t, c.Filter.RedactSecrets)
	assert.Equal(t, 4<<20, c.Filter.MaxEventBytes)
	assert.Equal(t, 100000, c.Filter.CorrelationMaxKeys)
	assert.Equal(t, 30*time.Second, c.FlushTimeout)
}

func TestParseKeysAreCaseInsensitive(t *testing.T) {
	c, err := Parse(MapProps("kaudit.0", map[string]string{"Output": "LOKI", "Record_Key": "message", "Trusted_Networks": "10.0.0.0/8, 192.168.1.7 fd00::/8"}))
	require.NoError(t, err)
	assert.Equal(t, "loki", c.Output)
	assert.Equal(t, "message", c.Filter.RecordKey)
	require.Len(t, c.Filter.TrustedNetworks, 3)
	assert.Equal(t, "192.168.1.7/32", c.Filter.TrustedNetworks[1].String())
}

func TestParseErrorsNameInstanceKeyValueAndAllowed(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		props map[string]string
		want  string
	}{
		{map[string]string{"output": "kafka"}, `kaudit.3: invalid value for output: "kafka": allowed: stdout, elasticsearch, loki`},
		{map[string]string{"slow_request_threshold": "-1s"}, `kaudit.3: invalid value for slow_request_threshold: "-1s": a duration that is not negative (1s), or a default and VERB=DURATION pairs (1s,list=5s,deletecollection=30s)`},
		{map[string]string{"flush_timeout": "soon"}, `kaudit.3: invalid value for flush_timeout: "soon": a duration such as 500ms, 5s or 1m (or a number of seconds)`},
		{map[string]string{"policy_file": filepath.Join(dir, "missing.yaml")}, `kaudit.3: invalid value for policy_file: "` + filepath.Join(dir, "missing.yaml") + `": a readable file (no such file or directory)`},
		{map[string]string{"policy_file": dir}, `kaudit.3: invalid value for policy_file: "` + dir + `": a readable file, not a directory`},
		{map[string]string{"only_critical": "maybe"}, `kaudit.3: invalid value for only_critical: "maybe": allowed: on, off (also true/false, yes/no)`},
		{map[string]string{"trusted_networks": "10.0.0.0/33"}, `kaudit.3: invalid value for trusted_networks: "10.0.0.0/33": CIDR prefixes such as 10.0.0.0/8, fd00::/8, separated by commas`},
		{map[string]string{"max_event_bytes": "12"}, `kaudit.3: invalid value for max_event_bytes: "12": a size of at least 4096 bytes such as 512K, 5M or 1G`},
		{map[string]string{"metrics_port": "70000"}, `kaudit.3: invalid value for metrics_port: "70000": an integer from 0 to 65535`},
	}
	for _, tc := range cases {
		_, err := Parse(MapProps("kaudit.3", tc.props))
		require.Error(t, err, "%v", tc.props)
		assert.Equal(t, tc.want, err.Error())
	}
}

func TestPropsSizesAndURLs(t *testing.T) {
	p := MapProps("k", map[string]string{"a": "5M", "b": "512KiB", "c": "1g", "d": "1000", "u": "https://es-1:9200,http://es-2:9200/prefix", "bad": "ftp://x", "cred": "https://elastic:hunter2@es:9200"})
	for key, want := range map[string]int64{"a": 5 << 20, "b": 512 << 10, "c": 1 << 30, "d": 1000} {
		got, err := p.Size(key, 0, 0)
		require.NoError(t, err)
		assert.Equal(t, want, got, key)
	}
	us, err := p.URLs("u", nil)
	require.NoError(t, err)
	require.Len(t, us, 2)
	assert.Equal(t, "/prefix", us[1].Path)
	_, err = p.URLs("bad", nil)
	assert.ErrorContains(t, err, "http:// or https://")
	_, err = p.URLs("cred", nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestDirIsCreatedAndMustBeWritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	p := MapProps("k", map[string]string{"state_dir": dir})
	got, err := p.Dir("state_dir")
	require.NoError(t, err)
	assert.Equal(t, dir, got)
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, st.IsDir())
}

func TestSlowRequestThresholdPerVerb(t *testing.T) {
	for in, want := range map[string]struct {
		def    time.Duration
		byVerb map[string]time.Duration
	}{
		"":                                 {time.Second, nil},
		"250ms":                            {250 * time.Millisecond, nil},
		"2":                                {2 * time.Second, nil},
		"1s, list=5s,DeleteCollection=30s": {time.Second, map[string]time.Duration{"list": 5 * time.Second, "deletecollection": 30 * time.Second}},
		"list=5s":                          {time.Second, map[string]time.Duration{"list": 5 * time.Second}},
		"*=500ms get=100ms":                {500 * time.Millisecond, map[string]time.Duration{"get": 100 * time.Millisecond}},
	} {
		c, err := Parse(MapProps("k", map[string]string{"slow_request_threshold": in}))
		require.NoError(t, err, in)
		assert.Equal(t, want.def, c.Filter.SlowThreshold, in)
		assert.Equal(t, want.byVerb, c.Filter.SlowByVerb, in)
	}
	for _, bad := range []string{"list=", "=5s", "list=-1s", "soon", "list=5s,get=x"} {
		_, err := Parse(MapProps("k", map[string]string{"slow_request_threshold": bad}))
		assert.ErrorContains(t, err, "invalid value for slow_request_threshold", bad)
	}
}
