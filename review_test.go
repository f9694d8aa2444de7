package entropy

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"
)

// Issue 2 fixes these public names and signatures; tests outside the
// package rely on them. This fails to compile if one drifts.
func TestReviewPublicNames(t *testing.T) {
	var (
		_ func(Source, ...Option) (*Provider, error)              = New
		_ func(Policy) Option                                     = WithPolicy
		_ func(gobreaker.Settings) Option                         = WithBreaker
		_ func(rate.Limit, int) Option                            = WithRateLimit
		_ func(int) Option                                        = WithBufferSize
		_ func(*Provider, []byte) (int, error)                    = (*Provider).Read
		_ func(*Provider, context.Context, []byte) (Label, error) = (*Provider).ReadLabelled
		_ func(*Provider) error                                   = (*Provider).Close
		_ func(*Provider) Stats                                   = (*Provider).Stats
		_ io.Reader                                               = (*Provider)(nil)
		_ interface {
			Fetch(context.Context, int) (Block, error)
		} = Source(nil)
	)
	b := Block{Data: []byte{1}, Source: "s", JobID: "j", Verifiable: true, Proof: []byte{2}, Time: time.Time{}}
	sp := Span{Source: b.Source, JobID: b.JobID, Offset: 0, Length: len(b.Data)}
	lb := Label{Verifiable: true, Spans: []Span{sp}, Reason: nil}
	assert.Equal(t, 1, lb.Len())
	assert.Equal(t, Policy(0), Degrade)
	assert.Equal(t, Policy(1), Defer)
	assert.Equal(t, Policy(2), Fail)
	var e error = ErrUnavailable
	require.Error(t, e)
	e = ErrClosed
	require.Error(t, e)
}

// Issue 2: "When an option is given twice, the later one wins." Checked for
// each option of the issue by an effect that shows which one took hold.
func TestReviewOptionsLaterWins(t *testing.T) {
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
		require.Eventually(t, func() bool { return src2.callCount() >= 4*DefaultTripAfter }, 5*time.Second, time.Millisecond)
		assert.Equal(t, "closed", q.Stats().Sources[0].Breaker)
	})
}

// Contract point 7 with an injected clock: a Retry-After holds back the
// later refill rounds too, not only the retry loop that saw it (WithRetry(1)
// leaves no retry, so every further request comes from a new round), and
// the hold does not trip the breaker or count as extra failures.
func TestReviewRetryAfterHoldsLaterRounds(t *testing.T) {
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

// Issue 2: Fail wraps ErrUnavailable and the source's own *JobError (not
// only *APIError), through ReadLabelled and through the io.Reader.
func TestReviewFailWrapsJobError(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &JobError{JobID: "job-9", Code: "HardwareUnavailable", Message: "qpu offline"}})
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	for i := 0; i < 3; i++ {
		_, err := p.ReadLabelled(context.Background(), make([]byte, 16))
		require.ErrorIs(t, err, ErrUnavailable)
		var je *JobError
		require.ErrorAs(t, err, &je)
		assert.Equal(t, "job-9", je.JobID)
		assert.Equal(t, "HardwareUnavailable", je.Code)
		n, err := p.Read(make([]byte, 16))
		assert.Zero(t, n)
		require.ErrorAs(t, err, &je)
		assert.ErrorIs(t, err, ErrUnavailable)
	}
	assert.Zero(t, p.Stats().FallbackReads, "Fail never serves fallback bytes")
}

// Issue 2: Read (no context) under Defer waits, without a deadline, until
// verifiable bytes come; it returns them all, and ends with ErrClosed at Close.
func TestReviewDeferReadWaits(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p, err := New(src, fast(WithPolicy(Defer), WithBreaker(gobreaker.Settings{Timeout: 5 * time.Millisecond}))...)
	require.NoError(t, err)
	type res struct {
		n   int
		err error
	}
	done := make(chan res, 1)
	b := make([]byte, 48)
	go func() { n, err := p.Read(b); done <- res{n, err} }()
	select {
	case r := <-done:
		t.Fatalf("Read under Defer returned (%d, %v) with the source down", r.n, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	src.set(nil)
	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.Equal(t, 48, r.n)
		assert.NotEqual(t, make([]byte, 48), b)
	case <-time.After(10 * time.Second):
		t.Fatal("Read under Defer did not return after the source recovered")
	}
	assert.Zero(t, p.Stats().FallbackReads)

	// A Read waiting for more than the pool holds ends at Close with ErrClosed
	// (the source goes down again, so the wait cannot end any other way).
	src.set(&step{err: &APIError{StatusCode: 503}})
	go func() { n, err := p.Read(make([]byte, 1<<20)); done <- res{n, err} }()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, p.Close())
	select {
	case r := <-done:
		assert.Zero(t, r.n)
		assert.ErrorIs(t, r.err, ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Read under Defer did not end at Close")
	}
}

// Contract point 9 (Defer): the context's own error comes back, not
// ErrUnavailable, also when the context had already ended before the read.
func TestReviewDeferReturnsContextError(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p := newTestProvider(t, src, fast(WithPolicy(Defer))...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := []byte{9, 9, 9, 9}
	lb, err := p.ReadLabelled(ctx, b)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrUnavailable)
	assert.Equal(t, Label{}, lb)
	assert.Equal(t, []byte{0, 0, 0, 0}, b)
	_, err = p.ReadSecret(ctx, b)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, p.Stats().FallbackReads)
}

