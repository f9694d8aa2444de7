package entropy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy/internal/sourceerr"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// WithRetry accepts base == max == the longest Duration (0 < base <= max
// holds), and a retry or a failed refill round must then wait, not crash
// the program: backoff must not overflow into rand.N(0 or less).
func TestLongestRetryDelayDoesNotCrash(t *testing.T) {
	if inChild(t) {
		down := SourceFunc(func(ctx context.Context, n int) (Block, error) {
			return Block{}, &APIError{StatusCode: 503}
		})
		huge := time.Duration(math.MaxInt64)
		p, err := New(down, WithRateLimit(rate.Inf, 1), WithRetry(2, huge, huge))
		require.NoError(t, err)
		// Wait (bounded) until the first request failed, so that the
		// retry's backoff has been computed.
		require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures > 0 }, 10*time.Second, time.Millisecond)
		require.Eventually(t, func() bool { return p.Stats().Sources[0].Retries > 0 }, 10*time.Second, time.Millisecond)
		require.NoError(t, p.Close())
		return
	}
	out, err := runInChild(t)
	require.NoError(t, err, "WithRetry with the longest delays crashed the program:\n%s", out)
	require.NotContains(t, out, "panic:")
}

// A read that finds the pool short tops the pool up to the brim (read.go
// short(), refill.go fill), also with a source whose blocks are shorter than asked for
// (a beacon's 32-byte rounds): "a block shorter than asked for is fine".
func TestShortReadTopsUpWithSmallBlocks(t *testing.T) {
	src := newScriptSource("q")
	src.maxLen = 100
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1000), WithShards(1))...)
	ready(t, p)
	// Let the refill settle at its watermark.
	last := -1
	require.Eventually(t, func() bool {
		n := p.Stats().Pooled
		stable := n == last
		last = n
		return stable
	}, 5*time.Second, 20*time.Millisecond)
	require.Less(t, last, 4096)
	_, err := p.ReadLabelled(context.Background(), make([]byte, 4096))
	require.ErrorIs(t, err, ErrUnavailable)
	ok := assert.Eventually(t, func() bool { return p.Stats().Pooled == 4096 }, 2*time.Second, time.Millisecond)
	if !ok {
		t.Logf("after one short read the pool holds %d of 4096 (was %d before it); source calls %d", p.Stats().Pooled, last, src.callCount())
	}
}

// Contract point 6: a permanent error is not retried, and opens the breaker
// at once, so the source sees exactly one request.
func TestPermanentErrorNotRetried(t *testing.T) {
	for _, err := range []error{
		&APIError{StatusCode: 400}, &APIError{StatusCode: 401}, &APIError{StatusCode: 402},
		&APIError{StatusCode: 403}, &APIError{StatusCode: 404}, &APIError{StatusCode: 422},
		&APIError{StatusCode: 429, Quota: true},
		&JobError{JobID: "j", Code: "QuotaExhaustedError"}, &JobError{JobID: "j", Code: "TooManyShots"},
	} {
		t.Run(err.Error(), func(t *testing.T) {
			src := newScriptSource("quantropy")
			src.set(&step{err: err})
			p := newTestProvider(t, src, fast(WithRetry(5, time.Millisecond, 2*time.Millisecond),
				WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
			require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
			// The refill loop keeps running; give it time to (wrongly) retry.
			time.Sleep(30 * time.Millisecond)
			assert.Equal(t, 1, src.callCount())
			st := p.Stats().Sources[0]
			assert.Zero(t, st.Retries)
			assert.ErrorIs(t, st.LastError, ErrPermanent)
		})
	}
}

// Contract point 6: transient errors are retried, and a success is not.
func TestTransientErrorRetried(t *testing.T) {
	src := newScriptSource("quantropy",
		step{err: &APIError{StatusCode: 503}},
		step{err: &JobError{JobID: "j1", Code: "QuantumComputerError"}},
		step{err: &sourceerr.ConnError{Op: "GET /v1/entropy", Err: io.ErrUnexpectedEOF}},
	)
	p := newTestProvider(t, src, fast(WithRetry(4, time.Millisecond, 2*time.Millisecond), WithBufferSize(1024), WithFetchSize(1024))...)
	ready(t, p)
	st := p.Stats().Sources[0]
	assert.Equal(t, uint64(3), st.Retries)
	assert.Equal(t, uint64(3), st.Failures)
	assert.Equal(t, uint64(1), st.BlocksAccepted)
	// Full pool: no more requests than the one success.
	full(t, p, 1024)
	time.Sleep(10 * time.Millisecond)
	assert.Equal(t, 4, src.callCount())
}

// Contract point 7: requests never exceed the configured rate.
func TestRateLimitRespected(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 500}})
	const r, burst = 50, 2
	start := time.Now()
	p := newTestProvider(t, src, WithRateLimit(r, burst), WithRetry(100, time.Microsecond, time.Microsecond),
		WithBreaker(gobreaker.Settings{ReadyToTrip: func(gobreaker.Counts) bool { return false }}))
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, p.Close())
	elapsed := time.Since(start)
	allowed := burst + int(elapsed.Seconds()*r) + 1
	assert.LessOrEqual(t, src.callCount(), allowed)
	assert.Greater(t, src.callCount(), 2, "the source should have been asked a few times")
}

