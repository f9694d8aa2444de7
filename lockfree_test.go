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

	"github.com/provenrand/entropy/health"
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

func bytesZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// The tests below check the lock-free read path (pool.go, the fallback
// lanes of fallback.go, the counters of stats.go) from outside, mixing every
// entry point under changing GOMAXPROCS and tiny pools: every verifiable
// byte a caller got is found in the job the source made it in, at the
// offset its label names, and was handed out once; unlabelled Read bytes are
// located in the jobs by their content (the script source's bytes are
// random, so seven bytes name a place); counters equal what the callers
// counted; Close leaves nothing behind.

// lfWin is how many bytes locate a place in the jobs: with random job data
// a chance match of 56 bits is negligible for the megabytes a test makes.
const lfWin = 7

func lfKey(b []byte) uint64 {
	var k uint64
	for _, x := range b[:lfWin] {
		k = k<<8 | uint64(x)
	}
	return k
}

// lfIndex locates byte strings in the jobs a scriptSource made.
type lfIndex struct {
	ids   []string
	pos   map[string]int // job ID → index in ids
	data  [][]byte
	where map[uint64]uint64 // window → job<<32 | offset + 1; 0 entries mean "more than one place"
}

func newLFIndex(srcs ...*scriptSource) *lfIndex {
	x := &lfIndex{where: map[uint64]uint64{}, pos: map[string]int{}}
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
		for off := 0; off+lfWin <= len(d); off++ {
			k := lfKey(d[off:])
			if _, dup := x.where[k]; dup {
				x.where[k] = 0
				continue
			}
			x.where[k] = uint64(j)<<32 | uint64(off) + 1
		}
	}
	return x
}

func (x *lfIndex) find(b []byte) (job, off int, ok bool) {
	v := x.where[lfKey(b)]
	if v == 0 {
		return 0, 0, false
	}
	v--
	return int(v >> 32), int(v & cursorMask), true
}

// locate splits b into the job spans it was copied from. It returns the
// spans, how many bytes it could not place, and whether b held no job bytes
// at all (a fallback read). Pieces shorter than lfWin (the last bytes of a
// run; several may follow each other) cannot be placed and are skipped; a
// stretch of lfMaxGap or more unplaced bytes in a read that holds job bytes
// is an error (a mixed or corrupt read), and so is a read that has no job
// bytes at its start but has some later.
func (x *lfIndex) locate(src string, b []byte) (spans []Span, unplaced int, fallback bool, err error) {
	if len(b) < lfWin {
		return nil, len(b), false, nil
	}
	pos := 0
	for pos < len(b) {
		j, off, ok := 0, 0, false
		if len(b)-pos >= lfWin {
			j, off, ok = x.find(b[pos:])
		}
		// A span may run on by chance into the next byte of its job:
		// back off a few bytes when the next span is not found.
		for back := 1; !ok && len(spans) > 0 && back <= lfTrim && len(b)-pos+back >= lfWin; back++ {
			last := &spans[len(spans)-1]
			if last.Length-back < lfWin {
				break
			}
			if j, off, ok = x.find(b[pos-back:]); ok {
				last.Length -= back
				pos -= back
			}
		}
		if !ok {
			// Skip to the next place that is found.
			next := -1
			for q := pos + 1; q+lfWin <= len(b); q++ {
				if _, _, found := x.find(b[q:]); found {
					next = q
					break
				}
			}
			switch {
			case next < 0 && len(spans) == 0:
				return nil, 0, true, nil // no job bytes anywhere
			case len(spans) == 0 && next-pos >= lfMaxGap:
				return nil, 0, false, fmt.Errorf("a read of %d bytes starts with %d bytes of no job and holds job bytes later", len(b), next)
			case next < 0 && len(b)-pos >= lfMaxGap:
				return nil, 0, false, fmt.Errorf("a read of %d bytes has job bytes up to %d and then %d bytes of no job", len(b), pos, len(b)-pos)
			case next < 0:
				unplaced += len(b) - pos
				spans = append(spans, Span{}) // so that the last real span is trimmed; dropped below
				pos = len(b)
				continue
			case next-pos >= lfMaxGap:
				return nil, 0, false, fmt.Errorf("a read of %d bytes has %d bytes of no job at %d", len(b), next-pos, pos)
			}
			unplaced += next - pos
			pos = next
			continue
		}
		d := x.data[j]
		n := 0
		for pos+n < len(b) && off+n < len(d) && b[pos+n] == d[off+n] {
			n++
		}
		spans = append(spans, Span{Source: src, JobID: x.ids[j], Offset: off, Length: n})
		pos += n
	}
	// A span that does not end the read may have run on by chance (1/256
	// a byte) into the first bytes of the next piece, and content alone
	// cannot tell; its last lfTrim bytes are left unplaced, so that a chance
	// match is not taken for a byte handed out twice.
	for i := range spans[:len(spans)-1] {
		t := min(lfTrim, spans[i].Length-1)
		spans[i].Length -= t
		unplaced += t
	}
	if k := len(spans) - 1; spans[k].Length == 0 {
		spans = spans[:k]
	}
	return spans, unplaced, false, nil
}

