package entropy

import (
	"sync"
	"sync/atomic"
	_ "unsafe" // for go:linkname
)

// origin names the job a run of pool bytes came from. Runs of one block
// share one origin, so a span costs no allocation beyond its slot.
type origin struct {
	source string
	job    string
	public bool
}

// blockRuns is the pool's bookkeeping of one block in one allocation: its
// origin and the runs it is cut into (one per shard it goes to; most
// blocks go to one or two).
type blockRuns struct {
	from origin
	runs [2]run
}

// run is a stretch of checked bytes of one job in a shard. data[0] is byte
// base of the job's Data.
//
// A shard publishes its first run as head; readers then claim bytes from it
// without a lock: a compare-and-swap on word moves the cursor past the bytes
// it takes, so no two claims overlap (contract point 3), and each claimer
// copies its bytes out and zeroes them. The upper half of word counts the
// claims (the fast reads) since the run was last published, the lower half
// is the cursor and the stopped bit.
//
// A run that leaves the head is stopped (stop sets stoppedBit, so every
// claim fails: the cursor then reads as past the end) and goes back to the
// shard's queue, the same run with its cursor where it was: runs behind the
// head are private to the shard and change only under its lock, and a
// reader still holding a pointer to a stopped run can claim nothing from
// it. Publishing it again clears the bit and the claim count (reopen).
type run struct {
	word   atomic.Uint64 // claims<<32 | stopped<<31 | cursor; data[:cursor] handed out and zeroed
	wakeAt atomic.Int64  // a claim ending past this cursor leaves the shard below its low watermark
	data   []byte
	base   int
	from   *origin
	start  int    // the cursor when the run was last published (its fast claims count from there); under the shard's lock
	epoch  uint64 // fallback lanes: Provider.fbEpoch when the run was made
}

// maxRun bounds a run's length so that its cursor fits in 32 bits (and so
// does its claim count: every claim takes at least one byte).
const maxRun = 1 << 30

// cursorMask selects the cursor and the stopped bit of a claim word,
// posMask the cursor alone. A stopped word's cursor part is at least
// stoppedBit, past the end of every run, so claim needs no test of its own.
const (
	cursorMask = 1<<32 - 1
	stoppedBit = 1 << 31
	posMask    = stoppedBit - 1
)

// cursor returns how many of r's bytes have been handed out.
func (r *run) cursor() int { return int(r.word.Load() & posMask) }

// reserve claims n bytes of r if it holds that many and returns their
// offset in r.data: the caller then moves them out (moveOut), which zeroes
// their slot. It fails (ok false) if r holds fewer bytes, and then takes
// none. The claim and the move are two functions so that each is inlined
// where a read calls them.
func (r *run) reserve(n int) (off int, ok bool) {
	for {
		w := r.word.Load()
		c := w & cursorMask
		if c+uint64(n) > uint64(len(r.data)) {
			return 0, false
		}
		if r.word.CompareAndSwap(w, w+1<<32+uint64(n)) {
			return int(c), true
		}
	}
}

// moveOut copies src into dst, which is as long, and zeroes src. A read of
// 32 bytes (a key's size, the commonest read) is copied and cleared by
// inline moves rather than by calls to the runtime's memmove and memclr.
func moveOut(dst, src []byte) {
	if len(src) == 32 && len(dst) == 32 {
		*(*[32]byte)(dst) = *(*[32]byte)(src)
		*(*[32]byte)(src) = [32]byte{}
		return
	}
	copy(dst, src)
	clear(src)
}

// claimHead is the lock-free read, where a reader claims pool bytes
// without a lock (Read writes it out, so that it is inlined into the
// io.Reader): it takes len(b) bytes from the head run of shard s
// if the head holds that many (one compare-and-swap, a copy and a clear: reserve, moveOut),
// then, seldom, asks for a refill if the shard is now low and ends an open
// fallback episode (Provider.claimed). It returns the run and the bytes'
// offset in it, for a label; it fails, taking nothing, if the shard has no
// head or the head is too short.
func (p *Provider) claimHead(s *shard, b []byte) (r *run, off int, ok bool) {
	if r = s.head.Load(); r == nil {
		return nil, 0, false
	}
	off, ok = r.reserve(len(b))
	if !ok {
		return r, 0, false
	}
	end := off + len(b)
	moveOut(b, r.data[off:end])
	if int64(end) > r.wakeAt.Load() || p.episodes.open.Load() {
		p.claimed(s, r, end) // seldom: kept out of line
	}
	return r, off, true
}

