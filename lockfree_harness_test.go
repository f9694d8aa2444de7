package entropy

// The harness of the lock-free read path's tests (lockfree*_test.go):
// locating bytes in a script source's jobs, sampling runs and lanes,
// the callers' counts, and polling Stats.

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

func bytesZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// The tests of lockfree*_test.go check the lock-free read path (pool.go, the fallback
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
	// Likewise at a span's start: the bytes before a piece (the last byte
	// of another run that the same read took, say) match the job's bytes
	// before the piece by chance (1/256 a byte), and the span found then
	// starts early, on a byte another read was handed. Its first lfTrim
	// bytes are left unplaced too.
	for i := range spans {
		t := min(lfTrim, spans[i].Length-1)
		spans[i].Offset += t
		spans[i].Length -= t
		unplaced += t
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
