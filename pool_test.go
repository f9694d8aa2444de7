package entropy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Contract points 1 and 3 at the edge: a read of exactly the pool's size
// gathers every shard, under Fail, and is served verifiably, once.
func TestReadOfWholePoolGathersEveryShard(t *testing.T) {
	src := newScriptSource("q")
	src.maxLen = 100
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1000), WithShards(8))...)
	led := newLedger(src)
	// Reads that find the pool short fail at once (Fail) and make the refill
	// top the pool up; one of them is eventually served whole.
	b := make([]byte, 4096)
	var lb Label
	require.Eventually(t, func() bool {
		var err error
		lb, err = p.ReadLabelled(context.Background(), b)
		if err != nil {
			require.ErrorIs(t, err, ErrUnavailable)
			require.ErrorIs(t, err, ErrPoolEmpty)
			require.Equal(t, make([]byte, len(b)), b)
			return false
		}
		return true
	}, 10*time.Second, time.Millisecond)
	require.True(t, lb.Verifiable)
	assert.Empty(t, led.check(b, lb))
	assert.Equal(t, 4096, lb.Len())
	assert.Greater(t, len(lb.Spans), 8, "the read gathered many jobs over every shard")
}

// Contract point 1 and 3: every verifiable span points at its job's bytes,
// and no byte of any job is served twice, across many concurrent readers
// and reads of every size, including reads that gather from several shards.
func TestNoByteServedTwice(t *testing.T) {
	src := newScriptSource("quantropy")
	src.maxLen = 3000 // blocks smaller than the fetch size: many jobs, many boundaries
	p := newTestProvider(t, src, fast(WithBufferSize(16<<10), WithFetchSize(4096), WithShards(4), WithPolicy(Defer))...)
	led := newLedger(src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runReaders(8, 300, func(g, i int) bool {
		b := make([]byte, 1+(g*131+i*37)%600)
		lb, err := p.ReadLabelled(ctx, b)
		switch {
		case err != nil:
			t.Error(err)
		case !lb.Verifiable:
			t.Error("Defer served a non-verifiable read")
		default:
			msg := led.check(b, lb)
			if msg == "" {
				return true
			}
			t.Error(msg)
		}
		return false
	})
	require.False(t, t.Failed())
	st := p.Stats()
	assert.Equal(t, uint64(8*300), st.VerifiableReads)
	assert.Zero(t, st.FallbackReads)
}

// Contract point 3: the pool slot of a byte is zeroed when it is handed out.
func TestConsumedBytesZeroed(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithBufferSize(4096), WithFetchSize(4096), WithShards(1))...)
	full(t, p, 4096)
	s := p.shards[0]
	s.mu.Lock()
	c := s.head.Load()
	s.mu.Unlock()
	require.NotNil(t, c)
	b := make([]byte, 100)
	lb, err := p.ReadLabelled(context.Background(), b)
	require.NoError(t, err)
	require.True(t, lb.Verifiable)
	require.Len(t, lb.Spans, 1)
	// The chunk's bytes that were served are zero now; the rest are not all zero.
	s.mu.Lock()
	served := c.data[:lb.Spans[0].Offset-c.base+100]
	rest := c.data[lb.Spans[0].Offset-c.base+100:]
	s.mu.Unlock()
	assert.Equal(t, make([]byte, len(served)), served)
	assert.NotEqual(t, make([]byte, len(rest)), rest)
	job, ok := src.job(lb.Spans[0].JobID)
	require.True(t, ok)
	assert.Equal(t, job[lb.Spans[0].Offset:lb.Spans[0].Offset+100], b)
}

// Read and ReadLabelled agree on steady state: a full pool serves reads of
// every size without fallback.
func TestSteadyStateServesFromPool(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithBufferSize(1<<16))...)
	full(t, p, 1<<16)
	for _, n := range []int{1, 8, 32, 256, 4096} {
		b := make([]byte, n)
		got, err := p.Read(b)
		require.NoError(t, err)
		assert.Equal(t, n, got)
	}
	assert.Zero(t, p.Stats().FallbackReads)
	assert.Equal(t, uint64(5), p.Stats().VerifiableReads)
}

