package entropy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy/internal/sourceerr"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// batchSource is a scriptSource that also serves batches: each item of a
// batch takes the next step of the script (an error step fails the item),
// and whole, if not empty, fails whole batches first.
type batchSource struct {
	*scriptSource
	mu      sync.Mutex
	whole   []error
	batches [][]int
}

// BatchLimits sets no limit.
func (b *batchSource) BatchLimits() (int, int) { return 0, 0 }

func (b *batchSource) FetchBatch(ctx context.Context, sizes []int) ([]Block, error) {
	b.mu.Lock()
	b.batches = append(b.batches, append([]int(nil), sizes...))
	if len(b.whole) > 0 {
		err := b.whole[0]
		b.whole = b.whole[1:]
		b.mu.Unlock()
		return nil, err
	}
	b.mu.Unlock()
	var blocks []Block
	be := &sourceerr.BatchError{Total: len(sizes), RequestID: "rid-b"}
	for i, n := range sizes {
		blk, err := b.scriptSource.Fetch(ctx, n)
		if err != nil {
			it := sourceerr.BatchItemError{Index: i, Err: err, Message: err.Error()}
			var je *JobError
			if errors.As(err, &je) {
				it.Code = je.Code
			}
			be.Items = append(be.Items, it)
			continue
		}
		blocks = append(blocks, blk)
	}
	if len(be.Items) > 0 {
		return blocks, be
	}
	return blocks, nil
}

func (b *batchSource) batchCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.batches)
}

func newBatchSource(script ...step) *batchSource {
	return &batchSource{scriptSource: newScriptSource("b", script...)}
}

// The batch tests run with the default configuration: a source that offers
// batches gets them without an option.

func TestBatchRefillTakesTheGoodItems(t *testing.T) {
	failed := &JobError{JobID: "x", Code: "QuantumComputerError"}
	src := newBatchSource(step{}, step{err: failed}, step{}, step{err: &JobError{Code: "TooManyShots"}})
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	st := p.Stats().Sources[0]
	assert.Equal(t, 2, src.batchCount(), "a batch of 4 with 2 good items, then a batch of 2 for the room left")
	assert.Equal(t, [][]int{{1024, 1024, 1024, 1024}, {1024, 1024}}, src.batches)
	assert.Equal(t, uint64(2), st.Requests, "a batch is one request")
	assert.Equal(t, uint64(2), st.Failures, "each failed item is a failure of its own")
	assert.Equal(t, uint64(2), st.BatchItemsFailed)
	assert.Equal(t, uint64(0), st.Retries, "a batch with good items is not retried whole")
	assert.Equal(t, uint64(4), st.BlocksAccepted)
	assert.Equal(t, "closed", st.Breaker, "a permanent item does not open the breaker: the request served")

	// Every byte served comes from a good item.
	buf := make([]byte, 4096)
	lbl, err := p.ReadLabelled(context.Background(), buf)
	require.NoError(t, err)
	require.True(t, lbl.Verifiable)
	off := 0
	for _, sp := range lbl.Spans {
		data, ok := src.job(sp.JobID)
		require.True(t, ok, sp.JobID)
		assert.Equal(t, data[sp.Offset:sp.Offset+sp.Length], buf[off:off+sp.Length])
		off += sp.Length
	}
}

func TestBatchItemsRefusedByTheChecksAreFailures(t *testing.T) {
	stuck := Block{Data: make([]byte, 1024), Source: "b", JobID: "stuck", Verifiable: true}
	unverified := step{unverified: true}
	src := newBatchSource(step{}, step{block: &stuck}, unverified, step{})
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	st := p.Stats().Sources[0]
	assert.Equal(t, uint64(2), st.BlocksRejected)
	assert.Equal(t, uint64(2), st.Failures)
	assert.Equal(t, uint64(2), st.BatchItemsFailed)
	assert.Equal(t, uint64(0), st.Retries)
	buf := make([]byte, 4096)
	lbl, err := p.ReadLabelled(context.Background(), buf)
	require.NoError(t, err)
	for _, sp := range lbl.Spans {
		assert.NotEqual(t, "stuck", sp.JobID)
	}
}

func TestBatchWithNoGoodItemIsAFailedRequest(t *testing.T) {
	e := &JobError{Code: "QuantumComputerError"}
	src := newBatchSource(step{err: e}, step{err: e})
	p := newTestProvider(t, src, fast(WithBufferSize(2048), WithFetchSize(1024))...)
	full(t, p, 2048)
	st := p.Stats().Sources[0]
	assert.Equal(t, uint64(1), st.Failures, "one failed request, retried")
	assert.Equal(t, uint64(1), st.Retries)
	assert.Equal(t, uint64(0), st.BatchItemsFailed)
	assert.Equal(t, 2, src.batchCount())
}

