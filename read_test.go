package entropy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Reads on a zero Provider (not made by New) must end: a panic or an
// error, never a goroutine spinning for ever.
func TestZeroProviderReadEnds(t *testing.T) {
	if inChild(t) {
		for _, name := range []string{"Read", "ReadLabelled", "ReadLabelledInto", "ReadSecret"} {
			var p Provider
			done := make(chan string, 1)
			go func() {
				defer func() {
					if r := recover(); r != nil {
						done <- fmt.Sprint("panic recovered: ", r)
					}
				}()
				var err error
				switch name {
				case "Read":
					_, err = p.Read(make([]byte, 8))
				case "ReadLabelled":
					_, err = p.ReadLabelled(context.Background(), make([]byte, 8))
				case "ReadLabelledInto":
					err = p.ReadLabelledInto(context.Background(), make([]byte, 8), new(Label))
				case "ReadSecret":
					_, err = p.ReadSecret(context.Background(), make([]byte, 8))
				}
				done <- fmt.Sprint("error: ", err)
			}()
			select {
			case s := <-done:
				fmt.Println(name, "ended:", s)
			case <-time.After(5 * time.Second):
				fmt.Println(name, "on a zero Provider: STILL RUNNING after 5s")
				os.Exit(3) // the spinning goroutine cannot be stopped
			}
		}
		return
	}
	out, err := runInChild(t)
	require.NoError(t, err, "a read on a zero Provider never returned:\n%s", out)
	require.False(t, strings.Contains(out, "STILL RUNNING"), out)
}

// Close and WaitReady on a zero or nil Provider say what is wrong, as the
// reads do, rather than fail on a nil field.
func TestZeroProviderCloseSaysItMustBeMadeByNew(t *testing.T) {
	var zero Provider
	var nilp *Provider
	assert.PanicsWithValue(t, "entropy: a Provider must be made by New", func() { _ = zero.Close() })
	assert.PanicsWithValue(t, "entropy: a Provider must be made by New", func() { _ = nilp.Close() })
	assert.PanicsWithValue(t, "entropy: a Provider must be made by New", func() { _ = zero.WaitReady(context.Background()) })
}

// Contract point 1: fallback bytes are never labelled verifiable, carry the
// reason, and the reason reaches the source's own error.
func TestFallbackNeverLabelledVerifiable(t *testing.T) {
	apiErr := &APIError{StatusCode: 503, Code: "maintenance", RequestID: "req-1"}
	src := newScriptSource("quantropy")
	src.set(&step{err: apiErr})
	p := newTestProvider(t, src, fast()...)
	require.Eventually(t, func() bool { return errors.Is(p.Stats().Unavailable, httpStatus(503)) }, 5*time.Second, time.Millisecond)
	for _, n := range []int{1, 32, 4096, 70000} {
		b := make([]byte, n)
		lb, err := p.ReadLabelled(context.Background(), b)
		require.NoError(t, err, "Degrade never fails")
		assert.False(t, lb.Verifiable)
		assert.False(t, lb.Derived)
		assert.Equal(t, []Span{{Source: FallbackSource, Length: n}}, lb.Spans)
		require.Error(t, lb.Reason)
		assert.ErrorIs(t, lb.Reason, ErrUnavailable)
		assert.ErrorIs(t, lb.Reason, httpStatus(503))
		var ae *APIError
		require.ErrorAs(t, lb.Reason, &ae)
		assert.Equal(t, "req-1", ae.RequestID)
		assert.Equal(t, ProvenanceFallback, lb.Provenance())
	}
	// Read, the io.Reader, never fails under Degrade either.
	b := make([]byte, 64)
	n, err := p.Read(b)
	require.NoError(t, err)
	assert.Equal(t, 64, n)
	st := p.Stats()
	assert.Equal(t, uint64(5), st.FallbackReads)
	assert.Zero(t, st.VerifiableReads)
}

// Contract point 2: one read is all verifiable or all fallback, even while
// the source flips between healthy and failing under many readers.
func TestReadNeverMixesClasses(t *testing.T) {
	src := newScriptSource("quantropy")
	src.maxLen = 512
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(512), WithShards(2))...)
	full(t, p, 4096) // start with a full pool, so that both classes occur however fast the reads are
	led := newLedger(src)
	stopFlip := flipSource(src, 500, 2, 2*time.Millisecond)
	var mu sync.Mutex
	classes := map[Provenance]int{}
	runReaders(8, 400, func(g, i int) bool {
		b := make([]byte, 1+(g*131+i*37)%1500)
		lb, err := p.ReadLabelled(context.Background(), b)
		if err != nil {
			t.Error(err)
		} else if msg := led.check(b, lb); msg != "" {
			t.Error(msg)
		}
		mu.Lock()
		classes[lb.Provenance()]++
		mu.Unlock()
		return true
	})
	stopFlip()
	require.False(t, t.Failed())
	assert.Positive(t, classes[ProvenanceVerifiable], "some reads should be verifiable")
	assert.Zero(t, classes[ProvenanceDerived])
}