// A read smaller than a shard, when no shard holds it alone but the pool
// does (the refill put each block in the emptiest shard), is served
// verifiably from several shards: Degrade does not fall back and Fail does
// not fail while the pool holds the bytes.
func TestReadSpreadOverShardsIsServedFromThePool(t *testing.T) {
	for _, pol := range []Policy{Fail, Degrade} {
		t.Run(pol.String(), func(t *testing.T) {
			var served atomic.Int32
			src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
				k := served.Add(1)
				if k > 2 {
					<-ctx.Done() // two blocks, then the source has no more
					return Block{}, ctx.Err()
				}
				d := make([]byte, 32)
				rand.NewChaCha8([32]byte{byte(k)}).Read(d)
				return Block{Data: d, Source: "spread", JobID: fmt.Sprint(k), Verifiable: true}, nil
			})
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithShards(4), WithBufferSize(256), WithFetchSize(32))...)
			full(t, p, 64)
			b := make([]byte, 40)
			lb, err := p.ReadLabelled(context.Background(), b)
			require.NoError(t, err)
			require.True(t, lb.Verifiable, "fell back with 64 bytes in the pool: %v", lb)
			require.Len(t, lb.Spans, 2)
			assert.Equal(t, 40, lb.Len())
			assert.Equal(t, 24, p.Stats().Pooled)
			assert.Zero(t, p.Stats().FallbackReads)
		})
	}
}

// Contract points 2 and 3 for a read larger than any shard, which is
// gathered from several shards holding one lock at a time: it is served
// whole when the pool holds enough; when the pool does not, it takes
// nothing (no pool byte is lost or handed out), b is zeroed, and the policy
// applies.
func TestSpreadReadWholeOrNothing(t *testing.T) {
	for _, pol := range []Policy{Fail, Degrade, Defer} {
		t.Run(pol.String(), func(t *testing.T) {
			src := &gatedSource{scriptSource: newScriptSource("spread-" + pol.String())}
			src.maxLen = 100
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithShards(4), WithBufferSize(4096), WithFetchSize(100))...)
			full(t, p, 4096-100)
			led := newLedger(src.scriptSource)
			// Stop the refill: it waits in Fetch from now on.
			src.closed.Store(true)
			require.Eventually(t, func() bool {
				_, err := p.Read(make([]byte, 64))
				require.NoError(t, err)
				return src.waiting.Load() > 0
			}, 10*time.Second, time.Millisecond)
			st := p.Stats()
			pooled := st.Pooled
			// Reads spread over the shards drain them evenly, so the pool
			// can be near half full when the first shard drops below its
			// low watermark and the refill asks the gated source.
			require.Greater(t, pooled, 1024+100)

			// Too large for the pool: nothing taken.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			b := make([]byte, pooled+1)
			lb, err := p.ReadLabelled(ctx, b)
			switch pol {
			case Fail:
				require.ErrorIs(t, err, ErrUnavailable)
				require.Equal(t, make([]byte, len(b)), b)
			case Degrade:
				require.NoError(t, err)
				require.False(t, lb.Verifiable)
			case Defer:
				// Defer gathers what there is and waits for the rest: at
				// its deadline the bytes it took are zeroed and lost.
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.Equal(t, make([]byte, len(b)), b)
			}
			if pol != Defer {
				assert.Equal(t, pooled, p.Stats().Pooled, "a read the pool could not serve took pool bytes")
			}

			// Within the pool, larger than any shard: served whole, once.
			if pol == Defer {
				return
			}
			b = make([]byte, pooled-50)
			lb, err = p.ReadLabelled(context.Background(), b)
			require.NoError(t, err)
			require.True(t, lb.Verifiable)
			assert.Equal(t, len(b), lb.Len())
			assert.Empty(t, led.check(b, lb))
			after := p.Stats()
			assert.Equal(t, pooled-len(b), after.Pooled)
			assert.Equal(t, after.Sources[0].BytesAccepted, after.VerifiableBytes+uint64(after.Pooled))
		})
	}
}

