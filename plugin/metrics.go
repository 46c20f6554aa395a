package plugin

// Prometheus metrics. With `metrics_port N` an instance's counters (its
// Stats) are served in Prometheus text format on http://:N/metrics. The
// process has one registry; every instance adds a collector labelled
// instance="kaudit.N". Instances naming the same port share one listener;
// every port serves the whole registry. The listener closes with the last
// instance using it. A port that cannot be opened is logged as an error
// and the instance runs on without metrics: losing the metrics endpoint
// must not lose audit events.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kaudit/kaudit/filter"
)

// metricsAddr is where a port listens; tests bind to loopback only.
var metricsAddr = func(port int) string { return fmt.Sprintf(":%d", port) }

var metrics struct {
	mu      sync.Mutex
	reg     *prometheus.Registry
	servers map[int]*metricsServer
}

type metricsServer struct {
	port  int
	srv   *http.Server
	users int
	done  chan struct{}
}

// metricsHandle is an instance's registration.
type metricsHandle struct {
	port      int
	collector *statsCollector
}

func metricsRegistry() *prometheus.Registry {
	if metrics.reg == nil {
		metrics.reg = prometheus.NewRegistry()
		metrics.reg.MustRegister(collectors.NewGoCollector())
		metrics.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "kaudit"}))
		metrics.servers = map[int]*metricsServer{}
	}
	return metrics.reg
}

// startMetrics registers in's collector and opens (or shares) its port.
func startMetrics(in *Instance, port int) (*metricsHandle, error) {
	metrics.mu.Lock()
	defer metrics.mu.Unlock()
	reg := metricsRegistry()
	c := newStatsCollector(in)
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("registering the metrics of %s: %w", in.Name, err)
	}
	s := metrics.servers[port]
	if s == nil {
		ln, err := net.Listen("tcp", metricsAddr(port))
		if err != nil {
			reg.Unregister(c)
			return nil, fmt.Errorf("metrics_port %d: %w", port, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
		s = &metricsServer{port: port, done: make(chan struct{}),
			srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}}
		go func() {
			defer close(s.done)
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				in.Log.Errorf("metrics endpoint on port %d stopped: %v", port, err)
			}
		}()
		metrics.servers[port] = s
	}
	s.users++
	return &metricsHandle{port: port, collector: c}, nil
}

// stop unregisters the collector and closes the port with its last user.
func (h *metricsHandle) stop() {
	if h == nil {
		return
	}
	metrics.mu.Lock()
	metrics.reg.Unregister(h.collector)
	s := metrics.servers[h.port]
	var closing *metricsServer
	if s != nil {
		s.users--
		if s.users == 0 {
			delete(metrics.servers, h.port)
			closing = s
		}
	}
	metrics.mu.Unlock()
	if closing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if closing.srv.Shutdown(ctx) != nil {
			closing.srv.Close()
		}
		<-closing.done
	}
}

// statsCollector reads one instance's Stats at scrape time.
type statsCollector struct {
	in       *Instance
	counters []statCounter
	dropped  *prometheus.Desc
	lastOK   *prometheus.Desc
	info     *prometheus.Desc
}

type statCounter struct {
	desc *prometheus.Desc
	get  func(*Stats) int64
}

// Metric names, as documented in docs/reliability.md.
func newStatsCollector(in *Instance) *statsCollector {
	labels := prometheus.Labels{"instance": in.Name}
	counter := func(name, help string, get func(*Stats) int64) statCounter {
		return statCounter{prometheus.NewDesc("kaudit_"+name, help, nil, labels), get}
	}
	c := &statsCollector{in: in}
	c.counters = []statCounter{
		counter("flushes_total", "Flush calls from Fluent Bit.", func(s *Stats) int64 { return s.Flushes.Load() }),
		counter("records_total", "Fluent Bit records received.", func(s *Stats) int64 { return s.Records.Load() }),
		counter("events_total", "Audit events decoded from the records.", func(s *Stats) int64 { return s.Events.Load() }),
		counter("malformed_records_total", "Records that yielded no audit event (not audit JSON, bad timestamp, truncated chunk, ...).", func(s *Stats) int64 { return s.Malformed.Load() }),
		counter("shipped_documents_total", "Documents the backend stored or already had.", func(s *Stats) int64 { return s.Shipped.Load() }),
		counter("duplicate_documents_total", "Of the shipped documents, those the backend already had.", func(s *Stats) int64 { return s.Duplicate.Load() }),
		counter("rejected_documents_total", "Documents the backend will never take (logged, dead-lettered where supported).", func(s *Stats) int64 { return s.Rejected.Load() }),
		counter("retried_flushes_total", "Flushes returned to Fluent Bit as FLB_RETRY.", func(s *Stats) int64 { return s.Retried.Load() }),
		counter("error_flushes_total", "Flushes returned to Fluent Bit as FLB_ERROR (chunk dropped).", func(s *Stats) int64 { return s.Errors.Load() }),
		counter("truncated_events_total", "Events whose bodies were cut to max_event_bytes.", func(s *Stats) int64 { return s.Truncated.Load() }),
		counter("redacted_events_total", "Events with Secret data or tokens removed from their bodies.", func(s *Stats) int64 { return s.Redacted.Load() }),
	}
	c.dropped = prometheus.NewDesc("kaudit_dropped_events_total", "Events not shipped on purpose, by reason (policy, gates).", []string{"reason"}, labels)
	c.lastOK = prometheus.NewDesc("kaudit_last_successful_flush_timestamp_seconds", "When a flush last returned FLB_OK (0: never). Alert when it stops moving while records_total grows.", nil, labels)
	c.info = prometheus.NewDesc("kaudit_instance_info", "Constant 1, with the instance's sink.", []string{"output"}, labels)
	return c
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, sc := range c.counters {
		ch <- sc.desc
	}
	ch <- c.dropped
	ch <- c.lastOK
	ch <- c.info
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := &c.in.Stats
	for _, sc := range c.counters {
		ch <- prometheus.MustNewConstMetric(sc.desc, prometheus.CounterValue, float64(sc.get(s)))
	}
	dropped := s.DroppedAll()
	for _, d := range []filter.Drop{filter.DropPolicy, filter.DropOmitStage, filter.DropNotCrit, filter.DropNoAlert} {
		if _, ok := dropped[d]; !ok {
			dropped[d] = 0
		}
	}
	for d, n := range dropped {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), string(d))
	}
	var last float64
	if ns := s.LastOK.Load(); ns > 0 {
		last = float64(ns) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.lastOK, prometheus.GaugeValue, last)
	output := ""
	if c.in.Config != nil {
		output = c.in.Config.Output
	}
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, output)
}
