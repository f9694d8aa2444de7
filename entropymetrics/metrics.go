// Package entropymetrics exports the counters and states of an
// entropy.Provider and of each of its sources as OpenTelemetry metrics
// (go.opentelemetry.io/otel/metric): observable instruments that read
// Provider.Stats once per collection, so the read path pays nothing for them.
// Any OpenTelemetry reader or exporter takes them as they are; with the
// Prometheus exporter (go.opentelemetry.io/otel/exporters/prometheus) they
// are served on /metrics (see the package example).
//
// Names and units follow the OpenTelemetry semantic conventions: a dotted
// namespace "entropy.", units in UCUM ("By" for bytes, "s" for seconds, "1"
// for ratios, and curly-brace annotations such as "{read}" for counts of
// things), the variable parts as attributes. The instruments:
//
//	entropy.pool.fill              gauge    By         checked bytes in the pool now
//	entropy.pool.capacity          gauge    By         bytes the pool holds when full
//	entropy.reads                  counter  {read}     reads served, by entropy.read.class
//	entropy.served                 counter  By         bytes served, by entropy.read.class
//	entropy.fallback.share         gauge    1          fallback bytes / all bytes served so far
//	entropy.fallback.episodes      counter  {episode}  fallback episodes started
//	entropy.fallback.active        gauge    {episode}  1 while an episode is open, else 0
//	entropy.journal.errors         counter  {error}    journal records that failed to append
//	entropy.journal.lost           counter  {record}   records still unwritten when Close gave up on the journal
//	entropy.event.discarded        counter  By         verifiable bytes an event draw took and zeroed unserved
//	entropy.proven.discarded       counter  By         bytes of a read's own job beyond its length, never served
//	entropy.derivation.keyed       counter  By         pool bytes that keyed derived reads, 32 per derivation
//	entropy.defer.abandoned        counter  By         pool bytes a Defer read gathered, then zeroed when it gave up
//	entropy.permanent              gauge    {state}    1 while every source fails permanently (a misconfiguration)
//	entropy.source.breaker.state   gauge    {state}    1 for the breaker's state, 0 for the others, by entropy.breaker.state
//	entropy.source.requests        counter  {request}  requests sent, retries included
//	entropy.source.failures        counter  {request}  requests that failed, rejected blocks included
//	entropy.source.retries         counter  {retry}    retries
//	entropy.source.blocks          counter  {block}    blocks, by entropy.block.outcome (accepted, rejected)
//	entropy.source.accepted        counter  By         bytes of accepted blocks
//	entropy.source.batch.failed    counter  {item}     failed items of batches that served other blocks
//	entropy.source.hold            gauge    s          time left of a Retry-After hold, 0 if none
//	entropy.source.quota.remaining gauge    {request}  requests the service's window still allows
//	entropy.source.quota.limit     gauge    {request}  requests the window allows in all
//	entropy.source.quota.reset     gauge    s          time until the window starts afresh
//	entropy.source.quota.bytes     gauge    By         entropy still paid for (random.org's bitsLeft / 8)
//	entropy.source.quota.exhausted gauge    {state}    1 when the service said the quota or balance is spent
//
// The quota instruments report only what the service said (entropy.Quota:
// a source that reads it, such as package httpsource): a figure it never
// gave has no data point.
//
// entropy.read.class is "verifiable", "derived" or "fallback". Every
// entropy.source.* instrument carries entropy.source (the source's name, as
// its blocks give it; "source N" before the first) and
// entropy.source.priority (its place in the failover order, 0 first).
//
// The package is a sub-package so that the root package stays free of
// OpenTelemetry; it depends only on the API (go.opentelemetry.io/otel and
// its metric package), and the application picks the SDK and exporter.
package entropymetrics

import (
	"context"
	"errors"
	"reflect"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/provenrand/entropy"
)

// ScopeName is the instrumentation scope of the instruments (the meter's name).
const ScopeName = "github.com/provenrand/entropy/entropymetrics"

// Attribute keys of the instruments.
const (
	ReadClassKey      = attribute.Key("entropy.read.class")      // verifiable, derived, fallback
	SourceKey         = attribute.Key("entropy.source")          // the source's name
	SourcePriorityKey = attribute.Key("entropy.source.priority") // 0 for the first source
	BreakerStateKey   = attribute.Key("entropy.breaker.state")   // closed, half-open, open
	BlockOutcomeKey   = attribute.Key("entropy.block.outcome")   // accepted, rejected
)

