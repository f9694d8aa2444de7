package entropy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// quotaSource is a scriptSource whose service reports a quota of limit
// requests per window, the window starting at the clock's start.
type quotaSource struct {
	*scriptSource
	clk    *fakeClock
	limit  int64
	window time.Duration
}

func (q *quotaSource) Quota() (Quota, bool) {
	now := q.clk.Now()
	calls := int64(q.callCount())
	if calls == 0 {
		return Quota{}, false
	}
	w := now.Sub(q.clk.start) / q.window
	qt := Quota{RequestsRemaining: -1, RequestsLimit: -1, BytesRemaining: -1, Balance: -1}
	qt.RequestsLimit = q.limit
	qt.RequestsRemaining = max(q.limit-calls, 0)
	qt.Reset = q.clk.start.Add((w + 1) * q.window)
	qt.Updated = now
	return qt, true
}

func TestQuotaIsShownInStats(t *testing.T) {
	clk := newFakeClock()
	src := &quotaSource{scriptSource: newScriptSource("q"), clk: clk, limit: 100, window: time.Hour}
	p := newTestProvider(t, src, fast(WithClock(clk), WithBufferSize(1024), WithFetchSize(1024))...)
	ready(t, p)
	q := p.Stats().Sources[0].Quota
	require.True(t, q.Known())
	assert.Equal(t, int64(100), q.RequestsLimit)
	assert.Equal(t, int64(99), q.RequestsRemaining)
	assert.Equal(t, clk.start.Add(time.Hour), q.Reset)
	assert.Equal(t, int64(-1), q.BytesRemaining)
}

func TestNoQuotaReporterNoQuota(t *testing.T) {
	p := newTestProvider(t, newScriptSource("q"), fast(WithBufferSize(1024), WithFetchSize(1024))...)
	ready(t, p)
	assert.False(t, p.Stats().Sources[0].Quota.Known())
}

// The Provider spreads what is left of a window until its reset: with 2
// requests left and 10 s to go, the next request waits 5 s, although the
// rate limit (unlimited here) and the pool (wanting 4 blocks) would send
// them all at once.
func TestQuotaPacesRequestsBeforeTheLimit(t *testing.T) {
	clk := newFakeClock()
	src := &quotaSource{scriptSource: newScriptSource("q"), clk: clk, limit: 3, window: 10 * time.Second}
	newTestProvider(t, src, WithRateLimit(rate.Inf, 1), WithClock(clk), WithBufferSize(4096), WithFetchSize(1024))
	settled := func() {
		t.Helper()
		require.Eventually(t, func() bool { return clk.waiters() > 0 }, 5*time.Second, time.Millisecond)
	}
	settled()
	require.Equal(t, 1, src.callCount())
	// 2 left, reset in 10 s: 5 s apart.
	for elapsed := time.Second; elapsed < 5*time.Second; elapsed += time.Second {
		clk.advance(time.Second)
		settled()
		require.Equal(t, 1, src.callCount(), "second request %v after the first, with 2 of 3 left for 10 s", elapsed)
	}
	clk.advance(time.Second)
	require.Eventually(t, func() bool { return src.callCount() == 2 }, 5*time.Second, time.Millisecond)
	settled()
	// 1 left, reset in 5 s: not before the reset.
	for elapsed := time.Second; elapsed < 5*time.Second; elapsed += time.Second {
		clk.advance(time.Second)
		settled()
		require.Equal(t, 2, src.callCount(), "third request %v after the second, with 1 left for 5 s", elapsed)
	}
	clk.advance(time.Second)
	require.Eventually(t, func() bool { return src.callCount() == 3 }, 5*time.Second, time.Millisecond)
}

func TestQuotaSpentHoldsUntilTheReset(t *testing.T) {
	clk := newFakeClock()
	src := &quotaSource{scriptSource: newScriptSource("q"), clk: clk, limit: 1, window: time.Minute}
	newTestProvider(t, src, WithRateLimit(rate.Inf, 1), WithClock(clk), WithBufferSize(4096), WithFetchSize(1024))
	require.Eventually(t, func() bool { return clk.waiters() > 0 }, 5*time.Second, time.Millisecond)
	for elapsed := 10 * time.Second; elapsed < time.Minute; elapsed += 10 * time.Second {
		clk.advance(10 * time.Second)
		require.Eventually(t, func() bool { return clk.waiters() > 0 }, 5*time.Second, time.Millisecond)
		require.Equal(t, 1, src.callCount(), "a request %v into a spent window of 1 minute", elapsed)
	}
	clk.advance(10 * time.Second)
	require.Eventually(t, func() bool { return src.callCount() == 2 }, 5*time.Second, time.Millisecond)
}

func TestQuotaDelay(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	qs := &quotaState{}
	assert.Equal(t, time.Duration(0), qs.delay(t0), "no report, no pacing")
	q := Quota{RequestsRemaining: -1, RequestsLimit: -1, BytesRemaining: -1, Balance: -1}
	q.Updated = t0
	qs.q = q
	assert.Equal(t, time.Duration(0), qs.delay(t0), "no figures, no pacing")
	q.RequestsRemaining, q.Reset = 4, t0.Add(8*time.Second)
	qs.q = q
	assert.Equal(t, time.Duration(0), qs.delay(t0), "nothing sent yet")
	qs.sent(t0)
	assert.Equal(t, 2*time.Second, qs.delay(t0))
	assert.Equal(t, 750*time.Millisecond, qs.delay(t0.Add(time.Second)), "7 s left for 4: 1.75 s after the last")
	assert.Equal(t, time.Duration(0), qs.delay(t0.Add(3*time.Second)))
	q.RequestsRemaining = 0
	qs.q = q
	assert.Equal(t, 8*time.Second, qs.delay(t0), "spent: until the reset")
	assert.Equal(t, time.Duration(0), qs.delay(t0.Add(9*time.Second)), "past the reset")
}
