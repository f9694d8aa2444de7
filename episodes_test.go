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

// Contract point 9/10: a fallback read racing Close must not open an episode
// that nothing ever ends: after Close, InFallback is false and the hook saw
// as many ends as starts.
func TestNoEpisodeLeftOpenAfterClose(t *testing.T) {
	for iter := 0; iter < 200; iter++ {
		src := newScriptSource("q")
		src.set(&step{err: &APIError{StatusCode: 503}})
		var starts, ends atomic.Int64
		p, err := New(src, fast(WithFallbackHook(func(ep FallbackEpisode) {
			if ep.Ended {
				ends.Add(1)
			} else {
				starts.Add(1)
			}
		}))...)
		require.NoError(t, err)
		wait := goReaders(4, 0, nil, func(int, int) bool {
			_, err := p.Read(make([]byte, 8))
			return err == nil
		})
		time.Sleep(time.Millisecond)
		require.NoError(t, p.Close())
		wait()
		st := p.Stats()
		if st.InFallback || starts.Load() != ends.Load() {
			t.Fatalf("iteration %d: after Close InFallback=%v, hook saw %d starts and %d ends, %d episodes counted",
				iter, st.InFallback, starts.Load(), ends.Load(), st.FallbackEpisodes)
		}
	}
}

// TestEpisodesAddUpUnderChurn: under Degrade with a pool smaller than
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
func TestEpisodesAddUpUnderChurn(t *testing.T) {
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
			sizes := []int{8, 600, 16, 7, 300, 1, 512, 24}
			runReaders(6, 1500, func(g, i int) bool {
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
						return false
					}
					unl.Add(1)
				case 0, 1:
					lb, err := p.ReadLabelled(context.Background(), b)
					if err != nil {
						t.Errorf("ReadLabelled under Degrade: %v", err)
						return false
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
						return false
					}
					if !lb.Derived {
						okReads.Add(1)
						okBytes.Add(uint64(len(b)))
					}
				}
				return true
			})
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

// TestCloseRecordsReadsThatMetClose: a fallback read is counted when it
// is served and opens its episode after; one that meets Close in between
// (served, no episode open, Close before its count) must still be in an
// episode. The test stands in for that read by serving through local alone,
// which counts without opening an episode, then closes: Close records one
// episode, started and ended at Close, holding exactly those reads. After
// Close no fallback read is counted or served.
func TestCloseRecordsReadsThatMetClose(t *testing.T) {
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

// Contract point 9: every fallback episode is counted and reported, with
// start, end, reads, bytes and reason, through the hook, outside locks.
func TestFallbackEpisodesCounted(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	var mu sync.Mutex
	var seen []FallbackEpisode
	var p *Provider
	p = newTestProvider(t, src, fast(WithFallbackHook(func(ep FallbackEpisode) {
		_ = p.Stats() // calling back into the Provider must not deadlock
		mu.Lock()
		seen = append(seen, ep)
		mu.Unlock()
	}))...)
	require.Eventually(t, func() bool { return errors.Is(p.Stats().Unavailable, httpStatus(503)) }, 5*time.Second, time.Millisecond)
	for i := 0; i < 3; i++ {
		_, err := p.ReadLabelled(context.Background(), make([]byte, 10))
		require.NoError(t, err)
	}
	src.set(nil)
	require.Eventually(t, func() bool {
		lb, _ := p.ReadLabelled(context.Background(), make([]byte, 1))
		return lb.Verifiable
	}, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= 2 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 2)
	assert.False(t, seen[0].Ended)
	assert.True(t, seen[1].Ended)
	assert.ErrorIs(t, seen[1].Reason, httpStatus(503))
	assert.GreaterOrEqual(t, seen[1].Reads, int64(3))
	assert.GreaterOrEqual(t, seen[1].Bytes, int64(30))
	assert.False(t, seen[1].End.Before(seen[1].Start))
	st := p.Stats()
	assert.Equal(t, uint64(1), st.FallbackEpisodes)
	assert.Equal(t, st.FallbackBytes, uint64(seen[1].Bytes))
}