// lfMaxGap is the longest stretch of unplaced bytes a read of job bytes may
// hold: ten or more run ends of under lfWin bytes in a row.
const lfMaxGap = 64

// lfTrim is how many bytes at the end of an inner span locate does not
// place: a false match needs lfTrim chance matches in a row (2^-32).
const lfTrim = 4

// lfSampler keeps every run and lane it sees in a Provider's shards, so that
// after Close the test can check that all of them are zero.
type lfSampler struct {
	mu   sync.Mutex
	runs map[*run]bool
}

func (s *lfSampler) sample(p *Provider) {
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
func (s *lfSampler) dirty() (dirty, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.runs {
		if !bytesZero(r.data) {
			dirty++
		}
	}
	return dirty, len(s.runs)
}

// lfCounts are what the callers counted.
type lfCounts struct {
	// Reads whose class the caller knows from a label.
	verifiable, verifiableBytes atomic.Uint64
	fallback, fallbackBytes     atomic.Uint64
	derived, derivedBytes       atomic.Uint64
	seedBytes                   atomic.Uint64 // pool bytes the derived reads took
	// Read (no label): the class is found later from the bytes.
	raw, rawBytes atomic.Uint64
}

// lfUnlabelled is a read's bytes, kept to locate after the run: a Read's
// (either class), or a fallback-labelled read's (which must hold no job
// bytes).
type lfUnlabelled struct {
	b        []byte
	fallback bool // labelled fallback
}

// lfMonotonic polls Stats until stop closes and reports the first counter
// that went down.
func lfMonotonic(p *Provider, stop <-chan struct{}) (polls int, problem string) {
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

// TestLockFreeCloseRace: Close while readers are on every path — fast
// claims on a full pool (source up), slow paths on a tiny pool, the
// fallback lanes and direct fallback reads (Degrade, source down), Defer
// waiters and ReadFor draws waiting for bytes that do not come (source
// down). No read panics or hangs, none is left running (goleak), every
// successful one is checked (labels against the jobs, unlabelled bytes
// located, nothing twice), every failed one says ErrClosed (or, a Defer
// read with a deadline, its context's error) and leaves b
// zero, the counters equal the callers' successes, and afterwards every run
// and lane seen is zero and the shards hold nothing.
func TestLockFreeCloseRace(t *testing.T) {
	for _, pol := range []Policy{Degrade, Defer, Fail} {
		for _, down := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-down%v", pol, down), func(t *testing.T) {
				for round := 0; round < 12; round++ {
					lfCloseRound(t, pol, down, round)
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

func lfCloseRound(t *testing.T, pol Policy, down bool, round int) {
	src := newScriptSource(fmt.Sprintf("close-%s-%v-%d", pol, down, round))
	src.maxLen = 200
	shards := 1 + round%4
	buffer := []int{256, 1024, 4096}[round%3]
	p, err := New(src, fast(WithPolicy(pol), WithShards(shards), WithBufferSize(buffer), WithFetchSize(200))...)
	require.NoError(t, err)
	full(t, p, buffer/2)
	if down {
		src.set(&step{err: &APIError{StatusCode: 503}})
	}
	led := newLedger(src)
	var smp lfSampler
	var unlMu sync.Mutex
	var unl [][]byte
	var okReads, okDerived atomic.Uint64
	sizes := []int{1, 7, 33, 300, 511, 512, 2000, 5000}
	wait := goReaders(8, 0, nil, func(g, i int) bool {
		n := sizes[(i*3+g)%len(sizes)]
		b := make([]byte, n)
		var err error
		switch (i + g) % 4 {
		case 0:
			_, err = p.Read(b)
			if err == nil {
				okReads.Add(1)
				unlMu.Lock()
				unl = append(unl, b)
				unlMu.Unlock()
			}
		case 1:
			// With a deadline: a Defer wait may end before Close does.
			var lb Label
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			lb, err = p.ReadLabelled(ctx, b)
			cancel()
			if err == nil {
				okReads.Add(1)
				if msg := led.check(b, lb); msg != "" {
					t.Errorf("round %d: ReadLabelled of %d: %s", round, n, msg)
					return false
				}
			}
		case 2:
			var lb Label
			lb, err = p.ReadSecret(context.Background(), b)
			if err == nil {
				if lb.Derived {
					okDerived.Add(1)
					if msg, _ := led.claimDerived(lb.Spans); msg != "" {
						t.Errorf("round %d: ReadSecret: %s", round, msg)
						return false
					}
				} else {
					okReads.Add(1)
					if msg := led.check(b, lb); msg != "" {
						t.Errorf("round %d: ReadSecret fallback: %s", round, msg)
						return false
					}
				}
			}
		case 3:
			var lb Label
			lb, err = p.ReadFor(context.Background(), fmt.Sprintf("close-%d-%d", g, i), b)
			if err == nil {
				okReads.Add(1)
				if msg := led.check(b, lb); msg != "" || !lb.Verifiable {
					t.Errorf("round %d: ReadFor: %s %+v", round, msg, lb)
					return false
				}
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrClosed):
			if !bytesZero(b) {
				t.Errorf("round %d: a read that failed with ErrClosed left bytes in b", round)
			}
			return false
		case pol == Fail && errors.Is(err, ErrUnavailable):
			if !bytesZero(b) {
				t.Errorf("round %d: a failed read left bytes in b", round)
			}
		case pol == Defer && errors.Is(err, context.DeadlineExceeded):
			if !bytesZero(b) {
				t.Errorf("round %d: a read whose context ended left bytes in b", round)
			}
		default:
			t.Errorf("round %d: unexpected error %v", round, err)
			return false
		}
		return true
	})
	for i := 0; i < round%5; i++ {
		smp.sample(p)
		time.Sleep(300 * time.Microsecond)
	}
	smp.sample(p)
	closeErr := make(chan error, 1)
	go func() { closeErr <- p.Close() }()
	for i := 0; i < 3; i++ {
		smp.sample(p) // while Close runs
	}
	select {
	case err := <-closeErr:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("round %d: Close did not return", round)
	}
	if !waitWithin(wait, 10*time.Second) {
		t.Fatalf("round %d: readers still running after Close", round)
	}
	dirty, total := smp.dirty()
	assert.Zero(t, dirty, "round %d: %d of %d runs and lanes seen hold bytes after Close", round, dirty, total)
	for i, s := range p.shards {
		s.mu.Lock()
		assert.Nil(t, s.head.Load(), "shard %d head", i)
		assert.Zero(t, s.queued, "shard %d queued", i)
		assert.Empty(t, s.runs, "shard %d runs", i)
		assert.True(t, s.closed)
		s.mu.Unlock()
		assert.Nil(t, s.fb.Load(), "shard %d lane", i)
	}
	st := p.Stats()
	assert.Zero(t, st.Pooled)
	assert.Equal(t, okReads.Load(), st.VerifiableReads+st.FallbackReads, "round %d: reads counted", round)
	assert.Equal(t, okDerived.Load(), st.DerivedReads, "round %d: derived reads counted", round)
	if pol != Degrade {
		assert.Zero(t, st.FallbackReads)
	}
	idx := newLFIndex(src)
	for _, b := range unl {
		spans, _, fb, err := idx.locate(src.name, b)
		require.NoError(t, err, "round %d", round)
		if pol != Degrade {
			assert.False(t, fb, "round %d: a %s Read served non-job bytes", round, pol)
		}
		led.mu.Lock()
		for _, sp := range spans {
			if msg := led.take(sp, nil); msg != "" {
				t.Errorf("round %d: an unlabelled read: %s", round, msg)
			}
		}
		led.mu.Unlock()
	}
	// Reads after Close: ErrClosed on every entry point.
	_, err = p.Read(make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadLabelled(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadSecret(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadFor(context.Background(), "after", make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
}

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
