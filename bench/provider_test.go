package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/health"
	"github.com/provenrand/entropy/httpsource"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// sizes are the read sizes of every read benchmark.
var sizes = []int{8, 32, 256, 4096, 1 << 20}

// Steady-state configuration: a pool of 8 MiB (8× the largest read), refilled
// 64 KiB at a time without a rate limit from memSource.
const (
	steadyBuffer = 8 << 20
	steadyFetch  = 64 << 10
)

// sizeName names a sub-benchmark by its read size: 8B, 4KiB, 1MiB.
func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// newSteady returns a Provider over memSource whose pool is full, closed when
// the benchmark ends.
func newSteady(tb testing.TB, size int, opts ...entropy.Option) *entropy.Provider {
	tb.Helper()
	opts = append([]entropy.Option{
		entropy.WithBufferSize(steadyBufferFor(size)),
		entropy.WithFetchSize(steadyFetch),
		entropy.WithRateLimit(rate.Inf, 1),
		entropy.WithPolicy(entropy.Degrade),
	}, opts...)
	p, err := entropy.New(newMemSource(), opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = p.Close() })
	waitFull(tb, p)
	return p
}

// waitFull waits (at most 10 s) until p's pool is full to within one fetch.
func waitFull(tb testing.TB, p *entropy.Provider) {
	tb.Helper()
	require.NoError(tb, p.WaitReady(context.Background()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := p.Stats()
		if st.Pooled >= st.Capacity-steadyFetch {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pool not full after 10 s: %d of %d bytes; %+v", st.Pooled, st.Capacity, st.Sources)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// fallbackShare reports, as the metric "fallback/op", the share of the
// benchmark's reads that the pool could not serve (fallback reads since
// before, divided by b.N). In a steady-state benchmark it must be 0.
func fallbackShare(b *testing.B, p *entropy.Provider, before uint64) {
	b.ReportMetric(float64(p.Stats().FallbackReads-before)/float64(b.N), "fallback/op")
}

// labelledRead is Provider.ReadLabelled; with a full pool every read must
// come back verifiable.
func labelledRead(p *entropy.Provider, buf []byte) error {
	lb, err := p.ReadLabelled(context.Background(), buf)
	if err == nil && !lb.Verifiable {
		err = errors.New("a steady-state read was not verifiable")
	}
	return err
}

// benchSerial runs Read (or ReadLabelled if labelled) over every size with
// a full pool (see serialPacer).
func benchSerial(b *testing.B, labelled bool) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newSteady(b, n)
			buf := make([]byte, n)
			pace := newSerialPacer(b, p, n)
			before := p.Stats().FallbackReads
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				// Direct calls, as the peers call crypto/rand.Read.
				var err error
				if labelled {
					err = labelledRead(p, buf)
				} else {
					_, err = p.Read(buf)
				}
				if err != nil {
					b.Fatal(err)
				}
				pace.done(n)
			}
			b.StopTimer()
			fallbackShare(b, p, before)
		})
	}
}

// benchParallel runs Read (or ReadLabelled if labelled) from GOMAXPROCS
// goroutines over every size with a full pool (see parallelPacer).
func benchParallel(b *testing.B, labelled bool) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newSteady(b, n)
			pace := newParallelPacer(b, p, n)
			before := p.Stats().FallbackReads
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := pace.join()
				defer w.leave()
				buf := make([]byte, n)
				for pb.Next() {
					var err error
					if labelled {
						err = labelledRead(p, buf)
					} else {
						_, err = p.Read(buf)
					}
					if err != nil {
						b.Error(err)
						return
					}
					w.done(n)
				}
			})
			b.StopTimer()
			fallbackShare(b, p, before)
		})
	}
}

// The benchmarks named ...FullPool measure the read path from a full pool:
// the refill runs with the timer stopped (see serialPacer and
// parallelPacer), so they say what a read costs, not how fast reads can go
// on for ever. The Sustained benchmarks say that: they read in a tight loop
// with the refill inside the timer.

// BenchmarkReadFullPool is Provider.Read (the io.Reader) with a full pool.
func BenchmarkReadFullPool(b *testing.B) { benchSerial(b, false) }

// BenchmarkReadParallelFullPool is Provider.Read from GOMAXPROCS goroutines
// with a full pool. Its throughput at -cpu 2 against -cpu 1 shows how the
// sharded pool scales.
func BenchmarkReadParallelFullPool(b *testing.B) { benchParallel(b, false) }

// BenchmarkReadLabelledFullPool is Provider.ReadLabelled with a full pool;
// every read must come back verifiable.
func BenchmarkReadLabelledFullPool(b *testing.B) { benchSerial(b, true) }

// BenchmarkReadLabelledParallelFullPool is Provider.ReadLabelled from
// GOMAXPROCS goroutines with a full pool.
func BenchmarkReadLabelledParallelFullPool(b *testing.B) { benchParallel(b, true) }

