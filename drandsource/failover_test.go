package drandsource

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests put a drand Source second behind a primary source in one
// Provider (entropy.WithFailover): the primary down → drand's verified
// rounds are served, labelled with drand's name and round; both down → the
// Provider's policy.

// downSource is a primary that always answers 503.
var downSource = entropy.SourceFunc(func(ctx context.Context, n int) (entropy.Block, error) {
	return entropy.Block{}, &entropy.APIError{StatusCode: http.StatusServiceUnavailable, Message: "primary down"}
})

// countingPrimary serves good random blocks named "primary" for its first
// `good` calls, then answers 503.
type countingPrimary struct {
	good  int64
	calls atomic.Int64
}

func (p *countingPrimary) Fetch(ctx context.Context, n int) (entropy.Block, error) {
	i := p.calls.Add(1)
	if i > p.good {
		return downSource(ctx, n)
	}
	b := make([]byte, min(n, 32))
	_, _ = rand.Read(b)
	return entropy.Block{Data: b, Source: "primary", JobID: "job-" + strconv.FormatInt(i, 10), Verifiable: true, Time: time.Now()}, nil
}

// newFailoverProvider returns a Provider over primary then drand, with
// retries and buffers small enough for a test, closed when the test ends.
func newFailoverProvider(t *testing.T, primary, drand entropy.Source, opts ...entropy.Option) *entropy.Provider {
	t.Helper()
	opts = append([]entropy.Option{
		entropy.WithFailover(drand),
		entropy.WithRetry(1, time.Millisecond, time.Millisecond),
		entropy.WithBufferSize(64),
		entropy.WithFetchSize(32),
	}, opts...)
	p, err := entropy.New(primary, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func TestFailoverPrimaryDownDrandVerifiable(t *testing.T) {
	q, now := quicknetAtRound(t)
	relay := newTestRelay(t, now, vectorChain(q))
	drand := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
	p := newFailoverProvider(t, downSource, drand, entropy.WithPolicy(entropy.Fail))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx))
	buf := make([]byte, 32)
	label, err := p.ReadLabelled(ctx, buf)
	require.NoError(t, err)
	assert.True(t, label.Verifiable)
	assert.Equal(t, []entropy.Span{{Source: "drand/quicknet", JobID: "123", Offset: 0, Length: 32, Public: true}}, label.Spans,
		"the label names the drand source and the round anyone can look up")
	assert.Equal(t, q.randomness, buf)

	st := p.Stats()
	require.Len(t, st.Sources, 2)
	assert.NotZero(t, st.Sources[0].Failures, "the primary was tried first")
	assert.Zero(t, st.Sources[0].BlocksAccepted)
	assert.Equal(t, "drand/quicknet", st.Sources[1].Name)
	assert.Equal(t, uint64(1), st.Sources[1].BlocksAccepted)

	// The relay has no round after 123, and the round is never served
	// again: the next read finds nothing verifiable.
	_, err = p.ReadLabelled(ctx, buf)
	require.ErrorIs(t, err, entropy.ErrUnavailable)
}

// TestFailoverLabelsNameEachSource: reads before the primary fails name it;
// reads after name drand, each span with its source's job or round.
func TestFailoverLabelsNameEachSource(t *testing.T) {
	sg := newSigner(t, SchemeUnchainedG1, time.Second, 1_700_000_000)
	clock := newFastClock(sg.info.RoundTime(1000), 50) // a round every 20 ms
	relay := newTestRelay(t, clock.Now, signerChain(sg))
	drand := mustNew(t, sg.info, []string{relay.URL()}, WithClock(entropy.NowFunc(clock.Now)), WithName("drand/test"))
	drand.after = clock.After
	primary := &countingPrimary{good: 2}
	p := newFailoverProvider(t, primary, drand, entropy.WithPolicy(entropy.Defer))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sources []string
	rounds := map[string]bool{}
	for range 5 {
		buf := make([]byte, 32)
		label, err := p.ReadLabelled(ctx, buf)
		require.NoError(t, err)
		require.True(t, label.Verifiable)
		pos := 0
		for _, sp := range label.Spans {
			sources = append(sources, sp.Source)
			got := buf[pos : pos+sp.Length]
			pos += sp.Length
			if sp.Source == "drand/test" {
				require.False(t, rounds[sp.JobID], "round %s served twice", sp.JobID)
				rounds[sp.JobID] = true
				round, err := strconv.ParseUint(sp.JobID, 10, 64)
				require.NoError(t, err)
				// The span can be audited against the chain.
				b := sg.beacon(round)
				assert.Equal(t, b.randomness[sp.Offset:sp.Offset+sp.Length], got)
			}
		}
	}
	require.GreaterOrEqual(t, len(sources), 5)
	assert.Equal(t, []string{"primary", "primary"}, sources[:2], "the primary's blocks come first")
	for _, s := range sources[2:] {
		assert.Equal(t, "drand/test", s, "then only drand's")
	}
	assert.GreaterOrEqual(t, len(rounds), 3)
}

