package entropymetrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/entropymetrics"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixedStats is a Statser with a snapshot set by the test.
type fixedStats struct{ st entropy.Stats }

func (f *fixedStats) Stats() entropy.Stats { return f.st }

// newSDK returns a fresh SDK meter provider and the ManualReader that
// collects its metrics; the provider is shut down when t ends.
func newSDK(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return reader, mp
}

// register registers s with opts on a fresh SDK, unregistered when t ends,
// and returns the reader that collects from it.
func register(t *testing.T, s entropymetrics.Statser, opts ...entropymetrics.Option) *sdkmetric.ManualReader {
	t.Helper()
	reader, mp := newSDK(t)
	reg, err := entropymetrics.Register(s, append([]entropymetrics.Option{entropymetrics.WithMeterProvider(mp)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Unregister() })
	return reader
}

// collect registers s on a fresh SDK with a ManualReader and returns one
// collection.
func collect(t *testing.T, s entropymetrics.Statser, opts ...entropymetrics.Option) metricdata.ResourceMetrics {
	t.Helper()
	return collectFrom(t, register(t, s, opts...))
}

func collectFrom(t *testing.T, reader *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	return rm
}

// find returns the metric of that name.
func find(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				assert.Equal(t, entropymetrics.ScopeName, sm.Scope.Name)
				return m
			}
		}
	}
	require.Failf(t, "no metric", "%s", name)
	return metricdata.Metrics{}
}

// point returns the value of metric name at the data point whose attributes
// include every one of want, and whether the metric is a monotonic sum.
func point(t *testing.T, rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (v float64, monotonic bool) {
	t.Helper()
	m := find(t, rm, name)
	match := func(set attribute.Set) bool {
		for _, kv := range want {
			got, ok := set.Value(kv.Key)
			if !ok || got != kv.Value {
				return false
			}
		}
		return true
	}
	var found []float64
	switch d := m.Data.(type) {
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				found = append(found, float64(p.Value))
			}
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				found = append(found, p.Value)
			}
		}
	case metricdata.Sum[int64]:
		monotonic = d.IsMonotonic
		assert.Equal(t, metricdata.CumulativeTemporality, d.Temporality, name)
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				found = append(found, float64(p.Value))
			}
		}
	default:
		require.Failf(t, "unexpected data", "%s: %T", name, m.Data)
	}
	require.Len(t, found, 1, "%s %v", name, want)
	return found[0], monotonic
}

