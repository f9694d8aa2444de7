package drandsource

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudflare/circl/ecc/bls12381"
	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// quicknetRelay starts a relay serving both vector chains with the clock at
// the quicknet vector round's time, and returns it with the vectors.
func quicknetRelay(t *testing.T) (*testRelay, map[string]vector) {
	vs := loadVectors(t)
	now := fixedClock(vs["quicknet"].chain.RoundTime(vs["quicknet"].round).Add(time.Second))
	return newTestRelay(t, now, vectorChain(vs["quicknet"]), vectorChain(vs["default"])), vs
}

func TestFetchServesVerifiedRound(t *testing.T) {
	vs := loadVectors(t)
	for _, name := range []string{"quicknet", "default"} {
		t.Run(name, func(t *testing.T) {
			v := vs[name]
			now := fixedClock(v.chain.RoundTime(v.round).Add(time.Second))
			relay := newTestRelay(t, now, vectorChain(v))
			s := mustNew(t, v.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))

			blk, err := s.Fetch(context.Background(), 64)
			require.NoError(t, err)
			assert.Equal(t, v.randomness, blk.Data, "Data is the round's randomness")
			assert.Equal(t, "drand/"+name, blk.Source)
			assert.Equal(t, strconv.FormatUint(v.round, 10), blk.JobID, "JobID is the round")
			assert.True(t, blk.Verifiable)
			assert.Equal(t, v.sig, blk.Proof, "Proof is the signature")
			assert.Equal(t, v.chain.RoundTime(v.round), blk.Time, "Time is the round's due time")
			requirePaths(t, relay, v.chain.HashString(), "/H/info", "/H/public/"+blk.JobID)

			// Anyone can check the block offline with Verify.
			r, err := Verify(v.chain.Scheme, v.chain.PublicKey, v.round, v.prevSig, blk.Proof)
			require.NoError(t, err)
			assert.Equal(t, blk.Data, r)
		})
	}
}

func TestFetchShortRead(t *testing.T) {
	relay, vs := quicknetRelay(t)
	q := vs["quicknet"]
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(relay.now)))
	blk, err := s.Fetch(context.Background(), 5)
	require.NoError(t, err)
	assert.Equal(t, q.randomness[:5], blk.Data)
	_, err = s.Fetch(context.Background(), 0)
	require.Error(t, err)
	_, err = s.Fetch(context.Background(), -1)
	require.Error(t, err)
}

// TestNoRoundServedTwice: after serving the vector round, a Source asks for
// the next round, never "latest" or the same round again, and waits until
// the next round is due.
func TestNoRoundServedTwice(t *testing.T) {
	vs := loadVectors(t)
	q := vs["quicknet"]
	clock := &settableClock{t: q.chain.RoundTime(q.round)}
	relay := newTestRelay(t, clock.Now, vectorChain(q))
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(clock.Now)))

	blk, err := s.Fetch(context.Background(), 32)
	require.NoError(t, err)
	require.Equal(t, "123", blk.JobID)

	// Round 124 is 3 s away on the clock: the Fetch waits for it and asks
	// the relay nothing.
	ctx, cancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(30*time.Millisecond, cancel)
	defer stop.Stop()
	_, err = s.Fetch(ctx, 32)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "waiting for round 124")
	assert.Equal(t, entropy.Canceled, entropy.Classify(err))

	// With a deadline before the round is due, it does not wait in vain.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = s.Fetch(ctx, 32)
	var notDue *RoundNotDueError
	require.ErrorAs(t, err, &notDue)
	assert.Equal(t, uint64(124), notDue.Round)
	assert.Equal(t, q.chain.RoundTime(124), notDue.Due)
	assert.Equal(t, 3*time.Second, entropy.RetryAfter(err), "a Provider holds back until the round is due")
	assert.ErrorIs(t, err, ErrTooEarly)
	assert.Equal(t, entropy.Transient, entropy.Classify(err))

	// Once due, it asks for 124, which this relay does not have.
	clock.set(q.chain.RoundTime(124))
	_, err = s.Fetch(context.Background(), 32)
	require.ErrorIs(t, err, httpsource.ErrNotFound)
	requirePaths(t, relay, q.chain.HashString(), "/H/info", "/H/public/123", "/H/public/124")

	// FetchRound refuses the served round too.
	_, err = s.FetchRound(context.Background(), 123)
	require.ErrorIs(t, err, ErrRoundServed)
}

