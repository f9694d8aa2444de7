package entropy

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha256"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// episodeState tracks the current fallback episode (contract point 9). The
// fast path only loads open; everything else is under mu and runs once per
// episode boundary, not per read.
type episodeState struct {
	open  atomic.Bool
	mu    sync.Mutex
	cur   FallbackEpisode
	count atomic.Uint64 // episodes started
	// The Provider's fallback read and byte counters when the last episode
	// ended (under mu): an episode's counts are the difference, so a
	// fallback read adds to the counters once, not twice.
	baseReads, baseBytes uint64
	// closed is set (under mu) by Close: no episode opens after it, so none
	// is left open, unrecorded, by a fallback read that raced Close.
	closed bool
}

// count starts a fallback episode if none is open; the caller has served
// a fallback read, counted in fallback epoch epoch (see local). If that
// epoch has ended, an episode that ended since holds the read, and no
// episode is opened for it: one would end holding no read at all.
func (p *Provider) count(reason error, epoch uint64) {
	e := &p.episodes
	if e.open.Load() {
		return
	}
	e.mu.Lock()
	if e.open.Load() || e.closed || p.fbEpoch.Load() != epoch {
		e.mu.Unlock()
		return
	}
	e.cur = FallbackEpisode{Start: p.cfg.clock.Now(), Reason: reason}
	e.open.Store(true)
	e.count.Add(1)
	// Queued under e.mu, so that a start is always queued before its end
	// (and before Close's last drain). The queue's own lock is short and
	// never held while a hook runs.
	p.notes.episode(e.cur)
	e.mu.Unlock()
}

// endEpisode closes the open episode, if any, and hands it to the notifier.
func (p *Provider) endEpisode() { p.finishEpisode(false) }

// finishEpisode ends the open episode; with last set (Close) it also stops
// any new one from opening.
func (p *Provider) finishEpisode(last bool) {
	e := &p.episodes
	e.mu.Lock()
	if last {
		e.closed = true
	}
	if !e.open.Load() {
		if last {
			p.closeEpisodes()
		}
		e.mu.Unlock()
		return
	}
	e.open.Store(false)
	ep := e.cur
	ep.End = p.cfg.clock.Now()
	ep.Ended = true
	reads, bytes := p.endCounts(last)
	ep.Reads, ep.Bytes = int64(reads-e.baseReads), int64(bytes-e.baseBytes)
	e.baseReads, e.baseBytes = reads, bytes
	e.cur = FallbackEpisode{}
	p.notes.episode(ep)
	e.mu.Unlock()
}

// closeEpisodes is finishEpisode at Close with no episode open. It ends the
// last fallback epoch all the same (no fallback read is counted after it,
// see local), and if reads were counted since the last episode ended, they
// are reads that served their bytes but met Close before they could open
// their episode: they get one of their own, started and ended at Close, so
// that every fallback read is in exactly one recorded episode. The caller
// holds e.mu.
func (p *Provider) closeEpisodes() {
	e := &p.episodes
	reads, bytes := p.endCounts(true)
	if reads == e.baseReads {
		return
	}
	now := p.cfg.clock.Now()
	start := FallbackEpisode{Start: now, Reason: p.reason.Load()}
	end := start
	end.End, end.Ended = now, true
	end.Reads, end.Bytes = int64(reads-e.baseReads), int64(bytes-e.baseBytes)
	e.baseReads, e.baseBytes = reads, bytes
	e.count.Add(1)
	p.notes.episode(start)
	p.notes.episode(end)
}

// notifier delivers fallback episodes to the hook, the logger and the
// journal, and blocks to the journal, on a goroutine of its own: outside
// every lock, and never on a read's goroutine (a journal append fsyncs).
type notifier struct {
	gid    atomic.Uint64 // the notifier goroutine's ID, for isSelf
	p      *Provider
	mu     sync.Mutex
	queue  []note
	signal chan struct{}
	jq     journalQueue // the records on their way to the journal
}

type note struct {
	episode *FallbackEpisode
	block   *BlockRecord
	flushed chan struct{} // closed when every note before it is delivered
}

func (n *notifier) init(p *Provider) {
	n.p = p
	n.signal = make(chan struct{}, 1)
	n.jq.init()
}

func (n *notifier) episode(ep FallbackEpisode) { n.push(note{episode: &ep}) }
func (n *notifier) block(b BlockRecord)        { n.push(note{block: &b}) }