func TestEveryFigureOfStatsIsExported(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	s := &fixedStats{st: entropy.Stats{
		Pooled: 3000, Capacity: 8192,
		VerifiableReads: 10, VerifiableBytes: 600,
		DerivedReads: 2, DerivedBytes: 64,
		FallbackReads: 4, FallbackBytes: 136,
		FallbackEpisodes: 3, InFallback: true,
		JournalErrors: 5, JournalLost: 2,
		EventBytesDiscarded:  48,
		ProvenBytesDiscarded: 480,
		DerivationBytes:      96,
		AbandonedBytes:       64,
		Permanent:            entropy.ErrPermanent,
		Sources: []entropy.SourceStats{
			{Name: "quantropy", Breaker: "open", Requests: 40, Failures: 7, Retries: 6, BlocksAccepted: 30, BlocksRejected: 2, BytesAccepted: 120000, HoldUntil: now.Add(1500 * time.Millisecond), BatchItemsFailed: 4},
			{Name: "drand/quicknet", Breaker: "closed", Requests: 3, BlocksAccepted: 3, BytesAccepted: 96,
				Quota: entropy.Quota{RequestsRemaining: 17, RequestsLimit: 60, Reset: now.Add(20 * time.Second), BytesRemaining: -1, Balance: -1, Updated: now}},
		},
	}}
	rm := collect(t, s, entropymetrics.WithClock(entropy.NowFunc(func() time.Time { return now })), entropymetrics.WithAttributes(attribute.String("service.instance.id", "i-1")))

	type want struct {
		name      string
		unit      string
		attrs     []attribute.KeyValue
		value     float64
		monotonic bool
	}
	class := func(c string) []attribute.KeyValue {
		return []attribute.KeyValue{entropymetrics.ReadClassKey.String(c)}
	}
	src := func(i int, name string, more ...attribute.KeyValue) []attribute.KeyValue {
		return append([]attribute.KeyValue{entropymetrics.SourceKey.String(name), entropymetrics.SourcePriorityKey.Int(i)}, more...)
	}
	for _, w := range []want{
		{"entropy.pool.fill", "By", nil, 3000, false},
		{"entropy.pool.capacity", "By", nil, 8192, false},
		{"entropy.reads", "{read}", class("verifiable"), 10, true},
		{"entropy.reads", "{read}", class("derived"), 2, true},
		{"entropy.reads", "{read}", class("fallback"), 4, true},
		{"entropy.served", "By", class("verifiable"), 600, true},
		{"entropy.served", "By", class("derived"), 64, true},
		{"entropy.served", "By", class("fallback"), 136, true},
		{"entropy.fallback.share", "1", nil, 136.0 / 800, false},
		{"entropy.fallback.episodes", "{episode}", nil, 3, true},
		{"entropy.fallback.active", "{episode}", nil, 1, false},
		{"entropy.journal.errors", "{error}", nil, 5, true},
		{"entropy.journal.lost", "{record}", nil, 2, true},
		{"entropy.event.discarded", "By", nil, 48, true},
		{"entropy.proven.discarded", "By", nil, 480, true},
		{"entropy.derivation.keyed", "By", nil, 96, true},
		{"entropy.defer.abandoned", "By", nil, 64, true},
		{"entropy.permanent", "{state}", nil, 1, false},
		{"entropy.source.breaker.state", "{state}", src(0, "quantropy", entropymetrics.BreakerStateKey.String("open")), 1, false},
		{"entropy.source.breaker.state", "{state}", src(0, "quantropy", entropymetrics.BreakerStateKey.String("closed")), 0, false},
		{"entropy.source.breaker.state", "{state}", src(0, "quantropy", entropymetrics.BreakerStateKey.String("half-open")), 0, false},
		{"entropy.source.breaker.state", "{state}", src(1, "drand/quicknet", entropymetrics.BreakerStateKey.String("closed")), 1, false},
		{"entropy.source.requests", "{request}", src(0, "quantropy"), 40, true},
		{"entropy.source.requests", "{request}", src(1, "drand/quicknet"), 3, true},
		{"entropy.source.failures", "{request}", src(0, "quantropy"), 7, true},
		{"entropy.source.retries", "{retry}", src(0, "quantropy"), 6, true},
		{"entropy.source.blocks", "{block}", src(0, "quantropy", entropymetrics.BlockOutcomeKey.String("accepted")), 30, true},
		{"entropy.source.blocks", "{block}", src(0, "quantropy", entropymetrics.BlockOutcomeKey.String("rejected")), 2, true},
		{"entropy.source.accepted", "By", src(0, "quantropy"), 120000, true},
		{"entropy.source.batch.failed", "{item}", src(0, "quantropy"), 4, true},
		{"entropy.source.batch.failed", "{item}", src(1, "drand/quicknet"), 0, true},
		{"entropy.source.hold", "s", src(0, "quantropy"), 1.5, false},
		{"entropy.source.hold", "s", src(1, "drand/quicknet"), 0, false},
		{"entropy.source.quota.remaining", "{request}", src(1, "drand/quicknet"), 17, false},
		{"entropy.source.quota.limit", "{request}", src(1, "drand/quicknet"), 60, false},
		{"entropy.source.quota.reset", "s", src(1, "drand/quicknet"), 20, false},
		{"entropy.source.quota.exhausted", "{state}", src(1, "drand/quicknet"), 0, false},
	} {
		v, mono := point(t, rm, w.name, append(w.attrs, attribute.String("service.instance.id", "i-1"))...)
		assert.InDelta(t, w.value, v, 1e-9, "%s %v", w.name, w.attrs)
		assert.Equal(t, w.monotonic, mono, "%s is a counter", w.name)
		assert.Equal(t, w.unit, find(t, rm, w.name).Unit, w.name)
		assert.NotEmpty(t, find(t, rm, w.name).Description, w.name)
	}
}

