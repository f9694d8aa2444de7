package entropy

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"
)

// Contract point 10: Close returns promptly while the refill path is held
// by a long Retry-After, a long backoff or an open breaker, and leaves no
// goroutine behind.
func TestClosePromptWhileRefillHeld(t *testing.T) {
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

// Contract point 10: a hook may call back into the Provider, Close included,
// without a deadlock.
func TestCloseFromHookDoesNotDeadlock(t *testing.T) {
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

// Contract point 10 across Providers: a hook of one Provider that closes
// another (whose notifier is idle) waits, as any caller of Close does, until
// the other's notifier has delivered everything: here the record of the
// episode its Close ends, which its journal is slow to take.
func TestCloseFromAnotherProvidersHookWaitsForItsNotifier(t *testing.T) {
	jb := newMemJournal()
	jb.beforeFallback = func(FallbackEpisode) { time.Sleep(50 * time.Millisecond) }
	srcB := newScriptSource("b")
	srcB.set(&step{err: &APIError{StatusCode: 503}})
	b, err := New(srcB, fast(WithPolicy(Degrade), WithJournal(jb))...)
	require.NoError(t, err)
	lb, err := b.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	require.False(t, lb.Verifiable, "b's source is down: an episode starts")
	require.Eventually(t, func() bool { return !delivering.has(&b.notes) }, 5*time.Second, time.Millisecond,
		"b's notifier never went idle")

	srcA := newScriptSource("a")
	srcA.set(&step{err: &APIError{StatusCode: 503}})
	recorded := make(chan int, 1)
	var once sync.Once
	a := newTestProvider(t, srcA, fast(WithPolicy(Degrade), WithFallbackHook(func(FallbackEpisode) {
		once.Do(func() {
			_ = b.Close()
			jb.mu.Lock()
			recorded <- len(jb.episodes)
			jb.mu.Unlock()
		})
	}))...)
	_, err = a.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	select {
	case n := <-recorded:
		assert.Equal(t, 1, n, "b's Close returned before b's notifier wrote the episode it ended")
	case <-time.After(10 * time.Second):
		t.Fatal("a's hook never ran")
	}
}

// A hook of one Provider that draws an event from another while the
// other's notifier is delivering (its journal holds a block record) cannot
// tell whose notifier it runs on, and does not wait for the other's
// notifier: that one waits for its journal, which the test holds until the
// draw returns.
func TestDrawFromAnotherProvidersHookWhileItsNotifierDelivers(t *testing.T) {
	jb := newMemJournal()
	jb.blockGate = make(chan struct{})
	var gateOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(jb.blockGate) }) }
	defer openGate()
	b := newTestProvider(t, newScriptSource("b"), fast(WithJournal(jb))...)
	require.Eventually(t, func() bool { return delivering.has(&b.notes) }, 5*time.Second, time.Millisecond,
		"b's notifier never began to deliver its first block record")

	srcA := newScriptSource("a")
	srcA.set(&step{err: &APIError{StatusCode: 503}})
	drawn := make(chan error, 1)
	var once sync.Once
	a := newTestProvider(t, srcA, fast(WithPolicy(Degrade), WithFallbackHook(func(FallbackEpisode) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := b.ReadFor(ctx, "drawn-from-a", make([]byte, 16))
			drawn <- err
		})
	}))...)
	_, err := a.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	select {
	case err := <-drawn:
		require.NoError(t, err, "the draw waited for a notifier held by the journal")
	case <-time.After(10 * time.Second):
		t.Fatal("a's hook never returned")
	}
	openGate()
}

// Contract points 8 and 10: a journal may draw an event from the notifier
// goroutine that calls it (ReadFor inside RecordFallback). The draw's
// flush, which waits for the notifier to write the block records first,
// sees that it runs on that goroutine and does not wait for itself.
func TestReadForFromJournalDoesNotDeadlock(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 503}})
	j := newMemJournal()
	var p *Provider
	drawn := make(chan error, 1)
	var once sync.Once
	j.beforeFallback = func(FallbackEpisode) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := p.ReadFor(ctx, "from-the-journal", make([]byte, 16))
			drawn <- err
		})
	}
	p = newTestProvider(t, src, fast(WithPolicy(Degrade), WithJournal(j))...)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	require.False(t, lb.Verifiable, "the source is down: the read falls back and opens an episode")
	src.set(nil) // the source recovers: a verifiable read ends the episode
	full(t, p, 64)
	lb, err = p.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	require.True(t, lb.Verifiable)
	select {
	case err := <-drawn:
		require.NoError(t, err, "ReadFor from the journal waited for the goroutine it runs on")
	case <-time.After(10 * time.Second):
		t.Fatal("the journal was never handed the ended episode")
	}
	_, ok, err := j.LookupEvent(context.Background(), "from-the-journal")
	require.NoError(t, err)
	assert.True(t, ok, "the event the journal drew is recorded")
}

// Contract point 10: when two goroutines Close at once, neither returns
// before every goroutine of the Provider has ended.
func TestConcurrentCloseWaitsForGoroutines(t *testing.T) {
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

// deafSource is a scriptSource that ignores its context: while hold is
// set, Fetch waits for release, whatever the context says.
type deafSource struct {
	*scriptSource
	hold    atomic.Bool
	waiting atomic.Int32
	release chan struct{}
}

func (d *deafSource) Fetch(_ context.Context, n int) (Block, error) {
	if d.hold.Load() {
		d.waiting.Add(1)
		<-d.release
	}
	return d.scriptSource.Fetch(context.Background(), n)
}

// Contract point 10: once Close has begun, the refill sends no request,
// even to a source that ignores its context and answers at once (each
// request may cost quota): the request Close finds under way is the last.
func TestCloseSendsNoRequestAfterItBegan(t *testing.T) {
	src := &deafSource{scriptSource: newScriptSource("deaf"), release: make(chan struct{})}
	p, err := New(src, fast(WithShards(1), WithBufferSize(4096), WithFetchSize(512))...)
	require.NoError(t, err)
	full(t, p, 4096)
	src.hold.Store(true)
	// Below the low watermark: the refill starts, and waits in Fetch.
	_, err = p.Read(make([]byte, 3000))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return src.waiting.Load() == 1 }, 10*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	require.Eventually(t, func() bool { return p.ctx.Err() != nil }, 10*time.Second, time.Millisecond)
	before := src.callCount() // the waiting request counts once it goes on
	src.hold.Store(false)
	close(src.release)
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once the request under way had")
	}
	assert.Equal(t, before+1, src.callCount(), "requests sent after Close began")
}