func (n *notifier) push(x note) {
	if n.p.cfg.hook == nil && n.p.cfg.logger == nil && n.p.cfg.journal == nil {
		return
	}
	n.mu.Lock()
	n.queue = append(n.queue, x)
	n.mu.Unlock()
	select {
	case n.signal <- struct{}{}:
	default:
	}
}

// run delivers notes until the Provider closes, then delivers what is left.
// Journal records that failed are retried, in order, when their backoff has
// passed.
func (n *notifier) run(wg *sync.WaitGroup) {
	defer wg.Done()
	n.gid.Store(goid())
	for {
		select {
		case <-n.signal:
			n.drain()
		case <-n.jq.retryC():
			n.retry()
		case <-n.p.ctx.Done():
			// The refill goroutine may still queue a block it fetched
			// before it saw the end: deliver after it has stopped.
			n.p.refillDone.Wait()
			n.drain()
			n.writeAtClose()
			return
		}
	}
}

func (n *notifier) drain() {
	for {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		n.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, x := range q {
			n.deliver(x)
		}
		n.write()
	}
}

// deliver hands an episode to the hook and the logger at once, and queues
// blocks, ended episodes and flush marks for the journal (written by
// write, in order, retried when the journal fails).
func (n *notifier) deliver(x note) {
	p := n.p
	if x.flushed != nil {
		if p.cfg.journal == nil {
			close(x.flushed)
		} else {
			n.enqueue(x)
		}
		return
	}
	if ep := x.episode; ep != nil {
		if p.cfg.hook != nil {
			p.cfg.hook(*ep)
		}
		if l := p.cfg.logger; l != nil {
			reason := ""
			if ep.Reason != nil {
				reason = ep.Reason.Error()
			}
			if ep.Ended {
				l.Warn("entropy: fallback episode ended", "start", ep.Start, "end", ep.End, "reads", ep.Reads, "bytes", ep.Bytes, "reason", reason)
			} else {
				l.Warn("entropy: fallback episode started: serving crypto/rand, labelled non-verifiable", "reason", reason)
			}
		}
		if p.cfg.journal != nil && ep.Ended {
			n.enqueue(note{episode: ep})
		}
	}
	if b := x.block; b != nil && p.cfg.journal != nil {
		n.enqueue(note{block: b})
	}
}

func (p *Provider) journalError(what string, err error) {
	p.journalErrs.Add(1)
	if l := p.cfg.logger; l != nil {
		l.Error("entropy: journal append failed, will retry", "record", what, "error", err.Error())
	}
}

func blockRecord(b Block, now time.Time) BlockRecord {
	return BlockRecord{
		Source:     b.Source,
		JobID:      b.JobID,
		Size:       len(b.Data),
		Digest:     sha256.Sum256(b.Data),
		Verifiable: b.Verifiable,
		Time:       now,
	}
}

// isSelf reports whether the caller is the notifier goroutine: a hook or a
// journal calling back into the Provider (Close must not wait for itself).
func (n *notifier) isSelf() bool {
	id := n.gid.Load()
	return id != 0 && id == goid()
}