// A read that finds the shards holding its bytes frozen by a read gathering
// from several (takeSpread, between its passes) waits for the thaw and is
// served from the pool: under Fail it does not fail, and under Degrade it
// does not fall back, while the pool holds its bytes. The gathering read
// here is one larger than the pool, which takes nothing and thaws them.
func TestReadPassedByFrozenShardsIsServedFromThePool(t *testing.T) {
	for _, pol := range []Policy{Fail, Degrade} {
		t.Run(pol.String(), func(t *testing.T) {
			src := newScriptSource("frozen-" + pol.String())
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithShards(2), WithBufferSize(256), WithFetchSize(64))...)
			full(t, p, 256)
			src.set(&step{err: &APIError{StatusCode: 503}})
			led := newLedger(src)
			// takeSpread's first pass, as a read of more than the pool
			// leaves it: spreadMu held, both shards frozen.
			p.spreadMu.Lock()
			freezeShards(p)
			type res struct {
				lb  Label
				err error
			}
			done := make(chan res, 1)
			b := make([]byte, 16)
			go func() {
				lb, err := p.ReadLabelled(context.Background(), b)
				done <- res{lb, err}
			}()
			waiting := func() bool {
				return blockedIn(fmt.Sprintf("(*Provider).ReadLabelled(%p", p), "(*Provider).takeSpread(")
			}
			var early *res
			require.Eventually(t, func() bool {
				select {
				case r := <-done:
					early = &r
					return true
				default:
					return waiting()
				}
			}, 10*time.Second, time.Millisecond)
			// Its second pass: nothing taken, every shard thawed.
			for _, s := range p.shards {
				s.mu.Lock()
				s.frozen = false
				s.publish()
				s.mu.Unlock()
			}
			p.spreadMu.Unlock()
			if early != nil {
				t.Fatalf("the read did not wait for the thaw: %v, %+v, with %d bytes pooled", early.err, early.lb, p.Stats().Pooled)
			}
			var r res
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the read did not return after the thaw")
			}
			require.NoError(t, r.err)
			require.True(t, r.lb.Verifiable)
			assert.Empty(t, led.check(b, r.lb))
			assert.Equal(t, 256-16, p.Stats().Pooled)
			assert.Zero(t, p.Stats().FallbackReads)
		})
	}
}

// The same through the entry points, with the timing left to the
// scheduler: small reads (Read, ReadLabelled, ReadLabelledInto), 3000
// bytes in all from a full pool of 4096 with the source down, beside a
// goroutine whose reads are larger than the pool (each freezes both shards,
// finds them short, and thaws them). Every small read is served
// verifiably, once.
func TestSmallReadsBesideReadsLargerThanThePoolServedFromIt(t *testing.T) {
	for _, pol := range []Policy{Fail, Degrade} {
		t.Run(pol.String(), func(t *testing.T) {
			src := newScriptSource("beside-" + pol.String())
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithShards(2), WithBufferSize(4096), WithFetchSize(256))...)
			full(t, p, 4096)
			src.set(&step{err: &APIError{StatusCode: 503}})
			led := newLedger(src)
			stop := make(chan struct{})
			big := make([]byte, 8192)
			wait := goReaders(1, 0, stop, func(int, int) bool {
				_, _ = p.ReadLabelled(context.Background(), big)
				runtime.Gosched()
				return true
			})
			var lb Label
			failed := 0
			for i := 0; i < 2000; i++ {
				runtime.Gosched()
				b := make([]byte, 1+i%2)
				var err error
				switch i % 3 {
				case 0:
					lb, err = p.ReadLabelled(context.Background(), b)
				case 1:
					err = p.ReadLabelledInto(context.Background(), b, &lb)
				case 2:
					if _, err = p.Read(b); err != nil {
						failed++
					}
					continue
				}
				if err != nil || !lb.Verifiable {
					failed++
					continue
				}
				require.Empty(t, led.check(b, lb))
			}
			close(stop)
			wait()
			assert.Zero(t, failed, "small reads not served from the pool, which holds %d bytes", p.Stats().Pooled)
			if pol == Fail {
				assert.Zero(t, p.Stats().FallbackReads)
			}
		})
	}
}

