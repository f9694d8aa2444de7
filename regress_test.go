package entropy

import (
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

// Regressions whose story needs telling: each test's comment starts with a
// line saying what broke, then the interleaving that broke it.

// TestCloseAfterHookCloseWaitsForJournal: a Close that lost the race to a
// Close made by the fallback hook returned before the notifier had handed
// the last episode to the journal, so the episode was lost.
//
// The scene: a fallback hook that
// shuts the Provider down on the first fallback (Close from the notifier
// goroutine), then takes a moment (an alert, a log line), while the
// application runs its usual `defer j.Close(); defer p.Close()`.
//
// The interleaving, deterministic here, that lost the episode before a
// Close that loses the race to another Close waited for the notifier too
// (it failed in 20 of 20 runs then):
//  1. A Degrade read falls back; count opens an episode and queues its start.
//  2. The notifier delivers the start to the hook; the hook calls Close,
//     which wins the CAS, runs finishEpisode(true) (queues the end note of
//     the episode, 1 read / 8 bytes), cancels, waits for the refill only
//     (caller), zeroes the pool and closes closeDone; the hook goes on.
//  3. The application's Close loses the CAS, is not the notifier, waits on
//     closeDone, which is already closed, and returns at once: the notifier
//     goroutine is still running (in the hook) and the episode's end note is
//     still in its queue, not in the journal (contract points 9 and 10).
//  4. The application closes its journal; when the hook returns, the
//     notifier hands the end note to a closed journal: the episode is lost
//     (JournalErrors 1), though Stats counts its read.
//
// The hook waits at most 2 s for the application's Close to return, so the
// test takes that long now that Close waits for the hook.
func TestCloseAfterHookCloseWaitsForJournal(t *testing.T) {
	j := newMemJournal()
	src := newScriptSource("close-hook")
	src.set(&step{err: &APIError{StatusCode: 503}})
	hookClosed := make(chan struct{})
	appClosed := make(chan struct{})
	var release sync.Once
	defer release.Do(func() { close(appClosed) })
	var hookDone atomic.Bool
	var once sync.Once
	var p *Provider
	p, err := New(src, fast(WithPolicy(Degrade), WithShards(1), WithJournal(j), WithFallbackHook(func(ep FallbackEpisode) {
		if ep.Ended {
			return
		}
		once.Do(func() {
			assert.NoError(t, p.Close())
			close(hookClosed)
			select { // the hook's own work after Close, bounded
			case <-appClosed:
			case <-time.After(2 * time.Second):
			}
			hookDone.Store(true)
		})
	}))...)
	require.NoError(t, err)
	defer func() {
		release.Do(func() { close(appClosed) })
		require.True(t, waitWithin(p.wg.Wait, 10*time.Second), "the Provider's goroutines did not end")
	}()

	_, err = p.Read(make([]byte, 8))
	require.NoError(t, err)
	select {
	case <-hookClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("the fallback hook was not called")
	}

	require.NoError(t, p.Close())
	// Close has returned: every goroutine of the Provider has ended, and the
	// episode Close ended is in the journal.
	returnedWithHookRunning := !hookDone.Load()
	n, reads, byts := j.episodeSums()
	j.close() // defer j.Close() in the application
	release.Do(func() { close(appClosed) })
	require.True(t, waitWithin(p.wg.Wait, 10*time.Second), "the Provider's goroutines did not end")

	assert.False(t, returnedWithHookRunning, "Close returned while the notifier goroutine was still running the hook")
	assert.Equal(t, 1, n, "episodes in the journal when Close returned")
	assert.Equal(t, int64(1), reads, "episode reads in the journal when Close returned")
	assert.Equal(t, int64(8), byts, "episode bytes in the journal when Close returned")
	st := p.Stats()
	assert.Equal(t, uint64(1), st.FallbackReads)
	assert.Zero(t, st.JournalErrors, "the episode reached the journal only after the application closed it")
	n, _, _ = j.episodeSums()
	assert.Equal(t, 1, n, "the fallback episode was never recorded")
}

// TestJournalClosingProviderWhileReadersRace: a Close made by the journal
// itself (inside RecordFallback) did not wait for the notifier, so Close
// returned with episodes still queued and Stats ahead of the journal.
//
// The same fault with
// the journal itself closing the Provider (say, a journal wrapper that
// shuts the Provider down when it decides the audit trail is at risk) while
// readers race: Read, ReadLabelled and ReadSecret, lane reads (< 512 B) and
// direct reads (>= 512 B), verifiable and fallback, with the source going
// down now and then so that episodes end while the readers run.
//
// Interleaving (it failed in 20 of 20 runs before the fix): an episode ends
// (a verifiable read after an outage) and its
// note is queued; the notifier calls RecordFallback, which calls Close
// (caller): Close ends the last epoch, queues its own notes, and closes
// closeDone without waiting for the notifier, which is still inside this
// RecordFallback with more notes to deliver. The readers all stop with
// ErrClosed. The application's Close returns at once; Stats then counts
// every episode and fallback read, and the journal holds none of them yet.
func TestJournalClosingProviderWhileReadersRace(t *testing.T) {
	var p *Provider
	journalClosed := make(chan struct{})
	appClosed := make(chan struct{})
	var release sync.Once
	defer release.Do(func() { close(appClosed) })
	var once sync.Once
	j := newMemJournal()
	j.beforeFallback = func(FallbackEpisode) {
		once.Do(func() {
			assert.NoError(t, p.Close())
			close(journalClosed)
			select { // an fsync, bounded
			case <-appClosed:
			case <-time.After(2 * time.Second):
			}
		})
	}
	src := newScriptSource("close-racing")
	src.maxLen = 64
	p, err := New(src, fast(WithPolicy(Degrade), WithShards(2), WithBufferSize(256), WithFetchSize(64), WithJournal(j))...)
	require.NoError(t, err)
	defer func() {
		release.Do(func() { close(appClosed) })
		require.True(t, waitWithin(p.wg.Wait, 10*time.Second), "the Provider's goroutines did not end")
	}()
	full(t, p, 128)

	stop := make(chan struct{})
	sizes := []int{8, 600, 16, 7, 300, 1, 512, 24}
	wait := goReaders(6, 0, stop, func(g, i int) bool {
		if g == 0 && i%100 == 50 {
			src.set(nil, step{err: &APIError{StatusCode: 503}}, step{err: &APIError{StatusCode: 503}})
		}
		runtime.Gosched()
		b := make([]byte, sizes[(i+g)%len(sizes)])
		var err error
		switch (i + g) % 4 {
		case 0:
			_, err = p.Read(b)
		case 1, 3:
			_, err = p.ReadLabelled(context.Background(), b)
		case 2:
			_, err = p.ReadSecret(context.Background(), b)
		}
		if err != nil {
			assert.ErrorIs(t, err, ErrClosed, "reader %d read %d", g, i)
			return false
		}
		return true
	})
	select {
	case <-journalClosed:
	case <-time.After(20 * time.Second):
		close(stop)
		wait()
		t.Fatal("no fallback episode ended")
	}
	require.NoError(t, p.Close())
	close(stop)
	require.True(t, waitWithin(wait, 10*time.Second), "readers still running after Close")

	// Close has returned and every reader has stopped: the journal's
	// episodes add up to Stats (contract point 9).
	st := p.Stats()
	n, reads, byts := j.episodeSums()
	t.Logf("Stats: %d episodes, %d fallback reads, %d bytes; journal: %d, %d, %d", st.FallbackEpisodes, st.FallbackReads, st.FallbackBytes, n, reads, byts)
	assert.Equal(t, st.FallbackEpisodes, uint64(n), "episodes in the journal when Close returned")
	assert.Equal(t, int64(st.FallbackReads), reads, "episode reads in the journal when Close returned")
	assert.Equal(t, int64(st.FallbackBytes), byts, "episode bytes in the journal when Close returned")

	// Once the notifier is let go and ends, everything arrives: the records
	// were late, not miscounted.
	release.Do(func() { close(appClosed) })
	require.True(t, waitWithin(p.wg.Wait, 10*time.Second), "the Provider's goroutines did not end")
	n, reads, byts = j.episodeSums()
	assert.Equal(t, st.FallbackEpisodes, uint64(n), "episodes in the journal in the end")
	assert.Equal(t, fmt.Sprint(st.FallbackReads, st.FallbackBytes), fmt.Sprint(reads, byts), "episode reads and bytes in the journal in the end")
}

// TestReadRacingCloseIsInAnEpisode: a fallback read that raced Close was
// counted in Stats but recorded in no episode.
//
// Under Degrade with the
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
func TestReadRacingCloseIsInAnEpisode(t *testing.T) {
	const rounds = 40
	for round := 0; round < rounds; round++ {
		if msg := closeRaceRound(t, round); msg != "" {
			t.Fatalf("round %d of %d: %s", round, rounds, msg)
		}
	}
}

func closeRaceRound(t *testing.T, round int) string {
	t.Helper()
	var col episodeLog
	src := newScriptSource(fmt.Sprintf("epoch-close-%d", round))
	src.set(&step{err: &APIError{StatusCode: 503}})
	shards := 1 + round%3
	p, err := New(src, fast(WithPolicy(Degrade), WithShards(shards), WithBufferSize(256), WithFetchSize(64), WithFallbackHook(col.hook))...)
	require.NoError(t, err)

	var okReads, okBytes atomic.Uint64
	sizes := []int{1, 8, 33, 200, 600, 16, 512}
	wait := goReaders(8, 0, nil, func(g, i int) bool {
		b := make([]byte, sizes[(i+g)%len(sizes)])
		var err error
		if (i+g)%2 == 0 {
			_, err = p.Read(b)
		} else {
			var lb Label
			lb, err = p.ReadLabelled(context.Background(), b)
			if err == nil && lb.Verifiable {
				t.Errorf("a verifiable read from a source that never served")
				return false
			}
		}
		if errors.Is(err, ErrClosed) {
			return false
		}
		if err != nil {
			t.Errorf("Degrade read: %v", err)
			return false
		}
		okReads.Add(1)
		okBytes.Add(uint64(len(b)))
		return true
	})
	// Let the readers get going (an episode is open), then close under them.
	deadline := time.Now().Add(10 * time.Second)
	for okReads.Load() < uint64(50+round*10) {
		if time.Now().After(deadline) {
			_ = p.Close()
			wait()
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
	if !waitWithin(wait, 10*time.Second) {
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
