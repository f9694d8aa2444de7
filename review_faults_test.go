package entropy

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// Bad input: WithRateLimit with NaN gets a clear error (NaN compares false
// with everything, so it would otherwise mean "no limit").
func TestReviewRateLimitNaN(t *testing.T) {
	_, err := New(newScriptSource("q"), WithRateLimit(rate.Limit(math.NaN()), 1))
	assert.Error(t, err)
}

// Odd sizes: a pool of one byte under Defer keeps refilling; reads do not
// wait for ever with a healthy source.
func TestReviewBufferSizeOneDefer(t *testing.T) {
	src := newScriptSource("q")
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1))...)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lb, err := p.ReadLabelled(ctx, make([]byte, 1))
		cancel()
		require.NoError(t, err, "read %d", i)
		assert.True(t, lb.Verifiable)
	}
}

// Contract point 10: a hook may call back into the Provider, Close included,
// without a deadlock.
func TestReviewCloseFromHook(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 503}})
	var p *Provider
	closed := make(chan error, 1)
	var once sync.Once
	p, err := New(src, fast(WithFallbackHook(func(ep FallbackEpisode) {
		once.Do(func() {
			closed <- p.Close()
		})
	}))...)
	require.NoError(t, err)
	_, err = p.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	select {
	case err := <-closed:
		assert.NoError(t, err)
	case <-time.After(3 * time.Second):
		t.Fatal("Close called from the fallback hook deadlocked")
	}
}

// Contract point 10: when two goroutines Close at once, neither returns
// before every goroutine of the Provider has ended.
func TestReviewConcurrentClose(t *testing.T) {
	entered := make(chan struct{}, 1)
	var fetching atomic.Bool
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		fetching.Store(true)
		defer fetching.Store(false)
		entered <- struct{}{}
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // a source that takes a moment to give up
		return Block{}, ctx.Err()
	})
	p, err := New(src, fast()...)
	require.NoError(t, err)
	<-entered
	first := make(chan struct{})
	go func() { _ = p.Close(); close(first) }()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, p.Close())
	assert.False(t, fetching.Load(), "the second Close returned while the Provider's refill was still running")
	<-first
}

// A read that finds the pool short tops the pool up to the brim (read.go
// short(), refill.go fill), also with a source whose blocks are shorter than asked for
// (a beacon's 32-byte rounds): "a block shorter than asked for is fine".
func TestReviewShortReadToppedUpWithSmallBlocks(t *testing.T) {
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

// Contract point 9/10: a fallback read racing Close must not open an episode
// that nothing ever ends: after Close, InFallback is false and the hook saw
// as many ends as starts.
func TestReviewNoEpisodeAfterClose(t *testing.T) {
	for iter := 0; iter < 200; iter++ {
		src := newScriptSource("q")
		src.set(&step{err: &APIError{StatusCode: 503}})
		var starts, ends atomic.Int64
		p, err := New(src, fast(WithFallbackHook(func(ep FallbackEpisode) {
			if ep.Ended {
				ends.Add(1)
			} else {
				starts.Add(1)
			}
		}))...)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, err := p.Read(make([]byte, 8)); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		require.NoError(t, p.Close())
		wg.Wait()
		st := p.Stats()
		if st.InFallback || starts.Load() != ends.Load() {
			t.Fatalf("iteration %d: after Close InFallback=%v, hook saw %d starts and %d ends, %d episodes counted",
				iter, st.InFallback, starts.Load(), ends.Load(), st.FallbackEpisodes)
		}
	}
}

// Bad input: a nil context is a clear error, as in ReadLabelled, not a panic.
func TestReviewWaitReadyNilContext(t *testing.T) {
	p := newTestProvider(t, newScriptSource("q"), fast()...)
	assert.NotPanics(t, func() {
		//lint:ignore SA1012 the point of the test
		_ = p.WaitReady(nil) //nolint:staticcheck
	})
}

// WaitReady after Close says ErrClosed, every time.
func TestReviewWaitReadyAfterClose(t *testing.T) {
	p, err := New(newScriptSource("q"), fast()...)
	require.NoError(t, err)
	ready(t, p)
	require.NoError(t, p.Close())
	nils := 0
	for i := 0; i < 200; i++ {
		if p.WaitReady(context.Background()) == nil {
			nils++
		}
	}
	assert.Zero(t, nils, "WaitReady returned nil after Close")
}

// cancelJournal records events, and cancels the drawing caller's context
// just as the record becomes durable.
type cancelJournal struct {
	*memJournal
	cancel context.CancelFunc
}

func (j *cancelJournal) RecordEvent(ctx context.Context, e EventRecord) (EventRecord, error) {
	stored, err := j.memJournal.RecordEvent(ctx, e)
	j.cancel()
	return stored, err
}

// Contract point 8: a draw that was made and recorded is returned to the
// caller that made it, even if its context ends at that moment (otherwise the
// caller sees an error for a committed draw).
func TestReviewEventDrawnButCtxEnded(t *testing.T) {
	mj := newMemJournal()
	j := &cancelJournal{memJournal: mj}
	p := newTestProvider(t, newScriptSource("q"), fast(WithJournal(j))...)
	ready(t, p)
	errs := 0
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		j.cancel = cancel
		if _, err := p.ReadFor(ctx, "ev-"+string(rune('A'+i%26))+string(rune('a'+i/26)), make([]byte, 8)); err != nil {
			errs++
		}
	}
	assert.Zero(t, errs, "ReadFor returned the context's error for draws it had made and recorded")
}

// WithFailover: a primary that answers 429 with a long Retry-After is failing
// for now; the failover source must serve meanwhile, instead of the refill
// sleeping out the primary's hold.
func TestReviewRetryAfterDoesNotStallFailover(t *testing.T) {
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