// Source panics are failures, not crashes, and the error does not carry the
// panic's text (which could hold anything).
func TestSourcePanicIsFailure(t *testing.T) {
	src := newScriptSource("quantropy", step{panic: true})
	p := newTestProvider(t, src, fast()...)
	ready(t, p)
	assert.Equal(t, uint64(1), p.Stats().Sources[0].Failures)
}

// A read nearly as large as the pool is not refused for ever: a read that
// finds the pool short makes the refill top it up to the brim, even by a
// request smaller than the fetch size.
func TestShortPoolToppedUp(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithBufferSize(1024), WithFetchSize(256))...)
	full(t, p, 1024)
	_, err := p.ReadLabelled(context.Background(), make([]byte, 900))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 1000))
		return err == nil && lb.Verifiable
	}, 5*time.Second, time.Millisecond)
}

// WithFailover: when the primary fails, the secondary serves, and labels
// name it; a read may hold spans of both, never fallback bytes with them.
func TestFailoverLabelsNameSource(t *testing.T) {
	primary := newScriptSource("primary")
	primary.set(&step{err: &APIError{StatusCode: 503}})
	secondary := newScriptSource("secondary")
	p := newTestProvider(t, primary, fast(WithFailover(secondary), WithBufferSize(2048), WithFetchSize(1024))...)
	ready(t, p)
	full(t, p, 2048)
	b := make([]byte, 2048)
	lb, err := p.ReadLabelled(context.Background(), b)
	require.NoError(t, err)
	require.True(t, lb.Verifiable)
	for _, sp := range lb.Spans {
		assert.Equal(t, "secondary", sp.Source)
	}
	assert.Empty(t, newLedger(primary, secondary).check(b, lb))
	st := p.Stats()
	require.Len(t, st.Sources, 2)
	assert.Equal(t, "secondary", st.Sources[1].Name)
	assert.Positive(t, st.Sources[0].Failures)
}

// Both sources down: the policy applies, and the reason names both.
func TestFailoverBothDown(t *testing.T) {
	primary := newScriptSource("primary")
	primary.set(&step{err: &APIError{StatusCode: 503}})
	secondary := newScriptSource("secondary")
	secondary.set(&step{err: &JobError{Code: "HardwareUnavailable"}})
	p := newTestProvider(t, primary, fast(WithFailover(secondary), WithPolicy(Fail))...)
	require.Eventually(t, func() bool { return secondary.callCount() > 0 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		_, err := p.ReadLabelled(context.Background(), make([]byte, 8))
		return errors.Is(err, httpStatus(503)) && errors.As(err, new(*JobError))
	}, 5*time.Second, time.Millisecond)
}