func TestQuotaFiguresNotGivenHaveNoPoint(t *testing.T) {
	now := time.Now()
	rm := collect(t, &fixedStats{st: entropy.Stats{Sources: []entropy.SourceStats{
		{Name: "a", Breaker: "closed"},
		{Name: "b", Breaker: "closed", Quota: entropy.Quota{RequestsRemaining: -1, RequestsLimit: -1, BytesRemaining: 125, Balance: -1, Exhausted: true, Updated: now}},
	}}})
	v, _ := point(t, rm, "entropy.source.quota.bytes", entropymetrics.SourceKey.String("b"))
	assert.Equal(t, 125.0, v)
	v, _ = point(t, rm, "entropy.source.quota.exhausted", entropymetrics.SourceKey.String("b"))
	assert.Equal(t, 1.0, v)
	m := find(t, rm, "entropy.source.quota.exhausted")
	assert.Len(t, m.Data.(metricdata.Gauge[int64]).DataPoints, 1, "source a never reported a quota")
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			assert.NotEqual(t, "entropy.source.quota.remaining", m.Name, "no source gave a remaining count")
		}
	}
}

func TestNoReadsIsAShareOfZero(t *testing.T) {
	rm := collect(t, &fixedStats{})
	v, _ := point(t, rm, "entropy.fallback.share")
	assert.Equal(t, 0.0, v)
	v, _ = point(t, rm, "entropy.fallback.active")
	assert.Equal(t, 0.0, v)
}

// stoppedClock is a Clock of the test's own, stopped at one instant.
type stoppedClock struct{ at time.Time }

func (c *stoppedClock) Now() time.Time                         { return c.at }
func (c *stoppedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// A typed-nil clock (var c *myClock left unset) is no clock, as WithClock(nil)
// is: collections count against the system clock instead of panicking in
// the callback at every collection.
func TestTypedNilClockIsTheSystemClock(t *testing.T) {
	var clk *stoppedClock
	hold := time.Now().Add(time.Hour)
	rm := collect(t, &fixedStats{st: entropy.Stats{Sources: []entropy.SourceStats{{Name: "q", Breaker: "closed", HoldUntil: hold}}}},
		entropymetrics.WithClock(clk))
	v, _ := point(t, rm, "entropy.source.hold", entropymetrics.SourceKey.String("q"), entropymetrics.SourcePriorityKey.Int(0))
	assert.Positive(t, v, "a hold an hour away, by the system clock")
}

// A nil Provider, typed nil too, is refused when registered, rather than
// panicking in the callback at every collection.
func TestRegisterRefusesNil(t *testing.T) {
	_, err := entropymetrics.Register(nil)
	assert.Error(t, err)
	var p *entropy.Provider
	_, err = entropymetrics.Register(p)
	assert.Error(t, err)
	var s *fixedStats
	_, err = entropymetrics.Register(s)
	assert.Error(t, err)
}

func TestProviderFiguresThroughTheSimulator(t *testing.T) {
	s := sim.New(sim.WithSeed(7))
	t.Cleanup(func() { _ = s.Close() })
	src, err := s.Source()
	require.NoError(t, err)
	p, err := entropy.New(src, entropy.WithPolicy(entropy.Defer), entropy.WithBufferSize(4096))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })

	reader := register(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 5 {
		_, err := p.ReadLabelled(ctx, make([]byte, 100))
		require.NoError(t, err)
	}
	before := p.Stats()
	rm := collectFrom(t, reader)
	after := p.Stats()

	reads, _ := point(t, rm, "entropy.reads", entropymetrics.ReadClassKey.String("verifiable"))
	assert.Equal(t, 5.0, reads)
	served, _ := point(t, rm, "entropy.served", entropymetrics.ReadClassKey.String("verifiable"))
	assert.Equal(t, 500.0, served)
	fb, _ := point(t, rm, "entropy.reads", entropymetrics.ReadClassKey.String("fallback"))
	assert.Equal(t, 0.0, fb)
	name := attribute.String(string(entropymetrics.SourceKey), sim.SourceName)
	req, _ := point(t, rm, "entropy.source.requests", name)
	assert.GreaterOrEqual(t, req, float64(before.Sources[0].Requests))
	assert.LessOrEqual(t, req, float64(after.Sources[0].Requests))
	assert.GreaterOrEqual(t, req, 1.0)
	closed, _ := point(t, rm, "entropy.source.breaker.state", name, entropymetrics.BreakerStateKey.String("closed"))
	assert.Equal(t, 1.0, closed)
	fill, _ := point(t, rm, "entropy.pool.fill")
	assert.LessOrEqual(t, fill, 4096.0)
	capacity, _ := point(t, rm, "entropy.pool.capacity")
	assert.Equal(t, 4096.0, capacity)
}

