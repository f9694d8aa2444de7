package entropy

import (
	"context"
	crand "crypto/rand"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ReadFor takes only event names it can record and ask for again: valid
// UTF-8 of at most MaxEventName bytes. Others draw nothing.
func TestReadForRefusesEventNamesItCannotRecord(t *testing.T) {
	src := newScriptSource("names")
	p := newTestProvider(t, src, fast()...)
	ready(t, p)
	before := p.Stats().VerifiableReads
	for _, name := range []string{"", "round-\xff", "M\xe4rz", strings.Repeat("n", MaxEventName+1)} {
		b := []byte{1, 2, 3, 4}
		_, err := p.ReadFor(context.Background(), name, b)
		require.ErrorIs(t, err, ErrEventName, "%.20q", name)
		assert.Equal(t, []byte{1, 2, 3, 4}, b, "a refused event name must not touch b")
	}
	assert.Equal(t, before, p.Stats().VerifiableReads, "a refused event name drew bytes")

	for _, name := range []string{"März-2026", strings.Repeat("n", MaxEventName), "round\n7"} {
		b := make([]byte, 4)
		lb, err := p.ReadFor(context.Background(), name, b)
		require.NoError(t, err, "%.20q", name)
		assert.True(t, lb.Verifiable)
	}
}

// A block whose source name or job ID is not short UTF-8 text is refused
// whole (contract point 4): labels, journals and transcripts carry those
// names as text, and one that cannot be written back as it came cannot be
// audited.
func TestBlockNamesMustBeText(t *testing.T) {
	var script []step
	for _, names := range [][2]string{
		{"svc", "job-\xff"},
		{"svc-\xfe", "job-2"},
		{"svc", strings.Repeat("j", maxName+1)},
	} {
		data := make([]byte, 64)
		_, _ = crand.Read(data)
		script = append(script, step{block: &Block{Data: data, Source: names[0], JobID: names[1], Verifiable: true, Time: time.Now()}})
	}
	src := newScriptSource("names-ok", script...)
	p := newTestProvider(t, src, fast()...)
	ready(t, p)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 16))
	require.NoError(t, err)
	require.True(t, lb.Verifiable)
	for _, sp := range lb.Spans {
		assert.Equal(t, "names-ok", sp.Source, "a span of a refused block: %.30q", sp.JobID)
	}
	var refused uint64
	for _, s := range p.Stats().Sources {
		refused += s.Failures
	}
	assert.GreaterOrEqual(t, refused, uint64(len(script)), "each bad block counts as a source failure")
}

// orderJournal records the order of block and event records; RecordBlock
// waits at gate (if set) until it is closed, as a slow disk would.
type orderJournal struct {
	mu     sync.Mutex
	blocks map[string]bool // job IDs recorded
	early  []string        // events recorded before a block they name
	gate   chan struct{}
}

func (j *orderJournal) RecordBlock(_ context.Context, b BlockRecord) error {
	if j.gate != nil {
		<-j.gate
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.blocks[b.Source+"/"+b.JobID] = true
	return nil
}

func (j *orderJournal) RecordFallback(context.Context, FallbackEpisode) error { return nil }

func (j *orderJournal) RecordEvent(_ context.Context, r EventRecord) (EventRecord, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, sp := range r.Label.Spans {
		if !j.blocks[sp.Source+"/"+sp.JobID] {
			j.early = append(j.early, r.Event+": "+sp.JobID)
		}
	}
	return r, nil
}

func (j *orderJournal) LookupEvent(context.Context, string) (EventRecord, bool, error) {
	return EventRecord{}, false, nil
}

// An event's record reaches the journal after the records of the blocks its
// bytes came from, even when block records are slow to write: a crash
// between the two must not leave an event naming jobs the journal never saw.
func TestEventRecordFollowsItsBlockRecords(t *testing.T) {
	j := &orderJournal{blocks: map[string]bool{}, gate: make(chan struct{})}
	src := newScriptSource("order")
	p := newTestProvider(t, src, fast(WithJournal(j))...)
	ready(t, p)
	// Block records are held back for a moment; the draw must wait for them.
	var once sync.Once
	open := func() { once.Do(func() { close(j.gate) }) }
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

// A Retry-After near the longest Duration, with a cap as long, holds the
// source rather than overflowing into no hold at all.
func TestHoldDoesNotOverflow(t *testing.T) {
	p := newTestProvider(t, newScriptSource("hold"), fast(WithMaxRetryAfter(time.Duration(math.MaxInt64)))...)
	f := p.feeders[0]
	f.hold(time.Duration(math.MaxInt64))
	assert.True(t, f.held(), "a maximal Retry-After holds the source")
}
