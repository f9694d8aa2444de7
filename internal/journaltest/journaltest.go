// Package journaltest is the conformance suite of entropy.Journal: every
// journal the module ships (the file journal, the PostgreSQL journal) runs
// it, so that a Provider gets the same guarantees from each.
package journaltest

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// Run runs the conformance suite. open must return a new, empty journal each
// time it is called, and close it when t ends (t.Cleanup).
//
// Times are compared to the microsecond: a journal may keep no finer.
func Run(t *testing.T, open func(t *testing.T) entropy.Journal) {
	t.Run("LookupOfUnknownEvent", func(t *testing.T) {
		j := open(t)
		_, ok, err := j.LookupEvent(context.Background(), "never-drawn")
		require.NoError(t, err)
		assert.False(t, ok)
	})

	t.Run("RecordedEventIsFound", func(t *testing.T) {
		j := open(t)
		for _, r := range []entropy.EventRecord{sampleEvent("lotto-2026-12-05", 32), fallbackEvent(), unicodeEvent()} {
			stored, err := j.RecordEvent(context.Background(), r)
			require.NoError(t, err)
			requireSameEvent(t, r, stored, "RecordEvent returns the record it stored")
			got := lookup(t, j, r.Event)
			requireSameEvent(t, r, got, "LookupEvent returns the record")
		}
	})

	t.Run("SecondRecordReturnsTheFirst", func(t *testing.T) {
		j := open(t)
		first := sampleEvent("raffle", 16)
		_, err := j.RecordEvent(context.Background(), first)
		require.NoError(t, err)
		second := sampleEvent("raffle", 24) // a re-roll, another size even
		stored, err := j.RecordEvent(context.Background(), second)
		require.NoError(t, err)
		requireSameEvent(t, first, stored, "insert-if-absent returns the record stored first")
		got := lookup(t, j, "raffle")
		requireSameEvent(t, first, got, "the first record stays")
	})

	t.Run("ConcurrentRecordsOfOneEventStoreOne", func(t *testing.T) {
		j := open(t)
		const callers = 16
		offered := make([]entropy.EventRecord, callers)
		stored := make([]entropy.EventRecord, callers)
		var wg sync.WaitGroup
		for i := range callers {
			offered[i] = sampleEvent("draw-at-once", 32)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				stored[i], err = j.RecordEvent(context.Background(), offered[i])
				assert.NoError(t, err, "caller %d", i)
			}()
		}
		wg.Wait()
		winners := 0
		for i := range callers {
			requireSameEvent(t, stored[0], stored[i], "caller %d got another record", i)
			if bytes.Equal(offered[i].Data, stored[0].Data) {
				winners++
			}
		}
		assert.Equal(t, 1, winners, "the stored record is one caller's, exactly")
		got := lookup(t, j, "draw-at-once")
		requireSameEvent(t, stored[0], got)
	})

	t.Run("DataIsCopied", func(t *testing.T) {
		j := open(t)
		r := sampleEvent("copied", 8)
		want := bytes.Clone(r.Data)
		stored, err := j.RecordEvent(context.Background(), r)
		require.NoError(t, err)
		clear(r.Data) // the caller zeroes its buffer
		clear(stored.Data)
		got := lookup(t, j, "copied")
		assert.Equal(t, want, got.Data)
		clear(got.Data)
		again, _, err := j.LookupEvent(context.Background(), "copied")
		require.NoError(t, err)
		assert.Equal(t, want, again.Data)
	})

	t.Run("BoundEventRoundTrips", func(t *testing.T) {
		j := open(t)
		r := boundEvent("lotto-bound", 32)
		ar, ok := j.(attemptRecorder)
		require.True(t, ok)
		require.NoError(t, ar.RecordAttempt(context.Background(), entropy.EventAttempt{
			Event: r.Event, Source: "quantropy", Params: r.Params, Salt: r.Salt, Nonce: r.Proof.Nonce, Time: r.Time,
		}), "the request first, as a Provider makes it")
		stored, err := j.RecordEvent(context.Background(), r)
		require.NoError(t, err)
		requireSameEvent(t, r, stored)
		got := lookup(t, j, r.Event)
		requireSameEvent(t, r, got, "params, salt and proof are kept")
	})

	t.Run("AttemptsRecorded", func(t *testing.T) {
		j := open(t)
		ar, ok := j.(attemptRecorder)
		require.True(t, ok, "the journal records event requests before they are sent")
		a := sampleAttempt("lotto-attempted")
		require.NoError(t, ar.RecordAttempt(context.Background(), a))
		a2 := sampleAttempt("lotto-attempted")
		require.NoError(t, ar.RecordAttempt(context.Background(), a2), "a second request for one event")
		bad := sampleAttempt("lotto-attempted")
		bad.Nonce = evidence.EventNonce("another-event", bad.Params, bad.Salt)
		require.Error(t, ar.RecordAttempt(context.Background(), bad), "a nonce that is not the event's")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.Error(t, ar.RecordAttempt(ctx, sampleAttempt("lotto-attempted")))
	})

	t.Run("BadEventRefused", func(t *testing.T) {
		j := open(t)
		_, err := j.RecordEvent(context.Background(), entropy.EventRecord{Data: []byte{1}, Label: spanLabel(1)})
		assert.Error(t, err, "an empty event name")
		_, err = j.RecordEvent(context.Background(), entropy.EventRecord{Event: "no-data", Label: spanLabel(0)})
		assert.Error(t, err, "no data")
		mislabelled := sampleEvent("mislabelled", 5)
		mislabelled.Label = spanLabel(32)
		_, err = j.RecordEvent(context.Background(), mislabelled)
		assert.Error(t, err, "a label that names 32 bytes for 5")
		mislabelled.Label = entropy.Label{Verifiable: true}
		_, err = j.RecordEvent(context.Background(), mislabelled)
		assert.Error(t, err, "a label that names none of the bytes")
		_, ok, err := j.LookupEvent(context.Background(), "mislabelled")
		require.NoError(t, err)
		assert.False(t, ok, "a mislabelled record is not stored")
		_, ok, err = j.LookupEvent(context.Background(), "no-data")
		require.NoError(t, err)
		assert.False(t, ok, "a refused record is not stored")
	})

	t.Run("BlocksAndFallbacksRecorded", func(t *testing.T) {
		j := open(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		for i := range 5 {
			id := fmt.Sprintf("job-%d", i)
			require.NoError(t, j.RecordBlock(context.Background(), entropy.BlockRecord{
				Source: "quantropy", JobID: id, Size: 1024, Digest: sha256.Sum256([]byte(id)), Verifiable: true, Time: now,
			}))
		}
		require.NoError(t, j.RecordFallback(context.Background(), entropy.FallbackEpisode{
			Start: now, End: now.Add(time.Second), Ended: true, Reads: 3, Bytes: 96, Reason: errors.New("HTTP 503: \"overloaded\"\n"),
		}))
		require.NoError(t, j.RecordFallback(context.Background(), entropy.FallbackEpisode{Start: now, End: now, Ended: true}))
	})

	t.Run("BlockWithBadNamesRefused", func(t *testing.T) {
		j := open(t)
		for _, n := range [][2]string{{"", ""}, {"quantropy", ""}, {"quantropy", "job\nforged"}, {"svc\xff", "job-1"}} {
			err := j.RecordBlock(context.Background(), entropy.BlockRecord{Source: n[0], JobID: n[1], Size: 8, Verifiable: true, Time: time.Now()})
			assert.Error(t, err, "%q", n)
		}
	})

	t.Run("NegativeSizesAndCountsRefused", func(t *testing.T) {
		j := open(t)
		now := time.Now()
		assert.Error(t, j.RecordBlock(context.Background(), entropy.BlockRecord{Source: "quantropy", JobID: "job-neg", Size: -5, Verifiable: true, Time: now}))
		assert.Error(t, j.RecordBlock(context.Background(), entropy.BlockRecord{Source: "quantropy", JobID: "job-zero", Verifiable: true, Time: now}))
		assert.Error(t, j.RecordFallback(context.Background(), entropy.FallbackEpisode{Start: now, Reads: -1, Bytes: 32}))
		assert.Error(t, j.RecordFallback(context.Background(), entropy.FallbackEpisode{Start: now, Reads: 1, Bytes: math.MinInt64}))
	})

	t.Run("CancelledContextRecordsNothing", func(t *testing.T) {
		j := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := j.RecordEvent(ctx, sampleEvent("cancelled", 8))
		assert.ErrorIs(t, err, context.Canceled)
		_, _, err = j.LookupEvent(ctx, "cancelled")
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: "j", Size: 1, Verifiable: true, Time: time.Now()}), context.Canceled)
		assert.ErrorIs(t, j.RecordFallback(ctx, entropy.FallbackEpisode{Ended: true}), context.Canceled)
		_, ok, err := j.LookupEvent(context.Background(), "cancelled")
		require.NoError(t, err)
		assert.False(t, ok, "a record refused for its context is not stored")
	})

	t.Run("NilContextIsAnError", func(t *testing.T) {
		j := open(t)
		var ctx context.Context
		_, err := j.RecordEvent(ctx, sampleEvent("nil-context", 8))
		assert.Error(t, err)
		_, _, err = j.LookupEvent(ctx, "nil-context")
		assert.Error(t, err)
		assert.Error(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: "j", Size: 1, Verifiable: true, Time: time.Now()}))
		assert.Error(t, j.RecordFallback(ctx, entropy.FallbackEpisode{Ended: true}))
		if ar, ok := j.(attemptRecorder); ok {
			assert.Error(t, ar.RecordAttempt(ctx, sampleAttempt("nil-context")))
		}
		if c, ok := j.(jobClaimer); ok {
			_, err = c.ClaimJob(ctx, "q", "j")
			assert.Error(t, err)
		}
		_, ok, err := j.LookupEvent(context.Background(), "nil-context")
		require.NoError(t, err)
		assert.False(t, ok, "a record refused for its context is not stored")
	})

	t.Run("JobClaimedOnce", func(t *testing.T) {
		j := open(t)
		c, ok := j.(jobClaimer)
		if !ok {
			t.Skipf("%T has no ClaimJob method", j)
		}
		ctx := context.Background()
		const callers = 8
		var wg sync.WaitGroup
		var fresh atomic.Int32
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := c.ClaimJob(ctx, "quantropy", "job-claimed")
				assert.NoError(t, err)
				if f {
					fresh.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int32(1), fresh.Load(), "one claim of a job succeeds")
		require.NoError(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "quantropy", JobID: "job-claimed", Size: 8, Verifiable: true, Time: time.Now()}))
		require.NoError(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "quantropy", JobID: "job-unclaimed", Size: 8, Verifiable: true, Time: time.Now()}))
		f, err := c.ClaimJob(ctx, "quantropy", "job-unclaimed")
		require.NoError(t, err)
		assert.False(t, f, "a job with a block record is not new")
		f, err = c.ClaimJob(ctx, "quantropy", "job-new")
		require.NoError(t, err)
		assert.True(t, f)
	})

	t.Run("ProviderDrawsAnEventOnce", func(t *testing.T) {
		j := open(t)
		p1 := NewProvider(t, j)
		b1 := make([]byte, 32)
		lb1, err := p1.ReadFor(context.Background(), "lotto-2026-12-05", b1)
		require.NoError(t, err)
		require.True(t, lb1.Verifiable)
		require.NoError(t, p1.Close())

		// Another Provider (a restart, or another replica) on the journal.
		p2 := NewProvider(t, j)
		b2 := make([]byte, 32)
		lb2, err := p2.ReadFor(context.Background(), "lotto-2026-12-05", b2)
		require.NoError(t, err)
		assert.Equal(t, b1, b2)
		assert.Equal(t, lb1, lb2)
		st := p2.Stats()
		assert.Zero(t, st.VerifiableReads, "nothing drawn the second time")
		assert.Zero(t, st.EventBytesDiscarded)
		assert.Zero(t, st.JournalErrors)
	})

	t.Run("ProvidersSharingTheJournalAgree", func(t *testing.T) {
		j := open(t)
		const providers, callers, events, size = 3, 4, 6, 16
		ps := make([]*entropy.Provider, providers)
		for i := range ps {
			ps[i] = NewProvider(t, j)
		}
		results := DrawAtOnce(t, ps, callers, events, size, func(e int) string { return fmt.Sprintf("event-%d", e) })
		require.Len(t, results, events)
		for ev, rs := range results {
			require.Len(t, rs, providers*callers, ev)
		}
		RequireOneDrawPerEvent(t, j, results)
		var discarded, served uint64
		for _, p := range ps {
			st := p.Stats()
			discarded += st.EventBytesDiscarded
			served += st.VerifiableBytes
		}
		assert.Equal(t, uint64(events*size), served, "each event's bytes were served by one Provider")
		t.Logf("event bytes discarded by the Providers that lost a race: %d", discarded)
	})
}

