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
// and after Close every run and lane the test saw must be all zero. Reads
// larger than a run stop the head under the shard's lock while other
// readers claim from it: the claims are counted once.
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
			stop := make(chan struct{})
			sizes := []int{1, 7, 8, 31, 32, 33, 63, 100, c.fetch + 1, c.buffer / 2}
			wait := goReaders(6, 0, stop, func(g, i int) bool {
				b := make([]byte, sizes[(i+g)%len(sizes)])
				if (i+g)%2 == 0 {
					lb, err := p.ReadLabelled(context.Background(), b)
					if err != nil {
						if !errors.Is(err, ErrUnavailable) {
							t.Errorf("ReadLabelled: %v", err)
							return false
						}
						return true
					}
					if msg := led.check(b, lb); msg != "" {
						t.Errorf("read of %d: %s", len(b), msg)
						return false
					}
					if !lb.Verifiable {
						t.Errorf("a Fail Provider served a fallback label")
						return false
					}
				} else if _, err := p.Read(b); err != nil {
					if !errors.Is(err, ErrUnavailable) {
						t.Errorf("Read: %v", err)
						return false
					}
					return true
				}
				readsOK.Add(1)
				bytesOK.Add(uint64(len(b)))
				return true
			})
			// GOMAXPROCS up and down while they read; sample the runs.
			for i := 0; i < 60; i++ {
				runtime.GOMAXPROCS(1 + i%5)
				sample()
				time.Sleep(time.Millisecond)
			}
			close(stop)
			wait()
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
