package entropy

import (
	"context"
	"sync"
	"time"
)

// requestCtx is the context of one request to a source: its parent's values
// and cancellation, and a deadline the fetch timeout away. It behaves as
// context.WithTimeout(parent, timeout) with a cancel at the end of the
// request (end), but costs a 64th of an allocation (newRequestCtx) where that costs five (the
// context, its timer, the cancel function and the parent's record of its
// child): it makes the real context (inner) only when a source asks for
// Done or a Value, which a source that answers from memory never does.
//
// Until inner exists, Err works out the answer inner would give: the
// parent's error, or DeadlineExceeded once the deadline has passed, or
// Canceled after end. Once it exists, every method but Deadline defers to
// it, so a context derived from this one (context.WithCancel, net/http's
// request contexts) is a child of inner, and context.Cause sees inner's
// cause. mu guards inner, cancel and ended; a source may call the methods
// from any goroutine, during the request and after it.
type requestCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex
	inner  context.Context    // context.WithDeadline(parent, deadline), made on demand
	cancel context.CancelFunc // inner's
	ended  bool               // end was called: the request is over
}

// requestCtxBatch is how many contexts of the refill's requests (and of
// their claims in a journal) a feeder allocates at once (allocBatch): one
// allocation per 64. A batch stays alive while one of its contexts does (a
// source may hold on to one), and with it up to 63 ended contexts of other
// requests, whose parent is the Provider's own context; a caller's context
// (ReadProven, an event draw) never goes into a batch (feeder.requestCtx).
const requestCtxBatch = 64

// newRequestCtx returns the context of a request that may take until
// timeout from now, taken from batch (a new one of its own if batch is nil).
func newRequestCtx(batch *allocBatch[requestCtx], parent context.Context, timeout time.Duration) *requestCtx {
	var c *requestCtx
	if batch != nil {
		c = batch.get(requestCtxBatch)
	} else {
		c = new(requestCtx)
	}
	c.parent, c.deadline = parent, time.Now().Add(timeout)
	return c
}

// Deadline returns the earlier of the parent's deadline and the request's.
func (c *requestCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done returns inner's channel (making inner).
func (c *requestCtx) Done() <-chan struct{} { return c.real().Done() }

// Value returns inner's value for key (making inner, so that the context
// package's own lookups see inner as the nearest cancellable context).
func (c *requestCtx) Value(key any) any { return c.real().Value(key) }

// Err returns nil while the request may go on, and then why it may not.
func (c *requestCtx) Err() error {
	c.mu.Lock()
	inner, ended := c.inner, c.ended
	c.mu.Unlock()
	switch {
	case inner != nil:
		return inner.Err()
	case ended:
		return context.Canceled
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// real returns inner, making it on first use; a request already over gets
// one already cancelled.
func (c *requestCtx) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.ended {
			c.cancel()
		}
	}
	return c.inner
}

// end marks the request over, as the cancel of context.WithTimeout does,
// and releases inner's timer and its place in the parent.
func (c *requestCtx) end() {
	c.mu.Lock()
	c.ended = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
