package entropy

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	assert.ErrorIs(t, err, ErrEventParams)
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
	assert.ErrorIs(t, err, ErrEventParams)
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

// Contract point 8: a draw that was made and recorded is returned to the
// caller that made it, even if its context ends at that moment (otherwise the
// caller sees an error for a committed draw).
func TestRecordedEventReturnedWhenCtxEnds(t *testing.T) {
	j := newMemJournal()
	p := newTestProvider(t, newScriptSource("q"), fast(WithJournal(j))...)
	ready(t, p)
	errs := 0
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		j.afterEvent = cancel // the caller's context ends as the record becomes durable
		if _, err := p.ReadFor(ctx, "ev-"+string(rune('A'+i%26))+string(rune('a'+i/26)), make([]byte, 8)); err != nil {
			errs++
		}
	}
	assert.Zero(t, errs, "ReadFor returned the context's error for draws it had made and recorded")
}

// ReadFor takes only event names it can record and ask for again: valid
// UTF-8 of at most maxEventName bytes. Others draw nothing.
func TestReadForRefusesEventNamesItCannotRecord(t *testing.T) {
	src := newScriptSource("names")
	p := newTestProvider(t, src, fast()...)
	ready(t, p)
	before := p.Stats().VerifiableReads
	refused := []string{"", "round-\xff", "M\xe4rz", strings.Repeat("n", maxEventName+1)}
	for _, name := range append(refused, forgingNames...) {
		b := []byte{1, 2, 3, 4}
		_, err := p.ReadFor(context.Background(), name, b)
		require.ErrorIs(t, err, ErrEventName, "%.20q", name)
		assert.Equal(t, []byte{1, 2, 3, 4}, b, "a refused event name must not touch b")
	}
	assert.Equal(t, before, p.Stats().VerifiableReads, "a refused event name drew bytes")

	for _, name := range []string{"März-2026", strings.Repeat("n", maxEventName), "round 7"} {
		b := make([]byte, 4)
		lb, err := p.ReadFor(context.Background(), name, b)
		require.NoError(t, err, "%.20q", name)
		assert.True(t, lb.Verifiable)
	}
}

// An event's record reaches the journal after the records of the blocks its
// bytes came from, even when block records are slow to write: a crash
// between the two must not leave an event naming jobs the journal never saw.
func TestEventRecordFollowsItsBlockRecords(t *testing.T) {
	j := newMemJournal()
	j.blockGate = make(chan struct{})
	src := newScriptSource("order")
	p := newTestProvider(t, src, fast(WithJournal(j))...)
	ready(t, p)
	// Block records are held back for a moment; the draw must wait for them.
	var once sync.Once
	open := func() { once.Do(func() { close(j.blockGate) }) }
	time.AfterFunc(20*time.Millisecond, open)
	defer open() // Close waits for the notifier, which may be at the gate
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lb, err := p.ReadFor(ctx, "round-1", make([]byte, 32))
	require.NoError(t, err)
	require.True(t, lb.Verifiable)
	j.mu.Lock()
	defer j.mu.Unlock()
	assert.Empty(t, j.early, "event records written before the block records they name")
}