// TestFetchSkipsToCurrentRound: when the clock has moved on, the next Fetch
// asks for the round due now, not for a stale one after the last served.

// Once the last round there is (the largest uint64) has been served, no
// round is left: the next round must not wrap around to a round already
// served.
func TestNoRoundServedTwiceAfterTheLastRound(t *testing.T) {
	sg := newSigner(t, SchemeUnchainedG1, 3*time.Second, 1_000_000)
	// A clock past the time of every round (times saturate at 2^62 s).
	end := func() time.Time { return time.Unix(1<<62+10, 0) }
	relay := newTestRelay(t, end, signerChain(sg))
	s := mustNew(t, sg.info, []string{relay.URL()}, WithClock(entropy.NowFunc(end)))
	served := map[string]bool{}
	blk, err := s.Fetch(context.Background(), 32)
	require.NoError(t, err)
	served[blk.JobID] = true
	blk, err = s.FetchRound(context.Background(), math.MaxUint64)
	require.NoError(t, err)
	served[blk.JobID] = true
	for range 2 {
		blk, err = s.Fetch(context.Background(), 32)
		require.ErrorIs(t, err, ErrRoundServed)
		assert.False(t, served[blk.JobID], "round %s served twice", blk.JobID)
	}
}
func TestFetchSkipsToCurrentRound(t *testing.T) {
	sg := newSigner(t, SchemeUnchainedG1, 3*time.Second, 1_700_000_000)
	clock := &settableClock{t: sg.info.RoundTime(10)}
	relay := newTestRelay(t, clock.Now, signerChain(sg))
	s := mustNew(t, sg.info, []string{relay.URL()}, WithClock(entropy.NowFunc(clock.Now)))
	var got []string
	for _, r := range []uint64{10, 500, 501} {
		clock.set(sg.info.RoundTime(r))
		blk, err := s.Fetch(context.Background(), 32)
		require.NoError(t, err)
		got = append(got, blk.JobID)
	}
	assert.Equal(t, []string{"10", "500", "501"}, got)

	// A clock turned back does not bring old rounds back: the next Fetch
	// waits for round 502.
	clock.set(sg.info.RoundTime(400))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := s.Fetch(ctx, 32)
	var notDue *RoundNotDueError
	require.ErrorAs(t, err, &notDue)
	assert.Equal(t, uint64(502), notDue.Round)
}

func TestFetchWaitsUntilDue(t *testing.T) {
	sg := newSigner(t, SchemeUnchainedG1, 3*time.Second, 1_700_000_000)
	// A clock 20 ms before round 7 that runs at real speed.
	start := time.Now()
	base := sg.info.RoundTime(7).Add(-20 * time.Millisecond)
	now := func() time.Time { return base.Add(time.Since(start)) }
	relay := newTestRelay(t, now, signerChain(sg))
	s := mustNew(t, sg.info, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	blk, err := s.FetchRound(ctx, 7)
	require.NoError(t, err, "the relay answers 425 to a request made before the round is due")
	assert.Equal(t, "7", blk.JobID)
	assert.Len(t, blk.Data, 32)
}

func TestFetchRound(t *testing.T) {
	relay, vs := quicknetRelay(t)
	q := vs["quicknet"]
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(relay.now)))

	// A draw that published T commits to the first round after T.
	published := q.chain.RoundTime(q.round).Add(-time.Second)
	round := s.FirstRoundAfter(published)
	require.Equal(t, q.round, round)
	blk, err := s.FetchRound(context.Background(), round)
	require.NoError(t, err)
	assert.Equal(t, q.randomness, blk.Data, "FetchRound returns all 32 bytes")
	assert.Equal(t, "123", blk.JobID)

	_, err = s.FetchRound(context.Background(), round)
	require.ErrorIs(t, err, ErrRoundServed, "a round is handed out once")
	_, err = s.FetchRound(context.Background(), round-1)
	require.ErrorIs(t, err, ErrRoundServed, "rounds before the last served may have been served")
	_, err = s.FetchRound(context.Background(), 0)
	require.ErrorIs(t, err, ErrMalformed)

	// A round not yet due is waited for; a failed wait releases it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = s.FetchRound(ctx, round+10)
	require.ErrorIs(t, err, ErrTooEarly, "not due before the deadline: no wait")
	assert.Equal(t, 29*time.Second, entropy.RetryAfter(err), "ten rounds on, from a clock 1 s past round 123")
	ctx, cancel = context.WithCancel(context.Background())
	stop := time.AfterFunc(20*time.Millisecond, cancel)
	defer stop.Stop()
	_, err = s.FetchRound(ctx, round+10)
	require.ErrorIs(t, err, context.Canceled, "the round was released, not marked served")
	assert.Equal(t, entropy.Canceled, entropy.Classify(err))
}

