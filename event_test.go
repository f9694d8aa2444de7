package entropy

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memJournal is an in-memory Journal; it outlives Providers, as a file
// journal outlives a process.
type memJournal struct {
	mu        sync.Mutex
	blocks    []BlockRecord
	episodes  []FallbackEpisode
	events    map[string]EventRecord
	failEvent error
}

func newMemJournal() *memJournal { return &memJournal{events: map[string]EventRecord{}} }

func (j *memJournal) RecordBlock(b BlockRecord) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.blocks = append(j.blocks, b)
	return nil
}

func (j *memJournal) RecordFallback(e FallbackEpisode) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.episodes = append(j.episodes, e)
	return nil
}

func (j *memJournal) RecordEvent(e EventRecord) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failEvent != nil {
		return j.failEvent
	}
	if _, ok := j.events[e.Event]; ok {
		return errors.New("event recorded twice")
	}
	e.Data = bytes.Clone(e.Data)
	j.events[e.Event] = e
	return nil
}

func (j *memJournal) LookupEvent(name string) (EventRecord, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.events[name]
	return e, ok, nil
}

// Contract point 8: many goroutines asking for one event share one draw and
// get the same bytes and label; the bytes are verifiable and were taken once.
func TestEventDrawnOnce(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast()...)
	type result struct {
		b  []byte
		lb Label
	}
	results := make(chan result, 16)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 32)
			lb, err := p.ReadFor(context.Background(), "lottery-2026-11-22", b)
			assert.NoError(t, err)
			results <- result{b, lb}
		}()
	}
	wg.Wait()
	close(results)
	var first *result
	for r := range results {
		if first == nil {
			first = &r
			assert.True(t, r.lb.Verifiable)
			assert.Empty(t, newLedger(src).check(r.b, r.lb))
			continue
		}
		assert.Equal(t, first.b, r.b)
		assert.Equal(t, first.lb, r.lb)
	}
	// A different size for the same event is an error, not a re-roll.
	_, err := p.ReadFor(context.Background(), "lottery-2026-11-22", make([]byte, 33))
	assert.ErrorIs(t, err, ErrEventSize)
	// A different event draws new bytes.
	other := make([]byte, 32)
	_, err = p.ReadFor(context.Background(), "lottery-2026-11-29", other)
	require.NoError(t, err)
	assert.NotEqual(t, first.b, other)
	assert.Equal(t, uint64(2), p.Stats().VerifiableReads, "two events, two draws")
}

// Contract point 8 across restarts: a new Provider with the same journal
// returns the recorded bytes and label without drawing.
func TestEventSurvivesRestart(t *testing.T) {
	j := newMemJournal()
	src := newScriptSource("quantropy")
	p1, err := New(src, fast(WithJournal(j))...)
	require.NoError(t, err)
	b1 := make([]byte, 32)
	lb1, err := p1.ReadFor(context.Background(), "raffle", b1)
	require.NoError(t, err)
	require.NoError(t, p1.Close())
	require.Len(t, j.events, 1)
	assert.NotEmpty(t, j.blocks, "blocks fetched are journalled")

	src2 := newScriptSource("quantropy-restarted")
	p2 := newTestProvider(t, src2, fast(WithJournal(j))...)
	b2 := make([]byte, 32)
	lb2, err := p2.ReadFor(context.Background(), "raffle", b2)
	require.NoError(t, err)
	assert.Equal(t, b1, b2)
	assert.Equal(t, lb1, lb2)
	assert.Zero(t, p2.Stats().VerifiableReads, "nothing was drawn after the restart")
	_, err = p2.ReadFor(context.Background(), "raffle", make([]byte, 16))
	assert.ErrorIs(t, err, ErrEventSize)
}

// An event draw that cannot be recorded is not handed out, and a later call
// draws anew (nothing was seen, so it is not a re-roll).
func TestEventNotServedUnlessRecorded(t *testing.T) {
	j := newMemJournal()
	j.failEvent = errors.New("disk full")
	p := newTestProvider(t, newScriptSource("quantropy"), fast(WithJournal(j))...)
	b := make([]byte, 16)
	_, err := p.ReadFor(context.Background(), "e", b)
	require.Error(t, err)
	assert.Equal(t, make([]byte, 16), b)
	j.mu.Lock()
	j.failEvent = nil
	j.mu.Unlock()
	_, err = p.ReadFor(context.Background(), "e", b)
	require.NoError(t, err)
	assert.NotEqual(t, make([]byte, 16), b)
}

// Event draws must be verifiable whatever the policy: with the source down
// they wait on the context, and never fall back.
func TestEventNeverFallsBack(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p := newTestProvider(t, src, fast(WithPolicy(Degrade))...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := p.ReadFor(ctx, "e", make([]byte, 8))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, p.Stats().FallbackReads)
}

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
