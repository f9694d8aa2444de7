package httpsource_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Polling stops when the context ends: the Fetch returns promptly with a
// timeout, and no poll arrives after the deadline.
func TestPollingStopsAtTheDeadline(t *testing.T) {
	rs, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-slow","status":"queued"}`)
			return
		}
		fmt.Fprint(w, `{"job_id":"job-slow","status":"running"}`)
	})
	s := newOldSource(t, srv, httpsource.WithPollInterval(2*time.Millisecond, 10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := s.Fetch(ctx, 8)
	deadline, _ := ctx.Deadline()
	require.ErrorIs(t, err, entropy.ErrTimeout)
	assert.Equal(t, entropy.Transient, entropy.Classify(err))
	time.Sleep(50 * time.Millisecond)
	polls := rs.arrivals("/v1/jobs/job-slow")
	require.NotEmpty(t, polls, "a queued job is polled")
	for _, p := range polls {
		assert.False(t, p.After(deadline.Add(5*time.Millisecond)), "poll at %v after the deadline %v", p, deadline)
	}
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
func TestRetryAfterOn202HoldsFirstPoll(t *testing.T) {
	rs, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-ra","status":"queued"}`)
			return
		}
		fmt.Fprint(w, rs.completedJSON("job-ra", make([]byte, 16)))
	})
	s := newOldSource(t, srv, httpsource.WithPublicKey(rs.pub),
		httpsource.WithPollInterval(10*time.Millisecond, 5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Fetch(ctx, 16)
	require.NoError(t, err)
	first := rs.arrivals("/v1/entropy")
	polls := rs.arrivals("/v1/jobs/job-ra")
	require.Len(t, first, 1)
	require.NotEmpty(t, polls)
	assert.GreaterOrEqual(t, polls[0].Sub(first[0]), time.Second,
		"first poll %v after a 202 with Retry-After: 1", polls[0].Sub(first[0]))
}
