package httpsource_test

// What a service says is left of its quota: the X-RateLimit-* and
// RateLimit-* headers, random.org's requestsLeft and bitsLeft, a 402 with
// its balance. Against a handler written here and against the simulator.

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuotaFromHeaders(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hdr       map[string]string
		remaining int64
		limit     int64
		reset     time.Duration // from now; -1 for the Unix time below, 0 for none
	}{
		{"X-RateLimit with seconds to the reset", map[string]string{"X-RateLimit-Remaining": "41", "X-RateLimit-Limit": "60", "X-RateLimit-Reset": "30"},
			41, 60, 30 * time.Second},
		{"X-RateLimit with a Unix reset", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": "1796288400"},
			0, 5000, -1},
		{"IETF RateLimit fields in list form", map[string]string{"RateLimit-Remaining": "7, 100;w=60", "RateLimit-Limit": "100, 100;w=60", "RateLimit-Reset": "12"},
			7, 100, 12 * time.Second},
		{"remaining only", map[string]string{"X-RateLimit-Remaining": "3"}, 3, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.hdr {
					w.Header().Set(k, v)
				}
				fmt.Fprint(w, f.completedJSON("job-q", pattern(8)))
			})
			s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithJSONOnly())
			_, ok := s.Quota()
			assert.False(t, ok, "no answer yet")
			before := time.Now()
			_, err := s.Fetch(context.Background(), 8)
			after := time.Now()
			require.NoError(t, err)
			q, ok := s.Quota()
			require.True(t, ok)
			assert.Equal(t, tc.remaining, q.RequestsRemaining)
			assert.Equal(t, tc.limit, q.RequestsLimit)
			switch tc.reset {
			case 0:
				assert.True(t, q.Reset.IsZero())
			case -1:
				assert.True(t, time.Unix(1796288400, 0).Equal(q.Reset), "%v", q.Reset)
			default:
				assert.False(t, q.Reset.Before(before.Add(tc.reset)), "%v", q.Reset)
				assert.False(t, q.Reset.After(after.Add(tc.reset)), "%v", q.Reset)
			}
			assert.Equal(t, int64(-1), q.BytesRemaining)
			assert.Equal(t, tc.remaining == 0, q.Exhausted)
			assert.False(t, q.Updated.Before(before))
		})
	}
}

func TestQuotaFromRandomOrgStyleBodies(t *testing.T) {
	for _, tc := range []struct {
		name, extra     string
		bytes, requests int64
	}{
		{"top level", `"bitsLeft":8000,"requestsLeft":199`, 1000, 199},
		{"in result", `"result":{"bitsLeft":16,"requestsLeft":0}`, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				body := f.completedJSON("job-r", pattern(8))
				fmt.Fprint(w, strings.TrimSuffix(body, "}")+","+tc.extra+"}")
			})
			s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithJSONOnly())
			b, err := s.Fetch(context.Background(), 8)
			require.NoError(t, err, "the quota members do not spoil the job")
			assert.True(t, b.Verifiable)
			q, ok := s.Quota()
			require.True(t, ok)
			assert.Equal(t, tc.bytes, q.BytesRemaining)
			assert.Equal(t, tc.requests, q.RequestsRemaining)
			assert.Equal(t, tc.requests == 0, q.Exhausted)
		})
	}
}

func TestQuotaFrom402Balance(t *testing.T) {
	calls := 0
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusPaymentRequired)
			fmt.Fprint(w, `{"error":{"code":"PaymentRequired","message":"Insufficient $QPY balance."},"balance":0.25}`)
			return
		}
		w.Header().Set("X-RateLimit-Remaining", "10")
		fmt.Fprint(w, f.completedJSON("job-b", pattern(8)))
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithJSONOnly())
	_, err := s.Fetch(context.Background(), 8)
	require.ErrorIs(t, err, httpsource.ErrPaymentRequired)
	q, ok := s.Quota()
	require.True(t, ok)
	assert.True(t, q.Exhausted)
	assert.Equal(t, 0.25, q.Balance)

	// Topped up: the next answer clears the mark and keeps the balance
	// figure it did not repeat.
	_, err = s.Fetch(context.Background(), 8)
	require.NoError(t, err)
	q, _ = s.Quota()
	assert.False(t, q.Exhausted)
	assert.Equal(t, int64(10), q.RequestsRemaining)
	assert.Equal(t, 0.25, q.Balance)
}

