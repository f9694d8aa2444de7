package health

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A Checker runs the tests of one [Config] as [Config.Check] does, and gives
// the same verdict and the same error for every block, but tests a large
// block on two goroutines: the caller's and a helper the Checker keeps. The
// tests are bound by one store per byte (a count per value), so one
// goroutine tests about 2 GB/s; with a second CPU free the helper about
// doubles that. A caller whose helper is busy or asleep tests the block
// alone; it waits for the helper only to finish a piece it has taken (at
// most one piece, 8 KiB of tests).
//
// How a block is cut: into pieces of checkerPiece bytes from its start,
// which the caller and the helper take in turn. A piece starts at a
// multiple of the APT window, so it holds whole windows of the block, and
// at a multiple of 4, so every aligned group of 4 bytes (which a run of 7
// or more equal bytes contains, see Config.Check) lies in one piece. A
// piece that the fast form of the tests cannot pass at once sends the whole
// block to Config.Check, on the caller's goroutine, which decides and names
// the failure: so the verdict is Config.Check's in every case.
//
// The helper starts with the first block of at least 2 pieces, spins for a
// short while (yielding its CPU to any other goroutine) after each block so
// that the next one of a refill finds it awake, then sleeps until a block
// wakes it. When it finds no free CPU to test pieces on (every CPU is busy,
// say with a reader in a tight loop), it is woken for two blocks in 64
// only; the other blocks are offered to [Checker.Assist] callers alone.
// [Checker.Close] stops it. A Checker is safe for concurrent use: one Check
// at a time uses the helper, the others test alone. The zero Checker is not
// usable; make one with [NewChecker].
type Checker struct {
	cfg      Config
	rct, apt int   // cfg's cutoffs, derived once by NewChecker
	cfgErr   error // cfg's error if it is invalid (Config.Check returns it)

	mu     sync.Mutex // held by the Check that uses the helper; guards job and started
	job    checkJob   // the block being tested with the helper
	gen    uint64     // generation of job
	closed bool       // under mu: Check tests alone after Close
	// cold counts the blocks in a row of which the helper tested no
	// piece: it found no free CPU (the other ones are busy, say with a
	// reader in a tight loop). From the second, a Check tests alone and
	// offers the helper two blocks only once every checkerRetry: a wake that
	// finds no CPU costs the caller a system call, and a helper that gets
	// one only by taking it from a busy goroutine gains nothing.
	cold int
	woke bool // the last block offered woke the helper (or started it)

	cur    atomic.Pointer[checkJob] // the block offered to the helper; nil when none
	inside atomic.Int32             // how many goroutines (the helper, Assist) may be reading cur's block
	parked atomic.Bool              // the helper is (about to be) asleep on wake
	helped atomic.Uint64            // pieces the helper and Assist have tested (tests read it)
	wake   chan struct{}            // one wake for the sleeping helper
	stop   chan struct{}            // closed by Close
	done   chan struct{}            // closed when the helper has returned; nil before it starts
	once   sync.Once
}

// checkerPiece is how many bytes of a block the two goroutines of a
// Checker take at a time: a multiple of AptWindow. A block of fewer than
// two pieces is tested by the caller alone.
const checkerPiece = 16 * AptWindow

// checkerSpin is how many times the helper yields its CPU, looking for the
// next block, before it goes to sleep: a few tens of microseconds, about
// what the refill takes between two blocks of one round.
const checkerSpin = 256

// checkerRetry is how often (in blocks) a Check offers a block to a helper
// that has tested no piece of the blocks before (see Checker.cold).
const checkerRetry = 64

// checkJob is one block offered to the helper. Its fields are written by
// the Check that owns the helper only while no helper is inside (see
// Checker.Check), so the helper reads them without a lock.
type checkJob struct {
	data   []byte
	gen    uint64
	pieces int64
	helper bool         // the helper may take pieces (false: only Assist may)
	next   atomic.Int64 // the next piece to take
	doubt  atomic.Bool  // a piece did not pass the fast form of the tests
}

