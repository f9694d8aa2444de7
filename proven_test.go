package entropy

import (
	"context"
	"testing"
	"time"

	"github.com/provenrand/entropy/health"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A ReadProven whose request failed once and then succeeded on a retry
// leaves the sources known to work: the next ReadProven under Fail sends its
// request rather than answering at once with the failure that was retried.
func TestReadProvenAfterARetriedFailureStillFetches(t *testing.T) {
	src := newScriptSource("blip")
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096) // the refill is idle: the scripted failure is ReadProven's
	src.set(nil, step{err: &APIError{StatusCode: 503}})
	before := src.callCount()
	b := make([]byte, 64)
	lb, _, err := p.ReadProven(context.Background(), b)
	require.NoError(t, err, "the 503 is retried")
	require.True(t, lb.Verifiable)
	require.Equal(t, before+2, src.callCount())
	lb, _, err = p.ReadProven(context.Background(), b)
	require.NoError(t, err, "the retried failure still refuses ReadProven")
	require.True(t, lb.Verifiable)
	require.Equal(t, before+3, src.callCount())
}

// A failed ReadProven makes the next ones answer at once, for the retry's
// longest delay; after that a ReadProven asks the source again, although a
// full pool asks for no refill that could clear the failure.
func TestReadProvenAsksAgainOnceTheFailureIsOld(t *testing.T) {
	clk := newFakeClock()
	src := newScriptSource("old")
	p := newTestProvider(t, src, fast(WithClock(clk), WithPolicy(Fail), WithRetry(1, time.Millisecond, time.Second),
		WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096) // the refill is idle: the failure is ReadProven's
	src.set(nil, step{err: &APIError{StatusCode: 503}})
	b := make([]byte, 64)
	_, _, err := p.ReadProven(context.Background(), b)
	require.ErrorIs(t, err, ErrUnavailable)
	before := src.callCount()
	_, _, err = p.ReadProven(context.Background(), b)
	require.ErrorIs(t, err, ErrUnavailable, "the failure is fresh: answered at once")
	require.Equal(t, before, src.callCount(), "no request while the failure is fresh")

	clk.advance(time.Second)
	lb, _, err := p.ReadProven(context.Background(), b)
	require.NoError(t, err, "a failure older than the retry's longest delay still refuses ReadProven")
	require.True(t, lb.Verifiable)
	require.Equal(t, before+1, src.callCount())
}

// A ReadProven whose job arrives once Close has returned (a service that
// answers whatever its context says) does not serve a job whose block
// record the journal will never get: the notifier has delivered its last
// note, so the read returns ErrClosed and serves nothing.
func TestReadProvenMeetingCloseServesNoUnjournalledJob(t *testing.T) {
	const own = 1024 // the size of ReadProven's job; the refill's are 256
	j := newMemJournal()
	script := newScriptSource("late")
	entered, release := make(chan struct{}), make(chan struct{})
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		if n == own {
			close(entered)
			<-release
			return script.Fetch(context.Background(), n)
		}
		return script.Fetch(ctx, n)
	})
	p, err := New(src, fast(WithJournal(j), WithBufferSize(512), WithFetchSize(256))...)
	require.NoError(t, err)
	ready(t, p)
	type result struct {
		lb  Label
		err error
	}
	done := make(chan result, 1)
	b := make([]byte, own)
	go func() {
		lb, _, err := p.ReadProven(context.Background(), b)
		done <- result{lb, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("ReadProven sent no request")
	}
	require.NoError(t, p.Close())
	close(release)
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ReadProven did not return")
	}
	if r.err != nil {
		assert.ErrorIs(t, r.err, ErrClosed)
		assert.Equal(t, make([]byte, own), b, "nothing is served")
		return
	}
	require.Len(t, r.lb.Spans, 1)
	sp := r.lb.Spans[0]
	j.mu.Lock()
	recorded := j.hasBlock(sp.Source, sp.JobID)
	j.mu.Unlock()
	assert.True(t, recorded, "ReadProven served job %s, whose block record never reached the journal", sp.JobID)
}