// Attribute values.
const (
	breakerClosed   = "closed"
	breakerHalfOpen = "half-open"
	breakerOpen     = "open"
	outcomeAccepted = "accepted"
	outcomeRejected = "rejected"
	classVerifiable = "verifiable"
	classDerived    = "derived"
	classFallback   = "fallback"
)

// Statser is what Register reads: *entropy.Provider has it.
type Statser interface {
	Stats() entropy.Stats
}

// Option configures Register.
type Option func(*config)

type config struct {
	mp    metric.MeterProvider
	attrs []attribute.KeyValue
	now   func() time.Time
}

// newConfig applies opts to the defaults: the global meter provider and the
// system clock.
func newConfig(opts []Option) config {
	c := config{now: time.Now}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	return c
}

// WithMeterProvider sets the meter provider. The default is the global one
// (otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	}
}

// WithAttributes adds attributes to every observation, e.g. a name for the
// Provider when a process has several.
func WithAttributes(kv ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, kv...) }
}

// WithClock sets the clock that entropy.source.hold counts against; it
// should be the Provider's: pass the same entropy.Clock as to
// entropy.WithClock. Default (and for a nil clock, typed nil too): the system clock.
func WithClock(clk entropy.Clock) Option {
	return func(c *config) {
		if clk != nil && !isNilPointer(clk) {
			c.now = clk.Now
		}
	}
}

// instruments are the observable instruments of one registration.
type instruments struct {
	poolFill, poolCapacity metric.Int64ObservableGauge
	reads, served          metric.Int64ObservableCounter
	fallbackShare          metric.Float64ObservableGauge
	episodes               metric.Int64ObservableCounter
	active                 metric.Int64ObservableGauge
	journalErrors          metric.Int64ObservableCounter
	journalLost            metric.Int64ObservableCounter
	eventDiscarded         metric.Int64ObservableCounter
	provenDiscarded        metric.Int64ObservableCounter
	derivationKeyed        metric.Int64ObservableCounter
	deferAbandoned         metric.Int64ObservableCounter
	permanent              metric.Int64ObservableGauge
	batchFailed            metric.Int64ObservableCounter
	breaker                metric.Int64ObservableGauge
	requests, failures     metric.Int64ObservableCounter
	retries, blocks        metric.Int64ObservableCounter
	accepted               metric.Int64ObservableCounter
	hold                   metric.Float64ObservableGauge
	quotaRemaining         metric.Int64ObservableGauge
	quotaLimit             metric.Int64ObservableGauge
	quotaReset             metric.Float64ObservableGauge
	quotaBytes             metric.Int64ObservableGauge
	quotaExhausted         metric.Int64ObservableGauge
}

