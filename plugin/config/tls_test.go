package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not pem"), 0o600))

	tc, err := MapProps("k", nil).ClientTLS()
	require.NoError(t, err)
	assert.False(t, tc.InsecureSkipVerify, "verification is on by default")

	tc, err = MapProps("k", map[string]string{"tls_verify": "off", "tls_server_name": "es.internal"}).ClientTLS()
	require.NoError(t, err)
	assert.True(t, tc.InsecureSkipVerify)
	assert.Equal(t, "es.internal", tc.ServerName)

	for props, want := range map[*Props]string{
		MapProps("k", map[string]string{"tls_ca_file": notPEM}):                          `k: invalid value for tls_ca_file: "` + notPEM + `": a PEM file holding at least one CA certificate`,
		MapProps("k", map[string]string{"tls_crt_file": notPEM}):                         `k: invalid value for tls_key_file: "": set together with tls_crt_file (a client certificate needs both)`,
		MapProps("k", map[string]string{"tls_ca_file": filepath.Join(dir, "missing")}):   `k: invalid value for tls_ca_file: "` + filepath.Join(dir, "missing") + `": a readable file (no such file or directory)`,
		MapProps("k", map[string]string{"tls_crt_file": notPEM, "tls_key_file": notPEM}): `k: invalid value for tls_crt_file: "` + notPEM + `": a PEM certificate matching tls_key_file`,
		MapProps("k", map[string]string{"tls_verify": "sometimes"}):                      `k: invalid value for tls_verify: "sometimes": allowed: on, off`,
	} {
		_, err := props.ClientTLS()
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
	}
}
