package entropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy/health"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockFreeAllEntryPoints: every entry point at once, with odd
// sizes (one byte, seven, around 32, a page less one, one more than a run,
// one more than a shard, one more than the pool), GOMAXPROCS moving between
// fewer and more Ps than shards, and pools of 64..4096 bytes so that heads
// stop, runs split and slow paths run all the time. Checked: labels tile
// their reads and match the jobs' bytes, no job byte is handed out twice
// (labelled, derived, event or unlabelled, across all of them), a Read is
// all job bytes or none, ReadFor returns one draw per event, Stats never go
// down while reads run and equal the callers' counts at the end, every pool
// byte is accounted (served + pooled = accepted), and every run and lane
// seen is zero after Close.
func TestLockFreeAllEntryPoints(t *testing.T) {
	type cfg struct {
		pol                   Policy
		shards, buffer, fetch int
	}
	var cases []cfg
	for _, pol := range []Policy{Fail, Degrade, Defer} {
		for _, c := range []cfg{{shards: 1, buffer: 64, fetch: 16}, {shards: 2, buffer: 256, fetch: 48}, {shards: 5, buffer: 1024, fetch: 100}, {shards: 8, buffer: 4096, fetch: 700}} {
			c.pol = pol
			cases = append(cases, c)
		}
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-shards%d-buffer%d-fetch%d", c.pol, c.shards, c.buffer, c.fetch), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
			src := newScriptSource(fmt.Sprintf("lf-%s-%d-%d", c.pol, c.shards, c.buffer))
			// No shorter than a block the health tests judge, which is the
			// least the Provider asks for.
			src.maxLen = max(c.fetch, health.DefaultConfig().MinBlock())
			var eps episodeLog
			p, err := New(src, fast(WithPolicy(c.pol), WithShards(c.shards), WithBufferSize(c.buffer), WithFetchSize(c.fetch), WithFallbackHook(eps.hook))...)
			require.NoError(t, err)
			closed := false
			defer func() {
				if !closed {
					_ = p.Close()
				}
			}()
			ready(t, p)
			shardCap := p.shards[len(p.shards)-1].cap
			led := newLedger(src)
			var smp lfSampler
			var cnt lfCounts

			big := []int{4095, c.fetch + 1, shardCap + 1, c.buffer + 1}
			small := []int{1, 7, 31, 33, 1, 7, 31, 33}
			size := func(i int) int {
				if i%4 == 3 {
					return big[(i/4)%len(big)]
				}
				return small[i%len(small)]
			}

			var unlMu sync.Mutex
			var unl []lfUnlabelled
			type event struct {
				name  string
				b     []byte
				label Label
			}
			const goroutines, ops = 6, 90
			mine := make([][]event, goroutines) // the events each reader drew
			wait := goReaders(goroutines, ops, nil, func(g, i int) bool {
				n := size(i + g)
				b := make([]byte, n)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				switch (i + g) % 4 {
				case 0:
					k, err := p.Read(b)
					switch {
					case err == nil:
						if k != n {
							t.Errorf("Read returned %d of %d", k, n)
						}
						cnt.raw.Add(1)
						cnt.rawBytes.Add(uint64(n))
						unlMu.Lock()
						unl = append(unl, lfUnlabelled{b: b})
						unlMu.Unlock()
					case c.pol == Fail && errors.Is(err, ErrUnavailable):
						if !bytesZero(b) {
							t.Errorf("a failed Read left bytes in b")
						}
					default:
						t.Errorf("Read of %d: %v", n, err)
					}
				case 1:
					lb, err := p.ReadLabelled(ctx, b)
					switch {
					case err == nil:
						if msg := led.check(b, lb); msg != "" {
							t.Errorf("ReadLabelled of %d: %s", n, msg)
						}
						if lb.Verifiable {
							cnt.verifiable.Add(1)
							cnt.verifiableBytes.Add(uint64(n))
						} else {
							if c.pol != Degrade {
								t.Errorf("a %s Provider served a fallback label", c.pol)
							}
							cnt.fallback.Add(1)
							cnt.fallbackBytes.Add(uint64(n))
							unlMu.Lock()
							unl = append(unl, lfUnlabelled{b: b, fallback: true}) // must hold no job bytes
							unlMu.Unlock()
						}
					case c.pol == Fail && errors.Is(err, ErrUnavailable):
					default:
						t.Errorf("ReadLabelled of %d: %v", n, err)
					}
				case 2:
					lb, err := p.ReadSecret(ctx, b)
					switch {
					case err == nil && lb.Derived:
						if lb.Verifiable || lb.Reason != nil {
							t.Errorf("derived label %+v", lb)
						}
						msg, took := led.claimDerived(lb.Spans)
						if msg != "" {
							t.Errorf("ReadSecret of %d: %s", n, msg)
						}
						if lb.Len() < secretSeed || lb.Len()%secretSeed != 0 {
							t.Errorf("a derived read of %d names %d pool bytes, want whole seeds of %d", n, lb.Len(), secretSeed)
						}
						cnt.derived.Add(1)
						cnt.derivedBytes.Add(uint64(n))
						cnt.seedBytes.Add(uint64(took))
					case err == nil:
						if msg := led.check(b, lb); msg != "" || lb.Verifiable {
							t.Errorf("ReadSecret fallback of %d: %s %+v", n, msg, lb)
						}
						if c.pol != Degrade {
							t.Errorf("a %s Provider served a fallback secret", c.pol)
						}
						cnt.fallback.Add(1)
						cnt.fallbackBytes.Add(uint64(n))
					case c.pol == Fail && errors.Is(err, ErrUnavailable):
					default:
						t.Errorf("ReadSecret of %d: %v", n, err)
					}
				case 3:
					if len(mine[g]) > 0 && i%3 == 0 {
						// Again for an event drawn before: the same bytes and label.
						ev := mine[g][i%len(mine[g])]
						again := make([]byte, len(ev.b))
						lb, err := p.ReadFor(ctx, ev.name, again)
						if err != nil || !bytes.Equal(again, ev.b) || fmt.Sprint(lb) != fmt.Sprint(ev.label) {
							t.Errorf("event %s asked again: %v, same bytes %v, label %+v want %+v", ev.name, err, bytes.Equal(again, ev.b), lb, ev.label)
						}
						break
					}
					name := fmt.Sprintf("ev-%d-%d", g, i)
					lb, err := p.ReadFor(ctx, name, b)
					if err != nil {
						t.Errorf("ReadFor of %d: %v", n, err)
						break
					}
					if !lb.Verifiable {
						t.Errorf("ReadFor served a non-verifiable label")
					}
					if msg := led.check(b, lb); msg != "" {
						t.Errorf("ReadFor of %d: %s", n, msg)
					}
					cnt.verifiable.Add(1)
					cnt.verifiableBytes.Add(uint64(n))
					mine[g] = append(mine[g], event{name, bytes.Clone(b), lb})
				}
				cancel()
				return !t.Failed()
			})
			stop := make(chan struct{})
			polled := make(chan string, 1)
			var polls int
			go func() {
				n, msg := lfMonotonic(p, stop)
				polls = n
				polled <- msg
			}()
			done := make(chan struct{})
			go func() { wait(); close(done) }()
			procs := []int{1, 3, 2, c.shards + 3, 1, 2 * c.shards, 4}
		churn:
			for i := 0; ; i++ {
				select {
				case <-done:
					break churn
				default:
				}
				runtime.GOMAXPROCS(procs[i%len(procs)])
				smp.sample(p)
				time.Sleep(200 * time.Microsecond)
			}
			close(stop)
			require.Empty(t, <-polled, "Stats went down while reads ran")
			require.Positive(t, polls)
			if t.Failed() {
				return
			}

			// Every pool byte is accounted for once the refill is idle:
			// served (verifiable or as a derived seed) plus pooled equals
			// accepted. A byte served twice would make the left side larger.
			require.Eventually(t, func() bool {
				st := p.Stats()
				return st.VerifiableBytes+cnt.seedBytes.Load()+uint64(st.Pooled) == st.Sources[0].BytesAccepted
			}, 10*time.Second, time.Millisecond, "served + pooled != accepted")

			smp.sample(p)
			st := p.Stats()
			require.NoError(t, p.Close())
			closed = true
			dirty, total := smp.dirty()
			assert.Zero(t, dirty, "runs or lanes (of %d seen) hold bytes after Close", total)

			// Locate the unlabelled reads in the jobs: all job bytes (and
			// not handed out before) or none.
			idx := newLFIndex(src)
			var rawV, rawVBytes, rawF, rawFBytes, unknown, unknownBytes uint64
			_ = rawFBytes
			for _, u := range unl {
				spans, _, fb, err := idx.locate(src.name, u.b)
				require.NoError(t, err)
				if u.fallback {
					require.True(t, fb || len(u.b) < lfWin, "a read labelled fallback holds job bytes")
					continue
				}
				switch {
				case fb:
					rawF++
					rawFBytes += uint64(len(u.b))
				case len(spans) == 0:
					unknown++
					unknownBytes += uint64(len(u.b))
				default:
					rawV++
					rawVBytes += uint64(len(u.b))
					led.mu.Lock()
					for _, sp := range spans {
						if msg := led.take(sp, nil); msg != "" {
							led.mu.Unlock()
							t.Fatalf("an unlabelled read: %s", msg)
						}
					}
					led.mu.Unlock()
				}
			}
			assert.Equal(t, cnt.raw.Load(), rawV+rawF+unknown)
			if c.pol != Degrade {
				assert.Zero(t, st.FallbackReads)
				assert.Zero(t, rawF, "a %s Provider served non-job bytes through Read", c.pol)
			}
			// Verifiable and fallback reads together are the callers'.
			assert.Equal(t, cnt.verifiable.Load()+cnt.fallback.Load()+cnt.raw.Load(), st.VerifiableReads+st.FallbackReads, "reads counted")
			assert.Equal(t, cnt.verifiableBytes.Load()+cnt.fallbackBytes.Load()+cnt.rawBytes.Load(), st.VerifiableBytes+st.FallbackBytes, "bytes counted")
			// Each class within what the reads of unknown class allow.
			assert.GreaterOrEqual(t, st.VerifiableBytes, cnt.verifiableBytes.Load()+rawVBytes)
			assert.LessOrEqual(t, st.VerifiableBytes, cnt.verifiableBytes.Load()+rawVBytes+unknownBytes)
			assert.Equal(t, cnt.derived.Load(), st.DerivedReads)
			assert.Equal(t, cnt.derivedBytes.Load(), st.DerivedBytes)

			// Episodes add up to the fallback counters, and every one ended.
			after := p.Stats()
			assert.Equal(t, st.FallbackReads, after.FallbackReads, "Close changed the fallback counters")
			started, ended, reads, byts, empty := eps.sums()
			assert.Equal(t, after.FallbackEpisodes, uint64(started))
			assert.Equal(t, started, ended)
			assert.Zero(t, empty, "ended episodes with no read")
			assert.Equal(t, int64(after.FallbackReads), reads, "episode reads")
			assert.Equal(t, int64(after.FallbackBytes), byts, "episode bytes")
		})
	}
}