// While the pool holds every byte that the reads in flight ask for, each of
// them is served from it, whatever the shards and the sizes: with the
// source down and reads (Read, ReadLabelled, ReadLabelledInto) of one byte
// to twice a shard asking for no more than the pool holds in all, Fail
// fails none and Degrade falls back for none, and the ledger finds each
// byte served once.
func TestReadsWithinThePoolServedFromIt(t *testing.T) {
	type cfg struct{ shards, buffer, fetch int }
	for _, c := range []cfg{{1, 256, 64}, {2, 256, 48}, {3, 512, 100}, {4, 512, 64}, {5, 1024, 100}, {8, 1024, 64}, {8, 4096, 700}} {
		for _, pol := range []Policy{Fail, Degrade} {
			t.Run(fmt.Sprintf("%v-shards%d-buffer%d-fetch%d", pol, c.shards, c.buffer, c.fetch), func(t *testing.T) {
				src := newScriptSource(fmt.Sprintf("within-%v-%d-%d", pol, c.shards, c.buffer))
				src.maxLen = c.fetch
				p := newTestProvider(t, src, fast(WithPolicy(pol), WithShards(c.shards), WithBufferSize(c.buffer), WithFetchSize(c.fetch))...)
				full(t, p, c.buffer-c.fetch)
				src.set(&step{err: &APIError{StatusCode: 503}})
				require.Eventually(t, func() bool { return refillIdle(p) }, 10*time.Second, time.Millisecond)
				pooled := int64(p.Stats().Pooled) // a block still landing only adds to it
				led := newLedger(src)
				shardCap := p.shards[len(p.shards)-1].cap
				sizes := []int{1, 7, shardCap - 1, shardCap + 1, 33, 2 * shardCap, 5}
				var asked, unserved atomic.Int64
				var last atomic.Value
				runReaders(6, 200, func(g, i int) bool {
					b := make([]byte, sizes[(g*7+i)%len(sizes)])
					if asked.Add(int64(len(b))) > pooled {
						return false
					}
					if i%5 == 4 {
						runtime.Gosched()
					}
					var lb Label
					var err error
					switch (g + i) % 3 {
					case 0:
						lb, err = p.ReadLabelled(context.Background(), b)
					case 1:
						err = p.ReadLabelledInto(context.Background(), b, &lb)
					default:
						if _, err = p.Read(b); err != nil {
							unserved.Add(1)
							last.Store(fmt.Sprintf("Read of %d: %v", len(b), err))
						}
						return true
					}
					if err != nil || !lb.Verifiable {
						unserved.Add(1)
						last.Store(fmt.Sprintf("read of %d: %v, %v", len(b), err, lb))
						return true
					}
					if msg := led.check(b, lb); msg != "" {
						t.Error(msg)
					}
					return true
				})
				assert.Zero(t, unserved.Load(), "last: %v (the pool held %d bytes, now %d)", last.Load(), pooled, p.Stats().Pooled)
				assert.Zero(t, p.Stats().FallbackReads)
			})
		}
	}
}

// freezeShards freezes every shard of p as takeSpread's first pass does:
// its head stopped, no read takes from it until it thaws.
func freezeShards(p *Provider) {
	for _, s := range p.shards {
		s.mu.Lock()
		s.unpublish()
		s.frozen = true
		s.mu.Unlock()
	}
}