// isNilPointer reports whether v holds a nil pointer (a typed nil), whose
// Stats the callback could not call.
func isNilPointer(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// Register creates the instruments on a meter named ScopeName and registers
// one callback that reads p.Stats() at every collection. Unregister the
// returned registration when p is closed (or keep it: a closed Provider
// reports its last figures).
func Register(p Statser, opts ...Option) (metric.Registration, error) {
	if p == nil || isNilPointer(p) {
		return nil, errors.New("entropymetrics: nil Provider")
	}
	c := newConfig(opts)
	m := c.mp.Meter(ScopeName)
	var in instruments
	var err error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, e := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return g
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		ctr, e := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return ctr
	}
	fgauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, e := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return g
	}
	in.poolFill = gauge("entropy.pool.fill", "By", "Checked verifiable bytes in the pool now.")
	in.poolCapacity = gauge("entropy.pool.capacity", "By", "Bytes the pool holds when full.")
	in.reads = counter("entropy.reads", "{read}", "Reads served, by class (verifiable, derived, fallback).")
	in.served = counter("entropy.served", "By", "Bytes served, by class (verifiable, derived, fallback).")
	in.fallbackShare = fgauge("entropy.fallback.share", "1", "Share of the bytes served so far that came from the crypto/rand fallback.")
	in.episodes = counter("entropy.fallback.episodes", "{episode}", "Fallback episodes started.")
	in.active = gauge("entropy.fallback.active", "{episode}", "1 while a fallback episode is open, else 0.")
	in.journalErrors = counter("entropy.journal.errors", "{error}", "Journal records that failed to append.")
	in.journalLost = counter("entropy.journal.lost", "{record}", "Journal records still unwritten when Close gave up on the journal.")
	in.eventDiscarded = counter("entropy.event.discarded", "By", "Verifiable bytes an event draw took, from the pool or its own job, and zeroed without serving them.")
	in.provenDiscarded = counter("entropy.proven.discarded", "By", "Bytes of jobs fetched for one read (ReadProven, an event's own job) beyond the read's length: accepted, carried by the read's proof, never served nor pooled.")
	in.derivationKeyed = counter("entropy.derivation.keyed", "By", "Pool bytes that keyed derived reads (ReadSecret), 32 per derivation: taken from the pool, never served as they are.")
	in.deferAbandoned = counter("entropy.defer.abandoned", "By", "Pool bytes that reads waiting under Defer had gathered when they gave up before they were whole (see Stats.AbandonedBytes): zeroed, never served.")
	in.permanent = gauge("entropy.permanent", "{state}", "1 while the last refill failed permanently on every source (a misconfiguration), else 0.")
	in.batchFailed = counter("entropy.source.batch.failed", "{item}", "Failed items of batches from the source that served other blocks.")
	in.breaker = gauge("entropy.source.breaker.state", "{state}", "1 for the state the source's circuit breaker is in, 0 for the others.")
	in.requests = counter("entropy.source.requests", "{request}", "Requests sent to the source, retries included.")
	in.failures = counter("entropy.source.failures", "{request}", "Requests to the source that failed, rejected blocks included.")
	in.retries = counter("entropy.source.retries", "{retry}", "Retries of failed requests to the source.")
	in.blocks = counter("entropy.source.blocks", "{block}", "Blocks the source returned, by outcome of the checks (accepted, rejected).")
	in.accepted = counter("entropy.source.accepted", "By", "Bytes of the source's accepted blocks.")
	in.hold = fgauge("entropy.source.hold", "s", "Time left of a Retry-After hold on the source, 0 if none.")
	in.quotaRemaining = gauge("entropy.source.quota.remaining", "{request}", "Requests the service's quota window still allows, as it last said.")
	in.quotaLimit = gauge("entropy.source.quota.limit", "{request}", "Requests the service's quota window allows in all, as it last said.")
	in.quotaReset = fgauge("entropy.source.quota.reset", "s", "Time until the service's quota window starts afresh.")
	in.quotaBytes = gauge("entropy.source.quota.bytes", "By", "Entropy still paid for at the service, as it last said.")
	in.quotaExhausted = gauge("entropy.source.quota.exhausted", "{state}", "1 when the service said the quota or balance is spent, else 0.")
	if err != nil {
		return nil, err
	}
	observables := []metric.Observable{
		in.poolFill, in.poolCapacity, in.reads, in.served, in.fallbackShare, in.episodes, in.active,
		in.journalErrors, in.journalLost, in.eventDiscarded, in.provenDiscarded, in.derivationKeyed, in.deferAbandoned, in.permanent, in.batchFailed, in.breaker, in.requests, in.failures, in.retries, in.blocks, in.accepted, in.hold,
		in.quotaRemaining, in.quotaLimit, in.quotaReset, in.quotaBytes, in.quotaExhausted,
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		in.observe(o, p.Stats(), c.attrs, c.now())
		return nil
	}, observables...)
}