// ReadLabelledInto serves what ReadLabelled serves (verifiable bytes whose
// spans tile the read, never a byte twice), writes the label into the
// caller's Label, and reuses its spans' array: from a full pool it
// allocates nothing.
func TestReadLabelledIntoReusesSpans(t *testing.T) {
	src := newScriptSource("quantropy")
	led := newLedger(src)
	p := newTestProvider(t, src, fast(WithShards(1), WithBufferSize(1<<16))...)
	full(t, p, 1<<15)
	ctx := context.Background()
	var lb Label
	b := make([]byte, 32)
	require.NoError(t, p.ReadLabelledInto(ctx, b, &lb))
	require.True(t, lb.Verifiable)
	require.Empty(t, led.check(b, lb))
	first := &lb.Spans[:1][0]
	for range 20 {
		require.NoError(t, p.ReadLabelledInto(ctx, b, &lb))
		require.Empty(t, led.check(b, lb))
		require.Same(t, first, &lb.Spans[0], "the label's span array is reused")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.ReadLabelledInto(ctx, b, &lb); err != nil || !lb.Verifiable {
			t.Errorf("read: %v %+v", err, lb)
		}
	})
	require.Zero(t, allocs)
	// A read larger than a run: several spans, still tiling the read.
	big := make([]byte, 5000)
	require.NoError(t, p.ReadLabelledInto(ctx, big, &lb))
	require.Empty(t, led.check(big, lb))
}

// A Label reused by ReadLabelledInto keeps nothing of what it held: a
// verifiable read from a full pool writes every field, whether the label
// held a fallback read's reason, a derived read's flag or other spans.
func TestReadLabelledIntoOverwritesEveryField(t *testing.T) {
	src := newScriptSource("quantropy")
	led := newLedger(src)
	p := newTestProvider(t, src, fast(WithShards(1), WithBufferSize(1<<16))...)
	full(t, p, 1<<15)
	b := make([]byte, 32)
	for _, old := range []Label{
		{Reason: ErrUnavailable, Spans: []Span{{Source: FallbackSource, Length: 7}}},
		{Derived: true, Spans: []Span{{Source: "other", JobID: "job-1", Offset: 5, Length: 32, Public: true}, {Source: "x", Length: 1}}},
		{Verifiable: true, Spans: []Span{{Source: "quantropy", JobID: "job-2", Offset: 9, Length: 3}}},
		{},
	} {
		lb := old
		require.NoError(t, p.ReadLabelledInto(context.Background(), b, &lb))
		require.Empty(t, led.check(b, lb))
		require.Len(t, lb.Spans, 1)
		want := Label{Verifiable: true, Spans: []Span{lb.Spans[0]}}
		assert.Equal(t, want, lb, "label that held %+v", old)
		assert.Equal(t, "quantropy", lb.Spans[0].Source)
		assert.NotEmpty(t, lb.Spans[0].JobID)
		assert.Equal(t, 32, lb.Spans[0].Length)
		assert.False(t, lb.Spans[0].Public)
	}
}