// A ReadProven whose job the journal could not claim (its database away for
// a moment) does not leave the sources known to be failing: the source did
// its part. Once the journal is back, the next ReadProven under Fail sends
// its request, rather than answering at once with the journal's trouble
// until a refill happens to succeed (never, while reads leave the pool full).
func TestReadProvenAfterAJournalBlipStillFetches(t *testing.T) {
	j := &downClaims{claimsJournal: &claimsJournal{memJournal: newMemJournal(), claimed: map[string]bool{}}}
	src := newScriptSource("blip")
	p := newTestProvider(t, src, fast(WithJournal(j), WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096) // the refill is idle: the journal's refusal is ReadProven's
	b := make([]byte, 64)
	j.down.Store(true)
	_, _, err := p.ReadProven(context.Background(), b)
	require.Error(t, err, "the journal cannot tell whether the job is new")
	j.down.Store(false)
	before := src.callCount()
	lb, _, err := p.ReadProven(context.Background(), b)
	require.NoError(t, err, "the journal's trouble, over, still refuses ReadProven")
	require.True(t, lb.Verifiable)
	require.Equal(t, before+1, src.callCount())
}

// Every byte a source gave a ReadProven is accounted for: a job of the
// reference protocol (a nonceSource) has at least health.AptWindow bytes,
// and the bytes beyond the read's length, never served nor pooled, are
// counted in ProvenBytesDiscarded, so that what was served, pooled and
// discarded adds up to the sources' BytesAccepted. An event's own job
// leaves its bytes beyond the event's length there too.
func TestReadProvenAccountsForEveryByteOfItsJob(t *testing.T) {
	balance := func(t *testing.T, st Stats) {
		t.Helper()
		var accepted uint64
		for _, s := range st.Sources {
			accepted += s.BytesAccepted
		}
		assert.Equal(t, accepted, st.VerifiableBytes+st.DerivationBytes+uint64(st.Pooled)+st.EventBytesDiscarded+st.ProvenBytesDiscarded,
			"served %d, pooled %d, discarded %d + %d of %d accepted", st.VerifiableBytes, st.Pooled, st.EventBytesDiscarded, st.ProvenBytesDiscarded, accepted)
	}
	sizes := []int{1, 32, 100, health.AptWindow - 1, health.AptWindow, 600}
	t.Run("reference protocol", func(t *testing.T) {
		p := newTestProvider(t, &nonceSource{}, fast(WithBufferSize(4096), WithFetchSize(1024))...)
		full(t, p, 4096) // the refill is idle: ReadProven takes nothing from the pool
		balance(t, p.Stats())
		var discarded uint64
		for _, n := range sizes {
			b := make([]byte, n)
			lb, _, err := p.ReadProven(context.Background(), b)
			require.NoError(t, err)
			require.True(t, lb.Verifiable)
			require.Equal(t, n, lb.Spans[0].Length)
			discarded += uint64(max(health.AptWindow, n) - n)
			st := p.Stats()
			assert.Equal(t, discarded, st.ProvenBytesDiscarded, "after a read of %d", n)
			assert.Equal(t, 4096, st.Pooled, "the bytes a read of %d left went nowhere near the pool", n)
			balance(t, st)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := p.ReadFor(ctx, "raffle", make([]byte, 32))
		require.NoError(t, err)
		st := p.Stats()
		assert.Equal(t, discarded+health.AptWindow-32, st.ProvenBytesDiscarded, "the event's own job")
		balance(t, st)
	})
	t.Run("no minimum", func(t *testing.T) {
		p := newTestProvider(t, newScriptSource("plain"), fast(WithBufferSize(4096), WithFetchSize(1024))...)
		full(t, p, 4096)
		for _, n := range sizes[1:] { // a block of 1 is too short for the health tests
			_, _, err := p.ReadProven(context.Background(), make([]byte, n))
			require.NoError(t, err)
			st := p.Stats()
			assert.Zero(t, st.ProvenBytesDiscarded, "a job of exactly %d bytes", n)
			balance(t, st)
		}
	})
}