// TestConcurrentFetchDistinctRounds: concurrent Fetch and FetchRound calls
// never hand out the same round, and every block verifies.
func TestConcurrentFetchDistinctRounds(t *testing.T) {
	sg := newSigner(t, SchemeUnchainedG1, time.Second, 1_700_000_000)
	clock := newFastClock(sg.info.RoundTime(100), 1000) // a round per real millisecond
	relay := newTestRelay(t, clock.Now, signerChain(sg))
	s := mustNew(t, sg.info, []string{relay.URL()}, WithClock(entropy.NowFunc(clock.Now)))
	s.after = clock.After

	const workers, each = 6, 5
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var blk entropy.Block
				var err error
				if w == 0 {
					blk, err = s.FetchRound(context.Background(), s.RoundAt(clock.Now())+uint64(3+i))
				} else {
					blk, err = s.Fetch(context.Background(), 32)
				}
				if err != nil {
					errs <- err
					continue
				}
				round, _ := strconv.ParseUint(blk.JobID, 10, 64)
				if _, err := Verify(sg.info.Scheme, sg.info.PublicKey, round, nil, blk.Proof); err != nil {
					errs <- err
				}
				mu.Lock()
				seen[blk.JobID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// FetchRound may lose its round to a Fetch that got there first.
		require.ErrorIs(t, err, ErrRoundServed)
	}
	require.GreaterOrEqual(t, len(seen), (workers-1)*each)
	for round, n := range seen {
		require.Equal(t, 1, n, "round %s handed out %d times", round, n)
	}
}

func TestRelayFailover(t *testing.T) {
	q, now := quicknetAtRound(t)
	good := newTestRelay(t, now, vectorChain(q))

	t.Run("500", func(t *testing.T) {
		bad := newTestRelay(t, now, vectorChain(q))
		bad.set(func(r *testRelay) { r.status = http.StatusInternalServerError })
		s := mustNew(t, q.chain, []string{bad.URL(), good.URL()}, WithClock(entropy.NowFunc(now)))
		blk, err := s.Fetch(context.Background(), 32)
		require.NoError(t, err)
		assert.Equal(t, q.randomness, blk.Data)
		assert.Equal(t, []string{"/" + q.chain.HashString() + "/info"}, bad.Paths(), "the first relay was tried")
	})
	t.Run("closed", func(t *testing.T) {
		closed := newTestRelay(t, now, vectorChain(q))
		closed.srv.Close()
		s := mustNew(t, q.chain, []string{closed.URL(), good.URL()}, WithClock(entropy.NowFunc(now)))
		blk, err := s.Fetch(context.Background(), 32)
		require.NoError(t, err)
		assert.Equal(t, q.randomness, blk.Data)
	})
	t.Run("all down", func(t *testing.T) {
		a := newTestRelay(t, now, vectorChain(q))
		a.set(func(r *testRelay) { r.status = http.StatusServiceUnavailable })
		b := newTestRelay(t, now, vectorChain(q))
		b.srv.Close()
		s := mustNew(t, q.chain, []string{a.URL(), b.URL()}, WithClock(entropy.NowFunc(now)))
		_, err := s.Fetch(context.Background(), 32)
		require.Error(t, err)
		var apiErr *entropy.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 503, apiErr.StatusCode)
		assert.Equal(t, 2*time.Second, entropy.RetryAfter(err), "Retry-After is passed on")
		assert.ErrorAs(t, err, new(*ConnError))
		assert.Equal(t, entropy.Transient, entropy.Classify(err))
		assert.Contains(t, err.Error(), "all 2 relays failed")
	})
}

