package entropymetrics

import (
	"context"
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

// Attribute keys of the simulator's instrument. The route and status follow
// the HTTP semantic conventions.
const (
	HTTPRouteKey  = attribute.Key("http.route")                // /v1/entropy, /v1/jobs/{job_id}, /v1/public-key, other
	HTTPStatusKey = attribute.Key("http.response.status_code") // 0 for a dropped connection
	FaultKey      = attribute.Key("entropy.sim.fault")         // the fault applied: none, drop, badsig, …
)

// RegisterSimulator exports what a simulator has served, for `entropy sim
// --metrics`:
//
//	entropy.sim.requests  counter  {request}  requests received, by http.route, http.response.status_code and entropy.sim.fault
//
// The callback counts the simulator's whole request record at every
// collection, so its cost grows with the requests served: it is meant for
// the simulator of a test or a demonstration, not for a long soak.
func RegisterSimulator(s *sim.Server, opts ...Option) (metric.Registration, error) {
	if s == nil {
		return nil, errors.New("entropymetrics: nil simulator")
	}
	c := newConfig(opts)
	m := c.mp.Meter(ScopeName)
	requests, err := m.Int64ObservableCounter("entropy.sim.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests the simulator received, by route, status and fault."))
	if err != nil {
		return nil, err
	}
	type key struct {
		route  string
		status int
		fault  sim.FaultKind
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		counts := map[key]int64{}
		for _, r := range s.Requests() {
			counts[key{route(r.Path), r.Status, r.Fault}]++
		}
		for k, n := range counts {
			attrs := append(append([]attribute.KeyValue{}, c.attrs...),
				HTTPRouteKey.String(k.route), HTTPStatusKey.Int(k.status), FaultKey.String(k.fault.String()))
			o.ObserveInt64(requests, n, metric.WithAttributes(attrs...))
		}
		return nil
	}, requests)
}

// route names the protocol route of a path, so that job IDs do not become
// attribute values.
func route(path string) string {
	switch {
	case path == httpsource.EntropyPath, path == httpsource.BatchPath, path == httpsource.PublicKeyPath:
		return path
	case strings.HasPrefix(path, httpsource.JobsPath) && len(path) > len(httpsource.JobsPath):
		return httpsource.JobsPath + "{job_id}"
	}
	return "other"
}
