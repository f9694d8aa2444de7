package entropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy/internal/sourceerr"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fail wraps ErrUnavailable and the source's own *JobError (not
// only *APIError), through ReadLabelled and through the io.Reader.
func TestFailWrapsJobError(t *testing.T) {
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

// Read (no context) under Defer waits, without a deadline, until
// verifiable bytes come; it returns them all (and a ReadLabelled waiting
// beside it, a verifiable label), and ends with ErrClosed at Close.
func TestDeferReadWaitsUntilVerifiableOrClose(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p, err := New(src, fast(WithPolicy(Defer), WithBreaker(gobreaker.Settings{Timeout: 5 * time.Millisecond}))...)
	require.NoError(t, err)
	type res struct {
		n   int
		err error
	}
	done := make(chan res, 1)
	labelled := make(chan Label, 1)
	b := make([]byte, 48)
	go func() { n, err := p.Read(b); done <- res{n, err} }()
	go func() {
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 32))
		assert.NoError(t, err)
		labelled <- lb
	}()
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
	select {
	case lb := <-labelled:
		assert.True(t, lb.Verifiable)
		assert.Equal(t, 32, lb.Len())
	case <-time.After(10 * time.Second):
		t.Fatal("ReadLabelled under Defer did not return after the source recovered")
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

// Every read waiting under Defer wakes when bytes arrive, however many
// wait; a wait that its context ends leaves the list of waiting reads, and
// the list is empty once every read has returned.
func TestDeferWaitersAllWakeAndLeaveNoTrace(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(4096))...)
	waiting := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters)
	}
	const served, cancelled = 8, 3
	results := make(chan Label, served)
	for range served {
		go func() {
			lb, err := p.ReadLabelled(context.Background(), make([]byte, 32))
			assert.NoError(t, err)
			results <- lb
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, cancelled)
	for range cancelled {
		go func() {
			_, err := p.ReadLabelled(ctx, make([]byte, 32))
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { return waiting() == served+cancelled }, 10*time.Second, time.Millisecond)
	cancel()
	for range cancelled {
		assert.ErrorIs(t, <-errs, context.Canceled)
	}
	assert.Equal(t, served, waiting(), "the ended waits left the list")
	src.set(nil)
	for range served {
		select {
		case lb := <-results:
			assert.True(t, lb.Verifiable)
			assert.Equal(t, 32, lb.Len())
		case <-time.After(10 * time.Second):
			t.Fatal("a read under Defer did not wake when bytes arrived")
		}
	}
	assert.Zero(t, waiting())
	assert.Zero(t, p.Stats().FallbackReads)
}

// A read under Defer whose gather (deferTake) passed by shards a read
// larger than any shard had frozen (takeSpread) waits for bytes that were
// in the pool all along: the thaw wakes it, with no block to come (the
// source is down). The read starts at deferTake, as one that found the
// pool short in takeWhole before the shards were frozen: a read that finds
// frozen shards holding its bytes in takeWhole waits for the thaw there.
func TestDeferReadPassedByFrozenShardsWakesAtThaw(t *testing.T) {
	src := newScriptSource("thaw")
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithShards(2), WithBufferSize(256), WithFetchSize(64))...)
	full(t, p, 256)
	src.set(&step{err: &APIError{StatusCode: 503}})
	// Both shards frozen, as takeSpread's first pass leaves them.
	freezeShards(p)
	type res struct {
		spans []Span
		err   error
	}
	done := make(chan res, 1)
	b := make([]byte, 16)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		spans, err := p.deferTake(ctx, b, nil, true, false)
		done <- res{spans, err}
	}()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters) == 1
	}, 10*time.Second, time.Millisecond, "the read waits")
	// A read larger than the pool freezes the shards, finds them short,
	// and thaws them.
	_, ok := p.takeSpread(make([]byte, 1024), nil, false)
	require.False(t, ok)
	select {
	case r := <-done:
		require.NoError(t, r.err, "the read waited out its context: the thaw did not wake it")
		assert.Equal(t, 16, Label{Verifiable: true, Spans: r.spans}.Len())
	case <-time.After(15 * time.Second):
		t.Fatal("the read did not return")
	}
	p.mu.Lock()
	assert.Empty(t, p.waiters)
	p.mu.Unlock()
}

// Defer reads of every kind (ReadLabelled, ReadSecret, ReadFor), some
// larger than the pool, some with contexts that end while blocks arrive,
// wake as blocks land: every read with time to spare is served, and
// correctly (the ledger), and when they have all returned no wake channel
// is left on the list and none goes back to the pool holding a wake (the
// next read to take it would wake at once, register twice, and leave it
// on the list when it returns).
func TestDeferWakesUnderLoadLeaveNoStaleChannel(t *testing.T) {
	src := newScriptSource("churn")
	src.maxLen = 64
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithShards(4), WithBufferSize(512), WithFetchSize(64))...)
	led := newLedger(src)
	var served, ended atomic.Int64
	sizes := []int{1, 16, 100, 200, 700}
	runReaders(8, 150, func(g, i int) bool {
		b := make([]byte, sizes[(g+i)%len(sizes)])
		short := (g+i)%3 == 0
		d := 10 * time.Second
		if short {
			d = time.Duration(1+(g*i)%500) * time.Microsecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var lb Label
		var err error
		msg := ""
		switch i % 3 {
		case 0:
			lb, err = p.ReadLabelled(ctx, b)
			if err == nil {
				msg = led.check(b, lb)
			}
		case 1:
			lb, err = p.ReadSecret(ctx, b)
			if err == nil {
				if !lb.Derived {
					msg = "a secret read under Defer not derived"
				} else {
					msg, _ = led.claimDerived(lb.Spans)
				}
			}
		case 2:
			lb, err = p.ReadFor(ctx, fmt.Sprintf("churn-%d-%d", g, i), b)
			if err == nil {
				msg = led.check(b, lb)
			}
		}
		switch {
		case err == nil && msg == "":
			served.Add(1)
		case err == nil:
			t.Errorf("reader %d, read %d: %s", g, i, msg)
			return false
		case short && errors.Is(err, context.DeadlineExceeded):
			ended.Add(1)
			if !bytesZero(b) {
				t.Errorf("reader %d, read %d: a read whose context ended left bytes in b", g, i)
				return false
			}
		default:
			t.Errorf("reader %d, read %d of %d bytes: %v", g, i, len(b), err)
			return false
		}
		return true
	})
	t.Logf("%d reads served, %d ended by their contexts", served.Load(), ended.Load())
	p.mu.Lock()
	assert.Empty(t, p.waiters, "wake channels left on the list")
	p.mu.Unlock()
	var got []chan struct{}
	for range 64 {
		w := wakePool.Get().(chan struct{})
		assert.Zero(t, len(w), "a wake channel went back to the pool holding a wake")
		got = append(got, w)
	}
	for _, w := range got {
		wakePool.Put(w)
	}
}