// TestPermanentOnlyWhenEveryRelayIs: one relay's 404 must not make the
// failure permanent (it would open the Provider's breaker) while another
// relay failed transiently.
func TestPermanentOnlyWhenEveryRelayIs(t *testing.T) {
	q, now := quicknetAtRound(t)
	a := newTestRelay(t, now, vectorChain(q))
	a.set(func(r *testRelay) { r.status = http.StatusNotFound })
	b := newTestRelay(t, now, vectorChain(q))
	b.set(func(r *testRelay) { r.status = http.StatusBadGateway })

	s := mustNew(t, q.chain, []string{a.URL(), b.URL()}, WithClock(entropy.NowFunc(now)))
	_, err := s.Fetch(context.Background(), 32)
	assert.Equal(t, entropy.Transient, entropy.Classify(err), "%v", err)
	assert.Contains(t, err.Error(), "404")

	s = mustNew(t, q.chain, []string{a.URL(), a.URL()}, WithClock(entropy.NowFunc(now)))
	_, err = s.Fetch(context.Background(), 32)
	assert.Equal(t, entropy.Permanent, entropy.Classify(err), "%v", err)
	assert.ErrorIs(t, err, httpsource.ErrNotFound)
}

func TestTooEarly(t *testing.T) {
	vs := loadVectors(t)
	q := vs["quicknet"]
	// The relay's clock is a round behind ours: it answers 425.
	relayClock := &settableClock{t: q.chain.RoundTime(q.round - 1)}
	relay := newTestRelay(t, relayClock.Now, vectorChain(q))
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(fixedClock(q.chain.RoundTime(q.round)))))
	_, err := s.Fetch(context.Background(), 32)
	var apiErr *entropy.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusTooEarly, apiErr.StatusCode)
	assert.ErrorIs(t, err, ErrTooEarly)
	assert.Equal(t, entropy.Transient, entropy.Classify(err), "the round will come: retry")
	assert.NotEmpty(t, apiErr.RequestID)
	assert.Equal(t, "Too Early", apiErr.Message)

	// Not served, so it can be fetched once the relay has it.
	relayClock.set(q.chain.RoundTime(q.round))
	blk, err := s.Fetch(context.Background(), 32)
	require.NoError(t, err)
	assert.Equal(t, "123", blk.JobID)
}

