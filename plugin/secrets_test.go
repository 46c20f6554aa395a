package plugin

// Credentials never appear in kaudit's log lines, errors or metrics, under
// configuration errors and under delivery failures; TLS verification is
// on by default and turning it off is warned about at init.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/test/esfake"
	"github.com/kaudit/kaudit/test/lokifake"
)

const (
	testPassword = "pw-0f9e8d7c6b5a-never-log-me"
	testAPIKey   = "YXBpLWtleS1pZDphcGkta2V5LXNlY3JldC1uZXZlci1sb2c=" // base64 of id:secret
	testBearer   = "bearer-5a6b7c8d9e0f-never-log-me"
)

// secretForms are the strings that must never be printed: the values and
// their encodings in an Authorization header.
func secretForms() []string {
	return []string{testPassword, testAPIKey, testBearer, "api-key-secret-never-log",
		base64.StdEncoding.EncodeToString([]byte("elastic:" + testPassword)),
		base64.StdEncoding.EncodeToString([]byte("loki:" + testPassword))}
}

func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range secretForms() {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the credential %q:\n%s", where, s, text)
		}
	}
}

// captureStderr runs f with os.Stderr redirected (plugin.Init logs there).
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	old := os.Stderr
	os.Stderr = w
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, r); close(done) }()
	defer func() {
		os.Stderr = old
		w.Close()
		<-done
		r.Close()
	}()
	f()
	os.Stderr = old
	w.Close()
	<-done
	return buf.String()
}

func TestSecretsNotInConfigErrors(t *testing.T) {
	bearer := t.TempDir() + "/token"
	require.NoError(t, os.WriteFile(bearer, []byte(testBearer), 0o600))
	for name, props := range map[string]map[string]string{
		"es credentials in hosts": {"output": "elasticsearch", "hosts": "https://elastic:" + testPassword + "@127.0.0.1:1", "http_passwd": testPassword},
		"es bad key with secrets": {"output": "elasticsearch", "hosts": "http://127.0.0.1:1", "http_user": "elastic", "http_passwd": testPassword, "api_key": testAPIKey, "timeout": "bogus"},
		"es api key and password": {"output": "elasticsearch", "hosts": "http://127.0.0.1:1", "http_user": "elastic", "http_passwd": testPassword, "api_key": testAPIKey},
		"loki credentials in url": {"output": "loki", "url": "https://loki:" + testPassword + "@127.0.0.1:1/loki/api/v1/push"},
		"loki bad key":            {"output": "loki", "url": "http://127.0.0.1:1/loki/api/v1/push", "http_user": "loki", "http_passwd": testPassword, "bearer_token_file": bearer, "timeout": "-1"},
		"core bad key":            {"output": "stdout", "http_passwd": testPassword, "max_event_bytes": "tiny"},
	} {
		t.Run(name, func(t *testing.T) {
			var in *Instance
			logs := captureStderr(t, func() {
				in = Init(func(k string) string {
					for pk, v := range props {
						if strings.EqualFold(pk, k) {
							return v
						}
					}
					return ""
				})
			})
			if in != nil {
				in.Close()
			}
			t.Logf("%s", logs)
			assertNoSecrets(t, "init log", logs)
			_, err := New(config.MapProps("kaudit.x", props))
			if err != nil {
				assertNoSecrets(t, "error", err.Error())
			}
		})
	}
}