// The simulator's 402 says what is left of the key's balance: the source
// reports it as the quota's Balance (exhausted), for a single request and
// a batch, and a Provider shows it in Stats.
func TestQuotaFromTheSimulators402Balance(t *testing.T) {
	s := sim.New(sim.WithSeed(9), sim.WithKey(e2eKey, 300))
	t.Cleanup(func() { _ = s.Close() })
	src, err := s.Source(httpsource.WithAPIKey(e2eKey))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = src.Fetch(ctx, 256)
	require.NoError(t, err)
	_, err = src.Fetch(ctx, 256)
	require.ErrorIs(t, err, httpsource.ErrPaymentRequired)
	q, ok := src.Quota()
	require.True(t, ok)
	assert.True(t, q.Exhausted)
	assert.Equal(t, 44.0, q.Balance, "300 bytes, less the 256 of the first job")

	s.AddKey(e2eKey, 20)
	_, err = src.FetchBatch(ctx, []int{32, 32})
	require.ErrorIs(t, err, httpsource.ErrPaymentRequired)
	q, _ = src.Quota()
	assert.True(t, q.Exhausted)
	assert.Equal(t, 20.0, q.Balance)

	// A Provider shows it: the balance pays for the first batch's first
	// item (the others fail as QuotaExhaustedError), then a 402 says 44.
	s2 := sim.New(sim.WithSeed(10), sim.WithKey(e2eKey, 300))
	t.Cleanup(func() { _ = s2.Close() })
	src2, err := s2.Source(httpsource.WithAPIKey(e2eKey))
	require.NoError(t, err)
	p, err := entropy.New(src2, entropy.WithPolicy(entropy.Fail), entropy.WithBufferSize(1024), entropy.WithFetchSize(256))
	require.NoError(t, err)
	defer p.Close()
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Quota.Exhausted }, 10*time.Second, time.Millisecond)
	pq := p.Stats().Sources[0].Quota
	assert.Equal(t, 44.0, pq.Balance)
	assert.ErrorIs(t, p.Stats().Sources[0].LastError, httpsource.ErrQuotaExhausted)
}

func TestQuotaShownInProviderStats(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Remaining", "1000")
		w.Header().Set("X-RateLimit-Limit", "1000")
		w.Header().Set("X-RateLimit-Reset", "60")
		n, _ := strconv.Atoi(r.URL.Query().Get("size"))
		data := make([]byte, n)
		_, _ = crand.Read(data)
		fmt.Fprint(w, f.completedJSON(fmt.Sprintf("job-%d", f.count("")), data))
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithJSONOnly())
	p, err := entropy.New(s, entropy.WithBufferSize(1024), entropy.WithFetchSize(1024))
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx))
	q := p.Stats().Sources[0].Quota
	require.True(t, q.Known())
	assert.Equal(t, int64(1000), q.RequestsLimit)
	assert.Equal(t, int64(1000), q.RequestsRemaining)
}

// The simulator's quota: every answer tells what is left, and a Provider
// asking for more than the window allows spreads its requests instead of
// running into the 429.
func TestQuotaFromTheSimulatorIsNeverOverrun(t *testing.T) {
	s := sim.New(sim.WithSeed(6), sim.WithQuota(4, time.Second))
	t.Cleanup(func() { _ = s.Close() })
	src, err := s.Source()
	require.NoError(t, err)
	// Single requests: a batch would ask for the whole pool in one request
	// and never press on the window.
	p, err := entropy.New(src, entropy.WithBatch(1), entropy.WithPolicy(entropy.Defer), entropy.WithBufferSize(2048), entropy.WithFetchSize(256))
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 6 {
		_, err := p.ReadLabelled(ctx, make([]byte, 256))
		require.NoError(t, err)
	}
	q := p.Stats().Sources[0].Quota
	require.True(t, q.Known())
	assert.Equal(t, int64(4), q.RequestsLimit)
	reqs := s.EntropyRequests()
	require.GreaterOrEqual(t, len(reqs), 6)
	for _, r := range reqs {
		assert.NotEqual(t, http.StatusTooManyRequests, r.Status, "a request over the quota")
	}
}
