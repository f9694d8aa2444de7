package entropy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// Contract point 1 and 3: every verifiable span points at its job's bytes,
// and no byte of any job is served twice, across many concurrent readers
// and reads of every size, including reads that gather from several shards.
func TestNoByteServedTwice(t *testing.T) {
	src := newScriptSource("quantropy")
	src.maxLen = 3000 // blocks smaller than the fetch size: many jobs, many boundaries
	p := newTestProvider(t, src, fast(WithBufferSize(16<<10), WithFetchSize(4096), WithShards(4), WithPolicy(Defer))...)
	led := newLedger(src)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := 0; i < 300; i++ {
				b := make([]byte, 1+r.IntN(600))
				lb, err := p.ReadLabelled(ctx, b)
				if err != nil {
					errs <- err.Error()
					return
				}
				if !lb.Verifiable {
					errs <- "Defer served a non-verifiable read"
					return
				}
				if msg := led.check(b, lb); msg != "" {
					errs <- msg
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	st := p.Stats()
	assert.Equal(t, uint64(8*300), st.VerifiableReads)
	assert.Zero(t, st.FallbackReads)
}

// Contract point 3: the pool slot of a byte is zeroed when it is handed out.
func TestConsumedBytesZeroed(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(4096), WithShards(1))...)
	full(t, p, 4096)
	s := p.shards[0]
	s.mu.Lock()
	c := s.head.Load()
	s.mu.Unlock()
	require.NotNil(t, c)
	b := make([]byte, 100)
	lb, err := p.ReadLabelled(context.Background(), b)
	require.NoError(t, err)
	require.True(t, lb.Verifiable)
	require.Len(t, lb.Spans, 1)
	// The chunk's bytes that were served are zero now; the rest are not all zero.
	s.mu.Lock()
	served := c.data[:lb.Spans[0].Offset-c.base+100]
	rest := c.data[lb.Spans[0].Offset-c.base+100:]
	s.mu.Unlock()
	assert.Equal(t, make([]byte, len(served)), served)
	assert.NotEqual(t, make([]byte, len(rest)), rest)
	job, ok := src.job(lb.Spans[0].JobID)
	require.True(t, ok)
	assert.Equal(t, job[lb.Spans[0].Offset:lb.Spans[0].Offset+100], b)
}

// Contract point 1: fallback bytes are never labelled verifiable, carry the
// reason, and the reason reaches the source's own error.
func TestFallbackNeverLabelledVerifiable(t *testing.T) {
	apiErr := &APIError{StatusCode: 503, Code: "maintenance", RequestID: "req-1"}
	src := newScriptSource("quantropy")
	src.set(&step{err: apiErr})
	p := newTestProvider(t, src, fast()...)
	require.Eventually(t, func() bool { return errors.Is(p.Stats().Unavailable, ErrServiceUnavailable) }, 5*time.Second, time.Millisecond)
	for _, n := range []int{1, 32, 4096, 70000} {
		b := make([]byte, n)
		lb, err := p.ReadLabelled(context.Background(), b)
		require.NoError(t, err, "Degrade never fails")
		assert.False(t, lb.Verifiable)
		assert.False(t, lb.Derived)
		assert.Equal(t, []Span{{Source: FallbackSource, Length: n}}, lb.Spans)
		require.Error(t, lb.Reason)
		assert.ErrorIs(t, lb.Reason, ErrUnavailable)
		assert.ErrorIs(t, lb.Reason, ErrServiceUnavailable)
		var ae *APIError
		require.ErrorAs(t, lb.Reason, &ae)
		assert.Equal(t, "req-1", ae.RequestID)
		assert.Equal(t, ProvenanceFallback, lb.Provenance())
	}
	// Read, the io.Reader, never fails under Degrade either.
	b := make([]byte, 64)
	n, err := p.Read(b)
	require.NoError(t, err)
	assert.Equal(t, 64, n)
	st := p.Stats()
	assert.Equal(t, uint64(5), st.FallbackReads)
	assert.Zero(t, st.VerifiableReads)
}

