package elasticsearch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/plugin/config"
)

func props(kv ...string) *config.Props {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return config.MapProps("kaudit.0", m)
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig(props())
	require.NoError(t, err)
	require.Len(t, c.Hosts, 1)
	require.Equal(t, "http://127.0.0.1:9200", c.Hosts[0].String())
	require.Equal(t, DefaultIndex, c.Index.Source())
	require.Equal(t, "kaudit-*.*.*", c.IndexPattern())
	require.Equal(t, "kaudit", c.TemplateName)
	require.True(t, c.IDKey)
	require.False(t, c.TLS.InsecureSkipVerify)
	require.True(t, c.InstallTemplate)
	require.False(t, c.Gzip)
	require.Equal(t, DefaultBulkMaxBytes, c.BulkMaxBytes)
	require.Equal(t, DefaultTimeout, c.Timeout)
	require.Equal(t, DefaultRetryMaxWait, c.RetryMaxWait)
	require.Nil(t, c.DeadLetter)
}

func TestConfigValues(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tok, []byte("abc\n"), 0o600))
	c, err := ParseConfig(props(
		"hosts", "https://es1:9200, https://es2:9200/",
		"path_prefix", "es/",
		"data_stream", "logs-kubernetes.audit-default",
		"id_key", "off",
		"bulk_max_bytes", "1M",
		"compress", "gzip",
		"bearer_token_file", tok,
		"timeout", "2s",
		"retry_max_wait", "0",
		"dead_letter_index", "kaudit-dead-letter-%Y.%m",
	))
	require.NoError(t, err)
	require.Len(t, c.Hosts, 2)
	require.Equal(t, "/es", c.PathPrefix)
	require.Equal(t, "logs-kubernetes.audit-default", c.IndexPattern())
	require.Equal(t, "logs-kubernetes.audit-default", c.TemplateName)
	require.False(t, c.IDKey)
	require.Equal(t, 1<<20, c.BulkMaxBytes)
	require.True(t, c.Gzip)
	require.Equal(t, 2*time.Second, c.Timeout)
	require.Zero(t, c.RetryMaxWait)
	require.Equal(t, "kaudit-dead-letter-*.*", c.DeadLetter.Glob())
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	crt := filepath.Join(dir, "c.pem")
	require.NoError(t, os.WriteFile(crt, []byte("x"), 0o600))
	for _, tc := range []struct {
		name string
		kv   []string
		key  string
	}{
		{"bad host scheme", []string{"hosts", "ftp://x"}, "hosts"},
		{"host with path", []string{"hosts", "http://x:9200/es"}, "hosts"},
		{"host with credentials", []string{"hosts", "http://u:secret@x:9200"}, "hosts"},
		{"index and data stream", []string{"index", "a", "data_stream", "b"}, "data_stream"},
		{"upper-case index", []string{"index", "Kaudit"}, "index"},
		{"bad strftime", []string{"index", "kaudit-%Q"}, "index"},
		{"bad data stream", []string{"data_stream", "logs*"}, "data_stream"},
		{"id_key", []string{"id_key", "maybe"}, "id_key"},
		{"bulk too small", []string{"bulk_max_bytes", "100"}, "bulk_max_bytes"},
		{"compress", []string{"compress", "zstd"}, "compress"},
		{"password without user", []string{"http_passwd", "pw"}, "http_user"},
		{"two auth methods", []string{"http_user", "u", "http_passwd", "pw", "api_key", "k"}, "api_key"},
		{"token file missing", []string{"bearer_token_file", "/nonexistent/token"}, "bearer_token_file"},
		{"tls_verify", []string{"tls_verify", "sometimes"}, "tls_verify"},
		{"ca missing", []string{"tls_ca_file", "/nonexistent/ca"}, "tls_ca_file"},
		{"cert without key", []string{"tls_crt_file", crt}, "tls_key_file"},
		{"key without cert", []string{"tls_key_file", crt}, "tls_crt_file"},
		{"timeout", []string{"timeout", "soon"}, "timeout"},
		{"timeout zero", []string{"timeout", "0"}, "timeout"},
		{"retry_max_wait", []string{"retry_max_wait", "-1s"}, "retry_max_wait"},
		{"dead letter same as index", []string{"index", "audit", "dead_letter_index", "audit"}, "dead_letter_index"},
		{"dead letter bad", []string{"dead_letter_index", "DL"}, "dead_letter_index"},
		{"install_template", []string{"install_template", "2"}, "install_template"},
		{"template_name", []string{"template_name", "a b"}, "template_name"},
		{"template_priority", []string{"template_priority", "-3"}, "template_priority"},
		{"template_file", []string{"template_file", "/nonexistent.json"}, "template_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(props(tc.kv...))
			var ce *config.Error
			require.True(t, errors.As(err, &ce), "want a *config.Error, got %v", err)
			require.Equal(t, tc.key, ce.Key, "%v", err)
			require.Contains(t, err.Error(), "kaudit.0")
			require.NotContains(t, err.Error(), "secret")
		})
	}
}

func TestConfigSecretsHidden(t *testing.T) {
	_, err := ParseConfig(props("http_user", "u", "http_passwd", "hunter2", "api_key", "topsecret"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
	require.NotContains(t, err.Error(), "topsecret")
}

// The key table in docs/elasticsearch.md lists exactly the keys read.
func TestDocsListEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../../docs/elasticsearch.md")
	require.NoError(t, err)
	var documented []string
	_, keys, ok := strings.Cut(string(b), "\n## Keys\n")
	require.True(t, ok)
	keys, _, _ = strings.Cut(keys, "\n## ")
	for _, line := range strings.Split(keys, "\n") {
		if strings.HasPrefix(line, "| `") {
			documented = append(documented, strings.SplitN(strings.TrimPrefix(line, "| `"), "`", 2)[0])
		}
	}
	require.ElementsMatch(t, Keys, documented)
	src, err := os.ReadFile("config.go")
	require.NoError(t, err)
	for _, k := range Keys {
		require.Contains(t, string(src), `"`+k+`"`, k)
	}
}