// TestBadBeaconNeverServed: a relay whose beacon fails any check is a source
// failure; its bytes are never returned, and a good relay after it is used.
func TestBadBeaconNeverServed(t *testing.T) {
	vs := loadVectors(t)
	cases := map[string]struct {
		chain  string
		tamper func(asked uint64, b *beaconJSON)
		want   error
	}{
		"signature bit flipped (no longer a point)": {"quicknet", func(_ uint64, b *beaconJSON) {
			b.Signature = flipHex(b.Signature, 100)
		}, ErrMalformed},
		"signature replaced by another point": {"quicknet", func(_ uint64, b *beaconJSON) {
			b.Signature = hex.EncodeToString(bls12381.G1Generator().BytesCompressed())
			b.Randomness = ""
		}, ErrBadProof},
		"default signature replaced by another point": {"default", func(_ uint64, b *beaconJSON) {
			b.Signature = hex.EncodeToString(bls12381.G2Generator().BytesCompressed())
			b.Randomness = ""
		}, ErrBadProof},
		"randomness not from signature": {"quicknet", func(_ uint64, b *beaconJSON) {
			b.Randomness = flipHex(b.Randomness, 0)
		}, ErrBadProof},
		"previous signature changed": {"default", func(_ uint64, b *beaconJSON) {
			b.PreviousSignature = flipHex(b.PreviousSignature, 300)
		}, ErrBadProof},
		"previous signature dropped": {"default", func(_ uint64, b *beaconJSON) {
			b.PreviousSignature = ""
		}, ErrMalformed},
		"signature not hex": {"quicknet", func(_ uint64, b *beaconJSON) {
			b.Signature = "zz" + b.Signature[2:]
		}, ErrMalformed},
		"identity signature": {"quicknet", func(_ uint64, b *beaconJSON) {
			b.Signature = "c0" + strings.Repeat("00", 47)
			b.Randomness = ""
		}, ErrBadProof},
		"other round": {"quicknet", func(asked uint64, b *beaconJSON) {
			b.Round = asked + 1
		}, ErrWrongRound},
		"round missing": {"quicknet", func(_ uint64, b *beaconJSON) {
			b.Round = 0
		}, ErrMalformed},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v := vs[c.chain]
			now := fixedClock(v.chain.RoundTime(v.round))
			bad := newTestRelay(t, now, vectorChain(v))
			bad.set(func(r *testRelay) { r.tamper = c.tamper })

			s := mustNew(t, v.chain, []string{bad.URL()}, WithClock(entropy.NowFunc(now)))
			blk, err := s.Fetch(context.Background(), 32)
			require.ErrorIs(t, err, c.want)
			assert.Nil(t, blk.Data, "no bytes from a bad beacon")
			assert.Equal(t, entropy.Transient, entropy.Classify(err))

			good := newTestRelay(t, now, vectorChain(v))
			s = mustNew(t, v.chain, []string{bad.URL(), good.URL()}, WithClock(entropy.NowFunc(now)))
			blk, err = s.Fetch(context.Background(), 32)
			require.NoError(t, err)
			assert.Equal(t, v.randomness, blk.Data, "the good relay's beacon, not the bad one's")
		})
	}
}

// TestRelayAnswersOtherRound: a relay that answers a request for round N
// with a valid beacon of another round is refused, even though that beacon
// verifies for its own round.
func TestRelayAnswersOtherRound(t *testing.T) {
	vs := loadVectors(t)
	q := vs["quicknet"]
	now := fixedClock(q.chain.RoundTime(q.round + 5))
	relay := newTestRelay(t, now, vectorChain(q))
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
	// Serve round 123's real beacon for whatever is asked.
	relay.set(func(r *testRelay) { r.body = []byte(fmt.Sprintf(`{"round":123,"signature":"%x"}`, q.sig)) })
	_, err := s.Fetch(context.Background(), 32)
	require.ErrorIs(t, err, ErrWrongRound)
	require.ErrorIs(t, err, ErrBadProof)
	assert.Contains(t, err.Error(), "asked for round 128, got round 123")
}

func TestWrongChainRejected(t *testing.T) {
	vs := loadVectors(t)
	q := vs["quicknet"]
	now := fixedClock(q.chain.RoundTime(q.round))
	cases := map[string]func(*infoJSON){
		"other period":    func(j *infoJSON) { j.Period = 30 },
		"other genesis":   func(j *infoJSON) { j.GenesisTime++ },
		"other key":       func(j *infoJSON) { j.PublicKey = fmt.Sprintf("%x", flip(q.chain.PublicKey, 300)) },
		"other beacon id": func(j *infoJSON) { j.Metadata.BeaconID = "default" },
		"other scheme":    func(j *infoJSON) { j.SchemeID = SchemeChained },
		"stated hash":     func(j *infoJSON) { j.Hash = vs["default"].chain.HashString() },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			relay := newTestRelay(t, now, vectorChain(q))
			relay.set(func(r *testRelay) { r.infoEdit = edit })
			s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
			_, err := s.Fetch(context.Background(), 32)
			require.ErrorIs(t, err, ErrWrongChain)
			requirePaths(t, relay, q.chain.HashString(), "/H/info") // no beacon asked for
			// The check is not remembered as passed: the relay is asked again.
			_, err = s.Fetch(context.Background(), 32)
			require.ErrorIs(t, err, ErrWrongChain)
			assert.Len(t, relay.Paths(), 2)
		})
	}
	t.Run("malformed info", func(t *testing.T) {
		relay := newTestRelay(t, now, vectorChain(q))
		relay.set(func(r *testRelay) { r.infoEdit = func(j *infoJSON) { j.GroupHash = "not hex" } })
		s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
		_, err := s.Fetch(context.Background(), 32)
		require.ErrorIs(t, err, ErrMalformed)
	})
}