// NewChecker returns a Checker of c. It starts no goroutine until it tests a
// block of at least two pieces.
func NewChecker(c Config) *Checker {
	k := &Checker{cfg: c, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	// Derived here, not per block from the package's one-entry cache,
	// which Checkers of two configurations would take from each other.
	k.rct, k.apt, k.cfgErr = c.cutoffs()
	return k
}

// Check tests data as [Config.Check] does and returns what it returns.
func (k *Checker) Check(data []byte) error {
	rct, apt := k.rct, k.apt
	if k.cfgErr != nil {
		return k.cfgErr // Config.Check's error for every block
	}
	pieces := (len(data) + checkerPiece - 1) / checkerPiece
	if pieces < 2 || rct < 7 || runtime.GOMAXPROCS(0) < 2 || !k.mu.TryLock() {
		return checkCutoffs(data, rct, apt)
	}
	if k.closed {
		k.mu.Unlock()
		return checkCutoffs(data, rct, apt)
	}
	// The helper found no free CPU for the last blocks: the block is
	// offered to whoever is awake (the helper, if it still spins, or a
	// goroutine that calls Assist), but the helper is woken for two blocks
	// in a row every checkerRetry only (the first wakes it, the second
	// finds it awake).
	cold := k.cold >= 2 && k.cold%checkerRetry >= 2
	started := k.done == nil && !cold
	if started {
		k.done = make(chan struct{})
		go k.help()
	}
	// No helper is inside (the last Check waited for it to leave), so the
	// job's plain fields may be written.
	k.gen++
	j := &k.job
	j.data, j.gen, j.pieces, j.helper = data, k.gen, int64(pieces), !cold
	j.next.Store(0)
	j.doubt.Store(false)
	before := k.helped.Load()
	k.cur.Store(j)
	woke := started // a helper just started is on its way, as a woken one
	if !cold && k.parked.Load() {
		woke = true
		select {
		case k.wake <- struct{}{}:
		default: // a wake is already there
		}
	}
	j.work(rct, apt)
	// Take the block back from the helper, then wait until it has left:
	// it is inside only while it may still read the block. If it loaded
	// the block before the Store below, its inside count was set before
	// that load and is seen here. Every piece has then been tested: the
	// caller took pieces until none was left, and the helper has finished
	// those it took.
	k.cur.Store(nil)
	for k.inside.Load() != 0 {
		runtime.Gosched()
	}
	doubt := j.doubt.Load()
	j.data = nil
	switch {
	case k.helped.Load() != before:
		k.cold = 0
	case cold:
		k.cold++
	case !woke || k.woke:
		// It was awake and took nothing, or it was woken for the block
		// before too and has not run since: it finds no free CPU. (A
		// helper woken for this block alone may just be late.)
		k.cold++
	}
	if !cold {
		k.woke = woke
	}
	k.mu.Unlock()
	if doubt {
		return checkCutoffs(data, rct, apt)
	}
	return nil
}

// work takes pieces of j until none is left, tests each with the fast form
// of the tests under the cutoffs rct and apt, and returns how many it
// tested.
func (j *checkJob) work(rct, apt int) (n uint64) {
	for ; ; n++ {
		i := j.next.Add(1) - 1
		if i >= j.pieces {
			return n
		}
		start := int(i) * checkerPiece
		piece := j.data[start:min(start+checkerPiece, len(j.data))]
		if !healthPasses(piece, rct, apt) {
			j.doubt.Store(true)
		}
	}
}

// help is the helper goroutine: it tests pieces of the offered block, spins
// a while between blocks, and sleeps when none comes.
func (k *Checker) help() {
	defer close(k.done)
	var last uint64 // the generation of the last block it took pieces of
	spins := 0
	for {
		k.inside.Add(1)
		if j := k.cur.Load(); j != nil && j.gen != last && j.helper {
			last = j.gen
			k.helped.Add(j.work(k.rct, k.apt))
			spins = 0
		}
		k.inside.Add(-1)
		select {
		case <-k.stop:
			return
		default:
		}
		if spins < checkerSpin {
			spins++
			runtime.Gosched()
			continue
		}
		// Sleep. A Check that offers a block after parked is set sees it
		// and sends a wake; one that offered it before is seen here.
		k.parked.Store(true)
		k.inside.Add(1) // it reads the offered block's generation
		j := k.cur.Load()
		offered := j != nil && j.gen != last && j.helper
		k.inside.Add(-1)
		if offered {
			k.parked.Store(false)
			continue
		}
		select {
		case <-k.wake:
		case <-k.stop:
			k.parked.Store(false)
			return
		}
		k.parked.Store(false)
		spins = 0
	}
}

// Assist tests pieces of the block that a Check is testing with the
// helper, if there is one, on the caller's goroutine, and reports whether
// it tested any. A goroutine that would otherwise wait for the blocks
// being checked (a reader waiting for the pool) lends its CPU this way,
// with no wake to wait for. It never blocks, and a piece that does not
// pass sends the block to [Config.Check] as the helper's would.
func (k *Checker) Assist() bool {
	k.inside.Add(1)
	defer k.inside.Add(-1)
	j := k.cur.Load()
	if j == nil {
		return false
	}
	n := j.work(k.rct, k.apt)
	k.helped.Add(n)
	return n > 0
}

// Close stops the helper and waits until it has returned. Check still
// works after Close, on the caller's goroutine alone. Close is idempotent.
func (k *Checker) Close() {
	k.once.Do(func() { close(k.stop) })
	k.mu.Lock()
	k.closed = true
	done := k.done
	k.mu.Unlock()
	if done != nil {
		<-done
	}
}
