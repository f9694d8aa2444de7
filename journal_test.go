package entropy

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fallback episodes are journalled when they end (at Close at the latest).
func TestFallbackEpisodeJournalled(t *testing.T) {
	j := newMemJournal()
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 500}})
	p, err := New(src, fast(WithJournal(j))...)
	require.NoError(t, err)
	_, err = p.ReadLabelled(context.Background(), make([]byte, 10))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	j.mu.Lock()
	defer j.mu.Unlock()
	require.Len(t, j.episodes, 1)
	assert.True(t, j.episodes[0].Ended)
	assert.Equal(t, int64(10), j.episodes[0].Bytes)
}

// A block or fallback record the journal fails to write is retried, in
// order, until the journal takes it: nothing is dropped, every failed
// attempt is counted, and an event draw meanwhile fails with an error that
// wraps the journal's. When the journal is back, the same Provider draws.
func TestJournalRecordsRetriedUntilWritten(t *testing.T) {
	down := errors.New("journal database unreachable")
	j := newMemJournal()
	j.failBlock = down
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithJournal(j))...)
	ready(t, p)
	require.Eventually(t, func() bool { return p.Stats().JournalErrors >= 2 }, 10*time.Second, time.Millisecond,
		"failed writes are retried and counted")

	_, err := p.ReadFor(context.Background(), "raffle", make([]byte, 16))
	require.ErrorIs(t, err, down, "an event draw cannot follow block records that are not written")
	assert.Equal(t, uint64(16), p.Stats().EventBytesDiscarded)

	j.mu.Lock()
	j.failBlock = nil
	j.mu.Unlock()
	b := make([]byte, 16)
	lb, err := p.ReadFor(context.Background(), "raffle", b)
	require.NoError(t, err, "the Provider recovers by itself")
	assert.True(t, lb.Verifiable)
	j.mu.Lock()
	defer j.mu.Unlock()
	var jobs []string
	for _, blk := range j.blocks {
		jobs = append(jobs, blk.JobID)
	}
	var fetched []string
	src.mu.Lock()
	for id := range src.jobs {
		fetched = append(fetched, id)
	}
	src.mu.Unlock()
	for _, sp := range lb.Spans {
		assert.Contains(t, jobs, sp.JobID, "the event's blocks are recorded")
	}
	assert.Subset(t, fetched, jobs)
	assert.Len(t, j.events, 1)
}

// stallingBlocks is a memJournal whose RecordBlock stalls, as a database
// that no longer answers does, until its context ends.
type stallingBlocks struct {
	*memJournal
	calls, ended atomic.Int32
}

func (j *stallingBlocks) RecordBlock(ctx context.Context, _ BlockRecord) error {
	j.calls.Add(1)
	<-ctx.Done()
	j.ended.Add(1)
	return ctx.Err()
}

// A journal that stalls holds Close for the close budget, not for the
// journal call's own timeout: the call in flight when Close begins is
// ended, and its record is counted lost.
func TestStalledJournalHoldsCloseOnlyForItsBudget(t *testing.T) {
	j := &stallingBlocks{memJournal: newMemJournal()}
	p, err := New(newScriptSource("quantropy"), fast(WithJournal(j))...)
	require.NoError(t, err)
	ready(t, p)
	require.Eventually(t, func() bool { return j.calls.Load() > 0 }, 10*time.Second, time.Millisecond, "the block's record is on its way")
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(journalCallTimeout - time.Second):
		t.Fatalf("Close waited for the stalled call's own timeout (%v), not the close budget (%v)", journalCallTimeout, journalCloseBudget)
	}
	assert.Equal(t, j.calls.Load(), j.ended.Load(), "a call to the journal outlived Close")
	assert.NotZero(t, p.Stats().JournalLost, "the record of the stalled call is counted lost")
}

// A journal that never comes back does not hang Close: the records left are
// given up after a bounded time, each counted in JournalLost.
func TestJournalRecordsLostAtCloseAreCounted(t *testing.T) {
	j := newMemJournal()
	j.failBlock = errors.New("journal gone")
	p, err := New(newScriptSource("quantropy"), fast(WithJournal(j))...)
	require.NoError(t, err)
	ready(t, p)
	require.NoError(t, p.Close())
	st := p.Stats()
	assert.NotZero(t, st.JournalErrors)
	assert.NotZero(t, st.JournalLost, "records unwritten at Close are counted")
	assert.Empty(t, j.blocks)
}

// ctxJournal is a memJournal whose block and fallback appends refuse a ctx
// that has ended, as package journal's and pgjournal's do.
type ctxJournal struct{ *memJournal }

func (j ctxJournal) RecordBlock(ctx context.Context, b BlockRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return j.memJournal.RecordBlock(ctx, b)
}

func (j ctxJournal) RecordFallback(ctx context.Context, e FallbackEpisode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return j.memJournal.RecordFallback(ctx, e)
}

// A fallback hook that takes longer than the close budget when Close ends
// its episode (an alert sent over the network) does not cost a journal
// that answers its records: the budget bounds the journal, not the hooks
// the notifier runs before it gets to the journal.
func TestSlowHookAtCloseLosesNoJournalRecord(t *testing.T) {
	j := ctxJournal{newMemJournal()}
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p, err := New(src, fast(WithPolicy(Degrade), WithJournal(j), WithFallbackHook(func(ep FallbackEpisode) {
		if ep.Ended {
			time.Sleep(journalCloseBudget + 500*time.Millisecond)
		}
	}))...)
	require.NoError(t, err)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	require.False(t, lb.Verifiable, "the source is down: the read falls back and opens an episode")
	require.NoError(t, p.Close())
	st := p.Stats()
	assert.Zero(t, st.JournalLost, "records lost though the journal answered every call")
	n, reads, _ := j.episodeSums()
	assert.Equal(t, 1, n, "the episode Close ended is in the journal")
	assert.Equal(t, int64(1), reads)
}