// The same holds for a draw made from a fallback hook, on the goroutine
// that writes the block records: the hook starts the draw when an episode
// starts, the source recovers, and the blocks the draw takes have their
// records queued behind the hook. The draw writes them before its event.
func TestEventDrawnFromAHookFollowsItsBlockRecords(t *testing.T) {
	j := newMemJournal()
	src := newScriptSource("hooked")
	src.set(&step{err: &APIError{StatusCode: 503}})
	drawn := make(chan error, 1)
	var once sync.Once
	var p *Provider
	hook := func(ep FallbackEpisode) {
		if ep.Ended {
			return
		}
		once.Do(func() {
			src.set(nil) // the source recovers while the hook draws
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := p.ReadFor(ctx, "from-a-hook", make([]byte, 32))
			drawn <- err
		})
	}
	p = newTestProvider(t, src, fast(WithPolicy(Degrade), WithJournal(j), WithFallbackHook(hook))...)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	require.False(t, lb.Verifiable, "the source is down: the read falls back and starts an episode")
	select {
	case err := <-drawn:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("the hook's draw did not end")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	require.Contains(t, j.events, "from-a-hook")
	assert.Empty(t, j.early, "event records written before the block records they name")
}

// lateJournal is a memJournal shared with another replica that records every
// event between this Provider's lookup and its record: LookupEvent never
// finds an event, and RecordEvent stores the other replica's record first.
type lateJournal struct {
	*memJournal
	winner func(EventRecord) EventRecord // the other replica's record for an event
}

func (j *lateJournal) LookupEvent(context.Context, string) (EventRecord, bool, error) {
	return EventRecord{}, false, nil
}

func (j *lateJournal) RecordEvent(ctx context.Context, r EventRecord) (EventRecord, error) {
	j.mu.Lock()
	if _, ok := j.events[r.Event]; !ok {
		j.events[r.Event] = j.winner(r)
	}
	j.mu.Unlock()
	return j.memJournal.RecordEvent(ctx, r)
}

// Contract point 8 across a fleet: when another replica sharing the journal
// records an event first, ReadFor returns the stored bytes and label, not the
// bytes it took itself; those are counted as discarded and never served.
func TestEventRecordedFirstByAnotherReplicaWins(t *testing.T) {
	other := []byte("the other replica's 16")
	otherLabel := Label{Verifiable: true, Spans: []Span{{Source: "quantropy", JobID: "job-of-replica-2", Offset: 0, Length: len(other)}}}
	j := &lateJournal{memJournal: newMemJournal(), winner: func(r EventRecord) EventRecord {
		return EventRecord{Event: r.Event, Data: bytes.Clone(other), Label: otherLabel, Time: r.Time}
	}}
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithJournal(j))...)
	ready(t, p)

	b := make([]byte, len(other))
	lb, err := p.ReadFor(context.Background(), "lotto-2026-12-05", b)
	require.NoError(t, err)
	assert.Equal(t, other, b, "the stored record's bytes")
	assert.Equal(t, otherLabel, lb, "the stored record's label")
	st := p.Stats()
	assert.Equal(t, uint64(len(other)), st.EventBytesDiscarded, "the bytes this Provider took for the event")
	assert.Zero(t, st.VerifiableReads, "nothing of this Provider's was served")

	// Asked again, the same answer, from memory: no second draw.
	b2 := make([]byte, len(other))
	lb2, err := p.ReadFor(context.Background(), "lotto-2026-12-05", b2)
	require.NoError(t, err)
	assert.Equal(t, other, b2)
	assert.Equal(t, otherLabel, lb2)
	assert.Equal(t, uint64(len(other)), p.Stats().EventBytesDiscarded)
}

// stallingLookups is a memJournal whose LookupEvent stalls, as a database
// that no longer answers does, until its context ends.
type stallingLookups struct {
	*memJournal
	calls atomic.Int32
}

func (j *stallingLookups) LookupEvent(ctx context.Context, _ string) (EventRecord, bool, error) {
	j.calls.Add(1)
	<-ctx.Done()
	return EventRecord{}, false, ctx.Err()
}

// Close ends an event draw that waits on a journal that stalls, as it ends
// a draw waiting for bytes: ReadFor returns ErrClosed, and leaves no call
// to the journal behind it (an application closes its journal after the
// Provider, and pgjournal's Close waits for the calls in flight).
func TestCloseEndsAnEventDrawWaitingOnTheJournal(t *testing.T) {
	j := &stallingLookups{memJournal: newMemJournal()}
	p, err := New(newScriptSource("quantropy"), fast(WithJournal(j))...)
	require.NoError(t, err)
	ready(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the call if Close did not
	done := make(chan error, 1)
	go func() {
		_, err := p.ReadFor(ctx, "raffle", make([]byte, 16))
		done <- err
	}()
	require.Eventually(t, func() bool { return j.calls.Load() > 0 }, 10*time.Second, time.Millisecond)
	require.NoError(t, p.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("ReadFor still waits on the journal after Close")
	}
}

// An event draw from the pool (a source that binds no job to a request)
// ends when every source refuses permanently, under every policy, with
// that error, as a draw of a bound job does: waiting out the caller's
// context on a refused key would only hide the cause behind its deadline.
func TestEventDrawEndsWhenEverySourceRefusesPermanently(t *testing.T) {
	for _, pol := range []Policy{Degrade, Defer, Fail} {
		t.Run(pol.String(), func(t *testing.T) {
			src := newScriptSource("q")
			src.set(&step{err: &APIError{StatusCode: 401, Message: "bad key"}})
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithBufferSize(1024), WithFetchSize(1024))...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := p.ReadFor(ctx, "round-1", make([]byte, 32))
			permanentCause(t, "ReadFor", err)
			_, err = p.ReadEvent(ctx, "round-2", []byte("params"), make([]byte, 32))
			permanentCause(t, "ReadEvent", err)
		})
	}
}

// permanentCause checks that err is the error of a source that refuses
// permanently (401 here): ErrUnavailable, ErrPermanent and the source's
// *APIError all reachable.
func permanentCause(t *testing.T, what string, err error) {
	t.Helper()
	assert.ErrorIs(t, err, ErrUnavailable, what)
	assert.ErrorIs(t, err, ErrPermanent, what)
	var ae *APIError
	if assert.ErrorAs(t, err, &ae, what) {
		assert.Equal(t, 401, ae.StatusCode, what)
	}
}
