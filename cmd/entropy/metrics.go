package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// metricsServer serves OpenTelemetry metrics in the Prometheus text format
// on /metrics (the --metrics flag of read and sim).
type metricsServer struct {
	url string
	mp  *sdkmetric.MeterProvider
	reg metric.Registration
	srv *http.Server
}

// serveMetrics listens on addr and serves /metrics from the instruments
// that register (one of the entropymetrics Register functions) puts on the
// meter provider it is given.
func serveMetrics(addr string, register func(metric.MeterProvider) (metric.Registration, error)) (*metricsServer, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, badFlag(fmt.Errorf("--metrics %q: want host:port: %w", addr, err))
	}
	registry := promclient.NewRegistry()
	exporter, err := prometheus.New(prometheus.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	reg, err := register(mp)
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = reg.Unregister()
		_ = mp.Shutdown(context.Background())
		return nil, fmt.Errorf("--metrics %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	m := &metricsServer{
		url: "http://" + ln.Addr().String() + "/metrics",
		mp:  mp,
		reg: reg,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
	}
	go func() { _ = m.srv.Serve(ln) }() // ends with http.ErrServerClosed at Close
	return m, nil
}

// Close stops serving and releases the instruments.
func (m *metricsServer) Close() {
	_ = m.srv.Close()
	_ = m.reg.Unregister()
	_ = m.mp.Shutdown(context.Background())
}
