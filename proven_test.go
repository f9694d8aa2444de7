package entropy

import (
	"context"
	"testing"
	"time"

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