// BenchmarkReadLabelledIntoFullPool is Provider.ReadLabelledInto with one
// Label reused for every read, with a full pool (see serialPacer): the
// zero-allocation labelled read.
func BenchmarkReadLabelledIntoFullPool(b *testing.B) {
	for _, n := range []int{32, 4096} {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newSteady(b, n)
			ctx := context.Background()
			buf := make([]byte, n)
			var lb entropy.Label
			pace := newSerialPacer(b, p, n)
			before := p.Stats().FallbackReads
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := p.ReadLabelledInto(ctx, buf, &lb); err != nil || !lb.Verifiable {
					b.Fatal(err, lb.Verifiable)
				}
				pace.done(n)
			}
			b.StopTimer()
			fallbackShare(b, p, before)
		})
	}
}

// BenchmarkReadSecret is the derived, secret-safe read (a per-shard
// AES-256-CTR stream with fast key erasure, keyed by HKDF of 32 pool bytes
// and 32 crypto/rand bytes every 64 KiB) in a tight loop from a pool that
// starts full. It takes 32 pool bytes per 64 KiB of output, so the pool
// needs no pacing: the refill (rare) is inside the timer.
func BenchmarkReadSecret(b *testing.B) {
	for _, n := range []int{32, 4096} {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newSteady(b, n)
			ctx := context.Background()
			buf := make([]byte, n)
			before := p.Stats().FallbackReads
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.ReadSecret(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			fallbackShare(b, p, before)
		})
	}
}

// BenchmarkSecretReaderParallel is io.ReadFull of SecretReader from
// GOMAXPROCS goroutines in a tight loop, as BenchmarkReadSecret; compare
// BenchmarkCryptoRandParallel.
func BenchmarkSecretReaderParallel(b *testing.B) {
	for _, n := range []int{32, 4096} {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newSteady(b, n)
			r := p.SecretReader()
			before := p.Stats().FallbackReads
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, n)
				for pb.Next() {
					if _, err := io.ReadFull(r, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			fallbackShare(b, p, before)
		})
	}
}

// BenchmarkSustainedDegrade is Provider.Read under Degrade in a tight loop,
// the refill inside the timer: once the loop outruns the refill, reads fall
// back, and fallback/op says how many. It shows the sustained rate of
// verifiable reads from the fastest possible source, bounded by
// BenchmarkRefill.
func BenchmarkSustainedDegrade(b *testing.B) {
	for _, n := range []int{32, 4096} {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newSteady(b, n)
			buf := make([]byte, n)
			before := p.Stats().FallbackReads
			b.SetBytes(int64(n))
			b.ReportAllocs()
			m := mallocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			fallbackShare(b, p, before)
			allocsPerRead(b, m)
		})
	}
}

// mallocs returns the process's count of heap allocations so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// allocsPerRead reports, as the metric "allocs/read", the allocations since
// mallocs returned before, refill's included, per read: the fraction that
// allocs/op (a whole number) rounds away.
func allocsPerRead(b *testing.B, before uint64) {
	b.ReportMetric(float64(mallocs()-before)/float64(b.N), "allocs/read")
}

// BenchmarkSustainedDefer is Provider.Read under Defer in a tight loop with
// the refill inside the timer: every read waits, if it must, for the refill
// from memSource (a source that costs nothing), so its rate is the rate at
// which the refill keeps up. Compare with CryptoRand at the same size.
func BenchmarkSustainedDefer(b *testing.B) {
	for _, n := range []int{32, 4096} {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newSteady(b, n, entropy.WithPolicy(entropy.Defer))
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			m := mallocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			allocsPerRead(b, m)
		})
	}
}

// BenchmarkRefill is the refill path's throughput: the time from New to an
// 8 MiB pool filled from memSource (fetch, health tests, copy into shards).
// Close, which zeroes the pool, runs with the timer stopped: it is not the
// refill's work.
func BenchmarkRefill(b *testing.B) {
	b.SetBytes(steadyBuffer)
	b.ReportAllocs()
	src := newMemSource()
	for range b.N {
		p := newSteadyFull(b, src)
		b.StopTimer()
		_ = p.Close()
		b.StartTimer()
	}
}

// BenchmarkRefillAgainstHealth measures the ratio BenchmarkRefill and
// BenchmarkHealthCheck give, refill throughput / health-test throughput,
// in one loop: each iteration runs the health tests alone over 8 MiB of
// memSource's buffer (128 blocks of 64 KiB), then fills an empty 8 MiB pool
// as BenchmarkRefill does, and times each. The two are measured
// milliseconds apart, so that the load of a shared machine, which can slow
// either benchmark by half between one run and the next, weighs on both
// alike. It reports the ratio as "refill/health" (1 would be a refill that
// costs nothing but its health tests).
func BenchmarkRefillAgainstHealth(b *testing.B) {
	data := randomBuffer()
	src := newMemSource()
	var inHealth, inRefill time.Duration
	off := 0
	for range b.N {
		t0 := time.Now()
		for range steadyBuffer / steadyFetch {
			if off+steadyFetch > len(data) {
				off = 0
			}
			if err := health.Check(data[off : off+steadyFetch]); err != nil {
				b.Fatal(err)
			}
			off += steadyFetch
		}
		t1 := time.Now()
		p := newSteadyFull(b, src)
		t2 := time.Now()
		b.StopTimer()
		_ = p.Close()
		b.StartTimer()
		inHealth += t1.Sub(t0)
		inRefill += t2.Sub(t1)
	}
	b.ReportMetric(float64(inHealth)/float64(inRefill), "refill/health")
}