// Stats do not lie: after a run of mixed reads (ReadLabelled, Read,
// ReadSecret) from many goroutines while the source flips between healthy
// and failing, the counters equal what the readers saw, and the source
// counters equal what the source saw.
func TestReviewStatsAddUp(t *testing.T) {
	src := newScriptSource("q")
	src.maxLen = 300
	p := newTestProvider(t, src, fast(WithBufferSize(2048), WithFetchSize(512), WithShards(2))...)
	full(t, p, 1500) // the first reads are verifiable; reads over 2048 bytes always fall back
	stop := make(chan struct{})
	var flip sync.WaitGroup
	flip.Add(1)
	go func() {
		defer flip.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if i%3 == 0 {
				src.set(&step{err: &APIError{StatusCode: 503}})
			} else {
				src.set(nil)
			}
		}
	}()
	var vReads, vBytes, fReads, fBytes, dReads, dBytes, rReads, rBytes atomic.Uint64
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				n := 1 + (g*37+i*11)%2600
				b := make([]byte, n)
				switch i % 5 {
				case 3: // the io.Reader: its class is not known, only the totals
					got, err := p.Read(b)
					if !assert.NoError(t, err) || !assert.Equal(t, n, got) {
						return
					}
					rReads.Add(1)
					rBytes.Add(uint64(n))
					continue
				case 4:
					lb, err := p.ReadSecret(context.Background(), b)
					if !assert.NoError(t, err) {
						return
					}
					if lb.Derived {
						dReads.Add(1)
						dBytes.Add(uint64(n))
					} else {
						fReads.Add(1)
						fBytes.Add(uint64(n))
					}
					continue
				}
				lb, err := p.ReadLabelled(context.Background(), b)
				if !assert.NoError(t, err) {
					return
				}
				if lb.Verifiable {
					vReads.Add(1)
					vBytes.Add(uint64(n))
				} else {
					fReads.Add(1)
					fBytes.Add(uint64(n))
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	flip.Wait()
	st := p.Stats()
	assert.Equal(t, vReads.Load()+fReads.Load()+rReads.Load(), st.VerifiableReads+st.FallbackReads)
	assert.Equal(t, vBytes.Load()+fBytes.Load()+rBytes.Load(), st.VerifiableBytes+st.FallbackBytes)
	assert.GreaterOrEqual(t, st.VerifiableReads, vReads.Load())
	assert.GreaterOrEqual(t, st.FallbackReads, fReads.Load())
	assert.LessOrEqual(t, st.VerifiableReads, vReads.Load()+rReads.Load())
	assert.LessOrEqual(t, st.FallbackBytes, fBytes.Load()+rBytes.Load())
	assert.Equal(t, dReads.Load(), st.DerivedReads)
	assert.Equal(t, dBytes.Load(), st.DerivedBytes)
	assert.Positive(t, vReads.Load(), "some reads were verifiable")
	assert.Positive(t, fReads.Load(), "some reads fell back")
	require.NoError(t, p.Close())
	st = p.Stats()
	s := st.Sources[0]
	assert.Equal(t, uint64(src.callCount()), s.Requests, "Requests counts every Fetch")
	// Every request gave an accepted block or failed, except at most one that
	// Close cancelled (a cancellation is not a failure).
	assert.GreaterOrEqual(t, s.Requests, s.BlocksAccepted+s.Failures)
	assert.LessOrEqual(t, s.Requests, s.BlocksAccepted+s.Failures+1)
	var total uint64
	for id := range src.jobs {
		total += uint64(len(src.jobs[id]))
	}
	assert.Equal(t, uint64(len(src.jobs)), s.BlocksAccepted)
	assert.Equal(t, total, s.BytesAccepted)
	assert.False(t, st.InFallback, "Close ends the open episode")
}