// Under each policy with the pool empty ReadLabelledInto behaves as
// ReadLabelled: Degrade writes a fallback label with the reason, Fail
// returns the error and a zero label, and bad arguments are errors.
func TestReadLabelledIntoPolicies(t *testing.T) {
	for _, pol := range []Policy{Degrade, Fail} {
		t.Run(pol.String(), func(t *testing.T) {
			src := newScriptSource("quantropy")
			src.set(&step{err: &APIError{StatusCode: 503}})
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithWarmStart(0))...)
			lb := Label{Verifiable: true, Spans: make([]Span, 1, 4)}
			b := make([]byte, 32)
			err := p.ReadLabelledInto(context.Background(), b, &lb)
			if pol == Degrade {
				require.NoError(t, err)
				assert.Equal(t, ProvenanceFallback, lb.Provenance())
				assert.Equal(t, []Span{{Source: FallbackSource, Length: 32}}, lb.Spans)
				assert.Error(t, lb.Reason)
				return
			}
			assert.ErrorIs(t, err, ErrUnavailable)
			assert.Equal(t, ProvenanceFallback, lb.Provenance())
			assert.Empty(t, lb.Spans)
			assert.Nil(t, lb.Reason)
			assert.Equal(t, make([]byte, 32), b)
		})
	}
	p := newTestProvider(t, newScriptSource("q"), fast()...)
	var lb Label
	assert.Error(t, p.ReadLabelledInto(context.Background(), make([]byte, 8), nil))
	assert.Error(t, p.ReadLabelledInto(context.Background(), nil, &lb))
	//nolint:staticcheck // a nil context is refused, not dereferenced
	assert.Error(t, p.ReadLabelledInto(nil, make([]byte, 8), &lb))
	require.NoError(t, p.Close())
	assert.ErrorIs(t, p.ReadLabelledInto(context.Background(), make([]byte, 8), &lb), ErrClosed)
}

// gatedSource is a scriptSource whose Fetch, once closed is set, waits
// until its context ends: it parks the refill goroutine inside a request,
// so that a test can count the allocations of reads alone.
type gatedSource struct {
	*scriptSource
	closed  atomic.Bool
	waiting atomic.Int32
}

func (g *gatedSource) Fetch(ctx context.Context, n int) (Block, error) {
	if g.closed.Load() {
		g.waiting.Add(1)
		<-ctx.Done()
		return Block{}, ctx.Err()
	}
	return g.scriptSource.Fetch(ctx, n)
}

// A read that its shard's head cannot serve allocates nothing: not when it
// crosses from one run to the next under the shard's lock (no tail run is
// made of the run it stops), not when it is served by another shard, not
// when Defer gathers it from two shards, and Read builds no spans on any of
// these paths. ReadLabelledInto with a Label that has room for the spans
// allocates nothing on them either. (The refill goroutine waits inside a
// request meanwhile, so the count is the reads'.)
func TestLowPoolReadAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates by itself; go test without -race counts the reads' allocations")
	}
	for _, pol := range []Policy{Degrade, Defer} {
		t.Run(pol.String(), func(t *testing.T) {
			src := &gatedSource{scriptSource: newScriptSource("low-" + pol.String())}
			src.maxLen = 100
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithShards(2), WithBufferSize(4096), WithFetchSize(100))...)
			full(t, p, 4096-100)
			src.closed.Store(true)
			ctx := context.Background()
			b := make([]byte, 150)
			// Drain a shard below its low watermark: the refill starts,
			// and waits in Fetch.
			for range 1 + 2048/len(b)/2 {
				_, err := p.Read(b)
				require.NoError(t, err)
			}
			require.Eventually(t, func() bool { return src.waiting.Load() > 0 }, 10*time.Second, time.Millisecond)
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // as testing.AllocsPerRun
			lb := Label{Spans: make([]Span, 0, 4)}
			before := p.Stats()
			// Degrade serves a read from one shard (else it falls back);
			// Defer gathers it from both.
			servable := func() bool {
				most, total := 0, 0
				for _, s := range p.shards {
					s.mu.Lock()
					most = max(most, s.avail())
					total += s.avail()
					s.mu.Unlock()
				}
				return most >= len(b) || (pol == Defer && total >= len(b))
			}
			// Counted as testing.AllocsPerRun counts: the process's
			// allocations over the reads, averaged and rounded down, so that
			// one made by another goroutine meanwhile (the race detector's
			// own, say) is not taken for the reads'.
			var ms runtime.MemStats
			reads := 0
			var allocs uint64
			for ; servable(); reads++ {
				runtime.ReadMemStats(&ms)
				m := ms.Mallocs
				var err error
				if reads%2 == 0 {
					err = p.ReadLabelledInto(ctx, b, &lb)
				} else {
					_, err = p.Read(b)
				}
				runtime.ReadMemStats(&ms)
				require.NoError(t, err)
				allocs += ms.Mallocs - m
			}
			assert.Greater(t, reads, 10)
			t.Logf("%d allocations over %d low-pool reads", allocs, reads)
			assert.Zero(t, allocs/uint64(reads), "allocations per read")
			st := p.Stats()
			assert.Equal(t, before.FallbackReads, st.FallbackReads, "every read was verifiable")
			assert.Equal(t, 1, int(src.waiting.Load()), "the refill waited in one request")
		})
	}
}
