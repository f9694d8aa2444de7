package bench

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy"
)

// Steady state. The refill path checks every byte (health tests) before it
// enters the pool, which costs more per byte than a read's copy and clear,
// so a tight loop of reads drains any pool, however fast its source: a
// benchmark that kept reading would end up measuring the fallback (and
// BenchmarkSustainedDegrade shows exactly that). The steady-state benchmarks
// therefore read in batches that the pool can always serve, and stop the
// timer between batches while the pool refills: they measure the read path
// with a full pool, which is what an application that reads less than the
// refill rate sees. BenchmarkRefill measures that rate.

// batchBytes is how many bytes each reader of a steady-state benchmark may
// take before it waits for the refill (waitSettled): a quarter of a shard
// (the pool has one shard per P and a reader takes from its P's shard), and
// at least one read.
func batchBytes(size int) int {
	return max(steadyBufferFor(size)/(4*runtime.GOMAXPROCS(0)), size)
}

// steadyBufferFor is the pool of a steady-state benchmark of reads of size
// bytes: 8 MiB, or 16 reads if that is more.
func steadyBufferFor(size int) int { return max(steadyBuffer, 16*size) }

// serialPacer keeps the refill out of a serial benchmark's timed reads. The
// pool refills a shard when it falls below half; so each timed batch takes
// 2/5 of a shard from a full pool (staying above half), then, with the timer
// stopped, the pacer reads on until the refill starts (at most a quarter
// shard: the reader may have moved to another P, and so to another, full
// shard) and waits until the refill is idle again (waitSettled). Without this, with
// GOMAXPROCS 1 the refill runs inside the timed loop (the reader that wakes
// it yields to it) and its cost would be counted as the reads'.
type serialPacer struct {
	b       *testing.B
	p       *entropy.Provider
	batch   int
	left    int
	scratch []byte
	drain   int
}

func newSerialPacer(b *testing.B, p *entropy.Provider, size int) *serialPacer {
	shard := steadyBufferFor(size) / runtime.GOMAXPROCS(0)
	n := max(2*shard/5, size)
	return &serialPacer{b: b, p: p, batch: n, left: n, scratch: make([]byte, 4096), drain: shard / 4}
}

// done records a read of n bytes; when the batch is used up it stops the
// timer, drains the shard below its watermark and waits for the refill.
func (s *serialPacer) done(n int) {
	s.left -= n
	if s.left < n {
		s.pause() // out of line, so that done inlines into the timed loop
	}
}

// pause ends a batch: see done.
func (s *serialPacer) pause() {
	s.b.StopTimer()
	// Drain until the refill has started (its first request counted), so
	// that it then fills the pool to the brim with no reader in its way.
	before := requests(s.p.Stats())
	for d := 0; d < s.drain && requests(s.p.Stats()) == before; d += len(s.scratch) {
		if _, err := s.p.Read(s.scratch); err != nil {
			s.b.Fatal(err)
		}
	}
	waitSettled(s.b, s.p)
	s.left = s.batch
	s.b.StartTimer()
}

// parallelPacer paces b.RunParallel: each worker reads a batch of a quarter
// shard, then waits at a barrier; the last worker to arrive stops the timer,
// waits until the refill is idle (waitSettled) and releases them all.
// Workers that have finished leave the barrier so the others do not wait for
// them. A refill that a batch starts runs partly inside the timed reads
// (the workers cannot drain their own shards with the timer stopped), so the
// parallel figures include some refill work: they are a little pessimistic.
type parallelPacer struct {
	b     *testing.B
	p     *entropy.Provider
	batch int

	mu      sync.Mutex
	cond    *sync.Cond
	active  int // workers running
	waiting int // workers at the barrier
	gen     int // batches completed
}

func newParallelPacer(b *testing.B, p *entropy.Provider, size int) *parallelPacer {
	q := &parallelPacer{b: b, p: p, batch: batchBytes(size)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// worker is the pacing state of one RunParallel goroutine.
type worker struct {
	q    *parallelPacer
	left int
}

// join registers a worker.
func (q *parallelPacer) join() *worker {
	q.mu.Lock()
	q.active++
	q.mu.Unlock()
	return &worker{q: q, left: q.batch}
}

// done records a read of n bytes and waits at the barrier when the worker's
// batch is used up.
func (w *worker) done(n int) {
	w.left -= n
	if w.left < n {
		w.arrive() // out of line, so that done inlines into the timed loop
	}
}

// arrive ends the worker's batch at the barrier: see done.
func (w *worker) arrive() {
	w.left = w.q.batch
	q := w.q
	q.mu.Lock()
	q.waiting++
	if q.waiting == q.active {
		q.refill()
	} else {
		for g := q.gen; g == q.gen; {
			q.cond.Wait()
		}
	}
	q.mu.Unlock()
}

// leave unregisters a worker that has finished, releasing the others if they
// were only waiting for it.
func (w *worker) leave() {
	q := w.q
	q.mu.Lock()
	q.active--
	if q.waiting > 0 && q.waiting == q.active {
		q.refill()
	}
	q.mu.Unlock()
}

// waitSettled waits (at most 10 s) until p's refill is idle: its pool and
// its request count unchanged over a few polls, with at least half the pool
// there. The refill starts when a shard falls below half and then fills the
// whole pool, so once it is idle every shard holds at least half its
// capacity, and a batch of a quarter shard cannot empty one.
func waitSettled(tb testing.TB, p *entropy.Provider) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last entropy.Stats
	stable := 0
	for stable < 3 {
		time.Sleep(50 * time.Microsecond)
		st := p.Stats()
		if st.Pooled == last.Pooled && st.Pooled >= st.Capacity/2 && requests(st) == requests(last) {
			stable++
		} else {
			stable = 0
		}
		last = st
		if time.Now().After(deadline) {
			tb.Fatalf("refill not idle after 10 s: %d of %d bytes", st.Pooled, st.Capacity)
		}
	}
}

// requests is the number of requests the Provider has sent to its sources.
func requests(st entropy.Stats) uint64 {
	n := uint64(0)
	for _, s := range st.Sources {
		n += s.Requests
	}
	return n
}

// refill runs with q.mu held and every active worker at the barrier, so no
// read overlaps the stopped timer.
func (q *parallelPacer) refill() {
	q.b.StopTimer()
	waitSettled(q.b, q.p)
	q.b.StartTimer()
	q.waiting = 0
	q.gen++
	q.cond.Broadcast()
}
