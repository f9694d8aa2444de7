package entropy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memFleet is an in-process Fleet for the root's tests: the Providers given
// it share one hold, one breaker and one count of limiter waits per source
// index, as replicas share them through a store.
type memFleet struct {
	calls  atomic.Int64 // every call of a Limiter, Hold or Breaker method
	closes atomic.Int64 // calls of a Coordination's Close

	mu       sync.Mutex
	holds    map[int]time.Time
	extends  []time.Duration
	breakers map[int]*gobreaker.CircuitBreaker[Block]
	clk      Clock
	status   FleetStatus
	fail     error // Coordinate's answer
	failFrom int   // with fail: the first source index Coordinate fails for
}

func newMemFleet(clk Clock) *memFleet {
	return &memFleet{
		holds:    map[int]time.Time{},
		breakers: map[int]*gobreaker.CircuitBreaker[Block]{},
		clk:      clk,
		status:   FleetStatus{Name: "mem", Shared: true},
	}
}

func (m *memFleet) Coordinate(s FleetSource) (Coordination, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil && s.Index >= m.failFrom {
		return Coordination{}, m.fail
	}
	cb := m.breakers[s.Index]
	if cb == nil {
		cb = gobreaker.NewCircuitBreaker[Block](s.Breaker)
		m.breakers[s.Index] = cb
	}
	return Coordination{
		Limiter: memLimiter{m},
		Hold:    memHold{m, s.Index},
		Breaker: memBreaker{m, cb},
		Close:   func() { m.closes.Add(1) },
	}, nil
}

func (m *memFleet) Status() FleetStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

func (m *memFleet) set(shared bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status.Shared, m.status.LastError, m.status.Since = shared, err, m.clk.Now()
	if err != nil {
		m.status.Errors++
	}
}

type memLimiter struct{ m *memFleet }

func (l memLimiter) Wait(ctx context.Context) error { l.m.calls.Add(1); return ctx.Err() }

type memHold struct {
	m   *memFleet
	idx int
}

func (h memHold) Until(context.Context) time.Time {
	h.m.calls.Add(1)
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.m.holds[h.idx]
}

func (h memHold) Extend(_ context.Context, d time.Duration) {
	h.m.calls.Add(1)
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	h.m.extends = append(h.m.extends, d)
	if u := h.m.clk.Now().Add(d); u.After(h.m.holds[h.idx]) {
		h.m.holds[h.idx] = u
	}
}

type memBreaker struct {
	m  *memFleet
	cb *gobreaker.CircuitBreaker[Block]
}

func (b memBreaker) Execute(req func() (Block, error)) (Block, error) {
	b.m.calls.Add(1)
	return b.cb.Execute(req)
}
func (b memBreaker) State() gobreaker.State     { return b.cb.State() }
func (b memBreaker) Gate(context.Context) error { return nil }

// A Retry-After that one replica receives holds the requests of every
// replica of the fleet to that source, capped by WithMaxRetryAfter.
func TestFleetRetryAfterHoldsEveryReplica(t *testing.T) {
	clk := newFakeClock()
	fl := newMemFleet(clk)
	a := newScriptSource("a")
	a.set(&step{err: &APIError{StatusCode: 503}}, step{err: &APIError{StatusCode: 429, RetryAfter: time.Hour}})
	opts := fast(WithClock(clk), WithFleet(fl), WithRetry(1, time.Millisecond, time.Millisecond), WithMaxRetryAfter(time.Minute))
	newTestProvider(t, a, opts...)
	require.Eventually(t, func() bool {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		return len(fl.extends) > 0
	}, 5*time.Second, time.Millisecond, "the 429's hold is published to the fleet")
	fl.mu.Lock()
	assert.Equal(t, time.Minute, fl.extends[0], "the published hold is capped by WithMaxRetryAfter")
	fl.mu.Unlock()

	b := newScriptSource("b")
	pb := newTestProvider(t, b, opts...)
	require.Eventually(t, func() bool { return !pb.Stats().Sources[0].HoldUntil.IsZero() }, 5*time.Second, time.Millisecond)
	assert.True(t, clk.start.Add(time.Minute).Equal(pb.Stats().Sources[0].HoldUntil), "the other replica learnt the fleet's hold")
	assert.Zero(t, b.callCount(), "no replica sends a request while the fleet is held")

	clk.advance(time.Minute)
	require.Eventually(t, func() bool { return b.callCount() > 0 }, 5*time.Second, time.Millisecond, "requests resume when the hold has passed")
}