// Contract point 2: one read is all verifiable or all fallback, even while
// the source flips between healthy and failing under many readers.
func TestReadNeverMixesClasses(t *testing.T) {
	src := newScriptSource("quantropy")
	src.maxLen = 512
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(512), WithShards(2))...)
	full(t, p, 4096) // start with a full pool, so that both classes occur however fast the reads are
	led := newLedger(src)
	stop := make(chan struct{})
	var flip sync.WaitGroup
	flip.Add(1)
	go func() {
		defer flip.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if i%2 == 0 {
				src.set(&step{err: &APIError{StatusCode: 500}})
			} else {
				src.set(nil)
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	classes := map[Provenance]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for i := 0; i < 400; i++ {
				b := make([]byte, 1+r.IntN(1500))
				lb, err := p.ReadLabelled(context.Background(), b)
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					msg = led.check(b, lb)
				}
				mu.Lock()
				classes[lb.Provenance()]++
				if msg != "" {
					problems = append(problems, msg)
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	flip.Wait()
	require.Empty(t, problems)
	assert.Positive(t, classes[ProvenanceVerifiable], "some reads should be verifiable")
	assert.Zero(t, classes[ProvenanceDerived])
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
		step{err: &ConnError{Op: "GET /v1/entropy", Err: io.ErrUnexpectedEOF}},
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

// Contract point 7: a Retry-After holds back every request to the source
// until it has passed, retries and later refills alike.
func TestRetryAfterHoldsAllFetches(t *testing.T) {
	const hold = 150 * time.Millisecond
	src := newScriptSource("quantropy",
		step{err: &APIError{StatusCode: 429, RetryAfter: hold}},
	)
	p := newTestProvider(t, src, fast(WithRetry(3, time.Millisecond, 2*time.Millisecond))...)
	ready(t, p)
	calls := src.callTimes()
	require.GreaterOrEqual(t, len(calls), 2)
	assert.GreaterOrEqual(t, calls[1].Sub(calls[0]), hold, "second request came before Retry-After passed")
}

// Contract point 7, with an injected clock: the hold is measured on the
// Provider's clock, and a hold longer than WithMaxRetryAfter is capped.
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

// Contract point 9: Fail returns at once an error wrapping ErrUnavailable
// and the source's own last error, not only the breaker's.
func TestFailReturnsCause(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 402, Code: "insufficient_balance"}})
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // let the refill loop hit the open breaker
	b := []byte{1, 2, 3, 4}
	lb, err := p.ReadLabelled(context.Background(), b)
	require.Error(t, err)
	assert.Equal(t, Label{}, lb)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, ErrPaymentRequired)
	assert.ErrorIs(t, err, ErrQuotaExhausted)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "insufficient_balance", ae.Code)
	assert.Equal(t, []byte{0, 0, 0, 0}, b, "a failed read leaves no bytes in b")
	n, err := p.Read(b)
	assert.Zero(t, n)
	assert.ErrorIs(t, err, ErrUnavailable)
}

// Contract points 5 and 9: Defer waits until the context ends and returns
// its error; when the source comes back, the wait ends with verifiable bytes.
func TestDeferWaitsForVerifiable(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBreaker(gobreaker.Settings{Timeout: 5 * time.Millisecond}))...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	b := make([]byte, 32)
	_, err := p.ReadLabelled(ctx, b)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan Label, 1)
	go func() {
		lb, err := p.ReadLabelled(context.Background(), b)
		assert.NoError(t, err)
		done <- lb
	}()
	time.Sleep(10 * time.Millisecond)
	src.set(nil) // the source recovers
	select {
	case lb := <-done:
		assert.True(t, lb.Verifiable)
		assert.Equal(t, 32, lb.Len())
	case <-time.After(10 * time.Second):
		t.Fatal("Defer read did not end after the source recovered")
	}
	assert.Zero(t, p.Stats().FallbackReads)
}