func TestInfoCheckedOncePerRelay(t *testing.T) {
	sg := newSigner(t, SchemeUnchainedG1, 3*time.Second, 1_700_000_000)
	clock := &settableClock{t: sg.info.RoundTime(5)}
	relay := newTestRelay(t, clock.Now, signerChain(sg))
	s := mustNew(t, sg.info, []string{relay.URL()}, WithClock(entropy.NowFunc(clock.Now)))
	for r := uint64(5); r < 8; r++ {
		clock.set(sg.info.RoundTime(r))
		_, err := s.Fetch(context.Background(), 32)
		require.NoError(t, err)
	}
	requirePaths(t, relay, sg.info.HashString(), "/H/info", "/H/public/5", "/H/public/6", "/H/public/7")
}

func TestBodyBounded(t *testing.T) {
	q, now := quicknetAtRound(t)
	relay := newTestRelay(t, now, vectorChain(q))
	relay.set(func(r *testRelay) { r.body = bytes.Repeat([]byte(" "), 1<<20) })
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
	_, err := s.Fetch(context.Background(), 32)
	require.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "body over")
}

// A relay's X-Request-Id goes into every error and the fallback labels
// that carry it: one of megabytes is left out, as a body that is no short
// text is; and the text of a network error, which may quote a header, is
// cut.
func TestRelayTextInErrorsIsBounded(t *testing.T) {
	q, now := quicknetAtRound(t)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", strings.Repeat("B", 1<<20))
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer huge.Close()
	s := mustNew(t, q.chain, []string{huge.URL}, WithClock(entropy.NowFunc(now)))
	_, err := s.Fetch(context.Background(), 32)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	assert.Empty(t, ae.RequestID)
	assert.Less(t, len(err.Error()), 1000, "error of %d bytes", len(err.Error()))

	// A malformed header line, which net/http quotes whole in its error.
	malformed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nX-Echo: %s\x01\r\n\r\n", strings.Repeat("C", 2<<20))
		_ = buf.Flush()
	}))
	defer malformed.Close()
	s = mustNew(t, q.chain, []string{malformed.URL}, WithClock(entropy.NowFunc(now)))
	_, err = s.Fetch(context.Background(), 32)
	require.ErrorAs(t, err, new(*ConnError))
	assert.Less(t, len(err.Error()), 2048, "error of %d bytes", len(err.Error()))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-42")
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer srv.Close()
	s = mustNew(t, q.chain, []string{srv.URL}, WithClock(entropy.NowFunc(now)))
	_, err = s.Fetch(context.Background(), 32)
	assert.Equal(t, "req-42", httpsource.RequestID(err))
}

func TestLatest(t *testing.T) {
	relay, vs := quicknetRelay(t)
	q := vs["quicknet"]
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(relay.now)))
	b, err := s.Latest(context.Background())
	require.NoError(t, err)
	assert.Equal(t, q.round, b.Round)
	assert.Equal(t, q.randomness, b.Randomness)
	// Latest hands nothing out: Fetch still serves the round.
	blk, err := s.Fetch(context.Background(), 32)
	require.NoError(t, err)
	assert.Equal(t, "123", blk.JobID)

	relay.set(func(r *testRelay) {
		r.tamper = func(_ uint64, b *beaconJSON) { b.Signature = flipHex(b.Signature, 9) }
	})
	_, err = s.Latest(context.Background())
	require.Error(t, err, "Latest verifies too")
}