// A fleet's hold of the primary, set by another replica's 429, holds this
// replica's primary too, but not its failover: the failover serves
// meanwhile, as it does for a hold the replica received itself
// (TestRetryAfterDoesNotStallFailover), instead of the refill sleeping out
// the fleet's hold.
func TestFleetRetryAfterDoesNotStallFailover(t *testing.T) {
	fl := newMemFleet(newFakeClock())
	fl.holds[0] = time.Now().Add(30 * time.Second) // another replica's 429
	primary := newScriptSource("primary")
	secondary := newScriptSource("secondary")
	p := newTestProvider(t, primary, fast(WithFleet(fl), WithFailover(secondary), WithPolicy(Degrade))...)
	ok := assert.Eventually(t, func() bool {
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 32))
		return err == nil && lb.Verifiable
	}, 3*time.Second, 5*time.Millisecond, "the failover serves while the fleet holds the primary")
	if !ok {
		st := p.Stats()
		t.Logf("primary calls %d, secondary calls %d, fallback reads %d, primary hold until %v",
			primary.callCount(), secondary.callCount(), st.FallbackReads, st.Sources[0].HoldUntil)
	}
	assert.Zero(t, primary.callCount(), "no request to the held primary")
}

// unclaimableJournal is a journal whose replay guard cannot answer: its
// database is unreachable from this replica.
type unclaimableJournal struct{ *memJournal }

func (unclaimableJournal) ClaimJob(context.Context, string, string) (bool, error) {
	return false, errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")
}

// A replica whose journal cannot answer its replay guard takes no block
// (its freshness is unknown), but the source did not fail: the fleet's
// breaker stays closed, and the other replicas go on serving verifiable
// bytes from the source.
func TestFleetBreakerNotOpenedByOneReplicasJournal(t *testing.T) {
	fl := newMemFleet(newFakeClock())
	opts := fast(WithFleet(fl), WithBreaker(gobreaker.Settings{Timeout: time.Hour}), WithPolicy(Degrade))
	a := newScriptSource("a")
	pa := newTestProvider(t, a, append(opts, WithJournal(unclaimableJournal{newMemJournal()}))...)
	require.Eventually(t, func() bool {
		st := pa.Stats()
		return st.Unavailable != nil && st.Sources[0].Requests >= 2*defaultTripAfter
	}, 5*time.Second, time.Millisecond, "replica a's refills fail on its journal")
	lb, err := pa.ReadLabelled(context.Background(), make([]byte, 16))
	require.NoError(t, err)
	assert.False(t, lb.Verifiable, "no block is taken while the replay guard cannot answer")

	b := newScriptSource("b")
	pb := newTestProvider(t, b, opts...)
	ok := assert.Eventually(t, func() bool {
		lb, err := pb.ReadLabelled(context.Background(), make([]byte, 16))
		return err == nil && lb.Verifiable
	}, 3*time.Second, 5*time.Millisecond, "the other replica serves from the source")
	if !ok {
		t.Logf("fleet breaker %v; replica b: calls %d, unavailable: %v", fl.breakers[0].State(), b.callCount(), pb.Stats().Unavailable)
	}
}

