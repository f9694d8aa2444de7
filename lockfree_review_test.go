package entropy

import (
	"bytes"
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

// An adversarial review of the lock-free read path (pool.go, the fallback
// lanes of fallback.go, the counters of stats.go). The tests below mix every
// entry point under changing GOMAXPROCS and tiny pools, and check the
// contract from outside: every verifiable byte a caller got is found in the
// job the source made it in, at the offset its label names, and was handed
// out once; unlabelled Read bytes are located in the jobs by their content
// (the script source's bytes are random, so seven bytes name a place);
// counters equal what the callers counted; Close leaves nothing behind.

// rvWin is how many bytes locate a place in the jobs: with random job data
// a chance match of 56 bits is negligible for the megabytes a test makes.
const rvWin = 7

func rvKey(b []byte) uint64 {
	var k uint64
	for _, x := range b[:rvWin] {
		k = k<<8 | uint64(x)
	}
	return k
}

// rvIndex locates byte strings in the jobs a scriptSource made.
type rvIndex struct {
	ids   []string
	pos   map[string]int // job ID → index in ids
	data  [][]byte
	where map[uint64]uint64 // window → job<<32 | offset + 1; 0 entries mean "more than one place"
}

func newRVIndex(srcs ...*scriptSource) *rvIndex {
	x := &rvIndex{where: map[uint64]uint64{}, pos: map[string]int{}}
	for _, s := range srcs {
		s.mu.Lock()
		for id, d := range s.jobs {
			x.pos[id] = len(x.ids)
			x.ids = append(x.ids, id)
			x.data = append(x.data, d)
		}
		s.mu.Unlock()
	}
	for j, d := range x.data {
		for off := 0; off+rvWin <= len(d); off++ {
			k := rvKey(d[off:])
			if _, dup := x.where[k]; dup {
				x.where[k] = 0
				continue
			}
			x.where[k] = uint64(j)<<32 | uint64(off) + 1
		}
	}
	return x
}

func (x *rvIndex) find(b []byte) (job, off int, ok bool) {
	v := x.where[rvKey(b)]
	if v == 0 {
		return 0, 0, false
	}
	v--
	return int(v >> 32), int(v & cursorMask), true
}

// anyJobBytes reports whether b holds a window of job bytes anywhere.
func (x *rvIndex) anyJobBytes(b []byte) bool {
	for i := 0; i+rvWin <= len(b); i++ {
		if _, _, ok := x.find(b[i:]); ok {
			return true
		}
	}
	return false
}

// locate splits b into the job spans it was copied from. It returns the
// spans, how many bytes at the end were too few to locate, and whether b
// held no job bytes at all (a fallback read). An error means b holds job
// bytes and also bytes that are not (a mixed or corrupt read).
func (x *rvIndex) locate(src string, b []byte) (spans []Span, tail int, fallback bool, err error) {
	if len(b) < rvWin {
		return nil, len(b), false, nil
	}
	pos := 0
	for pos < len(b) {
		if len(b)-pos < rvWin {
			return spans, len(b) - pos, false, nil
		}
		j, off, ok := x.find(b[pos:])
		// A span may run on by chance into the next byte of its job:
		// back off a few bytes when the next span is not found.
		for back := 1; !ok && len(spans) > 0 && back <= 4; back++ {
			last := &spans[len(spans)-1]
			if last.Length-back < rvWin {
				break
			}
			if j, off, ok = x.find(b[pos-back:]); ok {
				last.Length -= back
				pos -= back
			}
		}
		if !ok {
			if pos == 0 {
				if x.anyJobBytes(b) {
					return nil, 0, false, fmt.Errorf("a read of %d bytes starts with non-job bytes and holds job bytes later", len(b))
				}
				return nil, 0, true, nil
			}
			return nil, 0, false, fmt.Errorf("a read of %d bytes has job bytes up to %d and then bytes of no job", len(b), pos)
		}
		d := x.data[j]
		n := 0
		for pos+n < len(b) && off+n < len(d) && b[pos+n] == d[off+n] {
			n++
		}
		spans = append(spans, Span{Source: src, JobID: x.ids[j], Offset: off, Length: n})
		pos += n
	}
	return spans, 0, false, nil
}

// rvSampler keeps every run and lane it sees in a Provider's shards, so that
// after Close the test can check that all of them are zero.
type rvSampler struct {
	mu   sync.Mutex
	runs map[*run]bool
}

func (s *rvSampler) sample(p *Provider) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[*run]bool{}
	}
	for _, sh := range p.shards {
		sh.mu.Lock()
		if h := sh.head.Load(); h != nil {
			s.runs[h] = true
		}
		for _, r := range sh.runs[sh.first:] {
			s.runs[r] = true
		}
		sh.mu.Unlock()
		sh.fbMu.Lock()
		if r := sh.fb.Load(); r != nil {
			s.runs[r] = true
		}
		sh.fbMu.Unlock()
	}
}

// dirty returns how many sampled runs hold a non-zero byte.
func (s *rvSampler) dirty() (dirty, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.runs {
		if !bytesZero(r.data) {
			dirty++
		}
	}
	return dirty, len(s.runs)
}

// rvCounts are what the callers counted.
type rvCounts struct {
	// Reads whose class the caller knows from a label.
	verifiable, verifiableBytes atomic.Uint64
	fallback, fallbackBytes     atomic.Uint64
	derived, derivedBytes       atomic.Uint64
	seedBytes                   atomic.Uint64 // pool bytes the derived reads took
	// Read (no label): the class is found later from the bytes.
	raw, rawBytes atomic.Uint64
}

