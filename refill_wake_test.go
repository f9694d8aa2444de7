package entropy

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goroutineStacks returns the stack of the goroutine whose trace holds marker (a
// function and its first argument), or "".
func goroutineStacks(marker string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, marker) {
			return g
		}
	}
	return ""
}

// blockedIn reports whether the goroutine with marker waits for a mutex
// inside function fn.
func blockedIn(marker, fn string) bool {
	g := goroutineStacks(marker)
	return strings.Contains(g, "sync.(*Mutex).Lock") && strings.Contains(g, fn)
}

// refillIdle reports whether p's refill goroutine waits for a wake.
func refillIdle(p *Provider) bool {
	g := goroutineStacks(fmt.Sprintf("(*Provider).refillLoop(%p)", p))
	return strings.HasPrefix(g, "goroutine ") && strings.Contains(strings.SplitN(g, "\n", 2)[0], "[select")
}

// holdLock locks mu, says so, and unlocks it when release closes.
func holdLock(mu *sync.Mutex, locked, release chan struct{}) {
	mu.Lock()
	close(locked)
	<-release
	mu.Unlock()
}

// TestStaleRefillRequestNotLost shows a lost wake-up of the refill.
// A shard's refill request (shard.asked) is set by a reader after its claim,
// without the lock, and cleared by add and settle; a reader that finds it
// set sends no wake. Interleaving, all on one shard of a Defer Provider
// with a healthy source:
//
//  1. reader L claims the last bytes of the head run (the shard is now below
//     its low watermark) and is delayed before Provider.claimed;
//  2. another read drains the shard and wakes the refill, which refills it;
//     the old head is retired, so its wake point is not updated;
//  3. L goes on: end > r.wakeAt of its stale run, so low() sets asked
//     (though the shard is full) and wakes the refill;
//  4. the refill's fill() finds the pool full and returns; before settle()
//     looks at the shard, reader R claims it below its low watermark and
//     finds asked set, so it sends no wake;
//  5. settle() sees the shard low and leaves asked set; the refill waits for
//     a wake that no reader will send: fast claims find asked set, and
//     so does every slow path's call of low. Under Defer no path
//     calls short(), so the pool never refills and Defer reads wait until
//     their context ends, with the source healthy.
//
// The refill must see the low shard itself: settle reports it, and the
// refill fills again.
//
// The test drives steps 1-5 with the real functions, holding the shard's
// lock to stop the refill goroutine inside settle (seen in its stack).
//
// Before the refill went on when settle found a shard low (instead of
// waiting for a wake), this test failed every time: the Defer read timed
// out with asked set and the pool empty.
func TestStaleRefillRequestNotLost(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for attempt := 0; attempt < 20; attempt++ {
		if why := staleRequestAttempt(t); why != "" {
			t.Logf("attempt %d: %s; again", attempt, why)
			continue
		}
		return
	}
	t.Skip("could not arrange the interleaving in 20 attempts")
}