// A read larger than the whole pool is served verifiably under Defer, in
// spans of several jobs.
func TestDeferReadLargerThanPool(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1024), WithFetchSize(512))...)
	b := make([]byte, 10000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lb, err := p.ReadLabelled(ctx, b)
	require.NoError(t, err)
	assert.Empty(t, newLedger(src).check(b, lb))
	assert.Greater(t, len(lb.Spans), 10)
}

// Contract point 10: Close stops every goroutine, zeroes the pool, ends
// waiting reads, and later reads return ErrClosed.
func TestCloseLeaksNoGoroutine(t *testing.T) {
	src := newScriptSource("quantropy")
	p, err := New(src, fast(WithPolicy(Defer), WithBufferSize(4096), WithFetchSize(4096), WithShards(2))...)
	require.NoError(t, err)
	full(t, p, 4096)
	var datas [][]byte
	for _, s := range p.shards {
		s.mu.Lock()
		if h := s.head.Load(); h != nil {
			datas = append(datas, h.data)
		}
		for _, r := range s.runs[s.first:] {
			datas = append(datas, r.data)
		}
		s.mu.Unlock()
	}
	require.NotEmpty(t, datas)

	// A waiting reader: larger than the pool, with the source now down, so
	// it waits until Close.
	src.set(&step{err: &APIError{StatusCode: 503}})
	waitErr := make(chan error, 1)
	go func() {
		_, err := p.ReadLabelled(context.Background(), make([]byte, 1<<20))
		waitErr <- err
	}()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	select {
	case err := <-waitErr:
		assert.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting read did not end at Close")
	}
	for _, d := range datas {
		assert.Equal(t, make([]byte, len(d)), d, "pool not zeroed at Close")
	}
	_, err = p.ReadLabelled(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.Read(make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadSecret(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadFor(context.Background(), "e", make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	assert.Zero(t, p.Stats().Pooled)
}

// Close while a source is blocked in Fetch: the fetch is cancelled, and the
// cancellation does not count as a source failure.
func TestCloseCancelsFetchWithoutFailure(t *testing.T) {
	entered := make(chan struct{}, 1)
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return Block{}, ctx.Err()
	})
	p, err := New(src, fast()...)
	require.NoError(t, err)
	<-entered
	require.NoError(t, p.Close())
	st := p.Stats().Sources[0]
	assert.Zero(t, st.Failures)
	assert.Equal(t, "closed", st.Breaker)
}

// Bad input gets a clear error, never a panic.
func TestBadInput(t *testing.T) {
	_, err := New(nil)
	assert.Error(t, err)
	src := newScriptSource("q")
	for _, o := range []Option{
		nil, WithBufferSize(0), WithBufferSize(-1), WithFetchSize(0), WithRetry(0, time.Millisecond, time.Second),
		WithRetry(1, 0, time.Second), WithRetry(1, time.Second, time.Millisecond), WithRateLimit(0, 1),
		WithRateLimit(-1, 1), WithRateLimit(10, 0), WithPolicy(Policy(7)), WithFailover(nil), WithShards(0),
		WithClock(nil), WithMaxRetryAfter(-1), WithFetchTimeout(0),
	} {
		_, err := New(src, o)
		assert.Error(t, err)
	}
	p := newTestProvider(t, src, fast()...)
	_, err = p.ReadLabelled(context.Background(), nil)
	assert.Error(t, err)
	_, err = p.ReadSecret(context.Background(), []byte{})
	assert.Error(t, err)
	_, err = p.ReadFor(context.Background(), "", make([]byte, 4))
	assert.Error(t, err)
	n, err := p.Read(nil)
	assert.Zero(t, n)
	assert.NoError(t, err)
}

// Contract point 4: blocks that are empty, nil, too long, unverified,
// anonymous or replayed, and a panicking source, are failures like any
// other: their bytes are never served, and the Provider recovers when the
// source does.
func TestInvalidBlocksAreFailures(t *testing.T) {
	replay := Block{Data: []byte("0123456789abcdef0123456789abcdef"), Source: "quantropy", JobID: "same", Verifiable: true}
	for name, st := range map[string]step{
		"empty":      {block: &Block{Data: []byte{}, Source: "quantropy", JobID: "j", Verifiable: true}},
		"nil":        {block: &Block{Source: "quantropy", JobID: "j", Verifiable: true}},
		"too long":   {block: &Block{Data: make([]byte, 1<<20), Source: "quantropy", JobID: "j", Verifiable: true}},
		"unverified": {unverified: true},
		"no job":     {block: &Block{Data: []byte("abcdefgh"), Source: "quantropy", Verifiable: true}},
		"no source":  {block: &Block{Data: []byte("abcdefgh"), JobID: "j", Verifiable: true}},
		"panic":      {panic: true},
		"stuck":      {block: &Block{Data: make([]byte, 4096), Source: "quantropy", JobID: "stuck", Verifiable: true}},
	} {
		t.Run(name, func(t *testing.T) {
			src := newScriptSource("quantropy", st, st, st)
			p := newTestProvider(t, src, fast(WithBufferSize(8192), WithFetchSize(4096))...)
			ready(t, p)
			s := p.Stats().Sources[0]
			assert.Equal(t, uint64(3), s.Failures)
			full(t, p, 8192)
			b := make([]byte, 8192)
			lb, err := p.ReadLabelled(context.Background(), b)
			require.NoError(t, err)
			assert.Empty(t, newLedger(src).check(b, lb))
			assert.True(t, lb.Verifiable)
		})
	}
	t.Run("replayed job", func(t *testing.T) {
		src := newScriptSource("quantropy", step{block: &replay}, step{block: &replay})
		src.set(&step{err: &APIError{StatusCode: 500}}, step{block: &replay}, step{block: &replay})
		p := newTestProvider(t, src, fast(WithBufferSize(64), WithFetchSize(32))...)
		ready(t, p)
		require.Eventually(t, func() bool { return p.Stats().Sources[0].BlocksRejected >= 1 }, 5*time.Second, time.Millisecond)
		assert.Equal(t, uint64(1), p.Stats().Sources[0].BlocksAccepted, "the replayed job entered the pool twice")
	})
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
		return errors.Is(err, ErrServiceUnavailable) && errors.Is(err, ErrJobFailed)
	}, 5*time.Second, time.Millisecond)
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

// Contract point 9: every fallback episode is counted and reported, with
// start, end, reads, bytes and reason, through the hook, outside locks.
func TestFallbackEpisodesCounted(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	var mu sync.Mutex
	var seen []FallbackEpisode
	var p *Provider
	p = newTestProvider(t, src, fast(WithFallbackHook(func(ep FallbackEpisode) {
		_ = p.Stats() // calling back into the Provider must not deadlock
		mu.Lock()
		seen = append(seen, ep)
		mu.Unlock()
	}))...)
	require.Eventually(t, func() bool { return errors.Is(p.Stats().Unavailable, ErrServiceUnavailable) }, 5*time.Second, time.Millisecond)
	for i := 0; i < 3; i++ {
		_, err := p.ReadLabelled(context.Background(), make([]byte, 10))
		require.NoError(t, err)
	}
	src.set(nil)
	require.Eventually(t, func() bool {
		lb, _ := p.ReadLabelled(context.Background(), make([]byte, 1))
		return lb.Verifiable
	}, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 2 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 2)
	assert.False(t, seen[0].Ended)
	assert.True(t, seen[1].Ended)
	assert.ErrorIs(t, seen[1].Reason, ErrServiceUnavailable)
	assert.GreaterOrEqual(t, seen[1].Reads, int64(3))
	assert.GreaterOrEqual(t, seen[1].Bytes, int64(30))
	assert.False(t, seen[1].End.Before(seen[1].Start))
	st := p.Stats()
	assert.Equal(t, uint64(1), st.FallbackEpisodes)
	assert.Equal(t, st.FallbackBytes, uint64(seen[1].Bytes))
}

// Read and ReadLabelled agree on steady state: a full pool serves reads of
// every size without fallback.
func TestSteadyStateServesFromPool(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithBufferSize(1<<16))...)
	full(t, p, 1<<16)
	for _, n := range []int{1, 8, 32, 256, 4096} {
		b := make([]byte, n)
		got, err := p.Read(b)
		require.NoError(t, err)
		assert.Equal(t, n, got)
	}
	assert.Zero(t, p.Stats().FallbackReads)
	assert.Equal(t, uint64(5), p.Stats().VerifiableReads)
}

