package plugin

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kaudit/kaudit/plugin/config"
	"github.com/kaudit/kaudit/plugin/flblog"
	"github.com/kaudit/kaudit/plugin/sink"
)

func init() {
	// tests listen on loopback only
	metricsAddr = func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// metricsInstance builds an instance with a fake sink and captured log.
func metricsInstance(t *testing.T, name string, props map[string]string, s sink.Sink) (*Instance, *bytes.Buffer) {
	t.Helper()
	p := config.MapProps(name, props)
	cfg, err := config.Parse(p)
	require.NoError(t, err)
	var buf bytes.Buffer
	log := flblog.NewTo(&syncWriter{w: &buf}, &sync.Mutex{}, name, flblog.Debug)
	in, err := NewWithSink(p, cfg, log, s)
	require.NoError(t, err)
	return in, &buf
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func scrape(t *testing.T, port int) (string, error) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

// metricValue returns the value of name{instance=inst,extra...}.
func metricValue(t *testing.T, text, name, inst string, extra ...string) float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
	fam, ok := fams[name]
	require.True(t, ok, "no metric %s", name)
next:
	for _, m := range fam.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["instance"] != inst {
			continue
		}
		for i := 0; i+1 < len(extra); i += 2 {
			if labels[extra[i]] != extra[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no %s for instance %s %v", name, inst, extra)
	return 0
}

func TestMetricsEndpoint(t *testing.T) {
	port := freePort(t)
	secret := "s3cr3t-metrics-passwd"
	fs := &fakeSink{decide: func(i int, it *sink.Item) {
		if i == 1 {
			it.Outcome = sink.Rejected
		} else {
			it.Outcome = sink.Delivered
		}
	}}
	a, logA := metricsInstance(t, "kaudit.m0", map[string]string{"metrics_port": fmt.Sprint(port), "stats_interval": "0", "http_passwd": secret}, fs)
	b, _ := metricsInstance(t, "kaudit.m1", map[string]string{"metrics_port": fmt.Sprint(port), "stats_interval": "0"}, &fakeSink{})

	require.Equal(t, FlbOK, a.Flush(chunk(ev1, ev2, "not json"), "kube.audit"))
	require.Equal(t, FlbOK, b.Flush(chunk(ev1), "kube.audit"))
	text, err := scrape(t, port)
	require.NoError(t, err)
	assert.Equal(t, 1.0, metricValue(t, text, "kaudit_flushes_total", "kaudit.m0"))
	assert.Equal(t, 3.0, metricValue(t, text, "kaudit_records_total", "kaudit.m0"))
	assert.Equal(t, 2.0, metricValue(t, text, "kaudit_events_total", "kaudit.m0"))
	assert.Equal(t, 1.0, metricValue(t, text, "kaudit_malformed_records_total", "kaudit.m0"))
	assert.Equal(t, 1.0, metricValue(t, text, "kaudit_shipped_documents_total", "kaudit.m0"))
	assert.Equal(t, 1.0, metricValue(t, text, "kaudit_rejected_documents_total", "kaudit.m0"))
	assert.Equal(t, 0.0, metricValue(t, text, "kaudit_dropped_events_total", "kaudit.m0", "reason", "policy_none"))
	assert.Equal(t, 1.0, metricValue(t, text, "kaudit_shipped_documents_total", "kaudit.m1"))
	assert.Equal(t, 1.0, metricValue(t, text, "kaudit_instance_info", "kaudit.m1", "output", "stdout"))
	last := metricValue(t, text, "kaudit_last_successful_flush_timestamp_seconds", "kaudit.m0")
	assert.InDelta(t, float64(time.Now().Unix()), last, 60)
	assert.Contains(t, text, "go_goroutines")
	assert.NotContains(t, text, secret)
	assert.NotContains(t, logA.String(), secret)

	// A retried flush shows up; the last-success time does not move.
	fs.err = fmt.Errorf("backend down")
	require.Equal(t, FlbRetry, a.Flush(chunk(ev1), "kube.audit"))
	text, err = scrape(t, port)
	require.NoError(t, err)
	assert.Equal(t, 1.0, metricValue(t, text, "kaudit_retried_flushes_total", "kaudit.m0"))
	assert.Equal(t, last, metricValue(t, text, "kaudit_last_successful_flush_timestamp_seconds", "kaudit.m0"))

	// Closing one instance keeps the port for the other.
	require.NoError(t, a.Close())
	text, err = scrape(t, port)
	require.NoError(t, err)
	assert.NotContains(t, text, `instance="kaudit.m0"`)
	assert.Contains(t, text, `instance="kaudit.m1"`)
	require.NoError(t, b.Close())
	_, err = scrape(t, port)
	assert.Error(t, err, "port still open after the last instance closed")

	// The port can be taken again (hot reload: new instances after old ones exit).
	c, _ := metricsInstance(t, "kaudit.m2", map[string]string{"metrics_port": fmt.Sprint(port), "stats_interval": "0"}, &fakeSink{})
	defer c.Close()
	text, err = scrape(t, port)
	require.NoError(t, err)
	assert.Contains(t, text, `instance="kaudit.m2"`)
}

func TestMetricsPortBusyDoesNotFailInit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	in, log := metricsInstance(t, "kaudit.busy", map[string]string{"metrics_port": fmt.Sprint(port), "stats_interval": "0"}, &fakeSink{})
	defer in.Close()
	assert.Contains(t, log.String(), fmt.Sprintf("metrics not served, running on without them: metrics_port %d:", port))
	assert.Equal(t, FlbOK, in.Flush(chunk(ev1), "t"))
}
