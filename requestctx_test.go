package entropy

import (
	"context"
	"errors"
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
