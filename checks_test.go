package entropy

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy/health"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Contract point 4: a block that comes with an error is discarded whole: its
// job never appears in a label, even though its data looked fine.
func TestBlockWithErrorNeverServed(t *testing.T) {
	good := make([]byte, 512)
	for i := range good {
		good[i] = byte(i*7 + i/256)
	}
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		return Block{Data: good[:min(n, len(good))], Source: "q", JobID: "with-error", Verifiable: true}, &APIError{StatusCode: 500}
	})
	p := newTestProvider(t, src, fast(WithPolicy(Degrade))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures >= 3 }, 5*time.Second, time.Millisecond)
	for i := 0; i < 20; i++ {
		lb, err := p.ReadLabelled(context.Background(), make([]byte, 32))
		require.NoError(t, err)
		assert.False(t, lb.Verifiable)
		for _, sp := range lb.Spans {
			assert.NotEqual(t, "with-error", sp.JobID)
		}
	}
	assert.Zero(t, p.Stats().Sources[0].BlocksAccepted)
	assert.Zero(t, p.Stats().Pooled)
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

// Contract point 4: blocks that are empty, nil, too long, unverified,
// anonymous or replayed, and a panicking source, are failures like any
// other: their bytes are never served, and the Provider recovers when the
// source does.
func TestInvalidBlocksAreFailures(t *testing.T) {
	replay := Block{Data: []byte("0123456789abcdef0123456789abcdef"), Source: "quantropy", JobID: "same", Verifiable: true}
	for name, st := range map[string]step{
		"empty":      {block: &Block{Data: []byte{}, Source: "quantropy", JobID: "j", Verifiable: true}},
		"nil":        {block: &Block{Source: "quantropy", JobID: "j", Verifiable: true}},
		"too long":   {block: &Block{Data: make([]byte, 1<<20), Source: "quantropy", JobID: "j", Verifiable: true}},
		"unverified": {unverified: true},
		"no job":     {block: &Block{Data: []byte("abcdefgh"), Source: "quantropy", Verifiable: true}},
		"no source":  {block: &Block{Data: []byte("abcdefgh"), JobID: "j", Verifiable: true}},
		"panic":      {panic: true},
		"stuck":      {block: &Block{Data: make([]byte, 4096), Source: "quantropy", JobID: "stuck", Verifiable: true}},
		// Names that would forge a label's one-line summary or a report.
		"job ID with a newline":        {block: &Block{Data: counting(64), Source: "quantropy", JobID: "j\nentropy OK", Verifiable: true}},
		"job ID with a bidi override":  {block: &Block{Data: counting(64), Source: "quantropy", JobID: "j\u202eKO", Verifiable: true}},
		"job ID ..":                    {block: &Block{Data: counting(64), Source: "quantropy", JobID: "..", Verifiable: true}},
		"source with a line separator": {block: &Block{Data: counting(64), Source: "quantropy\u2028x", JobID: "j", Verifiable: true}},
		// A verifiable span must never name the fallback's source.
		"source named crypto/rand": {block: &Block{Data: counting(64), Source: FallbackSource, JobID: "j", Verifiable: true}},
	} {
		t.Run(name, func(t *testing.T) {
			src := newScriptSource("quantropy", st, st, st)
			p := newTestProvider(t, src, fast(WithBufferSize(8192), WithFetchSize(4096))...)
			ready(t, p)
			s := p.Stats().Sources[0]
			assert.Equal(t, uint64(3), s.Failures)
			full(t, p, 8192)
			b := make([]byte, 8192)
			lb, err := p.ReadLabelled(context.Background(), b)
			require.NoError(t, err)
			assert.Empty(t, newLedger(src).check(b, lb))
			assert.True(t, lb.Verifiable)
		})
	}
	t.Run("replayed job", func(t *testing.T) {
		src := newScriptSource("quantropy", step{block: &replay}, step{block: &replay})
		src.set(&step{err: &APIError{StatusCode: 500}}, step{block: &replay}, step{block: &replay})
		p := newTestProvider(t, src, fast(WithBufferSize(64), WithFetchSize(32))...)
		ready(t, p)
		require.Eventually(t, func() bool { return p.Stats().Sources[0].BlocksRejected >= 1 }, 5*time.Second, time.Millisecond)
		assert.Equal(t, uint64(1), p.Stats().Sources[0].BlocksAccepted, "the replayed job entered the pool twice")
	})
}