// Drawn is what one call of ReadFor handed out.
type Drawn struct {
	Data  []byte
	Label entropy.Label
}

// DrawAtOnce starts callers goroutines on each Provider of ps at once, each
// drawing every one of events events (the name of event e is name(e)) of
// size bytes with ReadFor, in an order of its own, and returns what the
// calls handed out, by event. A call that fails marks t failed and ends its
// goroutine.
func DrawAtOnce(t testing.TB, ps []*entropy.Provider, callers, events, size int, name func(e int) string) map[string][]Drawn {
	t.Helper()
	var mu sync.Mutex
	results := map[string][]Drawn{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, p := range ps {
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for _, e := range mrand.Perm(events) {
					ev := name(e)
					b := make([]byte, size)
					lb, err := p.ReadFor(context.Background(), ev, b)
					if !assert.NoError(t, err, ev) {
						return
					}
					mu.Lock()
					results[ev] = append(results[ev], Drawn{b, lb})
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	return results
}

// RequireOneDrawPerEvent requires that every call for an event in results
// handed out the same bytes and label, and that j's record of the event
// holds those bytes.
func RequireOneDrawPerEvent(t *testing.T, j entropy.Journal, results map[string][]Drawn) {
	t.Helper()
	for ev, rs := range results {
		for _, r := range rs {
			require.Equal(t, rs[0].Data, r.Data, "event %s: every caller gets the same bytes", ev)
			require.Equal(t, rs[0].Label, r.Label, "event %s: every caller gets the same label", ev)
		}
		got := lookup(t, j, ev)
		require.Equal(t, rs[0].Data, got.Data, "event %s: the journal's record is what was returned", ev)
	}
}

// lookup returns the record of event in j, which must hold one.
func lookup(t *testing.T, j entropy.Journal, event string) entropy.EventRecord {
	t.Helper()
	got, ok, err := j.LookupEvent(context.Background(), event)
	require.NoError(t, err)
	require.True(t, ok, "event %q recorded but not found", event)
	return got
}

// requireSameEvent checks that got is want as a journal keeps it.
func requireSameEvent(t *testing.T, want, got entropy.EventRecord, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, want.Event, got.Event, msgAndArgs...)
	require.Equal(t, want.Data, got.Data, msgAndArgs...)
	require.Equal(t, want.Label.Verifiable, got.Label.Verifiable, msgAndArgs...)
	require.Equal(t, want.Label.Derived, got.Label.Derived, msgAndArgs...)
	require.Equal(t, want.Label.Spans, got.Label.Spans, msgAndArgs...)
	if want.Label.Reason == nil {
		require.NoError(t, got.Label.Reason, msgAndArgs...)
	} else {
		require.EqualError(t, got.Label.Reason, want.Label.Reason.Error(), msgAndArgs...)
	}
	require.Equal(t, len(want.Params) == 0, len(got.Params) == 0, msgAndArgs...)
	if len(want.Params) > 0 {
		require.Equal(t, want.Params, got.Params, msgAndArgs...)
	}
	require.Equal(t, want.Salt, got.Salt, msgAndArgs...)
	require.Equal(t, want.Proof, got.Proof, msgAndArgs...)
	require.True(t, want.Time.Truncate(time.Microsecond).Equal(got.Time.Truncate(time.Microsecond)),
		append([]any{"time %v, want %v: ", got.Time, want.Time}, msgAndArgs...)...)
}

// sampleEvent is a verifiable event record of n random bytes.
func sampleEvent(name string, n int) entropy.EventRecord {
	data := make([]byte, n)
	_, _ = crand.Read(data)
	return entropy.EventRecord{Event: name, Data: data, Label: spanLabel(n), Time: time.Now().UTC().Truncate(time.Microsecond)}
}

func spanLabel(n int) entropy.Label {
	if n == 0 {
		return entropy.Label{Verifiable: true}
	}
	half := n / 2
	spans := []entropy.Span{{Source: "quantropy", JobID: "job-a", Offset: 4000, Length: half}}
	if n-half > 0 {
		spans = append(spans, entropy.Span{Source: "drand/quicknet", JobID: "round 4711", Offset: 0, Length: n - half, Public: true})
	}
	if half == 0 {
		spans = spans[1:]
	}
	return entropy.Label{Verifiable: true, Spans: spans}
}

// boundEvent is an event record whose job was bound to it: params, salt and
// a v2 proof whose nonce is the event's.
func boundEvent(name string, n int) entropy.EventRecord {
	r := sampleEvent(name, n)
	r.Label = entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-bound", Length: n}}}
	r.Params = []byte("provenrand-draw/1;kind=pick;n=49;k=6")
	r.Salt = make([]byte, evidence.SaltSize)
	_, _ = crand.Read(r.Salt)
	sig := make([]byte, 64)
	_, _ = crand.Read(sig)
	r.Proof = &entropy.Proof{
		Scheme: evidence.SchemeReferenceV2, Source: "quantropy", JobID: "job-bound", Data: bytes.Clone(r.Data),
		Nonce: evidence.EventNonce(name, r.Params, r.Salt), Size: n, Timestamp: "2026-12-05T20:00:00.123Z", Signature: sig,
	}
	return r
}

// sampleAttempt is a request for event's job with a fresh salt.
func sampleAttempt(event string) entropy.EventAttempt {
	a := entropy.EventAttempt{Event: event, Source: "quantropy", Params: []byte("provenrand-draw/1;kind=int;n=10"),
		Salt: make([]byte, evidence.SaltSize), Time: time.Now().UTC()}
	_, _ = crand.Read(a.Salt)
	a.Nonce = evidence.EventNonce(event, a.Params, a.Salt)
	return a
}

// fallbackEvent is a record with a fallback label and a reason, as a journal
// written by hand might hold: it must round-trip too.
func fallbackEvent() entropy.EventRecord {
	return entropy.EventRecord{
		Event: "fallback-label", Data: []byte{0, 1, 2, 0xff},
		Label: entropy.Label{Spans: []entropy.Span{{Source: entropy.FallbackSource, Length: 4}}, Reason: errors.New("source down: HTTP 503")},
		Time:  time.Date(2026, 3, 1, 11, 0, 0, 123456000, time.UTC),
	}
}

// unicodeEvent has a name that JSON and SQL must carry as it is.
func unicodeEvent() entropy.EventRecord {
	r := sampleEvent(`raffle #12 — ünïcode "quoted" \ 'single'; DROP TABLE x; --`, 7)
	r.Time = time.Date(2026, 12, 5, 20, 0, 0, 999999000, time.FixedZone("CET", 3600))
	return r
}

// NewProvider starts a Provider with journal j over a fresh NewSource, with
// the small, fast settings of the suite (no rate limit, quick retries, a
// pool of 4096 bytes filled 1024 at a time) and then opts, and closes it
// when t ends.
func NewProvider(t testing.TB, j entropy.Journal, opts ...entropy.Option) *entropy.Provider {
	t.Helper()
	p, err := entropy.New(NewSource(), append([]entropy.Option{
		entropy.WithJournal(j), entropy.WithRateLimit(rate.Inf, 1),
		entropy.WithRetry(2, time.Millisecond, 5*time.Millisecond),
		entropy.WithBufferSize(4096), entropy.WithFetchSize(1024),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// NewSource returns an in-memory verifiable source of crypto/rand bytes with
// a job ID of its own for every block, unique across sources.
func NewSource() entropy.Source {
	var id [8]byte
	_, _ = crand.Read(id[:])
	prefix := fmt.Sprintf("conformance-%x", id)
	var n atomic.Uint64
	return entropy.SourceFunc(func(ctx context.Context, size int) (entropy.Block, error) {
		if err := ctx.Err(); err != nil {
			return entropy.Block{}, err
		}
		data := make([]byte, size)
		_, _ = crand.Read(data)
		return entropy.Block{
			Data: data, Source: "conformance", JobID: fmt.Sprintf("%s-%d", prefix, n.Add(1)),
			Verifiable: true, Time: time.Now(),
		}, nil
	})
}

// attemptRecorder and jobClaimer are the optional methods of an
// entropy.Journal that the Provider asks for (see entropy.Journal).
type (
	attemptRecorder interface {
		RecordAttempt(ctx context.Context, a entropy.EventAttempt) error
	}
	jobClaimer interface {
		ClaimJob(ctx context.Context, source, jobID string) (bool, error)
	}
)
