package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/redisfleet"
)

// roundTrips counts the commands a client sends (each one a round trip).
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// fleetRedis returns a client of the benchmarks' Redis and a key prefix of
// their own (its keys deleted at the end), or skips.
func fleetRedis(b *testing.B) (*redis.Client, *roundTrips, string) {
	b.Helper()
	url := os.Getenv("ENTROPY_TEST_REDIS")
	if url == "" {
		b.Skip("ENTROPY_TEST_REDIS is not set (e.g. redis://127.0.0.1:6379/0): skipping the Redis benchmark")
	}
	c, err := redisfleet.NewClient(url)
	if err != nil {
		b.Fatal(err)
	}
	rt := &roundTrips{}
	c.AddHook(rt)
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := "entropy-bench-" + hex.EncodeToString(r[:])
	b.Cleanup(func() {
		ctx := context.Background()
		for _, pat := range []string{name + ":*", "rate:" + name + ":*"} {
			if keys, _ := c.Keys(ctx, pat).Result(); len(keys) > 0 {
				c.Del(ctx, keys...)
			}
		}
		_ = c.Close()
	})
	return c, rt, name
}

// BenchmarkRefillRequest is the cost of one refill request as a reader
// waiting for it sees it: a 64-byte pool, emptied by each 64-byte Defer
// read, so that every read waits for one request through the refill path
// (limiter, Retry-After hold, breaker, Fetch from memory, checks). "local"
// is the embedded x/time/rate limiter, in-memory hold and gobreaker;
// "redis" the same through a redisfleet Fleet on the Redis of
// ENTROPY_TEST_REDIS (GCRA limit, shared hold, distributed breaker). The
// rate is set far above what a loop can ask for, so nothing waits for it.
func BenchmarkRefillRequest(b *testing.B) {
	for _, mode := range []string{"local", "redis"} {
		b.Run(mode, func(b *testing.B) {
			var rt *roundTrips
			opts := []entropy.Option{
				entropy.WithPolicy(entropy.Defer),
				entropy.WithBufferSize(64),
				entropy.WithFetchSize(64),
				entropy.WithShards(1),
				entropy.WithRateLimit(rate.Limit(100000), 1000),
			}
			if mode == "redis" {
				c, counter, name := fleetRedis(b)
				rt = counter
				// A long timeout: on a loaded machine a slow answer would
				// put the fleet on local state, and measure that instead.
				opts = append(opts, entropy.WithFleet(redisfleet.New(c, redisfleet.WithName(name), redisfleet.WithTimeout(2*time.Second))))
			}
			p, err := entropy.New(newMemSource(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			buf := make([]byte, 64)
			if _, err := p.ReadLabelled(ctx, buf); err != nil {
				b.Fatal(err)
			}
			before := p.Stats().Sources[0].Requests
			var trips int64
			if rt != nil {
				trips = rt.n.Load()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.ReadLabelled(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := p.Stats()
			b.ReportMetric(float64(st.Sources[0].Requests-before)/float64(b.N), "requests/op")
			if rt != nil {
				b.ReportMetric(float64(rt.n.Load()-trips)/float64(b.N), "redis-round-trips/op")
			}
			if st.Fleet != nil && (!st.Fleet.Shared || st.Fleet.Errors > 0) {
				b.Fatalf("the fleet did not coordinate: %+v", *st.Fleet)
			}
		})
	}
}

// BenchmarkFleetCoordination is the cost of each coordination call a
// redisfleet Fleet makes on a refill request, against the Redis of
// ENTROPY_TEST_REDIS: the GCRA limiter's Wait (one script), the hold's Until
// (PTTL), and the breaker's Execute of a request that does nothing (State
// and Execute of the DistributedCircuitBreaker under its Redis mutex).
func BenchmarkFleetCoordination(b *testing.B) {
	c, rt, name := fleetRedis(b)
	fl := redisfleet.New(c, redisfleet.WithName(name), redisfleet.WithTimeout(2*time.Second))
	co, err := fl.Coordinate(entropy.FleetSource{
		Rate: rate.Limit(1e6), Burst: 1 << 20, MaxRetryAfter: time.Minute,
		FetchTimeout: time.Second, Attempts: 1, Clock: wallClock{},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("limiter", func(b *testing.B) {
		defer reportTrips(b, rt)()
		for i := 0; i < b.N; i++ {
			if err := co.Limiter.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hold", func(b *testing.B) {
		defer reportTrips(b, rt)()
		for i := 0; i < b.N; i++ {
			co.Hold.Until(ctx)
		}
	})
	b.Run("breaker", func(b *testing.B) {
		defer reportTrips(b, rt)()
		for i := 0; i < b.N; i++ {
			if _, err := co.Breaker.Execute(func() (entropy.Block, error) { return entropy.Block{}, nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	if st := fl.Status(); !st.Shared || st.Errors > 0 {
		b.Fatalf("the fleet did not coordinate: %+v", st)
	}
}

// reportTrips reports the round trips per op from now to the call of the
// function it returns.
func reportTrips(b *testing.B, rt *roundTrips) func() {
	before := rt.n.Load()
	return func() { b.ReportMetric(float64(rt.n.Load()-before)/float64(b.N), "redis-round-trips/op") }
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