// stuckSource answers every Fetch with a verifiable block of zeros, of the
// size asked for or of at most most bytes (0: as asked): a device stuck at
// 0x00. It counts the sizes asked for.
type stuckSource struct {
	most int
	mu   sync.Mutex
	seq  int
	asks []int
}

func (s *stuckSource) Fetch(_ context.Context, n int) (Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.asks = append(s.asks, n)
	if s.most > 0 {
		n = min(n, s.most)
	}
	return Block{Data: make([]byte, n), Source: "stuck", JobID: fmt.Sprintf("stuck-%d", s.seq), Verifiable: true, Proof: []byte("sig")}, nil
}

func (s *stuckSource) asked() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.asks)
}

// TestStuckSourceCaughtInTinyReads: a Provider whose pool and fetch size are
// as small as a read of 1 to 6 bytes still asks the source for a block the
// health tests can judge, so a source stuck at 0x00 is refused and never
// served as verifiable, however small the read.
func TestStuckSourceCaughtInTinyReads(t *testing.T) {
	rct, apt := health.DefaultConfig().Cutoffs()
	for n := 1; n <= rct-1; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			src := &stuckSource{}
			p, err := New(src, fast(WithPolicy(Fail), WithBufferSize(n), WithFetchSize(n))...)
			require.NoError(t, err)
			defer p.Close()
			require.Eventually(t, func() bool { return p.Stats().Sources[0].BlocksRejected > 0 },
				5*time.Second, time.Millisecond, "the stuck block was not refused")
			for _, asked := range src.asked() {
				assert.GreaterOrEqual(t, asked, max(rct, apt), "a fetch asked for fewer bytes than the health tests judge")
			}
			b := make([]byte, n)
			lbl, err := p.ReadLabelled(context.Background(), b)
			require.ErrorIs(t, err, ErrUnavailable)
			assert.False(t, lbl.Verifiable)
			assert.Zero(t, p.Stats().Sources[0].BlocksAccepted)
		})
	}
}

// TestBlockTooShortToTestRefused: a source that answers fewer bytes than the
// repetition count test needs to judge a block (asked for more) has its
// blocks refused: a stuck source cannot hide in blocks of 6 bytes.
func TestBlockTooShortToTestRefused(t *testing.T) {
	rct, _ := health.DefaultConfig().Cutoffs()
	src := &stuckSource{most: rct - 1}
	p, err := New(src, fast(WithPolicy(Fail), WithBufferSize(1024), WithFetchSize(256))...)
	require.NoError(t, err)
	defer p.Close()
	require.Eventually(t, func() bool { return p.Stats().Sources[0].BlocksRejected > 0 },
		5*time.Second, time.Millisecond)
	assert.Zero(t, p.Stats().Sources[0].BlocksAccepted)
	require.ErrorIs(t, p.Stats().Sources[0].LastError, errInvalidBlock)
	_, err = p.ReadLabelled(context.Background(), make([]byte, 1))
	require.ErrorIs(t, err, ErrUnavailable)
}

