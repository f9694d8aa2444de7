package entropy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lock-free read path under churn: readers on every path with odd
// sizes, GOMAXPROCS moving up and down (so that more Ps than shards share
// one, and readers move between shards), tiny pools so that runs end and
// slow paths run all the time. Under Fail every successful read is
// verifiable, so the Provider's counters must equal the callers' exactly;
// every label must match its job's bytes, no byte may be handed out twice,
// and after Close every run and lane the test saw must be all zero.
func TestLockFreeChurn(t *testing.T) {
	for _, c := range []struct {
		shards, buffer, fetch int
	}{
		{1, 256, 64},
		{2, 1024, 100},
		{3, 4096, 1000},
		{8, 8192, 512},
	} {
		t.Run(fmt.Sprintf("shards%d-buffer%d", c.shards, c.buffer), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
			src := newScriptSource(fmt.Sprintf("churn-%d", c.shards))
			src.maxLen = c.fetch
			p, err := New(src, fast(WithPolicy(Fail), WithShards(c.shards), WithBufferSize(c.buffer), WithFetchSize(c.fetch))...)
			require.NoError(t, err)
			ready(t, p)
			led := newLedger(src)

			var seenMu sync.Mutex
			seen := map[*run]bool{}
			sample := func() {
				seenMu.Lock()
				defer seenMu.Unlock()
				for _, s := range p.shards {
					s.mu.Lock()
					if h := s.head.Load(); h != nil {
						seen[h] = true
					}
					for _, r := range s.runs[s.first:] {
						seen[r] = true
					}
					s.mu.Unlock()
				}
			}

			var readsOK, bytesOK atomic.Uint64
			var wg sync.WaitGroup
			stop := make(chan struct{})
			sizes := []int{1, 7, 8, 31, 32, 33, 63, 100, c.fetch + 1, c.buffer / 2}
			for g := 0; g < 6; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						b := make([]byte, sizes[(i+g)%len(sizes)])
						if (i+g)%2 == 0 {
							lb, err := p.ReadLabelled(context.Background(), b)
							if err != nil {
								if !errors.Is(err, ErrUnavailable) {
									t.Errorf("ReadLabelled: %v", err)
									return
								}
								continue
							}
							if msg := led.check(b, lb); msg != "" {
								t.Errorf("read of %d: %s", len(b), msg)
								return
							}
							if !lb.Verifiable {
								t.Errorf("a Fail Provider served a fallback label")
								return
							}
						} else if _, err := p.Read(b); err != nil {
							if !errors.Is(err, ErrUnavailable) {
								t.Errorf("Read: %v", err)
								return
							}
							continue
						}
						readsOK.Add(1)
						bytesOK.Add(uint64(len(b)))
					}
				}(g)
			}
			// GOMAXPROCS up and down while they read; sample the runs.
			for i := 0; i < 60; i++ {
				runtime.GOMAXPROCS(1 + i%5)
				sample()
				time.Sleep(time.Millisecond)
			}
			close(stop)
			wg.Wait()
			sample()

			st := p.Stats()
			assert.Equal(t, readsOK.Load(), st.VerifiableReads, "verifiable reads counted")
			assert.Equal(t, bytesOK.Load(), st.VerifiableBytes, "verifiable bytes counted")
			assert.Zero(t, st.FallbackReads)
			assert.Greater(t, readsOK.Load(), uint64(100), "the readers got going")

			require.NoError(t, p.Close())
			seenMu.Lock()
			defer seenMu.Unlock()
			require.NotEmpty(t, seen)
			for r := range seen {
				require.Equal(t, make([]byte, len(r.data)), r.data, "a run of job %s is not zero after Close", r.from.job)
			}
		})
	}
}

// Close while readers are on the fast path, the slow path, the fallback
// lanes and waiting under Defer: every read ends (no goroutine is left, see
// TestMain's goleak), every successful one is checked by the ledger, every
// other one returns ErrClosed or ctx's error, and the pool and the lanes
// are zero afterwards.
func TestLockFreeCloseRace(t *testing.T) {
	for _, pol := range []Policy{Degrade, Defer} {
		t.Run(pol.String(), func(t *testing.T) {
			for round := 0; round < 20; round++ {
				src := newScriptSource(fmt.Sprintf("close-%s-%d", pol, round))
				src.maxLen = 300
				p, err := New(src, fast(WithPolicy(pol), WithBufferSize(2048), WithFetchSize(300), WithShards(2))...)
				require.NoError(t, err)
				ready(t, p)
				if round%2 == 1 {
					// Half the rounds with the source down, so that Degrade
					// reads go to the lanes and Defer reads wait.
					src.set(&step{err: &APIError{StatusCode: 503}})
				}
				led := newLedger(src)
				var wg sync.WaitGroup
				var bad atomic.Value
				for g := 0; g < 4; g++ {
					wg.Add(1)
					go func(g int) {
						defer wg.Done()
						for i := 0; i < 200; i++ {
							b := make([]byte, 1+(i*37+g*11)%700)
							ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
							lb, err := p.ReadLabelled(ctx, b)
							cancel()
							switch {
							case err == nil:
								if msg := led.check(b, lb); msg != "" {
									bad.Store(msg)
									return
								}
							case errors.Is(err, ErrClosed):
								return
							case errors.Is(err, context.DeadlineExceeded):
								if !bytesZero(b) {
									bad.Store("a failed read left bytes in b")
									return
								}
							default:
								bad.Store("unexpected error: " + err.Error())
								return
							}
						}
					}(g)
				}
				time.Sleep(time.Duration(round%4) * time.Millisecond)
				var lanes []*run
				var runs []*run
				for _, s := range p.shards {
					s.fbMu.Lock()
					if r := s.fb.Load(); r != nil {
						lanes = append(lanes, r)
					}
					s.fbMu.Unlock()
					s.mu.Lock()
					if h := s.head.Load(); h != nil {
						runs = append(runs, h)
					}
					runs = append(runs, s.runs[s.first:]...)
					s.mu.Unlock()
				}
				require.NoError(t, p.Close())
				wg.Wait()
				if msg, _ := bad.Load().(string); msg != "" {
					t.Fatalf("round %d: %s", round, msg)
				}
				for _, r := range append(runs, lanes...) {
					require.True(t, bytesZero(r.data), "round %d: bytes left after Close", round)
				}
				for _, s := range p.shards {
					assert.Nil(t, s.head.Load())
					assert.Nil(t, s.fb.Load())
				}
			}
		})
	}
}

func bytesZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// A read that stops a head run (slow path) while other readers claim from
// it: the counts of the run's claims are added once, so Stats equal the
// callers' counts, and fast reads never see a stopped run's bytes.
func TestLockFreeStopWhileClaiming(t *testing.T) {
	src := newScriptSource("stop")
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithShards(1), WithBufferSize(1<<14), WithFetchSize(1<<12))...)
	full(t, p, 1<<13)
	led := newLedger(src)
	var ok, okBytes atomic.Uint64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				n := 16
				if g == 0 && i%5 == 0 {
					n = 5000 // larger than a run: takes over the head under the lock
				}
				b := make([]byte, n)
				lb, err := p.ReadLabelled(context.Background(), b)
				if err != nil {
					continue
				}
				if msg := led.check(b, lb); msg != "" {
					t.Error(msg)
					return
				}
				ok.Add(1)
				okBytes.Add(uint64(n))
			}
		}(g)
	}
	wg.Wait()
	st := p.Stats()
	assert.Equal(t, ok.Load(), st.VerifiableReads)
	assert.Equal(t, okBytes.Load(), st.VerifiableBytes)
}