func TestFailoverBothDown(t *testing.T) {
	q, now := quicknetAtRound(t)
	relay := newTestRelay(t, now, vectorChain(q))
	relay.set(func(r *testRelay) { r.status = http.StatusServiceUnavailable })

	// bothFailed waits (bounded) until the Provider has tried drand too.
	bothFailed := func(t *testing.T, p *entropy.Provider) {
		require.Eventually(t, func() bool {
			st := p.Stats()
			return st.Sources[0].LastError != nil && st.Sources[1].LastError != nil
		}, 5*time.Second, 2*time.Millisecond)
	}

	t.Run("degrade", func(t *testing.T) {
		drand := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
		p := newFailoverProvider(t, downSource, drand, entropy.WithPolicy(entropy.Degrade))
		bothFailed(t, p)
		buf := make([]byte, 32)
		label, err := p.ReadLabelled(context.Background(), buf)
		require.NoError(t, err, "Degrade serves fallback bytes")
		assert.False(t, label.Verifiable)
		assert.Equal(t, entropy.ProvenanceFallback, label.Provenance())
		assert.Equal(t, []entropy.Span{{Source: entropy.FallbackSource, Length: 32}}, label.Spans)
		require.ErrorIs(t, label.Reason, entropy.ErrUnavailable)
		assert.ErrorIs(t, label.Reason, httpsource.ErrServiceUnavailable, "both sources answer 503")
		assert.NotEqual(t, q.randomness, buf)
		drandErr := p.Stats().Sources[1].LastError
		require.ErrorIs(t, drandErr, httpsource.ErrServiceUnavailable)
		assert.Contains(t, drandErr.Error(), "drand/quicknet", "drand's failure names it")
	})
	t.Run("fail", func(t *testing.T) {
		drand := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
		p := newFailoverProvider(t, downSource, drand, entropy.WithPolicy(entropy.Fail))
		bothFailed(t, p)
		label, err := p.ReadLabelled(context.Background(), make([]byte, 32))
		require.ErrorIs(t, err, entropy.ErrUnavailable)
		assert.ErrorIs(t, err, httpsource.ErrServiceUnavailable)
		assert.False(t, label.Verifiable)
		assert.Empty(t, label.Spans)
	})
	t.Run("defer", func(t *testing.T) {
		drand := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
		p := newFailoverProvider(t, downSource, drand, entropy.WithPolicy(entropy.Defer))
		bothFailed(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := p.ReadLabelled(ctx, make([]byte, 32))
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, entropy.ErrUnavailable), "%v", err)
	})
}

// TestFailoverTamperedDrandNeverServed: with the primary down, a drand relay
// serving a beacon that does not verify gives the Provider nothing: no read
// is labelled with that round.
func TestFailoverTamperedDrandNeverServed(t *testing.T) {
	q, now := quicknetAtRound(t)
	relay := newTestRelay(t, now, vectorChain(q))
	relay.set(func(r *testRelay) {
		r.tamper = func(_ uint64, b *beaconJSON) { b.Randomness = flipHex(b.Randomness, 3) }
	})
	drand := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
	p := newFailoverProvider(t, downSource, drand, entropy.WithPolicy(entropy.Fail))
	require.Eventually(t, func() bool { return p.Stats().Sources[1].LastError != nil }, 5*time.Second, 2*time.Millisecond)
	_, err := p.ReadLabelled(context.Background(), make([]byte, 32))
	require.ErrorIs(t, err, entropy.ErrUnavailable)
	st := p.Stats()
	require.ErrorIs(t, st.Sources[1].LastError, ErrBadProof, "drand failed on the proof")
	assert.Zero(t, st.Sources[1].BlocksAccepted)
	assert.Zero(t, st.VerifiableBytes)
}