// "A block shorter than asked for is fine", down to the shortest block the
// repetition count test can fail (7 bytes by default): a source answering 7
// to 27 bytes, fewer than both tests need, serves verifiable reads, each
// labelled with the job its bytes came from.
func TestBlocksShorterThanAskedServed(t *testing.T) {
	rct, apt := health.DefaultConfig().Cutoffs()
	for _, most := range []int{rct, 16, apt - 1} {
		t.Run(fmt.Sprint(most), func(t *testing.T) {
			src := newScriptSource("short")
			src.maxLen = most
			p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(256), WithFetchSize(64))...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range 20 {
				b := make([]byte, 10)
				lb, err := p.ReadLabelled(ctx, b)
				require.NoError(t, err)
				require.True(t, lb.Verifiable)
				off := 0
				for _, sp := range lb.Spans {
					job, ok := src.job(sp.JobID)
					require.True(t, ok)
					require.LessOrEqual(t, len(job), most)
					require.Equal(t, job[sp.Offset:sp.Offset+sp.Length], b[off:off+sp.Length])
					off += sp.Length
				}
				require.Equal(t, len(b), off)
			}
			assert.Zero(t, p.Stats().Sources[0].BlocksRejected)
		})
	}
}

// TestTinyPoolServesRestOfBlockLater: with a pool of one byte, a block the
// size the health tests need is fetched whole and its other bytes are served
// by later reads, each byte once, each read verifiable and labelled with the
// job it came from.
func TestTinyPoolServesRestOfBlockLater(t *testing.T) {
	src := newScriptSource("tiny")
	p, err := New(src, fast(WithPolicy(Defer), WithBufferSize(1), WithFetchSize(1))...)
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const reads = 100
	got := map[string][]byte{}
	for range reads {
		b := make([]byte, 1)
		lbl, err := p.ReadLabelled(ctx, b)
		require.NoError(t, err)
		require.True(t, lbl.Verifiable)
		require.Len(t, lbl.Spans, 1)
		sp := lbl.Spans[0]
		job, ok := src.job(sp.JobID)
		require.True(t, ok)
		require.Equal(t, job[sp.Offset], b[0])
		got[sp.JobID] = append(got[sp.JobID], byte(sp.Offset))
	}
	for id, offs := range got {
		require.Len(t, offs, len(slices.Compact(slices.Sorted(slices.Values(offs)))), "an offset of %s served twice", id)
	}
	assert.Less(t, src.callCount(), reads/2, "every tiny read fetched a block of its own")
}

// TestHealthTestsFollowTheirConfig: WithHealthTests sets the assumptions
// blocks are judged by. A block holding a run of 12 equal bytes fails the
// default repetition count test (cutoff 7) and passes one configured for an
// assessed 1 bit per byte (cutoff 21); an invalid configuration fails New.
func TestHealthTestsFollowTheirConfig(t *testing.T) {
	var seq atomic.Int64
	src := SourceFunc(func(_ context.Context, n int) (Block, error) {
		data := make([]byte, n)
		_, _ = crand.Read(data)
		if n >= 64 {
			for i := 20; i < 32; i++ {
				data[i] = 0x5a
			}
		}
		return Block{Data: data, Source: "run12", JobID: fmt.Sprint("job-", seq.Add(1)), Verifiable: true, Proof: []byte("sig")}, nil
	})
	rct, _ := health.DefaultConfig().Cutoffs()
	require.Less(t, rct, 12)
	loose := health.Config{MinEntropy: 1, FalseAlarmLog2: 20}
	rct, _ = loose.Cutoffs()
	require.Greater(t, rct, 12)

	strict := newTestProvider(t, src, fast(WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1024))...)
	require.Eventually(t, func() bool { return strict.Stats().Sources[0].BlocksRejected > 0 }, 5*time.Second, time.Millisecond)
	assert.Zero(t, strict.Stats().Sources[0].BlocksAccepted, "the default tests let a run of 12 through")

	relaxed := newTestProvider(t, src, fast(WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1024), WithHealthTests(loose))...)
	ready(t, relaxed)
	lb, err := relaxed.ReadLabelled(context.Background(), make([]byte, 64))
	require.NoError(t, err)
	assert.True(t, lb.Verifiable)
	assert.Zero(t, relaxed.Stats().Sources[0].BlocksRejected)

	_, err = New(src, WithHealthTests(health.Config{MinEntropy: 0, FalseAlarmLog2: 40}))
	assert.Error(t, err, "an assessed entropy of 0 bits per byte")
}
