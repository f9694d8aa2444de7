package entropy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Contract point 6: a caller's cancelled or expired contexts never
// count as source failures, and never move the breaker.
func TestCallerCancelIsNotASourceFailure(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return Block{}, ctx.Err()
		}
		return Block{}, errors.New("unreachable in this test")
	})
	p := newTestProvider(t, src, fast(WithPolicy(Defer))...)
	require.Eventually(t, func() bool { return calls.Load() == 1 }, 5*time.Second, time.Millisecond)
	runReaders(8, 20, func(int, int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := p.ReadLabelled(ctx, make([]byte, 32))
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		_, err = p.ReadLabelled(ctx, make([]byte, 32))
		assert.ErrorIs(t, err, context.Canceled)
		return true
	})
	st := p.Stats().Sources[0]
	assert.Zero(t, st.Failures)
	assert.Equal(t, "closed", st.Breaker)
	assert.Nil(t, st.LastError)
	assert.Equal(t, int64(1), calls.Load(), "reads never drive a fetch")
	close(release)
}

// Contract point 6: a permanent error opens the breaker at once and is not
// sent again while the breaker is open, even when its answer carried a
// Retry-After and a failover source is configured.
func TestPermanentErrorWithRetryAfterOpensBreaker(t *testing.T) {
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

// The breaker recovers: after a failure burst, verifiable reads resume once
// the source is back (the breaker's half-open probe succeeds).
func TestRecoversAfterFailureBurst(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 500}})
	p := newTestProvider(t, src, fast(WithBreaker(gobreaker.Settings{Timeout: 20 * time.Millisecond}))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 16))
	require.NoError(t, err)
	assert.False(t, lb.Verifiable)
	src.set(nil)
	require.Eventually(t, func() bool {
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 16))
		return err == nil && lb.Verifiable
	}, 10*time.Second, time.Millisecond)
	st := p.Stats()
	assert.Equal(t, "closed", st.Sources[0].Breaker)
	assert.False(t, st.InFallback, "the verifiable read ends the fallback episode")
	assert.Equal(t, uint64(1), st.FallbackEpisodes)
}

// A breaker refusal names the failure that opened the breaker, even when a
// refill admitted before it opened succeeded afterwards: that success
// clears the last error Stats shows, not the refusal's cause.
func TestBreakerRefusalKeepsTheFailureThatOpenedIt(t *testing.T) {
	refusal := fmt.Errorf("%w: HTTP 401: unknown API key", ErrPermanent)
	src := newScriptSource("s", step{err: refusal})
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	f := p.feeders[0]
	require.Eventually(t, func() bool { return f.cb.State() == gobreaker.StateOpen }, 5*time.Second, time.Millisecond)
	f.setLastError(nil) // the success of a refill admitted before the breaker opened
	_, err := f.fetch(context.Background(), 64, nil)
	assert.ErrorIs(t, err, gobreaker.ErrOpenState)
	assert.ErrorIs(t, err, ErrPermanent, "the refusal lost its cause")
	assert.NoError(t, p.Stats().Sources[0].LastError, "Stats shows the last request's outcome")
}
