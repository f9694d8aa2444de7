package httpsource_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// expiringContext is a context whose deadline passes when the test says
// (expire), not at a wall-clock instant: Err is then DeadlineExceeded.
type expiringContext struct {
	context.Context // Background: values
	done            chan struct{}
	once            sync.Once
}

func newExpiringContext() *expiringContext {
	return &expiringContext{Context: context.Background(), done: make(chan struct{})}
}

func (c *expiringContext) Done() <-chan struct{} { return c.done }

func (c *expiringContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (c *expiringContext) expire() { c.once.Do(func() { close(c.done) }) }

// Polling stops when the context ends: the Fetch returns with a timeout,
// and no poll is sent after the deadline. The deadline passes while the
// service answers the third poll, so the count of polls is exact whatever
// the machine's speed.
func TestPollingStopsAtTheDeadline(t *testing.T) {
	const polls = 3
	ctx := newExpiringContext()
	rs, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-slow","status":"queued"}`)
			return
		}
		if rs.count("/v1/jobs/job-slow") >= polls {
			ctx.expire()
		}
		fmt.Fprint(w, `{"job_id":"job-slow","status":"running"}`)
	})
	s := newOldSource(t, srv, httpsource.WithPollInterval(time.Millisecond, 2*time.Millisecond))
	errc := make(chan error, 1)
	go func() {
		_, err := s.Fetch(ctx, 8)
		errc <- err
	}()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Fetch went on polling after its deadline")
	}
	require.ErrorIs(t, err, httpsource.ErrTimeout)
	assert.Equal(t, entropy.Transient, entropy.Classify(err))
	assert.Equal(t, polls, rs.count("/v1/jobs/job-slow"), "no poll after the deadline")
}

// A job that the service no longer knows while it is being polled (404 on
// GET /v1/jobs/{id}) is a lost job: README's contract (point 6) names "failed or
// lost jobs" transient, so the breaker must not open on it.
func TestLostJobWhilePollingIsTransient(t *testing.T) {
	_, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-lost")
		if r.URL.Path == "/v1/entropy" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-lost","status":"queued"}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"NotFound","message":"no such job"}}`)
	})
	s := newOldSource(t, srv, httpsource.WithPublicKey(make([]byte, ed25519.PublicKeySize)),
		httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
	blk, err := s.Fetch(context.Background(), 16)
	require.Error(t, err)
	assert.Empty(t, blk.Data)
	assert.Equal(t, entropy.Transient, entropy.Classify(err),
		"a job lost while polling produced nothing and a new job may succeed: %v", err)
}

// A Retry-After on the 202 answer sets the first poll: no request before it
// has passed (contract point 7, "no request before a Retry-After has passed").
// The source waits on a virtualClock, and the service reads the same clock,
// so the gap is the wait the source kept, not a loaded machine's.
func TestRetryAfterOn202HoldsFirstPoll(t *testing.T) {
	clk := newVirtualClockAt(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var first, poll time.Time
	rs, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/v1/entropy" {
			first = clk.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-ra","status":"queued"}`)
			return
		}
		if poll.IsZero() {
			poll = clk.Now()
		}
		fmt.Fprint(w, rs.completedJSON("job-ra", make([]byte, 16)))
	})
	s := newOldSource(t, srv, httpsource.WithPublicKey(rs.pub), httpsource.WithClock(clk),
		httpsource.WithPollInterval(10*time.Millisecond, 5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Fetch(ctx, 16)
	require.NoError(t, err)
	require.Equal(t, 1, rs.count("/v1/entropy"))
	require.Equal(t, 1, rs.count("/v1/jobs/job-ra"))
	mu.Lock()
	defer mu.Unlock()
	assert.GreaterOrEqual(t, poll.Sub(first), time.Second, "first poll %v after a 202 with Retry-After: 1", poll.Sub(first))
}