func TestNew(t *testing.T) {
	q := Quicknet()
	s := mustNew(t, q, []string{"https://relay.example/drand/"})
	assert.Equal(t, "drand/quicknet", s.Name())
	assert.Equal(t, "https://relay.example/drand", s.relays[0].base)
	assert.Equal(t, "drand/default", mustNew(t, Default(), PublicRelays()).Name())
	assert.Equal(t, "beacon", mustNew(t, q, PublicRelays(), WithName("beacon")).Name())
	mustNew(t, q, []string{"http://127.0.0.1:8080", "http://[::1]:1", "http://localhost"})
	mustNew(t, q, []string{"http://relay.example"}, WithAllowInsecureHTTP())

	bad := map[string][]string{
		"no relays":          nil,
		"plain http":         {"http://relay.example"},
		"other scheme":       {"ftp://relay.example"},
		"no host":            {"https://"},
		"query":              {"https://relay.example/?x=1"},
		"fragment":           {"https://relay.example/#x"},
		"not a URL":          {"https://relay.example/%zz"},
		"one bad among good": {"https://relay.example", "gopher://x"},
	}
	for name, relays := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := New(q, relays)
			require.Error(t, err)
		})
	}
	t.Run("credentials", func(t *testing.T) {
		_, err := New(q, []string{"https://user:hunter2@relay.example"})
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "hunter2", "no credential in an error")
	})
	_, err := New(q, PublicRelays(), WithName(""))
	require.Error(t, err)
	c := Quicknet()
	c.PublicKey = append([]byte{0xc0}, make([]byte, 95)...) // identity key, hash recomputed
	c.Hash = c.ComputeHash()
	_, err = New(c, PublicRelays())
	require.ErrorIs(t, err, ErrBadProof, "an identity key is refused up front")
}

// A nil context or a Source that New did not make is a clear error from
// every method that asks a relay, never a panic.
func TestRequestsRefuseNilContextAndZeroSource(t *testing.T) {
	s := mustNew(t, Quicknet(), []string{"http://127.0.0.1:1"})
	var nilCtx context.Context
	_, err := s.Fetch(nilCtx, 32)
	assert.ErrorContains(t, err, "nil context")
	_, err = s.FetchRound(nilCtx, 5)
	assert.ErrorContains(t, err, "nil context")
	_, err = s.Latest(nilCtx)
	assert.ErrorContains(t, err, "nil context")

	var zero Source
	ctx := context.Background()
	_, err = zero.Fetch(ctx, 32)
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	_, err = zero.FetchRound(ctx, 5)
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	_, err = zero.Latest(ctx)
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	_, err = zero.Committed(5).ReadLabelled(ctx, make([]byte, 32))
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	assert.True(t, new(RoundEntropy).Due().IsZero())
}

// TestInsecureRedirectRefused: the default client applies the relay URL
// rules to redirects, so a loopback relay cannot send it to plain http
// elsewhere.
func TestInsecureRedirectRefused(t *testing.T) {
	redirect := httptest.NewServer(http.RedirectHandler("http://relay.example/x", http.StatusFound))
	defer redirect.Close()
	s := mustNew(t, Quicknet(), []string{redirect.URL})
	_, err := s.Fetch(context.Background(), 32)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plain http is allowed to loopback hosts only")
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	assert.Equal(t, 7*time.Second, retryAfter("7", now))
	assert.Equal(t, time.Duration(0), retryAfter("", now))
	assert.Equal(t, time.Duration(0), retryAfter("-3", now))
	assert.Equal(t, time.Duration(0), retryAfter("soon", now))
	assert.Equal(t, 10*time.Second, retryAfter(now.Add(10*time.Second).Format(http.TimeFormat), now))
	assert.Equal(t, time.Duration(0), retryAfter(now.Add(-time.Hour).Format(http.TimeFormat), now))
	// Too big for a time.Duration: the longest one, which the Provider caps,
	// never no hold at all.
	for _, v := range []string{strings.Repeat("9", 30), strings.Repeat("9", 400), "1e400", "1e30"} {
		assert.Equal(t, time.Duration(math.MaxInt64), retryAfter(v, now), "Retry-After %q", v)
	}
	assert.Equal(t, time.Duration(0), retryAfter("-1e400", now))
}