// The fleet's limiter and breaker take the place of the embedded ones: a
// permanent error one replica meets opens the breaker of every replica, and
// the others send no request while it is open.
func TestFleetBreakerAndLimiterReplaceTheEmbeddedOnes(t *testing.T) {
	fl := newMemFleet(newFakeClock())
	a := newScriptSource("a")
	a.set(&step{err: &APIError{StatusCode: 401}})
	pa := newTestProvider(t, a, fast(WithFleet(fl), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	require.Eventually(t, func() bool { return pa.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 1, a.callCount(), "a permanent error is not retried")

	b := newScriptSource("b")
	pb := newTestProvider(t, b, fast(WithFleet(fl), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	require.Eventually(t, func() bool {
		return errors.Is(pb.Stats().Unavailable, gobreaker.ErrOpenState)
	}, 5*time.Second, time.Millisecond, "the other replica's refill is refused by the shared breaker")
	assert.Equal(t, "open", pb.Stats().Sources[0].Breaker)
	assert.Zero(t, b.callCount(), "no request while the fleet's breaker is open")
}

// Coordination is on the refill path only: reads served from the pool make
// no call to the fleet.
func TestFleetIsNotOnTheReadPath(t *testing.T) {
	fl := newMemFleet(newFakeClock())
	p := newTestProvider(t, newScriptSource("a"), fast(WithFleet(fl), WithBufferSize(1<<16), WithShards(1))...)
	full(t, p, 1<<16)
	before := fl.calls.Load()
	require.Positive(t, before, "the refills went through the fleet")
	buf := make([]byte, 16)
	for i := 0; i < 1000; i++ { // 16 000 bytes: above the low watermark
		lb, err := p.ReadLabelled(context.Background(), buf)
		require.NoError(t, err)
		require.True(t, lb.Verifiable)
	}
	assert.Equal(t, before, fl.calls.Load(), "no read called the fleet")
}

// A change of the fleet's state (coordination lost, restored) shows in
// Stats and reaches the fleet hook.
func TestFleetStateChangesReachStatsAndHook(t *testing.T) {
	fl := newMemFleet(newFakeClock())
	var mu sync.Mutex
	var events []FleetStatus
	src := newScriptSource("a")
	p := newTestProvider(t, src, fast(WithFleet(fl), WithBufferSize(256), WithFetchSize(64), WithShards(1),
		WithFleetHook(func(ev FleetStatus) { mu.Lock(); events = append(events, ev); mu.Unlock() }))...)
	ready(t, p)
	st := p.Stats()
	require.NotNil(t, st.Fleet)
	assert.True(t, st.Fleet.Shared)

	seen := func(n int) func() bool {
		return func() bool {
			_, _ = p.Read(make([]byte, 128)) // drains the pool: refills follow
			mu.Lock()
			defer mu.Unlock()
			return len(events) >= n
		}
	}
	cut := errors.New("store unreachable")
	fl.set(false, cut)
	require.Eventually(t, seen(1), 5*time.Second, time.Millisecond)
	st = p.Stats()
	assert.False(t, st.Fleet.Shared)
	assert.Equal(t, uint64(1), st.Fleet.Errors)
	fl.set(true, nil)
	require.Eventually(t, seen(2), 5*time.Second, time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	assert.False(t, events[0].Shared)
	assert.ErrorIs(t, events[0].LastError, cut)
	assert.Equal(t, "mem", events[0].Name)
	assert.True(t, events[1].Shared)
	assert.False(t, events[1].Since.Before(events[0].Since), "the restoration comes after the loss")
}

// WithFleet refuses a nil fleet, and a fleet that cannot coordinate a
// source fails New.
func TestWithFleetRefusesNilAndFailedCoordination(t *testing.T) {
	_, err := New(newScriptSource("a"), WithFleet(nil))
	assert.Error(t, err)
	var typed *memFleet
	_, err = New(newScriptSource("a"), WithFleet(typed))
	assert.Error(t, err)

	fl := newMemFleet(newFakeClock())
	fl.fail = errors.New("no store")
	_, err = New(newScriptSource("a"), WithFleet(fl))
	assert.ErrorIs(t, err, fl.fail)
}

// Contract point 10 with a fleet: Provider.Close closes what the fleet
// coordinates for each of its sources (Coordination.Close, which ends the
// fleet's goroutines of that source) before it returns, once; and New,
// when the coordination of a later source fails, closes the earlier ones.
func TestFleetCoordinationClosedWithTheProvider(t *testing.T) {
	fl := newMemFleet(newFakeClock())
	p, err := New(newScriptSource("primary"), fast(WithFleet(fl), WithFailover(newScriptSource("secondary")))...)
	require.NoError(t, err)
	assert.Zero(t, fl.closes.Load(), "nothing closed while the Provider runs")
	require.NoError(t, p.Close())
	assert.Equal(t, int64(2), fl.closes.Load(), "one Close per source, before Provider.Close returned")
	require.NoError(t, p.Close())
	assert.Equal(t, int64(2), fl.closes.Load(), "a second Close closes nothing again")

	fl = newMemFleet(newFakeClock())
	fl.fail, fl.failFrom = errors.New("no store"), 1
	_, err = New(newScriptSource("primary"), fast(WithFleet(fl), WithFailover(newScriptSource("secondary")))...)
	require.ErrorIs(t, err, fl.fail)
	assert.Equal(t, int64(1), fl.closes.Load(), "the primary's coordination closed when the failover's failed")
}
