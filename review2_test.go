package entropy

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// Contract point 6: a permanent error opens the breaker at once and is not
// sent again while the breaker is open, even when its answer carried a
// Retry-After and a failover source is configured.
func TestReview2PermanentWithRetryAfterOpensBreaker(t *testing.T) {
	for _, err := range []error{
		&APIError{StatusCode: 401, RetryAfter: time.Second},
		&APIError{StatusCode: 402, RetryAfter: time.Second},
		&APIError{StatusCode: 403, RetryAfter: time.Second},
	} {
		t.Run(err.Error(), func(t *testing.T) {
			clk := newFakeClock()
			primary := newScriptSource("primary")
			primary.set(&step{err: err})
			secondary := newScriptSource("secondary")
			p := newTestProvider(t, primary, fast(WithClock(clk), WithFailover(secondary), WithPolicy(Defer),
				WithBufferSize(1024), WithFetchSize(1024), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
			ready(t, p)
			require.Equal(t, 1, primary.callCount())
			st := p.Stats().Sources[0]
			assert.ErrorIs(t, st.LastError, ErrPermanent)
			assert.Equal(t, "open", st.Breaker, "a permanent error must open the breaker at once")

			// The Retry-After passes, the breaker's open time does not: every
			// later refill must leave the primary alone.
			clk.advance(2 * time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			before := secondary.callCount()
			for secondary.callCount() < before+3 {
				_, rerr := p.ReadLabelled(ctx, make([]byte, 1024))
				require.NoError(t, rerr)
			}
			assert.Equal(t, 1, primary.callCount(), "a permanent error was sent again inside the breaker's open time")
		})
	}
}

// RetryAfter finds the Retry-After of every error err wraps: an error
// without one must not hide the one beside it.
func TestReview2RetryAfterNotHiddenByJoinedError(t *testing.T) {
	err := errors.Join(&APIError{StatusCode: 502}, &APIError{StatusCode: 429, RetryAfter: 5 * time.Second})
	assert.Equal(t, 5*time.Second, RetryAfter(err))
}

// Contract point 3 (and Source's documentation: the Provider refuses "a
// (Source, JobID) it has taken before"): a source that hands out an old job
// again, however many jobs later, must not get its bytes served twice.
func TestReview2OldJobReplayedNotServedTwice(t *testing.T) {
	src := newScriptSource("quantropy")
	l := newLedger(src)
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(64), WithFetchSize(64))...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	read := func() {
		t.Helper()
		b := make([]byte, 64)
		lb, err := p.ReadLabelled(ctx, b)
		require.NoError(t, err)
		require.Empty(t, l.check(b, lb))
	}
	const jobs = 5000
	for src.callCount() < jobs {
		read()
	}
	first, ok := src.job("quantropy-job-1")
	require.True(t, ok)
	replay := Block{Data: append([]byte(nil), first...), Source: "quantropy", JobID: "quantropy-job-1",
		Verifiable: true, Proof: []byte("sig"), Time: time.Now()}
	src.set(nil, step{block: &replay})
	for i := 0; i < 4; i++ {
		read()
	}
}

// Contract point 7: WithMaxRetryAfter(0) must not switch Retry-After off.
// Either the option refuses 0, or a Retry-After still holds the source back.
func TestReview2MaxRetryAfterZeroKeepsRetryAfter(t *testing.T) {
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

// WithHealthTests / HealthConfig.Validate: a configuration Validate accepts
// must give usable cutoffs. Assessing less entropy makes the tests more
// tolerant, never less, so a block that passes the default tests must pass
// a configuration with a (valid) tiny MinEntropy too; otherwise Validate must
// refuse that configuration.
func TestReview2TinyMinEntropyValidatedOrTolerant(t *testing.T) {
	data := make([]byte, 4096)
	_, _ = mrand.NewChaCha8([32]byte{1}).Read(data)
	require.NoError(t, DefaultHealthConfig().Check(data))
	for _, h := range []float64{1e-18, 5e-324} {
		c := HealthConfig{MinEntropy: h, FalseAlarmLog2: DefaultFalseAlarmLog2}
		if c.Validate() != nil {
			continue
		}
		rct, apt := c.Cutoffs()
		assert.GreaterOrEqual(t, rct, 2, "MinEntropy %v: RCT cutoff", h)
		assert.GreaterOrEqual(t, apt, 1, "MinEntropy %v: APT cutoff", h)
		assert.NoError(t, c.Check(data), "MinEntropy %v passed Validate but fails a block the default tests pass", h)
	}
}