// stop ends fast claims on r (it is the head of a shard whose lock the
// caller holds): it sets the stopped bit, so every later claim fails, and
// returns the claim count and the cursor, which now belong to the caller:
// data[cursor:] is unread and the caller's to take or zero.
func (r *run) stop() (claims uint64, cursor int) {
	for {
		w := r.word.Load()
		if r.word.CompareAndSwap(w, w|stoppedBit) {
			return w >> 32, int(w & posMask)
		}
	}
}

// reopen makes stopped (or never published) run r claimable again from its
// cursor, with no claims counted, before it becomes a head; the caller holds
// the shard's lock. A reader that loaded r as head before it was stopped
// may still complete a compare-and-swap on the new word if it saw the same
// cursor and no claims: the bytes from that cursor are unread, and its
// claim is one like any other.
func (r *run) reopen() {
	c := r.cursor()
	r.start = c
	r.word.Store(uint64(c))
}

// shard is one part of the pool. Readers on one P go to one shard (see
// Provider.shard), so concurrent reads seldom share a cache line. Fast reads
// claim from head without the lock; mu guards everything else.
type shard struct {
	head atomic.Pointer[run] // nil when the shard is empty, closed or frozen (takeSpread)
	slab atomic.Pointer[slab]
	fb   atomic.Pointer[run] // crypto/rand bytes for fallback reads (see Provider.local)
	fbMu sync.Mutex          // replaces fb

	mu     sync.Mutex
	runs   []*run // queue behind head; runs[first:] hold unread bytes
	first  int
	queued int // unread bytes in runs[first:]
	cap    int // bytes the refill aims to keep here
	low    int // below this, the shard asks for a refill
	asked  atomic.Bool
	closed bool
	// metas: the records of the blocks that go whole to this shard (add);
	// only the refill goroutine takes from it.
	metas allocBatch[blockRuns]
	// frozen: a read no shard holds alone (takeSpread) has counted this
	// shard's bytes and will take them; no head is published and no other
	// read takes from the queue until it thaws the shard.
	frozen bool

	// Fast claims on runs that have left the head (added by retire); Stats
	// adds the head's own claims and the Provider's slow-path counters.
	// Under mu.
	reads, bytes uint64

	_ [64]byte // keep shards on separate cache lines
}

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// shard returns the shard of the reader's P. The runtime's P index is read
// the way sync.Pool reads it (pinning for an instant); the shard is only a
// place to start, so a reader that moves to another P right after stays
// correct: claims are atomic whoever makes them.
//
// procPin (go:linkname into the runtime) is kept because it pays. Measured
// in one run, three builds interleaved, -count 6, on 2 shared cores (load
// average 3 to 7), against a shard picked at random per read
// (math/rand/v2) and a P-affine index kept in a sync.Pool, neither with a
// linkname: BenchmarkReadFullPool/32B took 16.6 ns with procPin, 35.4 ns
// at random (p=0.002) and 24.7 ns with sync.Pool (p=0.009);
// ReadLabelledFullPool/32B 61.5, 106.4 (p=0.041) and 65.3 ns (no
// difference); ReadParallelFullPool/32B 24.1, 30.3 (no difference) and
// 36.5 ns (p=0.041); ReadSecret/32B no difference. An earlier run of the
// same comparison gave 16.8, 32.5 and 23.8 ns for the serial read. A serial
// reader that stays on its shard keeps its head run and cache lines; one
// that hops drains every shard's head in turn.
//
// The derived-read generators use procPin for more than a place to start:
// a generator belongs to its P, and a goroutine pinned there owns it
// (secretStream), so that a derived read needs one compare-and-swap where
// a mutex took two atomic instructions. Measured in one run, two builds
// alternated, -count 6, on 2 cores: BenchmarkReadSecret/32B took 32.5 ns
// under a mutex per generator and 23.1 ns owned by the P (p=0.002);
// SecretReaderParallel/32B 18.6 and 13.2 ns (p=0.002).
func (p *Provider) shard() *shard {
	if len(p.shards) == 1 {
		return p.shards[0]
	}
	i := procPin()
	procUnpin()
	return p.shardOf(i)
}

// shardOf returns the shard of the P with index i (procPin's). The hot
// reads call procPin and procUnpin themselves and then shardOf, which is
// inlined: Provider.shard is not (two calls into the runtime exceed the
// inlining budget), and would cost them a call per read.
func (p *Provider) shardOf(i int) *shard { return p.shards[pIndex(i, len(p.shards))] }

