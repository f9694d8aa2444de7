package drandsource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Contract point 7: a Retry-After holds the Provider back until it has
// passed (the Provider caps it with WithMaxRetryAfter). A long one in seconds
// must reach the Provider, as the same delay written as an HTTP-date does.
func TestLongRetryAfterPassedOn(t *testing.T) {
	vs := loadVectors(t)
	q := vs["quicknet"]
	at := q.chain.RoundTime(q.round)
	now := fixedClock(at)
	const secs = 2 * 24 * 60 * 60 // two days
	for name, value := range map[string]string{
		"seconds":   "172800",
		"http-date": at.Add(secs * time.Second).UTC().Format(http.TimeFormat),
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", value)
				http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
			}))
			defer srv.Close()
			s := mustNew(t, q.chain, []string{srv.URL}, WithClock(entropy.NowFunc(now)))
			_, err := s.Fetch(context.Background(), 32)
			require.ErrorIs(t, err, httpsource.ErrRateLimited)
			assert.Equal(t, secs*time.Second, entropy.RetryAfter(err), "Retry-After %q", value)
		})
	}
}

// Contract point 7: "a Retry-After from any response holds back": when
// every relay failed, the Retry-After of the second relay's answer must not
// be lost because the first relay's error had none.
func TestRetryAfterOfLaterRelayPassedOn(t *testing.T) {
	q, now := quicknetAtRound(t)
	a := newTestRelay(t, now, vectorChain(q))
	a.set(func(r *testRelay) { r.status = http.StatusBadGateway }) // no Retry-After
	b := newTestRelay(t, now, vectorChain(q))
	b.set(func(r *testRelay) { r.status = http.StatusTooManyRequests }) // Retry-After: 2
	s := mustNew(t, q.chain, []string{a.URL(), b.URL()}, WithClock(entropy.NowFunc(now)))
	_, err := s.Fetch(context.Background(), 32)
	require.ErrorIs(t, err, httpsource.ErrRateLimited)
	assert.Equal(t, 2*time.Second, entropy.RetryAfter(err))
}

// Failover: a first relay that accepts requests and never answers must not
// keep the Source from the healthy relay behind it within the caller's
// deadline (a Provider bounds every Fetch with its fetch timeout).
func TestHungRelayDoesNotBlockFailover(t *testing.T) {
	q, now := quicknetAtRound(t)
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hung.Close()
	defer close(release)
	good := newTestRelay(t, now, vectorChain(q))
	s := mustNew(t, q.chain, []string{hung.URL, good.URL()}, WithClock(entropy.NowFunc(now)))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	blk, err := s.Fetch(ctx, 32)
	require.NoError(t, err, "the healthy second relay was never asked")
	assert.Equal(t, q.randomness, blk.Data)
}