func TestBatchWholeFailureIsRetriedAndPermanentOpensTheBreaker(t *testing.T) {
	src := newBatchSource()
	src.whole = []error{&APIError{StatusCode: 503}}
	p := newTestProvider(t, src, fast(WithBufferSize(2048), WithFetchSize(1024))...)
	full(t, p, 2048)
	assert.Equal(t, uint64(1), p.Stats().Sources[0].Retries)

	src2 := newBatchSource()
	src2.whole = []error{&APIError{StatusCode: 401}, &APIError{StatusCode: 401}, &APIError{StatusCode: 401}}
	p2 := newTestProvider(t, src2, WithRateLimit(rate.Inf, 1), WithRetry(3, time.Millisecond, time.Millisecond), WithBufferSize(2048), WithFetchSize(1024))
	require.Eventually(t, func() bool { return p2.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 1, src2.batchCount(), "a permanent error is not retried")
}

func TestBatchIsTheDefaultForABatchSource(t *testing.T) {
	src := newBatchSource()
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	assert.Equal(t, [][]int{{1024, 1024, 1024, 1024}}, src.batches, "one batch fills the empty pool")
	assert.Equal(t, 4, src.callCount(), "the batch's four items, no single request")
	assert.Equal(t, uint64(1), p.Stats().Sources[0].Requests)
}

func TestBatchDefaultIsCappedByDefaultBatch(t *testing.T) {
	src := newBatchSource()
	p := newTestProvider(t, src, fast(WithBufferSize(8192), WithFetchSize(1024))...)
	full(t, p, 8192)
	require.Equal(t, 2, src.batchCount())
	for _, b := range src.batches {
		assert.Len(t, b, defaultBatch)
	}
}

// limitedBatchSource is a batchSource that limits how much a batch may ask
// for (batcher.BatchLimits).
type limitedBatchSource struct {
	*batchSource
	items, bytes int
}

func (l *limitedBatchSource) BatchLimits() (int, int) { return l.items, l.bytes }

// A batch never asks for more than the source allows: as many blocks as
// both its item and its byte limits let through, and a single request
// where not two blocks fit.
func TestBatchKeepsWithinTheSourcesLimits(t *testing.T) {
	src := &limitedBatchSource{batchSource: newBatchSource(), items: 3, bytes: 2048}
	p := newTestProvider(t, src, fast(WithBatch(8), WithBufferSize(8192), WithFetchSize(1024))...)
	full(t, p, 8192)
	for _, b := range src.batches {
		assert.Len(t, b, 2, "2048 bytes of 1024-byte blocks")
	}
	assert.Equal(t, 4, src.batchCount())

	src2 := &limitedBatchSource{batchSource: newBatchSource(), items: 64, bytes: 1500}
	p2 := newTestProvider(t, src2, fast(WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p2, 4096)
	assert.Equal(t, 0, src2.batchCount(), "not two blocks fit in 1500 bytes")
	assert.Equal(t, 4, src2.callCount())
}

func TestWithBatchOneSendsSingleRequests(t *testing.T) {
	src := newBatchSource()
	p := newTestProvider(t, src, fast(WithBatch(1), WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	assert.Equal(t, 0, src.batchCount())
	assert.Equal(t, 4, src.callCount())
	assert.Equal(t, uint64(4), p.Stats().Sources[0].Requests)
}

// A service that answers it has no batch request gets a single request in
// its place, and single requests from then on; the answer is neither a
// failure nor a reason to open the breaker.
func TestBatchUnsupportedFallsBackToSingleRequests(t *testing.T) {
	src := newBatchSource()
	src.whole = []error{fmt.Errorf("no batch path: %w: %w", sourceerr.ErrBatchUnsupported, &APIError{StatusCode: 404})}
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	st := p.Stats().Sources[0]
	assert.Equal(t, 1, src.batchCount(), "one batch request, never another")
	assert.Equal(t, 4, src.callCount())
	assert.Equal(t, uint64(5), st.Requests, "the batch request and four single ones")
	assert.Equal(t, uint64(0), st.Failures)
	assert.Equal(t, uint64(0), st.Retries)
	assert.Equal(t, "closed", st.Breaker)
	assert.NoError(t, st.LastError)

	buf := make([]byte, 4096)
	lbl, err := p.ReadLabelled(context.Background(), buf)
	require.NoError(t, err)
	require.True(t, lbl.Verifiable)
	full(t, p, 4096)
	assert.Equal(t, 1, src.batchCount())
}

// Contract point 3 per item: an item that repeats a job already taken (in
// the same batch or an earlier one) is refused and counted, the others are
// served.
func TestBatchItemReplayIsRefused(t *testing.T) {
	data := make([]byte, 1024)
	_, _ = rand.Read(data)
	dup := Block{Data: data, Source: "b", JobID: "b-dup", Verifiable: true, Proof: []byte("sig"), Time: time.Now()}
	src := newBatchSource(step{block: &dup}, step{}, step{block: &dup}, step{}, step{block: &dup})
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	st := p.Stats().Sources[0]
	assert.Equal(t, [][]int{{1024, 1024, 1024, 1024}}, src.batches, "then a single request for the last 1024 bytes")
	assert.Equal(t, uint64(2), st.BlocksRejected, "the job's second showing (an item) and third (a single answer)")
	assert.Equal(t, uint64(1), st.BatchItemsFailed)
	assert.Equal(t, uint64(4), st.BlocksAccepted)

	l := newLedger(src.scriptSource)
	src.scriptSource.mu.Lock()
	src.jobs["b-dup"] = data
	src.scriptSource.mu.Unlock()
	buf := make([]byte, 4096)
	lbl, err := p.ReadLabelled(context.Background(), buf)
	require.NoError(t, err)
	require.Empty(t, l.check(buf, lbl))
	dups := 0
	for _, sp := range lbl.Spans {
		if sp.JobID == "b-dup" {
			dups += sp.Length
		}
	}
	assert.Equal(t, 1024, dups, "the job's bytes are served once")
}

// Each good item of a batch is journalled as a block of its own; an item
// the checks refused leaves no record.
func TestBatchItemsAreJournalledOneByOne(t *testing.T) {
	j := newMemJournal()
	stuck := Block{Data: make([]byte, 1024), Source: "b", JobID: "stuck", Verifiable: true}
	src := newBatchSource(step{}, step{block: &stuck}, step{}, step{})
	p := newTestProvider(t, src, fast(WithJournal(j), WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096)
	require.NoError(t, p.Close()) // flushes the journal; no refill after it
	j.mu.Lock()
	defer j.mu.Unlock()
	var ids []string
	for _, b := range j.blocks {
		data, ok := src.job(b.JobID)
		require.True(t, ok, "record of %s names a job the source made", b.JobID)
		assert.Equal(t, len(data), b.Size)
		ids = append(ids, b.JobID)
	}
	assert.ElementsMatch(t, []string{"b-job-1", "b-job-2", "b-job-3", "b-job-4"}, ids,
		"three good items of the batch, then one single block; none for the stuck item")
}

func TestWithBatchRefusesBadSizes(t *testing.T) {
	for _, n := range []int{0, -1, 65} {
		_, err := New(newScriptSource("q"), WithBatch(n))
		assert.Error(t, err, "%d", n)
	}
}

func TestBatchErrorText(t *testing.T) {
	be := &sourceerr.BatchError{Total: 5, RequestID: "r1", Items: []sourceerr.BatchItemError{
		{Index: 1, Code: "QuantumComputerError", Message: "qpu", Err: &JobError{Code: "QuantumComputerError"}},
		{Index: 3, Message: "bad signature", Err: sourceerr.ErrBadProof},
	}}
	assert.Equal(t, "batch: 2 of 5 items failed: item 1: QuantumComputerError: qpu; item 3: bad signature (request id r1)", be.Error())
	assert.Equal(t, 1, be.Items[0].Index)
	assert.Equal(t, 3, be.Items[1].Index)
	assert.ErrorIs(t, be, sourceerr.ErrBadProof)
	var je *JobError
	assert.ErrorAs(t, be, &je)
}

// A journal that stalls holds a batch refill for one fetch timeout, not one
// per block: the claims of a batch's blocks have the request's bound
// between them, and the refill goes on with its next request.
func TestStalledJournalHoldsABatchForOneFetchTimeout(t *testing.T) {
	const items, timeout = 16, time.Second
	j := &stallingClaims{claimsJournal: &claimsJournal{memJournal: newMemJournal(), claimed: map[string]bool{}}, stalls: items}
	src := newBatchSource()
	p := newTestProvider(t, src, fast(WithJournal(j), WithPolicy(Fail), WithFetchTimeout(timeout), WithBatch(items),
		WithBreaker(gobreaker.Settings{Timeout: time.Hour}), WithBufferSize(items*1024), WithFetchSize(1024))...)
	require.Eventually(t, func() bool { return src.batchCount() >= 2 }, items*timeout/2, time.Millisecond,
		"the stalled claims of one batch held the refill for a fetch timeout each")
	full(t, p, 1024)
	st := p.Stats().Sources[0]
	assert.Equal(t, uint64(items), st.BlocksRejected, "the blocks whose claims stalled are refused")
	assert.Equal(t, "closed", st.Breaker)
}

// A batch whose good items the journal could not claim is not a failure
// of the source's, even when another of its items failed at the source: a
// batch with good items is a successful request, and the journal's trouble
// does not make it a failed one that the breaker counts (it would open and
// refuse refills after the journal is back).
func TestBatchRefusedByAnUnreachableJournalIsNoSourceFailure(t *testing.T) {
	j := &downClaims{claimsJournal: &claimsJournal{memJournal: newMemJournal(), claimed: map[string]bool{}}}
	j.down.Store(true)
	var script []step
	for range 4 * defaultTripAfter {
		script = append(script, step{err: &JobError{JobID: "x", Code: "QuantumComputerError"}}, step{}, step{}, step{})
	}
	src := newBatchSource(script...)
	p := newTestProvider(t, src, fast(WithJournal(j), WithPolicy(Fail), WithBreaker(gobreaker.Settings{Timeout: time.Hour}),
		WithBufferSize(4096), WithFetchSize(1024))...)
	require.Eventually(t, func() bool {
		return src.batchCount() > 2*defaultTripAfter || p.Stats().Sources[0].Breaker != "closed"
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, "closed", p.Stats().Sources[0].Breaker, "the journal's trouble opened the source's breaker")
	j.down.Store(false)
	full(t, p, 1024)
}