// observe reports one Stats snapshot.
func (in *instruments) observe(o metric.Observer, st entropy.Stats, base []attribute.KeyValue, now time.Time) {
	with := func(kv ...attribute.KeyValue) metric.ObserveOption {
		all := make([]attribute.KeyValue, 0, len(base)+len(kv))
		all = append(append(all, base...), kv...)
		return metric.WithAttributes(all...)
	}
	plain := with()
	o.ObserveInt64(in.poolFill, int64(st.Pooled), plain)
	o.ObserveInt64(in.poolCapacity, int64(st.Capacity), plain)
	for _, c := range []struct {
		class        string
		reads, bytes uint64
	}{
		{classVerifiable, st.VerifiableReads, st.VerifiableBytes},
		{classDerived, st.DerivedReads, st.DerivedBytes},
		{classFallback, st.FallbackReads, st.FallbackBytes},
	} {
		opt := with(ReadClassKey.String(c.class))
		o.ObserveInt64(in.reads, clamp(c.reads), opt)
		o.ObserveInt64(in.served, clamp(c.bytes), opt)
	}
	share := 0.0
	if total := float64(st.VerifiableBytes) + float64(st.DerivedBytes) + float64(st.FallbackBytes); total > 0 {
		share = float64(st.FallbackBytes) / total
	}
	o.ObserveFloat64(in.fallbackShare, share, plain)
	o.ObserveInt64(in.episodes, clamp(st.FallbackEpisodes), plain)
	active := int64(0)
	if st.InFallback {
		active = 1
	}
	o.ObserveInt64(in.active, active, plain)
	o.ObserveInt64(in.journalErrors, clamp(st.JournalErrors), plain)
	o.ObserveInt64(in.journalLost, clamp(st.JournalLost), plain)
	o.ObserveInt64(in.eventDiscarded, clamp(st.EventBytesDiscarded), plain)
	o.ObserveInt64(in.provenDiscarded, clamp(st.ProvenBytesDiscarded), plain)
	o.ObserveInt64(in.derivationKeyed, clamp(st.DerivationBytes), plain)
	o.ObserveInt64(in.deferAbandoned, clamp(st.AbandonedBytes), plain)
	permanent := int64(0)
	if st.Permanent != nil {
		permanent = 1
	}
	o.ObserveInt64(in.permanent, permanent, plain)

	for i, s := range st.Sources {
		src := []attribute.KeyValue{SourceKey.String(s.Name), SourcePriorityKey.Int(i)}
		opt := with(src...)
		for _, state := range []string{breakerClosed, breakerHalfOpen, breakerOpen} {
			v := int64(0)
			if s.Breaker == state {
				v = 1
			}
			o.ObserveInt64(in.breaker, v, with(append(src, BreakerStateKey.String(state))...))
		}
		o.ObserveInt64(in.requests, clamp(s.Requests), opt)
		o.ObserveInt64(in.failures, clamp(s.Failures), opt)
		o.ObserveInt64(in.retries, clamp(s.Retries), opt)
		o.ObserveInt64(in.blocks, clamp(s.BlocksAccepted), with(append(src, BlockOutcomeKey.String(outcomeAccepted))...))
		o.ObserveInt64(in.blocks, clamp(s.BlocksRejected), with(append(src, BlockOutcomeKey.String(outcomeRejected))...))
		o.ObserveInt64(in.accepted, clamp(s.BytesAccepted), opt)
		o.ObserveInt64(in.batchFailed, clamp(s.BatchItemsFailed), opt)
		hold := 0.0
		if !s.HoldUntil.IsZero() {
			if d := s.HoldUntil.Sub(now); d > 0 {
				hold = d.Seconds()
			}
		}
		o.ObserveFloat64(in.hold, hold, opt)
		if q := s.Quota; q.Known() {
			in.observeQuota(o, q, opt, now)
		}
	}
}

// observeQuota reports the figures a service gave of its quota.
func (in *instruments) observeQuota(o metric.Observer, q entropy.Quota, opt metric.ObserveOption, now time.Time) {
	if q.RequestsRemaining >= 0 {
		o.ObserveInt64(in.quotaRemaining, q.RequestsRemaining, opt)
	}
	if q.RequestsLimit >= 0 {
		o.ObserveInt64(in.quotaLimit, q.RequestsLimit, opt)
	}
	if !q.Reset.IsZero() {
		o.ObserveFloat64(in.quotaReset, max(q.Reset.Sub(now).Seconds(), 0), opt)
	}
	if q.BytesRemaining >= 0 {
		o.ObserveInt64(in.quotaBytes, q.BytesRemaining, opt)
	}
	exhausted := int64(0)
	if q.Exhausted {
		exhausted = 1
	}
	o.ObserveInt64(in.quotaExhausted, exhausted, opt)
}

// clamp converts a counter to int64, saturating.
func clamp(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