// pIndex maps the P index i to one of n places, one per P while there are
// as many (more Ps than places: GOMAXPROCS grew, or a small pool). n is 0
// only in a Provider not made by New.
func pIndex(i, n int) int {
	if n == 0 {
		panic("entropy: a Provider must be made by New")
	}
	for i >= n {
		i -= n
	}
	return i
}

// avail is how many unread bytes the shard holds; the caller holds s.mu.
func (s *shard) avail() int {
	n := s.queued
	if r := s.head.Load(); r != nil {
		n += len(r.data) - r.cursor()
	}
	return n
}

// retire takes head run r out of the shard: it stops fast claims on it, adds
// their count and bytes to the shard's, and returns the cursor (r.data[c:]
// is unread, and now the caller's). The caller holds s.mu.
func (s *shard) retire(r *run) int {
	s.head.Store(nil)
	claims, c := r.stop()
	s.reads += claims
	s.bytes += uint64(c - r.start)
	return c
}

// unpublish ends fast claims on the head and puts it, stopped, back at the
// front of the queue if it holds unread bytes, so that the caller can take
// from the queue alone; the caller holds s.mu and calls publish when done.
// It allocates nothing (the queue keeps its capacity).
func (s *shard) unpublish() {
	r := s.head.Load()
	if r == nil {
		return
	}
	c := s.retire(r)
	if c == len(r.data) {
		return
	}
	if s.first > 0 {
		s.first--
		s.runs[s.first] = r
	} else {
		s.runs = append(s.runs, nil)
		copy(s.runs[1:], s.runs)
		s.runs[0] = r
	}
	s.queued += len(r.data) - c
}

// publish makes the front of the queue the head (if the head is empty) and
// sets its wake point, unless the shard is closed or frozen; the caller
// holds s.mu.
func (s *shard) publish() {
	if s.closed || s.frozen {
		return
	}
	if h := s.head.Load(); h != nil && h.cursor() < len(h.data) {
		s.setWake(h)
		return
	} else if h != nil {
		s.retire(h)
	}
	if s.first == len(s.runs) {
		return
	}
	r := s.runs[s.first]
	s.runs[s.first] = nil
	s.first++
	if s.first == len(s.runs) {
		s.runs, s.first = s.runs[:0], 0
	}
	s.queued -= len(r.data) - r.cursor()
	r.reopen()
	s.setWake(r)
	s.head.Store(r)
}

// setWake sets the cursor of head run r past which the shard is below its low
// watermark: unread = queued + len(r.data) - cursor < low.
func (s *shard) setWake(r *run) {
	r.wakeAt.Store(int64(len(r.data) + s.queued - s.low))
}

// take moves len(dst) bytes from the queue into dst, zeroing each pool byte
// as it goes (contract point 3). The caller holds s.mu, has unpublished the
// head, and has checked that s.queued >= len(dst). With want set it appends
// one span per run of one job and returns the spans.
func (s *shard) take(dst []byte, spans []Span, want bool) []Span {
	for len(dst) > 0 {
		r := s.runs[s.first]
		pos := r.cursor()
		src := r.data[pos:]
		n := copy(dst, src)
		clear(src[:n])
		if want {
			spans = appendSpan(spans, Span{Source: r.from.source, JobID: r.from.job, Offset: r.base + pos, Length: n, Public: r.from.public})
		}
		// Still stopped: a reader holding r from when it was a head
		// claims nothing while it is queued.
		r.word.Store(stoppedBit | uint64(pos+n))
		s.queued -= n
		dst = dst[n:]
		if pos+n == len(r.data) {
			s.runs[s.first] = nil
			s.first++
			if s.first == len(s.runs) {
				s.runs, s.first = s.runs[:0], 0
			}
		}
	}
	return spans
}

// put appends a run to the queue; the caller holds s.mu.
func (s *shard) put(r *run) {
	if s.first > 0 && s.first >= len(s.runs)/2 {
		n := copy(s.runs, s.runs[s.first:])
		clear(s.runs[n:])
		s.runs = s.runs[:n]
		s.first = 0
	}
	s.runs = append(s.runs, r)
	s.queued += len(r.data) - r.cursor()
}

// zero wipes every unread byte and marks the shard closed; the caller holds
// s.mu.
func (s *shard) zero() {
	s.unpublish()
	for _, r := range s.runs[s.first:] {
		// Only the unread bytes: those before the cursor were cleared by
		// the readers that took them (one may be clearing them now).
		_, c := r.stop()
		clear(r.data[c:])
	}
	clear(s.runs)
	s.runs = nil
	s.first, s.queued = 0, 0
	s.closed = true
}
