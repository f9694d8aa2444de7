package entropy

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// When an option is given twice, the later one wins: checked for each core
// option by an effect that shows which one took hold.
func TestOptionGivenTwiceLaterWins(t *testing.T) {
	t.Run("policy", func(t *testing.T) {
		src := newScriptSource("q")
		src.set(&step{err: &APIError{StatusCode: 503}})
		p := newTestProvider(t, src, fast(WithPolicy(Fail), WithPolicy(Degrade))...)
		assert.Equal(t, Degrade, p.Stats().Policy)
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 8))
		require.NoError(t, err)
		assert.False(t, lb.Verifiable)
		q := newTestProvider(t, src, fast(WithPolicy(Degrade), WithPolicy(Fail))...)
		_, err = q.ReadLabelled(context.Background(), make([]byte, 8))
		assert.ErrorIs(t, err, ErrUnavailable)
	})
	t.Run("buffer size", func(t *testing.T) {
		p := newTestProvider(t, newScriptSource("q"), fast(WithBufferSize(1<<20), WithBufferSize(2048))...)
		assert.Equal(t, 2048, p.Stats().Capacity)
		full(t, p, 2048)
		time.Sleep(10 * time.Millisecond)
		assert.Equal(t, 2048, p.Stats().Pooled)
	})
	t.Run("rate limit", func(t *testing.T) {
		// Earlier: one request per ~30 years. Later: no limit. The pool must
		// fill with many small blocks.
		src := newScriptSource("q")
		src.maxLen = 64
		p := newTestProvider(t, src, WithRateLimit(1e-9, 1), WithRateLimit(rate.Inf, 1), WithBufferSize(1024))
		// (Waiting on BlocksAccepted, not on the source's call count: a
		// block is counted as accepted only after its checks, a moment after
		// the call returned.)
		require.Eventually(t, func() bool { return p.Stats().Sources[0].BlocksAccepted >= 8 }, 5*time.Second, time.Millisecond)
		assert.GreaterOrEqual(t, src.callCount(), 8)
		// And the other way round: the later, slow limit holds after the burst.
		slow := newScriptSource("s")
		slow.maxLen = 64
		q := newTestProvider(t, slow, WithRateLimit(rate.Inf, 1), WithRateLimit(1e-9, 1), WithBufferSize(1024))
		ready(t, q)
		time.Sleep(30 * time.Millisecond)
		assert.Equal(t, 1, slow.callCount())
	})
	t.Run("breaker", func(t *testing.T) {
		never := func(gobreaker.Counts) bool { return false }
		src := newScriptSource("q")
		src.set(&step{err: &APIError{StatusCode: 500}})
		p := newTestProvider(t, src, fast(WithBreaker(gobreaker.Settings{ReadyToTrip: never, Timeout: time.Hour}),
			WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
		require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)

		src2 := newScriptSource("q2")
		src2.set(&step{err: &APIError{StatusCode: 500}})
		q := newTestProvider(t, src2, fast(WithBreaker(gobreaker.Settings{Timeout: time.Hour}),
			WithBreaker(gobreaker.Settings{ReadyToTrip: never, Timeout: time.Hour}))...)
		require.Eventually(t, func() bool { return src2.callCount() >= 4*defaultTripAfter }, 5*time.Second, time.Millisecond)
		assert.Equal(t, "closed", q.Stats().Sources[0].Breaker)
	})
}

// A typed-nil Journal (var j *journal.Journal left nil when journalling is
// off, then WithJournal(j)) must be refused by New or treated as no
// journal; it must not crash the program from the Provider's notifier
// goroutine when the first block arrives.
func TestTypedNilJournalDoesNotCrash(t *testing.T) {
	if inChild(t) {
		var j *memJournal
		p, err := New(newScriptSource("a"), fast(WithJournal(j))...)
		if err != nil {
			return // refused at New: fine
		}
		ready(t, p)
		_, err = p.Read(make([]byte, 32))
		require.NoError(t, err)
		require.NoError(t, p.Close())
		return
	}
	out, err := runInChild(t)
	require.NoError(t, err, "a typed-nil Journal crashed the program:\n%s", out)
	require.NotContains(t, out, "panic:")
}

// A typed-nil Clock (var c *myClock left unset, then WithClock(c)) passes
// a plain nil check; New must refuse it as it refuses WithClock(nil), not
// crash the program from the refill goroutine at the first tick.
func TestTypedNilClockRefusedByNew(t *testing.T) {
	if inChild(t) {
		var clk *fakeClock
		p, err := New(newScriptSource("a"), fast(WithClock(clk))...)
		if err == nil {
			ready(t, p)
			_, _ = p.Read(make([]byte, 32))
			_ = p.Close()
			t.Fatal("New accepted a typed-nil clock")
		}
		return
	}
	out, err := runInChild(t)
	require.NoError(t, err, "a typed-nil Clock was accepted or crashed the program:\n%s", out)
	require.NotContains(t, out, "panic:")
}

// Breaker settings that cannot mean anything are a clear error from New,
// not silently replaced by a default, and not a rolling window whose
// buckets New would allocate by the billion (Interval/BucketPeriod
// buckets per source: an hour of nanosecond buckets is 72 TB).
func TestBreakerSettingsOutOfRangeRefused(t *testing.T) {
	if inChild(t) {
		for name, s := range map[string]gobreaker.Settings{
			"negative timeout":               {Timeout: -time.Second},
			"negative interval":              {Interval: -time.Second},
			"negative bucket period":         {Interval: time.Minute, BucketPeriod: -time.Second},
			"bucket period without interval": {BucketPeriod: time.Second},
			"billions of buckets":            {Interval: time.Hour, BucketPeriod: time.Nanosecond},
			"interval overflows":             {Interval: math.MaxInt64, BucketPeriod: 2},
			"4097 buckets, the last partial": {Interval: 4096*time.Second + time.Millisecond, BucketPeriod: time.Second},
		} {
			p, err := New(newScriptSource("a"), fast(WithBreaker(s))...)
			if err == nil {
				_ = p.Close()
				t.Errorf("%s: New accepted %+v", name, s)
			}
		}
		p, err := New(newScriptSource("a"), fast(WithBreaker(gobreaker.Settings{Interval: 4096 * time.Second, BucketPeriod: time.Second}))...)
		if err != nil {
			t.Errorf("4096 buckets, the most, refused: %v", err)
		} else {
			_ = p.Close()
		}
		return
	}
	out, err := runInChild(t)
	require.NoError(t, err, "out-of-range breaker settings were accepted or crashed the program:\n%s", out)
	require.NotContains(t, out, "panic:")
}