// Contract point 9 (Defer): the context's own error comes back, not
// ErrUnavailable, also when the context had already ended before the read.
func TestDeferReturnsContextError(t *testing.T) {
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

	// A context that ends while the read waits (contract point 5).
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	b = []byte{9, 9, 9, 9}
	_, err = p.ReadLabelled(ctx, b)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, []byte{0, 0, 0, 0}, b)
	assert.Zero(t, p.Stats().FallbackReads)
}

// A Defer read that gives up before it is whole (its context ends) zeroes
// the bytes it had gathered from the pool, and Stats counts them
// (AbandonedBytes), so that every byte the source brought in is still
// accounted for.
func TestDeferReadThatGivesUpCountsTheBytesItGathered(t *testing.T) {
	src := newScriptSource("q")
	src.set(&step{err: &APIError{StatusCode: 503}}, step{}, step{}) // two blocks, then 503s
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1024), WithFetchSize(512))...)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, p.WaitReady(wctx))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	b := bytes.Repeat([]byte{9}, 4096) // more than the source will ever bring
	_, err := p.ReadLabelled(ctx, b)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, make([]byte, len(b)), b, "nothing gathered is left in b")

	st := p.Stats()
	assert.GreaterOrEqual(t, st.AbandonedBytes, uint64(512), "the read had the block WaitReady saw")
	assert.Zero(t, st.VerifiableBytes)
	assert.Eventually(t, func() bool {
		st = p.Stats()
		return st.Sources[0].BytesAccepted == st.VerifiableBytes+uint64(st.Pooled)+st.AbandonedBytes
	}, 5*time.Second, time.Millisecond, "accepted = served + pooled + abandoned: %+v", st)
}

// The other two ways a waiting read gives up count what it gathered too:
// Close overtakes a Read under Defer (which has no context), and an event
// drawn from the pool meets a permanent failure of every source (a
// misconfiguration no wait can cure).
func TestDeferReadClosedOrFailedPermanentlyCountsTheBytesItGathered(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		src := newScriptSource("q")
		src.set(&step{err: &APIError{StatusCode: 503}}, step{}) // one block, then 503s
		p, err := New(src, fast(WithPolicy(Defer), WithBufferSize(1024), WithFetchSize(512))...)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return p.Stats().Pooled == 512 }, 10*time.Second, time.Millisecond, "the one block is in the pool")
		done := make(chan error, 1)
		go func() {
			_, err := p.Read(make([]byte, 4096)) // more than the source will ever bring
			done <- err
		}()
		require.Eventually(t, func() bool { return p.Stats().Pooled == 0 }, 10*time.Second, time.Millisecond, "the read gathers the block")
		require.NoError(t, p.Close())
		require.ErrorIs(t, <-done, ErrClosed)
		assert.Equal(t, uint64(512), p.Stats().AbandonedBytes)
	})
	t.Run("every source fails permanently", func(t *testing.T) {
		src := newScriptSource("q")
		src.set(&step{err: &APIError{StatusCode: 401}}, step{}) // one block, then a refusal
		p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1024), WithFetchSize(512))...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := p.ReadFor(ctx, "lotto", make([]byte, 4096)) // from the pool: the source binds no job
		require.ErrorIs(t, err, ErrPermanent)
		st := p.Stats()
		assert.Equal(t, uint64(512), st.Sources[0].BytesAccepted)
		assert.Equal(t, st.Sources[0].BytesAccepted, uint64(st.Pooled)+st.AbandonedBytes, "%+v", st)
	})
}

// Odd sizes: a pool of one byte under Defer keeps refilling; reads do not
// wait for ever with a healthy source.
func TestDeferServesFromOneBytePool(t *testing.T) {
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
	assert.ErrorIs(t, err, httpStatus(402))
	assert.ErrorIs(t, err, sourceerr.ErrQuotaExhausted)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "insufficient_balance", ae.Code)
	assert.Equal(t, []byte{0, 0, 0, 0}, b, "a failed read leaves no bytes in b")
	n, err := p.Read(b)
	assert.Zero(t, n)
	assert.ErrorIs(t, err, ErrUnavailable)
}

// A read sees the source's error as soon as a request fails, not only when
// the refill round ends.
func TestReasonIsImmediate(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 401}})
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	_, err := p.ReadLabelled(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, httpStatus(401))
	assert.NotContains(t, err.Error(), "circuit breaker circuit breaker")
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
