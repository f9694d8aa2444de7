package entropy

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockFreeDegradeSwitching: the source goes down and comes back
// again and again while readers use every entry point under Degrade, with
// GOMAXPROCS moving. No read mixes classes: a verifiable label's bytes are
// its jobs' bytes, a fallback label's bytes hold no job bytes at all, an
// unlabelled Read is all job bytes or none. Every fallback episode that
// starts ends, and the episodes' reads and bytes add up to Stats'.
func TestLockFreeDegradeSwitching(t *testing.T) {
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprintf("shards%d", shards), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
			src := newScriptSource(fmt.Sprintf("switch-%d", shards))
			src.maxLen = 128
			var eps episodeLog
			p, err := New(src, fast(WithShards(shards), WithBufferSize(1024), WithFetchSize(128), WithFallbackHook(eps.hook))...)
			require.NoError(t, err)
			defer func() { _ = p.Close() }()
			full(t, p, 512)
			led := newLedger(src)
			var keepMu sync.Mutex
			var kept []lfUnlabelled
			var nV, nF atomic.Uint64
			stop := make(chan struct{})
			sizes := []int{1, 7, 8, 31, 33, 129, 600}
			wait := goReaders(6, 0, stop, func(g, i int) bool {
				b := make([]byte, sizes[(i+g)%len(sizes)])
				switch (i + g) % 3 {
				case 0:
					if _, err := p.Read(b); err != nil {
						t.Errorf("Read under Degrade: %v", err)
						return false
					}
					keepMu.Lock()
					kept = append(kept, lfUnlabelled{b: b})
					keepMu.Unlock()
				case 1:
					lb, err := p.ReadLabelled(context.Background(), b)
					if err != nil {
						t.Errorf("ReadLabelled under Degrade: %v", err)
						return false
					}
					if msg := led.check(b, lb); msg != "" {
						t.Errorf("ReadLabelled: %s", msg)
						return false
					}
					if lb.Verifiable {
						nV.Add(1)
					} else {
						nF.Add(1)
						keepMu.Lock()
						kept = append(kept, lfUnlabelled{b: b, fallback: true})
						keepMu.Unlock()
					}
				case 2:
					lb, err := p.ReadSecret(context.Background(), b)
					if err != nil {
						t.Errorf("ReadSecret under Degrade: %v", err)
						return false
					}
					if lb.Verifiable {
						t.Errorf("ReadSecret returned a verifiable label")
						return false
					}
					if lb.Derived {
						if msg, _ := led.claimDerived(lb.Spans); msg != "" {
							t.Errorf("ReadSecret: %s", msg)
							return false
						}
					} else if msg := led.check(b, lb); msg != "" {
						t.Errorf("ReadSecret fallback: %s", msg)
						return false
					}
				}
				return true
			})
			for i := 0; i < 40; i++ {
				runtime.GOMAXPROCS(1 + i%4)
				if i%2 == 0 {
					src.set(&step{err: &APIError{StatusCode: 503}})
				} else {
					src.set(nil)
				}
				time.Sleep(2 * time.Millisecond)
			}
			close(stop)
			wait()
			require.False(t, t.Failed())
			assert.Positive(t, nV.Load(), "no verifiable labelled read")
			assert.Positive(t, nF.Load(), "no fallback labelled read")

			require.NoError(t, p.Close())
			idx := newLFIndex(src)
			for _, u := range kept {
				spans, _, fb, err := idx.locate(src.name, u.b)
				require.NoError(t, err, "a read mixes classes")
				if u.fallback {
					assert.True(t, fb || len(u.b) < lfWin, "a fallback-labelled read holds job bytes")
					continue
				}
				led.mu.Lock()
				for _, sp := range spans {
					if msg := led.take(sp, nil); msg != "" {
						t.Errorf("an unlabelled read: %s", msg)
					}
				}
				led.mu.Unlock()
			}
			st := p.Stats()
			for _, ep := range eps.all() {
				if ep.Ended {
					assert.False(t, ep.End.Before(ep.Start))
					assert.Error(t, ep.Reason)
				}
			}
			started, ended, reads, byts, empty := eps.sums()
			assert.Positive(t, started)
			assert.Equal(t, st.FallbackEpisodes, uint64(started))
			assert.Equal(t, started, ended, "every episode that started ended")
			assert.Zero(t, empty, "ended episodes with no read")
			assert.Equal(t, int64(st.FallbackReads), reads, "episode reads add up")
			assert.Equal(t, int64(st.FallbackBytes), byts, "episode bytes add up")
		})
	}
}