// goid returns the calling goroutine's ID, read from its stack header
// ("goroutine 123 [running]:"). Only Close uses it.
func goid() uint64 {
	var buf [64]byte
	s := buf[:runtime.Stack(buf[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	if i := bytes.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, _ := strconv.ParseUint(string(s), 10, 64)
	return id
}

// localBuf is how many crypto/rand bytes a shard's fallback lane buffers,
// and localDirect the read size from which a fallback read goes to
// crypto/rand directly: one 4 KiB call costs a fraction per byte of many
// 32-byte calls.
const (
	localBuf    = 4096
	localDirect = 512
)

// fallbackRead serves b from shard s's fallback lane and opens a fallback
// episode if none is open. The read is counted when it is served (its claim)
// and the episode opened after, so that every fallback read is in the counts
// of exactly one episode (the sums of the episodes equal the counters), and
// every ended episode holds at least the read that opened it: a read whose
// epoch ended before it could open an episode is in the one that ended.
//
// It returns false, with b zeroed, if the Provider closed before the read
// could be counted: no fallback read is served after Close has counted the
// last one.
func (p *Provider) fallbackRead(s *shard, b []byte) bool {
	epoch, ok := p.local(s, b)
	if !ok {
		clear(b) // as every failed read leaves it
		return false
	}
	if !p.episodes.open.Load() {
		p.count(p.reason.Load(), epoch)
	}
	return true
}

// local fills b, a fallback read, with fresh crypto/rand bytes: the same
// bytes bufio.Reader over crypto/rand.Reader would give, from shard s's
// fallback lane, a run of crypto/rand bytes that readers claim as they claim
// pool bytes (one compare-and-swap, each byte zeroed as it is handed out, so
// contract point 3 holds for fallback bytes too). The claim words count the
// fallback reads; the lane's run is replaced under s.fbMu when it runs short,
// and zeroed at Close.
//
// It returns the fallback epoch the read is counted in: the epoch of the
// lane run it claimed from, or, for a direct read, the epoch when it was
// counted. An episode that ends (endCounts) stops every lane run and counts
// every claim made on them, then starts a new epoch; so a read counted in an
// epoch that has since ended is in the counts of an episode that ended.
//
// After Close has ended the last epoch (endCounts with last set) no lane is
// made and no direct read is counted: local returns ok false, and b holds
// no fallback bytes.
func (p *Provider) local(s *shard, b []byte) (epoch uint64, ok bool) {
	if len(b) >= localDirect {
		// crypto/rand.Read never returns an error (Go 1.24+): on a broken
		// system it crashes the program rather than return weak bytes.
		_, _ = crand.Read(b)
		// Counted under the lane's lock, which endCounts holds while
		// it sums the counters and starts a new epoch: the epoch read
		// here is the one the read is counted in.
		s.fbMu.Lock()
		if p.fbClosed {
			s.fbMu.Unlock()
			clear(b)
			return 0, false
		}
		p.fbDirectReads.Add(1)
		p.fbDirectBytes.Add(uint64(len(b)))
		epoch = p.fbEpoch.Load()
		s.fbMu.Unlock()
		return epoch, true
	}
	for {
		// A lane run is made before the last endCounts, which stops it:
		// a claim that succeeds is counted in an epoch that an episode
		// (or closeEpisodes) ends.
		if r := s.fb.Load(); r != nil {
			if _, _, ok := r.claim(b); ok {
				return r.epoch, true
			}
		}
		s.fbMu.Lock()
		if p.fbClosed {
			s.fbMu.Unlock()
			return 0, false
		}
		if r := s.fb.Load(); r == nil || len(r.data)-r.cursor() < len(b) {
			nr := &run{data: make([]byte, localBuf), epoch: p.fbEpoch.Load()}
			_, _ = crand.Read(nr.data)
			s.fb.Store(nr)
			p.retireLocal(r)
		}
		s.fbMu.Unlock()
	}
}

// retireLocal counts the claims on a fallback run that left its lane and
// zeroes its unread bytes; the caller holds the lane's fbMu.
func (p *Provider) retireLocal(r *run) {
	if r == nil {
		return
	}
	claims, c := r.stop()
	clear(r.data[c:])
	p.fbDoneReads.Add(claims)
	p.fbDoneBytes.Add(uint64(c))
}

// zeroLocal empties shard s's fallback lane (Close).
func (p *Provider) zeroLocal(s *shard) {
	s.fbMu.Lock()
	p.retireLocal(s.fb.Swap(nil))
	s.fbMu.Unlock()
}

// endCounts ends a fallback epoch for finishEpisode, which holds
// episodes.mu: it stops every lane's run (so that a read claims either before
// the stop, and is counted here, or from a new run of the new epoch), starts
// the new epoch, and returns the fallback reads and bytes served so far.
// With last set (Close) it is the last epoch: no fallback read is counted
// after it (see local).
func (p *Provider) endCounts(last bool) (reads, bytes uint64) {
	for _, s := range p.shards {
		s.fbMu.Lock()
	}
	for _, s := range p.shards {
		p.retireLocal(s.fb.Swap(nil))
	}
	p.fbEpoch.Add(1)
	if last {
		p.fbClosed = true
	}
	reads = p.fbDoneReads.Load() + p.fbDirectReads.Load()
	bytes = p.fbDoneBytes.Load() + p.fbDirectBytes.Load()
	for _, s := range p.shards {
		s.fbMu.Unlock()
	}
	return reads, bytes
}

// fallbackCounts returns the fallback reads and bytes served so far. It
// holds every lane's lock at once, so that no run is between its lane and
// the retired counts.
func (p *Provider) fallbackCounts() (reads, bytes uint64) {
	for _, s := range p.shards {
		s.fbMu.Lock()
	}
	for _, s := range p.shards {
		if r := s.fb.Load(); r != nil {
			w := r.word.Load()
			reads += w >> 32
			bytes += w & cursorMask
		}
	}
	reads += p.fbDoneReads.Load() + p.fbDirectReads.Load()
	bytes += p.fbDoneBytes.Load() + p.fbDirectBytes.Load()
	for _, s := range p.shards {
		s.fbMu.Unlock()
	}
	return reads, bytes
}
