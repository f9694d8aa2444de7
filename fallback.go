package entropy

import (
	crand "crypto/rand"
	"sync/atomic"
)

// fallbackInto fills b from crypto/rand (through shard s's lane) and, with
// label, labels it, appending its span to into (or, when into is nil,
// putting it in a span slot of s) (contract points 1 and 9); it returns
// ErrClosed, with no bytes in b, if Close has counted the last fallback
// read.
func (p *Provider) fallbackInto(s *shard, b []byte, label bool, into []Span) (Label, error) {
	if !p.fallbackRead(s, b) {
		return Label{}, ErrClosed
	}
	if !label {
		return Label{}, nil
	}
	if into == nil {
		// A span slot, as a verifiable read of one run takes: no
		// allocation per read.
		return Label{Spans: s.span(&fallbackRun, 0, len(b)), Reason: p.reason.Load()}, nil
	}
	return Label{Spans: append(into, Span{Source: FallbackSource, Length: len(b)}), Reason: p.reason.Load()}, nil
}

// fallbackRun is what a fallback read's span is made from in a span slot
// (shard.span): its source is crypto/rand, and it has no job, offset or
// bytes. It is never published or claimed.
var fallbackRun = run{from: &origin{source: FallbackSource}}

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
		if p.fbClosed.Load() {
			s.fbMu.Unlock()
			clear(b)
			return 0, false
		}
		epoch = p.fbEpoch.Load()
		p.fbCounts[epoch&1].add(1, uint64(len(b)))
		s.fbMu.Unlock()
		return epoch, true
	}
	for {
		// A lane run is made before the last endCounts, which stops it:
		// a claim that succeeds is counted in an epoch that an episode
		// (or closeEpisodes) ends.
		if r := s.fb.Load(); r != nil {
			if off, ok := r.reserve(len(b)); ok {
				moveOut(b, r.data[off:off+len(b)])
				return r.epoch, true
			}
		}
		s.fbMu.Lock()
		if p.fbClosed.Load() {
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

// fbCount is the fallback reads and bytes counted in one epoch.
type fbCount struct{ reads, bytes atomic.Uint64 }

func (c *fbCount) add(reads, bytes uint64) {
	c.reads.Add(reads)
	c.bytes.Add(bytes)
}

// retireLocal counts the claims on a fallback run that left its lane in
// the run's epoch, and zeroes its unread bytes; the caller holds the lane's
// fbMu.
func (p *Provider) retireLocal(r *run) {
	if r == nil {
		return
	}
	claims, c := r.stop()
	clear(r.data[c:])
	p.fbCounts[r.epoch&1].add(claims, uint64(c))
}

// zeroLocal empties shard s's fallback lane (Close).
func (p *Provider) zeroLocal(s *shard) {
	s.fbMu.Lock()
	p.retireLocal(s.fb.Swap(nil))
	s.fbMu.Unlock()
}

// endCounts ends the current fallback epoch for finishEpisode, which holds
// episodes.mu, and returns the fallback reads and bytes counted in it. It
// starts the new epoch first, then visits the lanes one at a time, each
// under its own fbMu, and retires the lane's run if it is of the ending
// epoch. A read counted in the ending epoch is then in the counts: a claim
// on a run of that epoch succeeded before the run was stopped, and a read
// that was counted under a lane's fbMu read the epoch before the lane was
// visited. A run made, or a read counted, after the new epoch began is of
// the new one. With last set (Close) it is the last epoch: fbClosed is set
// before the epoch moves, every lane's run is retired, no fallback read is
// counted after the visits (see local), and the counts of both epochs are
// the last one's.
func (p *Provider) endCounts(last bool) (reads, bytes uint64) {
	ending := p.fbEpoch.Load()
	if last {
		p.fbClosed.Store(true)
	}
	p.fbEpoch.Store(ending + 1)
	for _, s := range p.shards {
		s.fbMu.Lock()
		if r := s.fb.Load(); r != nil && (last || r.epoch == ending) {
			s.fb.Store(nil)
			p.retireLocal(r)
		}
		s.fbMu.Unlock()
	}
	c := &p.fbCounts[ending&1]
	reads, bytes = c.reads.Swap(0), c.bytes.Swap(0)
	if last {
		// A read that found fbClosed unset under its lane's fbMu just
		// before Close set it may have read the new epoch: its run (now
		// retired) or direct read is counted there. Nothing is counted
		// after the last lane's visit, so the last epoch takes both.
		c := &p.fbCounts[(ending+1)&1]
		reads += c.reads.Swap(0)
		bytes += c.bytes.Swap(0)
	}
	p.fbEndedReads += reads
	p.fbEndedBytes += bytes
	return reads, bytes
}

// fallbackCounts returns the fallback reads and bytes served so far, for
// Stats: the epochs ended, the current epoch's counts and the claims on the
// lanes' runs. It holds episodes.mu, so that no epoch ends meanwhile, and
// every lane's fbMu at once, so that no run is between its lane and the
// counts; it is not on any read path.
func (p *Provider) fallbackCounts() (reads, bytes uint64) {
	p.episodes.mu.Lock()
	defer p.episodes.mu.Unlock()
	for _, s := range p.shards {
		s.fbMu.Lock()
	}
	for _, s := range p.shards {
		if r := s.fb.Load(); r != nil {
			w := r.word.Load()
			reads += w >> 32
			bytes += w & posMask
		}
	}
	for i := range p.fbCounts {
		reads += p.fbCounts[i].reads.Load()
		bytes += p.fbCounts[i].bytes.Load()
	}
	reads += p.fbEndedReads
	bytes += p.fbEndedBytes
	for _, s := range p.shards {
		s.fbMu.Unlock()
	}
	return reads, bytes
}