func TestFallbackFiguresWhenTheSourceFails(t *testing.T) {
	down := entropy.SourceFunc(func(ctx context.Context, n int) (entropy.Block, error) {
		return entropy.Block{}, &entropy.APIError{StatusCode: 401, RequestID: "rid-1"}
	})
	p, err := entropy.New(down, entropy.WithPolicy(entropy.Degrade))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures > 0 }, 5*time.Second, time.Millisecond)
	_, err = p.Read(make([]byte, 64))
	require.NoError(t, err)

	rm := collect(t, p)
	share, _ := point(t, rm, "entropy.fallback.share")
	assert.Equal(t, 1.0, share)
	episodes, _ := point(t, rm, "entropy.fallback.episodes")
	assert.Equal(t, 1.0, episodes)
	active, _ := point(t, rm, "entropy.fallback.active")
	assert.Equal(t, 1.0, active)
	open, _ := point(t, rm, "entropy.source.breaker.state", entropymetrics.BreakerStateKey.String("open"))
	assert.Equal(t, 1.0, open, "a permanent error opens the breaker")
	failures, _ := point(t, rm, "entropy.source.failures")
	assert.GreaterOrEqual(t, failures, 1.0)
	assert.True(t, errors.Is(p.Stats().Sources[0].LastError, httpsource.ErrUnauthorized))
}

func TestSimulatorRequestsByRouteStatusAndFault(t *testing.T) {
	s := sim.New(sim.WithSeed(8))
	t.Cleanup(func() { _ = s.Close() })
	src, err := s.Source()
	require.NoError(t, err)
	s.Script(sim.Status(503, sim.ShapeNested, ""), sim.Kind(sim.FaultQueued))
	ctx := context.Background()
	_, err = src.Fetch(ctx, 16)
	require.Error(t, err)
	_, err = src.Fetch(ctx, 16) // queued: one 202, then a poll
	require.NoError(t, err)
	_, err = src.Fetch(ctx, 16)
	require.NoError(t, err)
	_, err = src.FetchBatch(ctx, []int{16, 16})
	require.NoError(t, err)

	reader, mp := newSDK(t)
	reg, err := entropymetrics.RegisterSimulator(s, entropymetrics.WithMeterProvider(mp))
	require.NoError(t, err)
	defer reg.Unregister()
	rm := collectFrom(t, reader)

	for _, tc := range []struct {
		route  string
		status int
		fault  string
		want   float64
	}{
		{"/v1/entropy", 503, "status", 1},
		{"/v1/entropy", 202, "queued", 1},
		{"/v1/entropy", 200, "none", 1},
		{"/v1/entropy/batch", 200, "none", 1},
		{"/v1/jobs/{job_id}", 200, "none", 2}, // the queued job: running once, then completed
	} {
		v, mono := point(t, rm, "entropy.sim.requests", entropymetrics.HTTPRouteKey.String(tc.route),
			entropymetrics.HTTPStatusKey.Int(tc.status), entropymetrics.FaultKey.String(tc.fault))
		assert.Equal(t, tc.want, v, "%+v", tc)
		assert.True(t, mono)
	}
	_, err = entropymetrics.RegisterSimulator(nil)
	assert.Error(t, err)
}