func TestShortText(t *testing.T) {
	assert.Equal(t, "Too Early", shortText([]byte("Too Early\n")))
	assert.Equal(t, "", shortText([]byte("a\x00b")))
	assert.Equal(t, "", shortText(bytes.Repeat([]byte("a"), 300)))
	assert.Equal(t, "", shortText([]byte{0xff, 0xfe}))
}

// settableClock is a clock that tests move by hand.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// flipHex flips bit i of a hex string's bytes.
func flipHex(s string, i int) string {
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		return s
	}
	return fmt.Sprintf("%x", flip(b, i))
}

// countingTransport counts the requests it carries.
type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func TestWithHTTPClient(t *testing.T) {
	relay, vs := quicknetRelay(t)
	q := vs["quicknet"]
	tr := &countingTransport{next: relay.srv.Client().Transport}
	s := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(relay.now)), WithHTTPClient(&http.Client{Transport: tr}))
	_, err := s.Fetch(context.Background(), 32)
	require.NoError(t, err)
	assert.Equal(t, int64(2), tr.n.Load(), "info and the round went through the given client")
	assert.Equal(t, q.chain.RoundTime(q.round), s.RoundTime(q.round))
	assert.Equal(t, q.round, s.RoundAt(s.RoundTime(q.round)))
}

func TestParseInfoRejects(t *testing.T) {
	good := `{"public_key":"00","period":3,"genesis_time":1,"hash":"` + strings.Repeat("00", 32) + `","groupHash":"00","schemeID":"x"}`
	_, err := parseInfo([]byte(good))
	require.NoError(t, err)
	for name, body := range map[string]string{
		"not JSON":       `{`,
		"zero period":    strings.Replace(good, `"period":3`, `"period":0`, 1),
		"huge period":    strings.Replace(good, `"period":3`, `"period":4294967296`, 1),
		"short hash":     strings.Replace(good, strings.Repeat("00", 32), "00", 1),
		"key not hex":    strings.Replace(good, `"public_key":"00"`, `"public_key":"0g"`, 1),
		"no group hash":  strings.Replace(good, `"groupHash":"00"`, `"groupHash":""`, 1),
		"key too long":   strings.Replace(good, `"public_key":"00"`, `"public_key":"`+strings.Repeat("00", 97)+`"`, 1),
		"period as text": strings.Replace(good, `"period":3`, `"period":"3s"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseInfo([]byte(body))
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

// TestProviderLabelsRoundPublic: through a Provider, a read of drand
// bytes is labelled verifiable, its span's JobID is the round in decimal and
// marked public, and the bytes are the round's randomness.
func TestProviderLabelsRoundPublic(t *testing.T) {
	vs := loadVectors(t)
	v := vs["quicknet"]
	now := fixedClock(v.chain.RoundTime(v.round).Add(time.Second))
	relay := newTestRelay(t, now, vectorChain(v))
	s := mustNew(t, v.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))
	p, err := entropy.New(s, entropy.WithPolicy(entropy.Defer), entropy.WithFetchSize(32), entropy.WithBufferSize(32))
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := make([]byte, 32)
	l, err := p.ReadLabelled(ctx, b)
	require.NoError(t, err)
	require.True(t, l.Verifiable)
	require.Len(t, l.Spans, 1)
	sp := l.Spans[0]
	assert.Equal(t, strconv.FormatUint(v.round, 10), sp.JobID)
	assert.True(t, sp.Public, "drand bytes are public")
	assert.Equal(t, "drand/quicknet", sp.Source)
	assert.Equal(t, v.randomness[sp.Offset:sp.Offset+sp.Length], b)
	assert.Contains(t, l.String(), "public")

	// The only round this relay has was served: the same round is not
	// served again, by Fetch or FetchRound.
	_, err = s.FetchRound(ctx, v.round)
	assert.ErrorIs(t, err, ErrRoundServed)
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	blk, err := s.Fetch(short, 32)
	assert.Error(t, err)
	assert.Nil(t, blk.Data)
}
