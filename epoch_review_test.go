package entropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEpochReviewReadRacingCloseIsInAnEpisode: under Degrade with the
// source down, readers serve fallback reads (lane reads and direct reads)
// while Close runs. Every read that returned bytes is counted in Stats, so
// once Close has returned and every reader has stopped, the episodes handed
// to the hook must add up to Stats' fallback reads and bytes (contract point
// 9: every fallback episode is recorded with the bytes served in it).
//
// The interleaving it was written for (it failed in 20 of 20 runs before
// Close ended the last fallback epoch): reader R passed Read's closed checks
// and was about to call fallbackRead; Close set p.closed and ran
// finishEpisode(true), which ended the open episode and moved fbEpoch from E
// to E+1; R then made a lane run of epoch E+1 (or counted a direct read in
// it), served its bytes, and found episodes.closed set in count. Stats
// counted R's read; no episode ever ended epoch E+1, so none held it. (With
// no episode open at Close, R's epoch was never ended either.) Now Close's
// last endCounts stops fallback counting: such a read returns ErrClosed with
// b zeroed, and reads counted before it that met Close before opening their
// episode get one of their own (closeEpisodes).
func TestEpochReviewReadRacingCloseIsInAnEpisode(t *testing.T) {
	const rounds = 40
	for round := 0; round < rounds; round++ {
		if msg := epochCloseRound(t, round); msg != "" {
			t.Fatalf("round %d of %d: %s", round, rounds, msg)
		}
	}
}

func epochCloseRound(t *testing.T, round int) string {
	t.Helper()
	var col episodeLog
	src := newScriptSource(fmt.Sprintf("epoch-close-%d", round))
	src.set(&step{err: &APIError{StatusCode: 503}})
	shards := 1 + round%3
	p, err := New(src, fast(WithPolicy(Degrade), WithShards(shards), WithBufferSize(256), WithFetchSize(64), WithFallbackHook(col.hook))...)
	require.NoError(t, err)

	var okReads, okBytes atomic.Uint64
	var wg sync.WaitGroup
	sizes := []int{1, 8, 33, 200, 600, 16, 512}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				b := make([]byte, sizes[(i+g)%len(sizes)])
				var err error
				if (i+g)%2 == 0 {
					_, err = p.Read(b)
				} else {
					var lb Label
					lb, err = p.ReadLabelled(context.Background(), b)
					if err == nil && lb.Verifiable {
						t.Errorf("a verifiable read from a source that never served")
						return
					}
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Degrade read: %v", err)
					return
				}
				okReads.Add(1)
				okBytes.Add(uint64(len(b)))
			}
		}(g)
	}
	// Let the readers get going (an episode is open), then close under them.
	deadline := time.Now().Add(10 * time.Second)
	for okReads.Load() < uint64(50+round*10) {
		if time.Now().After(deadline) {
			_ = p.Close()
			wg.Wait()
			return "readers served too few fallback reads"
		}
		time.Sleep(50 * time.Microsecond)
	}
	closeErr := make(chan error, 1)
	go func() { closeErr <- p.Close() }()
	select {
	case err := <-closeErr:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		return "Close did not return"
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return "readers still running after Close"
	}
	if t.Failed() {
		return "a reader failed"
	}

	st := p.Stats()
	// The counters themselves count every read that returned bytes.
	if st.FallbackReads != okReads.Load() || st.FallbackBytes != okBytes.Load() {
		return fmt.Sprintf("Stats counts %d reads / %d bytes, readers got %d / %d", st.FallbackReads, st.FallbackBytes, okReads.Load(), okBytes.Load())
	}
	started, ended, reads, byts, empty := col.sums()
	if started != ended || uint64(started) != st.FallbackEpisodes {
		return fmt.Sprintf("%d episodes started (Stats %d), %d ended", started, st.FallbackEpisodes, ended)
	}
	if empty > 0 {
		return fmt.Sprintf("%d of %d ended episodes hold no read", empty, ended)
	}
	if uint64(reads) != st.FallbackReads || uint64(byts) != st.FallbackBytes {
		return fmt.Sprintf("episodes hold %d reads / %d bytes, Stats counts %d / %d: %d reads (%d bytes) served around Close are in no episode",
			reads, byts, st.FallbackReads, st.FallbackBytes, int64(st.FallbackReads)-reads, int64(st.FallbackBytes)-byts)
	}
	return ""
}