// TestRefillAfterDrainingOneShard: with GOMAXPROCS 1 every
// reader is on P 0 and so on shard 0 of four: the reads drain one shard
// again and again, on the fast path (claims past the wake point), the
// locked path and takeSpread (a read larger than a shard). After the reads
// stop, with a source that is always healthy, the refill brings the pool
// back to at least half and every shard to its low watermark, under every
// policy.
func TestRefillAfterDrainingOneShard(t *testing.T) {
	for _, pol := range []Policy{Defer, Degrade, Fail} {
		t.Run(pol.String(), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			src := newScriptSource("drain-" + pol.String())
			src.maxLen = 100
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithShards(4), WithBufferSize(1024), WithFetchSize(100))...)
			for round := 0; round < 20; round++ {
				full(t, p, 512)
				runReaders(3, 60, func(g, i int) bool {
					n := []int{1, 9, 33, 100, 257}[(i+g+round)%5]
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := p.ReadLabelled(ctx, make([]byte, n))
					cancel()
					if err != nil && !(pol == Fail && errors.Is(err, ErrUnavailable)) {
						t.Errorf("round %d: %v", round, err)
						return false
					}
					return true
				})
				require.False(t, t.Failed())
				require.Eventually(t, func() bool {
					if p.Stats().Pooled < 512 {
						return false
					}
					for _, s := range p.shards {
						s.mu.Lock()
						low := s.avail() < s.low
						s.mu.Unlock()
						if low {
							return false
						}
					}
					return true
				}, 10*time.Second, time.Millisecond, "round %d: the pool stayed low after the reads stopped", round)
			}
		})
	}
}

// preparedSource hands out blocks made before the test: slices of one
// random buffer under job IDs made in advance, so that a Fetch allocates
// nothing and a test can count the refill's own allocations.
type preparedSource struct {
	mu   sync.Mutex
	data []byte
	ids  []string
	next int
}

func newPreparedSource(blocks, size int) *preparedSource {
	s := &preparedSource{data: make([]byte, blocks*size)}
	_, _ = mrand.NewChaCha8([32]byte{'p'}).Read(s.data)
	for i := range blocks {
		s.ids = append(s.ids, fmt.Sprintf("prepared-%d", i))
	}
	return s
}

func (s *preparedSource) Fetch(_ context.Context, n int) (Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := len(s.data) / len(s.ids)
	if s.next == len(s.ids) || n < size {
		return Block{}, &APIError{StatusCode: 503}
	}
	i := s.next
	s.next++
	return Block{Data: s.data[i*size : (i+1)*size], Source: "prepared", JobID: s.ids[i], Verifiable: true}, nil
}

// The refill allocates, per block, its copy of the bytes, and a share of
// the batches that hold the records of blocks (a quarter here) and the
// requests' contexts (a 64th): nothing per block for the breaker's call,
// the retry loop, a slice of one block, or a timer. (It was about 12
// allocations a block, then 3.)
func TestRefillAllocationsPerBlock(t *testing.T) {
	const size, blocks = 4096, 200
	src := newPreparedSource(blocks, size)
	p := newTestProvider(t, src, fast(WithShards(1), WithBufferSize(64*size), WithFetchSize(size))...)
	accepted := func() uint64 { return p.feeders[0].accepted.Load() }
	// Waits, allocating nothing, until the pool is full again.
	settled := func() {
		t.Helper()
		s := p.shards[0]
		for range 10000 {
			s.mu.Lock()
			n := s.avail()
			s.mu.Unlock()
			if n == 64*size {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("the pool did not fill in 10 s")
	}
	settled()
	buf := make([]byte, 40*size)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before, got := ms.Mallocs, accepted()
	_, err := p.Read(buf) // the refill puts 40 blocks back
	require.NoError(t, err)
	settled()
	runtime.ReadMemStats(&ms)
	n := accepted() - got
	require.GreaterOrEqual(t, n, uint64(32))
	perBlock := float64(ms.Mallocs-before) / float64(n)
	t.Logf("%d blocks, %.2f allocations a block", n, perBlock)
	// 1.27 and a little (the shard's queue and the replay guard grow now
	// and then); the race detector's sync.Pool drops some fetchReqs.
	limit := 2.0
	if raceEnabled {
		limit = 3.0
	}
	assert.LessOrEqual(t, perBlock, limit)
}
