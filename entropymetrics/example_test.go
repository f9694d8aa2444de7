package entropymetrics_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/entropymetrics"
	"github.com/provenrand/entropy/sim"
)

// Serve a Provider's metrics on /metrics through OpenTelemetry's Prometheus
// exporter.
func Example_prometheus() {
	// A simulator that tells its quota: 1000 requests a minute.
	s := sim.New(sim.WithQuota(1000, time.Minute))
	defer s.Close()
	src, _ := s.Source()
	p, err := entropy.New(src, entropy.WithPolicy(entropy.Defer))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	// The exporter is an OpenTelemetry reader that a Prometheus registry
	// collects from.
	registry := promclient.NewRegistry()
	exporter, err := prometheus.New(prometheus.WithRegisterer(registry))
	if err != nil {
		fmt.Println(err)
		return
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	reg, err := entropymetrics.Register(p, entropymetrics.WithMeterProvider(mp))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Unregister()

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0") // in a service: ":9464" or wherever it scrapes
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.ReadLabelled(ctx, make([]byte, 32)); err != nil {
		fmt.Println(err)
		return
	}

	res, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var types []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "# TYPE entropy_") {
			types = append(types, strings.TrimPrefix(line, "# TYPE "))
		}
	}
	sort.Strings(types)
	fmt.Println(strings.Join(types, "\n"))
	// Output:
	// entropy_defer_abandoned_bytes_total counter
	// entropy_derivation_keyed_bytes_total counter
	// entropy_event_discarded_bytes_total counter
	// entropy_fallback_active gauge
	// entropy_fallback_episodes_total counter
	// entropy_fallback_share_ratio gauge
	// entropy_journal_errors_total counter
	// entropy_journal_lost_total counter
	// entropy_permanent gauge
	// entropy_pool_capacity_bytes gauge
	// entropy_pool_fill_bytes gauge
	// entropy_proven_discarded_bytes_total counter
	// entropy_reads_total counter
	// entropy_served_bytes_total counter
	// entropy_source_accepted_bytes_total counter
	// entropy_source_batch_failed_total counter
	// entropy_source_blocks_total counter
	// entropy_source_breaker_state gauge
	// entropy_source_failures_total counter
	// entropy_source_hold_seconds gauge
	// entropy_source_quota_exhausted gauge
	// entropy_source_quota_limit gauge
	// entropy_source_quota_remaining gauge
	// entropy_source_quota_reset_seconds gauge
	// entropy_source_requests_total counter
	// entropy_source_retries_total counter
}