// TestEpochReviewChurnEpisodesAddUp: under Degrade with a pool smaller than
// some reads, goroutines mix small lane reads, direct reads (>= localDirect)
// and verifiable reads, while the source goes up and down, so episodes open
// and end all the time. The readers stop before Close (no read races it).
// Then the episodes' reads and bytes add up to Stats', every ended episode
// holds at least one read and one byte, and every episode that started ended.
//
// A fallback read is counted as it is served and opens its episode just
// after; before fallback epochs, a verifiable read that ended the open
// episode between the two put the read in the episode that ended, and the
// read then opened one that ended with zero reads: this test failed in 20 of
// 20 runs then.
func TestEpochReviewChurnEpisodesAddUp(t *testing.T) {
	for _, shards := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("shards%d", shards), func(t *testing.T) {
			var col episodeLog
			src := newScriptSource(fmt.Sprintf("epoch-churn-%d", shards))
			src.maxLen = 64
			p, err := New(src, fast(WithPolicy(Degrade), WithShards(shards), WithBufferSize(256), WithFetchSize(64), WithFallbackHook(col.hook))...)
			require.NoError(t, err)
			defer func() { _ = p.Close() }()
			full(t, p, 128)

			var okReads, okBytes atomic.Uint64 // fallback labelled reads the readers got
			var nV, unl atomic.Uint64          // verifiable labelled reads; unlabelled Reads
			var wg sync.WaitGroup
			sizes := []int{8, 600, 16, 7, 300, 1, 512, 24}
			for g := 0; g < 6; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < 1500; i++ {
						if g == 0 && i%300 == 150 {
							// A short outage now and then.
							src.set(nil, step{err: &APIError{StatusCode: 503}}, step{err: &APIError{StatusCode: 503}})
						}
						runtime.Gosched() // let the refill keep up: episodes end as often as they start
						b := make([]byte, sizes[(i+g)%len(sizes)])
						switch (i + g) % 4 {
						case 3:
							if _, err := p.Read(b); err != nil {
								t.Errorf("Read under Degrade: %v", err)
								return
							}
							unl.Add(1)
						case 0, 1:
							lb, err := p.ReadLabelled(context.Background(), b)
							if err != nil {
								t.Errorf("ReadLabelled under Degrade: %v", err)
								return
							}
							if lb.Verifiable {
								nV.Add(1)
							} else {
								okReads.Add(1)
								okBytes.Add(uint64(len(b)))
							}
						case 2:
							lb, err := p.ReadSecret(context.Background(), b)
							if err != nil {
								t.Errorf("ReadSecret under Degrade: %v", err)
								return
							}
							if !lb.Derived {
								okReads.Add(1)
								okBytes.Add(uint64(len(b)))
							}
						}
					}
				}(g)
			}
			wg.Wait()
			require.False(t, t.Failed())
			require.NoError(t, p.Close())

			st := p.Stats()
			assert.Positive(t, nV.Load(), "no verifiable read")
			// An unlabelled Read may be either class; every read is counted once.
			assert.Equal(t, nV.Load()+okReads.Load()+unl.Load(), st.VerifiableReads+st.FallbackReads, "reads counted")
			assert.GreaterOrEqual(t, st.FallbackReads, okReads.Load(), "fallback reads counted")
			assert.GreaterOrEqual(t, st.FallbackBytes, okBytes.Load(), "fallback bytes counted")
			started, ended, reads, byts, empty := col.sums()
			t.Logf("%d episodes ended, %d fallback reads, %d verifiable reads", ended, st.FallbackReads, nV.Load())
			assert.Greater(t, ended, 1, "episodes ended")
			assert.Equal(t, started, ended, "every episode that started ended")
			assert.Equal(t, st.FallbackEpisodes, uint64(started))
			assert.Zero(t, empty, "%d of %d ended episodes hold no read", empty, ended)
			assert.Equal(t, int64(st.FallbackReads), reads, "episode reads add up")
			assert.Equal(t, int64(st.FallbackBytes), byts, "episode bytes add up")
		})
	}
}

// TestEpochCloseRecordsReadsThatMetClose: a fallback read is counted when it
// is served and opens its episode after; one that meets Close in between
// (served, no episode open, Close before its count) must still be in an
// episode. The test stands in for that read by serving through local alone,
// which counts without opening an episode, then closes: Close records one
// episode, started and ended at Close, holding exactly those reads. After
// Close no fallback read is counted or served.
func TestEpochCloseRecordsReadsThatMetClose(t *testing.T) {
	var col episodeLog
	src := newScriptSource("epoch-met-close")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p, err := New(src, fast(WithPolicy(Degrade), WithShards(1), WithFallbackHook(col.hook))...)
	require.NoError(t, err)
	s := p.shards[0]
	for _, n := range []int{16, 700} { // a lane read and a direct read
		_, ok := p.local(s, make([]byte, n))
		require.True(t, ok)
	}
	require.False(t, p.episodes.open.Load(), "local opens no episode")
	require.NoError(t, p.Close())

	started, ended, reads, byts, empty := col.sums()
	assert.Equal(t, 1, started)
	assert.Equal(t, 1, ended)
	assert.Zero(t, empty)
	assert.Equal(t, int64(2), reads)
	assert.Equal(t, int64(716), byts)
	st := p.Stats()
	assert.Equal(t, uint64(1), st.FallbackEpisodes)
	assert.Equal(t, uint64(2), st.FallbackReads)
	assert.Equal(t, uint64(716), st.FallbackBytes)

	// After Close: nothing served, nothing counted, b zeroed.
	for _, n := range []int{16, 700} {
		b := bytes.Repeat([]byte{0xAA}, n)
		require.False(t, p.fallbackRead(s, b), "a fallback read after Close")
		require.Equal(t, make([]byte, n), b, "b after a refused fallback read")
	}
	assert.Equal(t, uint64(2), p.Stats().FallbackReads)
}