// staleRequestAttempt runs the interleaving once; it returns why it could
// not be arranged, or "" when it ran to the end (and asserted).
func staleRequestAttempt(t *testing.T) string {
	src := newScriptSource("stale")
	p, err := New(src, fast(WithPolicy(Defer), WithShards(1), WithBufferSize(1024), WithFetchSize(1024))...)
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	s := p.shards[0]
	settled := func() bool {
		s.mu.Lock()
		n := s.avail()
		s.mu.Unlock()
		return n == s.cap && refillIdle(p) && len(p.wake) == 0 && !s.asked.Load()
	}
	require.Eventually(t, settled, 10*time.Second, time.Millisecond)
	refill := fmt.Sprintf("(*Provider).refillLoop(%p)", p)

	// 1. L claims the whole head run and is delayed.
	r0 := s.head.Load()
	if r0 == nil || len(r0.data) != s.cap {
		return "the pool is not one run"
	}
	end0, ok := claimAsRead(r0, len(r0.data))
	require.True(t, ok)
	require.Greater(t, int64(end0), r0.wakeAt.Load())

	// 2. Another read drains the shard; the refill refills it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	lb, err := p.ReadLabelled(ctx, make([]byte, s.cap))
	cancel()
	require.NoError(t, err)
	require.True(t, lb.Verifiable)
	require.Eventually(t, settled, 10*time.Second, time.Millisecond)
	require.NotSame(t, r0, s.head.Load())
	if h := s.head.Load(); h == nil || len(h.data) != s.cap || h.cursor() != 0 {
		return "the refilled shard is not one fresh run"
	}

	// 3. L goes on, with the refill to be caught in pooled (we hold the lock).
	s.mu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			s.mu.Unlock()
		}
	}
	defer unlock()
	p.claimed(s, r0, end0)
	require.True(t, s.asked.Load(), "L's late request")
	sawPooled := false
	for i := 0; i < 2000 && !sawPooled; i++ {
		sawPooled = blockedIn(refill, "(*Provider).pooled(")
		time.Sleep(50 * time.Microsecond)
	}
	if !sawPooled {
		return "the refill did not reach pooled"
	}
	time.Sleep(2 * time.Millisecond) // the refill has waited long: the mutex goes to starvation mode
	hLocked, release := make(chan struct{}), make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	go holdLock(&s.mu, hLocked, release)
	for i := 0; i < 2000 && !blockedIn("holdLock(", "holdLock"); i++ {
		time.Sleep(50 * time.Microsecond)
	}
	// Barge: the refill wakes to a locked mutex and asks for a hand-off.
	s.mu.Unlock()
	locked = false
	for !s.mu.TryLock() {
		select {
		case <-hLocked:
			close(release)
			return "the holder got the lock before the barge"
		default:
		}
		runtime.Gosched()
	}
	locked = true
	time.Sleep(2 * time.Millisecond)
	if !blockedIn(refill, "(*Provider).pooled(") {
		return "the refill was not waiting in pooled after the barge"
	}
	// 4. Hand the lock to the refill; it reads a full pool, hands the lock
	// to the holder, and waits for it in settle.
	unlock()
	select {
	case <-hLocked:
	case <-time.After(5 * time.Second):
		return "the holder did not get the lock"
	}
	inSettle := false
	for i := 0; i < 2000 && !inSettle; i++ {
		inSettle = blockedIn(refill, "(*Provider).settle(")
		if !inSettle {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if !inSettle {
		close(release)
		return "the refill did not wait in settle"
	}
	// R claims the shard below its low watermark, as Read's fast path does.
	h := s.head.Load()
	require.NotNil(t, h)
	end, ok := claimAsRead(h, s.cap-s.low+100)
	require.True(t, ok)
	require.Greater(t, int64(end), h.wakeAt.Load())
	p.claimed(s, h, end)
	require.Zero(t, len(p.wake), "R found asked set and sent no wake")

	// 5. settle runs; the shard stays low, asked stays set.
	close(release)
	require.Eventually(t, func() bool { return refillIdle(p) }, 5*time.Second, time.Millisecond)

	// The contract: with a healthy source the pool refills, and a Defer
	// read of more than the shard holds gets its bytes.
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = p.ReadLabelled(ctx, make([]byte, s.cap-100))
	assert.NoError(t, err, "a Defer read waited for a refill that never came (asked=%v, pooled=%d, source calls=%d)", s.asked.Load(), p.Stats().Pooled, src.callCount())
	assert.Eventually(t, func() bool { return p.Stats().Pooled >= s.low }, 3*time.Second, time.Millisecond, "the pool stayed below its low watermark")
	return ""
}

// claimAsRead claims n bytes of run r as Read's fast path does (reserve,
// then moveOut) and returns the cursor after them.
func claimAsRead(r *run, n int) (end int, ok bool) {
	off, ok := r.reserve(n)
	if ok {
		moveOut(make([]byte, n), r.data[off:off+n])
	}
	return off + n, ok
}