// BenchmarkHealthCheck is the health tests alone (health.Check) over
// the refill's blocks (steadyFetch bytes of memSource's buffer): the bound
// of BenchmarkRefill, whose throughput it is compared with in the same run.
func BenchmarkHealthCheck(b *testing.B) {
	data := randomBuffer()
	b.SetBytes(steadyFetch)
	b.ReportAllocs()
	off := 0
	for range b.N {
		if off+steadyFetch > len(data) {
			off = 0
		}
		if err := health.Check(data[off : off+steadyFetch]); err != nil {
			b.Fatal(err)
		}
		off += steadyFetch
	}
}

// errDown is the failure of a source that is down for good: a permanent
// error, so the first failed refill opens the breaker.
var errDown = &entropy.APIError{StatusCode: 401, Code: "unauthorized", Message: "source down (benchmark)"}

// gobreakerSettings keeps an open breaker open for the whole benchmark.
func gobreakerSettings() gobreaker.Settings {
	return gobreaker.Settings{Name: "benchmark", Timeout: time.Hour}
}

// newDown returns a Degrade Provider whose only source always fails, once
// its breaker is open, so that every read takes the fallback path.
func newDown(tb testing.TB) *entropy.Provider {
	tb.Helper()
	src := entropy.SourceFunc(func(context.Context, int) (entropy.Block, error) { return entropy.Block{}, errDown })
	p, err := entropy.New(src,
		entropy.WithPolicy(entropy.Degrade),
		entropy.WithRateLimit(rate.Inf, 1),
		entropy.WithRetry(1, time.Second, time.Minute),
		entropy.WithBreaker(gobreakerSettings()),
	)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = p.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Sources[0].Breaker != "open" {
		if time.Now().After(deadline) {
			tb.Fatal("breaker did not open within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	return p
}

// BenchmarkFallbackRead is Provider.Read under Degrade with the source down
// and its breaker open: every read is served by crypto/rand, labelled.
func BenchmarkFallbackRead(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newDown(b)
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFallbackReadLabelled is Provider.ReadLabelled on the fallback
// path; every label carries the reason.
func BenchmarkFallbackReadLabelled(b *testing.B) {
	for _, n := range []int{32, 4096} {
		b.Run(sizeName(n), func(b *testing.B) {
			p := newDown(b)
			ctx := context.Background()
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				l, err := p.ReadLabelled(ctx, buf)
				if err != nil || l.Verifiable {
					b.Fatal(err, l.Verifiable)
				}
			}
		})
	}
}

// TestSteadyProvider checks what the steady-state benchmarks rely on: the
// pool fills, and reads of every benchmark size come back verifiable, with
// spans that tile the read, and no fallback.
func TestSteadyProvider(t *testing.T) {
	p := newSteady(t, 1<<20)
	for _, n := range sizes {
		buf := make([]byte, n)
		l, err := p.ReadLabelled(context.Background(), buf)
		require.NoError(t, err)
		require.True(t, l.Verifiable, "read of %d bytes", n)
		total := 0
		for _, s := range l.Spans {
			require.Equal(t, "memory", s.Source)
			total += s.Length
		}
		require.Equal(t, n, total)
	}
	require.Zero(t, p.Stats().FallbackReads)
}

// TestDownProvider checks what the fallback benchmarks rely on: with the
// breaker open, a read is a fallback whose reason names the source's error.
func TestDownProvider(t *testing.T) {
	p := newDown(t)
	l, err := p.ReadLabelled(context.Background(), make([]byte, 32))
	require.NoError(t, err)
	require.False(t, l.Verifiable)
	require.True(t, errors.Is(l.Reason, httpsource.ErrUnauthorized), "reason: %v", l.Reason)
}

// newSteadyFull starts a Provider with the steady-state pool and fetch
// sizes over src, unlimited, and waits until its pool is full.
func newSteadyFull(b *testing.B, src entropy.Source) *entropy.Provider {
	b.Helper()
	p, err := entropy.New(src,
		entropy.WithBufferSize(steadyBuffer),
		entropy.WithFetchSize(steadyFetch),
		entropy.WithRateLimit(rate.Inf, 1))
	if err != nil {
		b.Fatal(err)
	}
	waitFull(b, p)
	return p
}