// failingServer answers everything with status and a realistic error body
// (Elasticsearch's security_exception, Loki's plain text).
func failingServer(t *testing.T, status int, body string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("WWW-Authenticate", `Basic realm="security" charset="UTF-8"`)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func instanceWithLog(t *testing.T, props map[string]string) (*Instance, *bytes.Buffer, error) {
	t.Helper()
	p := config.MapProps("kaudit.sec", props)
	cfg, err := config.Parse(p)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	log := flblog.NewTo(&syncWriter{w: &buf}, &sync.Mutex{}, "kaudit.sec", flblog.Debug)
	in, err := NewWithLogger(p, cfg, log)
	return in, &buf, err
}

func TestSecretsNotInLogsOnAuthFailure(t *testing.T) {
	esBody := `{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [elastic] for REST request [/_bulk]"}],"type":"security_exception","reason":"unable to authenticate user [elastic] for REST request [/_bulk]"},"status":401}`
	bearer := t.TempDir() + "/token"
	require.NoError(t, os.WriteFile(bearer, []byte(testBearer), 0o600))
	cases := map[string]map[string]string{}
	for _, status := range []int{401, 403, 500} {
		es := failingServer(t, status, esBody)
		cases[fmt.Sprintf("es basic %d", status)] = map[string]string{"output": "elasticsearch", "hosts": es.URL, "http_user": "elastic", "http_passwd": testPassword}
		cases[fmt.Sprintf("es api key %d", status)] = map[string]string{"output": "elasticsearch", "hosts": es.URL, "api_key": testAPIKey}
		cases[fmt.Sprintf("es bearer %d", status)] = map[string]string{"output": "elasticsearch", "hosts": es.URL, "bearer_token_file": bearer}
		lk := failingServer(t, status, "no org id\n")
		cases[fmt.Sprintf("loki basic %d", status)] = map[string]string{"output": "loki", "url": lk.URL + "/loki/api/v1/push", "http_user": "loki", "http_passwd": testPassword}
		cases[fmt.Sprintf("loki bearer %d", status)] = map[string]string{"output": "loki", "url": lk.URL + "/loki/api/v1/push", "bearer_token_file": bearer}
	}
	// A real fake that demands other credentials than the ones sent.
	fake := esfake.Start(t, esfake.Options{User: "elastic", Password: "the-right-one"})
	cases["esfake wrong password"] = map[string]string{"output": "elasticsearch", "hosts": fake.URL, "http_user": "elastic", "http_passwd": testPassword}
	port := freePort(t)
	for name, props := range cases {
		t.Run(name, func(t *testing.T) {
			props["flush_timeout"] = "3s"
			props["retry_max_wait"] = "200ms"
			props["timeout"] = "2s"
			props["stats_interval"] = "0"
			props["metrics_port"] = fmt.Sprint(port)
			in, log, err := instanceWithLog(t, props)
			if err != nil {
				assertNoSecrets(t, "init error", err.Error())
				t.Fatalf("init: %v", err)
			}
			rc := in.Flush(chunk(ev1, ev2), "kube.audit")
			assert.NotEqual(t, FlbOK, rc, "delivery with bad credentials succeeded")
			metrics, err := scrape(t, port)
			require.NoError(t, err)
			require.NoError(t, in.Close())
			t.Logf("rc=%d\n%s", rc, log.String())
			assertNoSecrets(t, "log", log.String())
			assertNoSecrets(t, "metrics", metrics)
		})
	}
}

func TestTLSVerifyOffWarns(t *testing.T) {
	ca := esfake.NewCA(t)
	es := esfake.Start(t, esfake.Options{TLS: ca.ServerTLS(t, false, "127.0.0.1")})
	lk := lokifake.New(t, lokifake.Options{})
	for name, props := range map[string]map[string]string{
		"elasticsearch": {"output": "elasticsearch", "hosts": es.URL},
		"loki":          {"output": "loki", "url": strings.Replace(lk.PushURL(), "http://", "https://", 1)},
	} {
		t.Run(name, func(t *testing.T) {
			props["stats_interval"] = "0"
			in, log, err := instanceWithLog(t, props)
			require.NoError(t, err)
			in.Close()
			assert.NotContains(t, strings.ToLower(log.String()), "tls_verify is off", "verification is on by default")

			props["tls_verify"] = "off"
			in, log, err = instanceWithLog(t, props)
			require.NoError(t, err)
			in.Close()
			assert.Regexp(t, `\[ warn\] .*tls_verify`, log.String(), "no warning when TLS verification is turned off")
		})
	}
	// Default verification really verifies: an unknown CA fails delivery.
	in, log, err := instanceWithLog(t, map[string]string{"output": "elasticsearch", "hosts": es.URL, "stats_interval": "0",
		"flush_timeout": "3s", "retry_max_wait": "200ms", "timeout": "2s"})
	require.NoError(t, err)
	defer in.Close()
	start := time.Now()
	assert.NotEqual(t, FlbOK, in.Flush(chunk(ev1), "kube.audit"))
	assert.Less(t, time.Since(start), 20*time.Second)
	assert.Contains(t, log.String(), "certificate")
}