// Source panics are failures, not crashes, and the error does not carry the
// panic's text (which could hold anything).
func TestSourcePanicIsFailure(t *testing.T) {
	src := newScriptSource("quantropy", step{panic: true})
	p := newTestProvider(t, src, fast()...)
	ready(t, p)
	assert.Equal(t, uint64(1), p.Stats().Sources[0].Failures)
}

var _ = rate.Inf

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

// A read sees the source's error as soon as a request fails, not only when
// the refill round ends.
func TestReasonIsImmediate(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 401}})
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	_, err := p.ReadLabelled(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, ErrUnauthorized)
	assert.NotContains(t, err.Error(), "circuit breaker circuit breaker")
}

// Bytes of a public source (a drand round) are labelled public in every span,
// so nobody mistakes them for secret material.
func TestPublicBlocksLabelledPublic(t *testing.T) {
	var seq int
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		seq++
		d := make([]byte, min(n, 32))
		rand.NewChaCha8([32]byte{byte(seq)}).Read(d)
		return Block{Data: d, Source: "drand/quicknet", JobID: fmt.Sprint(seq), Verifiable: true, Public: true}, nil
	})
	p := newTestProvider(t, src, fast(WithBufferSize(256), WithFetchSize(32))...)
	full(t, p, 64)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 40))
	require.NoError(t, err)
	require.NotEmpty(t, lb.Spans)
	for _, sp := range lb.Spans {
		assert.True(t, sp.Public)
	}
	assert.Contains(t, lb.String(), "public")
	js, err := json.Marshal(lb)
	require.NoError(t, err)
	assert.Contains(t, string(js), `"public":true`)
}