// rvUnlabelled is a read's bytes, kept to locate after the run: a Read's
// (either class), or a fallback-labelled read's (which must hold no job
// bytes).
type rvUnlabelled struct {
	b        []byte
	fallback bool // labelled fallback
}

// rvMonotonic polls Stats until stop closes and reports the first counter
// that went down.
func rvMonotonic(p *Provider, stop <-chan struct{}) (polls int, problem string) {
	var prev Stats
	for {
		select {
		case <-stop:
			return polls, ""
		default:
		}
		st := p.Stats()
		polls++
		for _, c := range []struct {
			name      string
			old, next uint64
		}{
			{"VerifiableReads", prev.VerifiableReads, st.VerifiableReads},
			{"VerifiableBytes", prev.VerifiableBytes, st.VerifiableBytes},
			{"FallbackReads", prev.FallbackReads, st.FallbackReads},
			{"FallbackBytes", prev.FallbackBytes, st.FallbackBytes},
			{"DerivedReads", prev.DerivedReads, st.DerivedReads},
			{"DerivedBytes", prev.DerivedBytes, st.DerivedBytes},
			{"FallbackEpisodes", prev.FallbackEpisodes, st.FallbackEpisodes},
		} {
			if c.next < c.old {
				return polls, fmt.Sprintf("%s went down from %d to %d", c.name, c.old, c.next)
			}
		}
		if st.Pooled < 0 || st.Pooled > st.Capacity {
			return polls, fmt.Sprintf("Pooled %d out of 0..%d", st.Pooled, st.Capacity)
		}
		prev = st
		runtime.Gosched()
	}
}

// TestReviewLockFreeAllEntryPoints: every entry point at once, with odd
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
func TestReviewLockFreeAllEntryPoints(t *testing.T) {
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
			src := newScriptSource(fmt.Sprintf("rv-%s-%d-%d", c.pol, c.shards, c.buffer))
			src.maxLen = c.fetch
			var epMu sync.Mutex
			var eps []FallbackEpisode
			hook := func(ep FallbackEpisode) {
				epMu.Lock()
				eps = append(eps, ep)
				epMu.Unlock()
			}
			p, err := New(src, fast(WithPolicy(c.pol), WithShards(c.shards), WithBufferSize(c.buffer), WithFetchSize(c.fetch), WithFallbackHook(hook))...)
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
			var smp rvSampler
			var cnt rvCounts

			big := []int{4095, c.fetch + 1, shardCap + 1, c.buffer + 1}
			small := []int{1, 7, 31, 33, 1, 7, 31, 33}
			size := func(i int) int {
				if i%4 == 3 {
					return big[(i/4)%len(big)]
				}
				return small[i%len(small)]
			}

			var unlMu sync.Mutex
			var unl []rvUnlabelled
			type event struct {
				name  string
				b     []byte
				label Label
			}
			var wg sync.WaitGroup
			const goroutines, ops = 6, 90
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					var mine []event
					for i := 0; i < ops; i++ {
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
								unl = append(unl, rvUnlabelled{b: b})
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
									unl = append(unl, rvUnlabelled{b: b, fallback: true}) // must hold no job bytes
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
								if msg := led.claim(lb.Spans); msg != "" {
									t.Errorf("ReadSecret of %d: %s", n, msg)
								}
								want := secretSeed * ((n + secretChunk - 1) / secretChunk)
								if lb.Len() != want {
									t.Errorf("a derived read of %d took %d pool bytes, want %d", n, lb.Len(), want)
								}
								cnt.derived.Add(1)
								cnt.derivedBytes.Add(uint64(n))
								cnt.seedBytes.Add(uint64(want))
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
							if len(mine) > 0 && i%3 == 0 {
								// Again for an event drawn before: the same bytes and label.
								ev := mine[i%len(mine)]
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
							mine = append(mine, event{name, bytes.Clone(b), lb})
						}
						cancel()
						if t.Failed() {
							return
						}
					}
				}(g)
			}
			stop := make(chan struct{})
			polled := make(chan string, 1)
			var polls int
			go func() {
				n, msg := rvMonotonic(p, stop)
				polls = n
				polled <- msg
			}()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
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
			idx := newRVIndex(src)
			var rawV, rawVBytes, rawF, rawFBytes, unknown, unknownBytes uint64
			_ = rawFBytes
			for _, u := range unl {
				spans, _, fb, err := idx.locate(src.name, u.b)
				require.NoError(t, err)
				if u.fallback {
					require.True(t, fb || len(u.b) < rvWin, "a read labelled fallback holds job bytes")
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
						if msg := led.use(sp, len(idx.data[idx.pos[sp.JobID]])); msg != "" {
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
			epMu.Lock()
			defer epMu.Unlock()
			var started, ended uint64
			var reads, byts int64
			for _, ep := range eps {
				if ep.Ended {
					ended++
					reads += ep.Reads
					byts += ep.Bytes
				} else {
					started++
				}
			}
			assert.Equal(t, after.FallbackEpisodes, started)
			assert.Equal(t, started, ended)
			assert.Equal(t, int64(after.FallbackReads), reads, "episode reads")
			assert.Equal(t, int64(after.FallbackBytes), byts, "episode bytes")
		})
	}
}
