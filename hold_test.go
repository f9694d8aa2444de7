package entropy

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// Contract point 7 with an injected clock: a Retry-After holds back the
// later refill rounds too, not only the retry loop that saw it (WithRetry(1)
// leaves no retry, so every further request comes from a new round), and
// the hold does not trip the breaker or count as extra failures.
func TestRetryAfterHoldsLaterRefillRounds(t *testing.T) {
	clk := newFakeClock()
	const hold = 30 * time.Second
	src := newScriptSource("q", step{err: &APIError{StatusCode: 429, RetryAfter: hold}})
	p := newTestProvider(t, src, WithRateLimit(rate.Inf, 1), WithClock(clk), WithRetry(1, time.Millisecond, time.Millisecond),
		WithBufferSize(1024), WithFetchSize(1024))
	require.Eventually(t, func() bool { return src.callCount() == 1 }, 5*time.Second, time.Millisecond)
	for elapsed := time.Duration(0); elapsed < hold-time.Second; elapsed += 500 * time.Millisecond {
		clk.advance(500 * time.Millisecond)
		time.Sleep(time.Millisecond)
		require.Equal(t, 1, src.callCount(), "request sent %v into a %v Retry-After", elapsed, hold)
	}
	require.Eventually(t, func() bool { clk.advance(100 * time.Millisecond); return src.callCount() >= 2 }, 5*time.Second, time.Millisecond)
	calls := clk.Now().Sub(clk.start)
	assert.GreaterOrEqual(t, calls, hold)
	ready(t, p)
	st := p.Stats().Sources[0]
	assert.Equal(t, uint64(1), st.Failures)
	assert.Equal(t, "closed", st.Breaker)
}

// Contract point 7, with an injected clock: a Retry-After that a refill saw
// holds back every fetch of the Provider, not only the refill's: a
// ReadProven and an event draw on the callers' goroutines send nothing
// until it has passed, then all are served.
func TestRetryAfterHoldsAllFetches(t *testing.T) {
	clk := newFakeClock()
	const hold = 30 * time.Second
	src := newScriptSource("q", step{err: &APIError{StatusCode: 429, RetryAfter: hold}})
	p := newTestProvider(t, src, WithRateLimit(rate.Inf, 1), WithClock(clk), WithRetry(1, time.Millisecond, time.Millisecond),
		WithPolicy(Defer), WithBufferSize(1024), WithFetchSize(1024))
	require.Eventually(t, func() bool { return src.callCount() == 1 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reads := []func() (Label, error){
		func() (Label, error) { lb, _, err := p.ReadProven(ctx, make([]byte, 32)); return lb, err },
		func() (Label, error) { lb, _, err := p.ReadProven(ctx, make([]byte, 32)); return lb, err },
		func() (Label, error) { return p.ReadFor(ctx, "draw-1", make([]byte, 32)) },
		func() (Label, error) { return p.ReadLabelled(ctx, make([]byte, 32)) },
	}
	done := make(chan error, len(reads))
	for _, read := range reads {
		go func() {
			lb, err := read()
			if err == nil && !lb.Verifiable {
				err = fmt.Errorf("read served %v", lb)
			}
			done <- err
		}()
	}
	for elapsed := time.Duration(0); elapsed < hold-time.Second; elapsed += 500 * time.Millisecond {
		clk.advance(500 * time.Millisecond)
		time.Sleep(time.Millisecond)
		require.Equal(t, 1, src.callCount(), "request sent %v into a %v Retry-After", elapsed, hold)
	}
	for range reads {
		var err error
		require.Eventually(t, func() bool {
			clk.advance(100 * time.Millisecond)
			select {
			case err = <-done:
				return true
			default:
				return false
			}
		}, 5*time.Second, time.Millisecond)
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, clk.Now().Sub(clk.start), hold)
}

// Contract point 7: WithMaxRetryAfter(0) must not switch Retry-After off.
// Either the option refuses 0, or a Retry-After still holds the source back.
func TestMaxRetryAfterZeroKeepsRetryAfter(t *testing.T) {
	clk := newFakeClock()
	const hold = 30 * time.Second
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 429, RetryAfter: hold}})
	p, err := New(src, WithRateLimit(rate.Inf, 1), WithClock(clk), WithRetry(1, time.Millisecond, time.Millisecond),
		WithMaxRetryAfter(0), WithBufferSize(1024), WithFetchSize(1024))
	if err != nil {
		return // refusing a cap of zero keeps the contract too
	}
	defer func() { require.NoError(t, p.Close()) }()
	// settled: the refill goroutine sleeps on the clock again.
	settled := func() {
		require.Eventually(t, func() bool { return clk.waiters() > 0 }, 5*time.Second, time.Millisecond)
	}
	settled()
	require.Equal(t, 1, src.callCount())
	for elapsed := time.Second; elapsed < hold; elapsed += time.Second {
		clk.advance(time.Second)
		settled()
		require.Equal(t, 1, src.callCount(), "request sent %v into a %v Retry-After", elapsed, hold)
	}
}

// WithFailover: a primary that answers 429 with a long Retry-After is failing
// for now; the failover source must serve meanwhile, instead of the refill
// sleeping out the primary's hold.
func TestRetryAfterDoesNotStallFailover(t *testing.T) {
	primary := newScriptSource("primary")
	primary.set(&step{err: &APIError{StatusCode: 429, RetryAfter: 30 * time.Second}})
	secondary := newScriptSource("secondary")
	p := newTestProvider(t, primary, fast(WithFailover(secondary), WithPolicy(Degrade))...)
	ok := assert.Eventually(t, func() bool {
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 32))
		return err == nil && lb.Verifiable
	}, 3*time.Second, 5*time.Millisecond)
	if !ok {
		st := p.Stats()
		t.Logf("primary calls %d, secondary calls %d, fallback reads %d, primary hold until %v",
			primary.callCount(), secondary.callCount(), st.FallbackReads, st.Sources[0].HoldUntil)
	}
}

// A Retry-After near the longest Duration, with a cap as long, holds the
// source rather than overflowing into no hold at all.
func TestHoldDoesNotOverflow(t *testing.T) {
	p := newTestProvider(t, newScriptSource("hold"), fast(WithMaxRetryAfter(time.Duration(math.MaxInt64)))...)
	f := p.feeders[0]
	f.hold(time.Duration(math.MaxInt64))
	assert.True(t, f.held(), "a maximal Retry-After holds the source")
}

// Contract point 7, with an injected clock: the hold is measured on the
// Provider's clock, it holds back the retries of the round that saw it
// (TestRetryAfterHoldsLaterRefillRounds: the later rounds), and a hold
// longer than WithMaxRetryAfter is capped.
func TestRetryAfterCapped(t *testing.T) {
	clk := newFakeClock()
	src := newScriptSource("quantropy", step{err: &APIError{StatusCode: 503, RetryAfter: time.Hour}})
	p := newTestProvider(t, src, fast(WithClock(clk), WithMaxRetryAfter(10*time.Second), WithRetry(2, time.Millisecond, time.Millisecond))...)
	require.Eventually(t, func() bool { return src.callCount() == 1 && clk.waiters() > 0 }, 5*time.Second, time.Millisecond)
	clk.advance(5 * time.Second)
	time.Sleep(10 * time.Millisecond)
	assert.Equal(t, 1, src.callCount(), "request sent before the capped hold passed")
	require.Eventually(t, func() bool { clk.advance(time.Second); return src.callCount() >= 2 }, 5*time.Second, time.Millisecond)
	assert.GreaterOrEqual(t, clk.Now().Sub(clk.start), 10*time.Second)
	ready(t, p)
}