// Fallback bytes come from a buffered crypto/rand: each is handed out once
// and its slot zeroed, and the buffer is zeroed at Close.
func TestFallbackBufferSingleUse(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p, err := New(src, fast()...)
	require.NoError(t, err)
	seen := map[string]bool{}
	for i := 0; i < 300; i++ { // more than one buffer's worth
		b := make([]byte, 32)
		lb, err := p.ReadLabelled(context.Background(), b)
		require.NoError(t, err)
		require.False(t, lb.Verifiable)
		require.False(t, seen[string(b)], "fallback bytes served twice")
		seen[string(b)] = true
	}
	var lanes []*run
	for _, sh := range p.shards {
		sh.fbMu.Lock()
		if r := sh.fb.Load(); r != nil {
			lanes = append(lanes, r)
			served := bytes.Clone(r.data[:r.cursor()])
			assert.Equal(t, make([]byte, len(served)), served, "served fallback slots are zeroed")
			if rest := r.data[r.cursor():]; len(rest) > 0 {
				assert.NotEqual(t, make([]byte, len(rest)), rest, "unread fallback bytes are random")
			}
		}
		sh.fbMu.Unlock()
	}
	require.NotEmpty(t, lanes)
	st := p.Stats()
	assert.Equal(t, uint64(300), st.FallbackReads)
	assert.Equal(t, uint64(300*32), st.FallbackBytes)
	require.NoError(t, p.Close())
	for _, r := range lanes {
		assert.Equal(t, make([]byte, len(r.data)), r.data, "the fallback buffer is zeroed at Close")
	}
}
