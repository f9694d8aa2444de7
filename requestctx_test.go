package entropy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requestCtx behaves as context.WithTimeout with a cancel at the end of the
// request, whether the source asks for Done (the real context is made) or
// only for Err (it is not).
func TestRequestCtxBehavesAsWithTimeout(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	waitDone := func(t *testing.T, c context.Context) {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done did not close")
		}
	}
	t.Run("deadline, Err only", func(t *testing.T) {
		c := newRequestCtx(nil, parent, time.Millisecond)
		defer c.end()
		require.Eventually(t, func() bool { return errors.Is(c.Err(), context.DeadlineExceeded) }, 10*time.Second, time.Millisecond)
		assert.Nil(t, c.inner, "Err alone makes no real context")
		waitDone(t, c) // Done after the deadline: already closed
		assert.ErrorIs(t, context.Cause(c), context.DeadlineExceeded)
	})
	t.Run("deadline, Done", func(t *testing.T) {
		c := newRequestCtx(nil, parent, time.Millisecond)
		defer c.end()
		waitDone(t, c)
		assert.ErrorIs(t, c.Err(), context.DeadlineExceeded)
	})
	t.Run("parent cancelled", func(t *testing.T) {
		for _, done := range []bool{false, true} {
			pctx, cancel := context.WithCancel(parent)
			c := newRequestCtx(nil, pctx, time.Hour)
			if done {
				_ = c.Done()
			}
			require.NoError(t, c.Err())
			cancel()
			if done {
				waitDone(t, c)
			}
			assert.ErrorIs(t, c.Err(), context.Canceled)
			c.end()
		}
	})
	t.Run("end", func(t *testing.T) {
		c := newRequestCtx(nil, parent, time.Hour)
		child, stop := context.WithCancel(c) // as a source deriving its own context
		defer stop()
		c.end()
		waitDone(t, child)
		assert.ErrorIs(t, c.Err(), context.Canceled)
		assert.ErrorIs(t, child.Err(), context.Canceled)
		late := newRequestCtx(nil, parent, time.Hour)
		late.end()
		assert.ErrorIs(t, late.Err(), context.Canceled)
		waitDone(t, late) // Done asked only after the request ended
	})
	t.Run("deadline and values", func(t *testing.T) {
		c := newRequestCtx(nil, parent, time.Hour)
		defer c.end()
		d, ok := c.Deadline()
		assert.True(t, ok)
		assert.WithinDuration(t, time.Now().Add(time.Hour), d, time.Minute)
		short, cancel := context.WithTimeout(parent, time.Minute)
		defer cancel()
		c2 := newRequestCtx(nil, short, time.Hour)
		defer c2.end()
		pd, _ := short.Deadline()
		d2, _ := c2.Deadline()
		assert.Equal(t, pd, d2, "the parent's earlier deadline")
		assert.Equal(t, "v", c.Value(key{}))
	})
}

// A request whose source never asks for Done costs one allocation for its
// context, where context.WithTimeout costs several, and a 64th of one when
// it comes from a feeder's batch.
func TestRequestCtxAllocatesOnce(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	allocs := testing.AllocsPerRun(100, func() {
		c := newRequestCtx(nil, parent, time.Minute)
		if c.Err() != nil {
			t.Error("ended early")
		}
		c.end()
	})
	assert.Equal(t, 1.0, allocs)

	// A feeder's requests take their contexts from a batch: one
	// allocation per requestCtxBatch requests, and each context is new.
	var batch allocBatch[requestCtx]
	handed := make([]*requestCtx, 0, 2*requestCtxBatch)
	allocs = testing.AllocsPerRun(requestCtxBatch, func() {
		c := newRequestCtx(&batch, parent, time.Minute)
		if c.Err() != nil {
			t.Error("a new context had ended")
		}
		c.end()
		handed = append(handed, c)
	})
	for i, c := range handed {
		assert.NotContains(t, handed[i+1:], c, "a context was handed out twice")
	}
	assert.Zero(t, allocs)
}

// ctxKeepingSource is a scriptSource that keeps the context of every
// request after Fetch returns, as a source that hands it to work of its
// own may, and checks at each request that the context is live and that
// every kept one has ended.
type ctxKeepingSource struct {
	*scriptSource
	closed func() bool // the Provider's Close has begun

	mu   sync.Mutex
	kept []context.Context
	bad  []string
}

func (s *ctxKeepingSource) Fetch(ctx context.Context, n int) (Block, error) {
	s.mu.Lock()
	// Close ends the refill's context after it sets closed: a request
	// made while Close waits for the refill begins with it ended.
	if err := ctx.Err(); err != nil && !s.closed() {
		s.bad = append(s.bad, fmt.Sprintf("request %d began with its context ended: %v", len(s.kept), err))
	}
	if len(s.kept)%2 == 0 {
		_ = ctx.Done() // half the requests make the real context
	}
	for i, k := range s.kept {
		if k == ctx {
			s.bad = append(s.bad, fmt.Sprintf("request %d has the context of request %d", len(s.kept), i))
		} else if k.Err() == nil {
			s.bad = append(s.bad, fmt.Sprintf("request %d's context is live again during request %d", i, len(s.kept)))
		}
	}
	s.kept = append(s.kept, ctx)
	s.mu.Unlock()
	return s.scriptSource.Fetch(ctx, n)
}

// The feeder's requests take their contexts from batches: each request has
// a context of its own, live while it runs and ended for good after it,
// whatever a source that keeps it does with it later, over several batches.
func TestRequestContextsKeptBySourceStayTheirOwn(t *testing.T) {
	var p *Provider
	src := &ctxKeepingSource{scriptSource: newScriptSource("k"), closed: func() bool { return p.closed.Load() }}
	p = newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1024), WithFetchSize(64), WithShards(1))...)
	b := make([]byte, 256)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for src.callCount() < 3*requestCtxBatch {
		_, err := p.ReadLabelled(ctx, b)
		require.NoError(t, err)
	}
	require.NoError(t, p.Close())
	src.mu.Lock()
	defer src.mu.Unlock()
	assert.Empty(t, src.bad)
	for i, k := range src.kept {
		assert.ErrorIs(t, k.Err(), context.Canceled, "request %d", i)
		select {
		case <-k.Done():
		default:
			t.Errorf("request %d's context is not done after the request", i)
		}
	}
}

// A caller's context (ReadProven's, an event draw's) is the parent of its
// requests' contexts, and the Provider keeps none of them once the call
// has returned: only the refill's requests, whose parent lives as long as
// the Provider, take their contexts from the feeder's batch, which keeps
// up to requestCtxBatch-1 of them alive.
func TestCallerContextNotKeptAfterItsRequest(t *testing.T) {
	src := newScriptSource("q")
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	type key struct{}
	val := new([64]byte)
	gone := make(chan struct{})
	runtime.AddCleanup(val, func(struct{}) { close(gone) }, struct{}{})
	ctx := context.WithValue(context.Background(), key{}, val)
	_, _, err := p.ReadProven(ctx, make([]byte, 64))
	require.NoError(t, err)
	ctx, val = nil, nil
	_, _ = ctx, val
	for range 50 {
		runtime.GC()
		select {
		case <-gone:
			return
		case <-time.After(time.Millisecond):
		}
	}
	t.Fatal("the caller's context is still reachable after ReadProven returned")
}