// Bad input: a typed nil Source (a nil SourceFunc) is a failing source, not a
// crash; Degrade still serves, labelled fallback, and Fail reports
// ErrSourcePanic as the cause.
func TestReviewNilSourceFunc(t *testing.T) {
	var f SourceFunc
	p, err := New(f, fast()...)
	if err != nil {
		return // refusing it at New is fine too
	}
	defer p.Close()
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures > 0 }, 5*time.Second, time.Millisecond)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	assert.False(t, lb.Verifiable)
	assert.ErrorIs(t, lb.Reason, ErrSourcePanic)
	n, err := p.Read(make([]byte, 8))
	assert.NoError(t, err)
	assert.Equal(t, 8, n)
}

// Contract point 4: a block that comes with an error is discarded whole: its
// job never appears in a label, even though its data looked fine.
func TestReviewBlockWithErrorNeverServed(t *testing.T) {
	good := make([]byte, 512)
	for i := range good {
		good[i] = byte(i*7 + i/256)
	}
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		return Block{Data: good[:min(n, len(good))], Source: "q", JobID: "with-error", Verifiable: true}, &APIError{StatusCode: 500}
	})
	p := newTestProvider(t, src, fast(WithPolicy(Degrade))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures >= 3 }, 5*time.Second, time.Millisecond)
	for i := 0; i < 20; i++ {
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 32))
		require.NoError(t, err)
		assert.False(t, lb.Verifiable)
		for _, sp := range lb.Spans {
			assert.NotEqual(t, "with-error", sp.JobID)
		}
	}
	assert.Zero(t, p.Stats().Sources[0].BlocksAccepted)
	assert.Zero(t, p.Stats().Pooled)
}

// Contract point 10: Close returns promptly while the refill path is held
// by a long Retry-After, a long backoff or an open breaker, and leaves no
// goroutine behind.
func TestReviewClosePromptDuringHold(t *testing.T) {
	for name, opts := range map[string][]Option{
		"retry-after": {WithRateLimit(rate.Inf, 1), WithRetry(3, time.Millisecond, time.Millisecond)},
		"backoff":     {WithRateLimit(rate.Inf, 1), WithRetry(3, time.Hour, time.Hour)},
		"rate limit":  {WithRateLimit(1e-6, 1)},
	} {
		t.Run(name, func(t *testing.T) {
			keep := goleak.IgnoreCurrent()
			src := newScriptSource("q")
			src.set(&step{err: &APIError{StatusCode: 503, RetryAfter: time.Minute}})
			p, err := New(src, opts...)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return src.callCount() >= 1 }, 5*time.Second, time.Millisecond)
			time.Sleep(5 * time.Millisecond)
			done := make(chan struct{})
			go func() { _ = p.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return while the refill path was held")
			}
			goleak.VerifyNone(t, keep)
			assert.Zero(t, p.Stats().Sources[0].Failures-1, "the interrupted wait is not a failure")
		})
	}
}

// Contract point 6 / issue 2: a caller's cancelled or expired contexts never
// count as source failures, and never move the breaker.
func TestReviewCallerCancelNotFailure(t *testing.T) {
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
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				_, err := p.ReadLabelled(ctx, make([]byte, 32))
				cancel()
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				ctx, cancel = context.WithCancel(context.Background())
				cancel()
				_, err = p.ReadLabelled(ctx, make([]byte, 32))
				assert.ErrorIs(t, err, context.Canceled)
			}
		}()
	}
	wg.Wait()
	st := p.Stats().Sources[0]
	assert.Zero(t, st.Failures)
	assert.Equal(t, "closed", st.Breaker)
	assert.Nil(t, st.LastError)
	assert.Equal(t, int64(1), calls.Load(), "reads never drive a fetch")
	close(release)
}

// Contract points 1 and 3 at the edge: a read of exactly the pool's size
// gathers every shard, under Fail, and is served verifiably, once.
func TestReviewReadWholePool(t *testing.T) {
	src := newScriptSource("q")
	src.maxLen = 100
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1000), WithShards(8))...)
	led := newLedger(src)
	// Reads that find the pool short fail at once (Fail) and make the refill
	// top the pool up; one of them is eventually served whole.
	b := make([]byte, 4096)
	var lb Label
	require.Eventually(t, func() bool {
		var err error
		lb, err = p.ReadLabelled(context.Background(), b)
		if err != nil {
			require.ErrorIs(t, err, ErrUnavailable)
			require.ErrorIs(t, err, ErrPoolEmpty)
			require.Equal(t, make([]byte, len(b)), b)
			return false
		}
		return true
	}, 10*time.Second, time.Millisecond)
	require.True(t, lb.Verifiable)
	assert.Empty(t, led.check(b, lb))
	assert.Equal(t, 4096, lb.Len())
	assert.Greater(t, len(lb.Spans), 8, "the read gathered many jobs over every shard")
}
