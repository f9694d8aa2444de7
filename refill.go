package entropy

import (
	"context"
	"errors"
)

// refillFailed tells waiters that a refill round failed: the warm start
// ends (the policy applies at once) and WaitReady looks at the error.
func (p *Provider) refillFailed() {
	p.endWarm()
	p.mu.Lock()
	close(p.failed)
	p.failed = make(chan struct{})
	p.mu.Unlock()
}

// allPermanent reports whether every error of a refill round is permanent.
func allPermanent(errs []error) bool {
	for _, e := range errs {
		if Classify(e) != Permanent {
			return false
		}
	}
	return len(errs) > 0
}

// refillLoop is the refill goroutine: it fills the pool, then sleeps until a
// shard runs low; after a round where every source failed it backs off.
func (p *Provider) refillLoop() {
	defer p.wg.Done()
	failed := 0
	for {
		err := p.fill()
		if p.ctx.Err() != nil {
			return
		}
		if err != nil {
			p.refillFailed()
			d := backoff(min(failed, 30), p.cfg.retryBase, p.cfg.retryMax)
			failed++
			if sleep(p.ctx, p.cfg.clock, d) != nil {
				return
			}
			continue
		}
		failed = 0
		if p.settle() {
			continue // a shard fell low while fill finished: fill again
		}
		select {
		case <-p.wake:
		case <-p.ctx.Done():
			return
		}
	}
}

// fill tops the pool up from the sources until it is full or every source
// failed; it reports the error of a round in which no source gave a block.
func (p *Provider) fill() error {
	for {
		room := p.room()
		if room <= 0 {
			p.shortRead.Store(false)
			return nil
		}
		// Do not send a request for a sliver of room unless a shard is low.
		if room < min(p.cfg.fetchSize, p.cfg.bufferSize/2) && !p.anyLow() && !p.shortRead.Load() {
			return nil
		}
		n := min(room, p.cfg.fetchSize)
		if n < p.cfg.minFetch {
			// Never a block too small for the health tests to judge (a
			// stuck source passes them in blocks of 6 bytes): wait for
			// reads to make room for one, or ask for one that fits.
			if room < p.cfg.minFetch {
				return nil
			}
			n = p.cfg.minFetch
		}
		var errs []error
		var blks []Block
		var one Block // the block of a request that is not a batch
		var got *feeder
		for i, f := range p.feeders {
			if f.heldBehind(p.ctx, p.feeders[i+1:]) {
				// A Retry-After holds this source; a later one may serve now.
				errs = append(errs, &sourceError{name: f.sourceName(), err: &heldError{until: f.holdTime(), last: f.lastError()}})
				continue
			}
			var err error
			if _, ok := f.src.(batcher); ok && f.cfg.batch > 1 && !f.noBatch.Load() {
				blks, err = f.fetchBatch(p.ctx, f.batchSizes(room, n))
			} else {
				// A source without batches: one request for one block,
				// with no slice of one size nor of one block.
				one, err = f.fetch(p.ctx, n, nil)
			}
			p.watchFleet()
			if err == nil {
				got = f
				break
			}
			if p.ctx.Err() != nil {
				return p.ctx.Err()
			}
			errs = append(errs, &sourceError{name: f.sourceName(), err: err})
			if l := p.cfg.logger; l != nil {
				l.Warn("entropy: refill failed", "source", f.sourceName(), "class", Classify(err).String(), "error", err.Error())
			}
		}
		if got == nil {
			cause := errs[0]
			if len(errs) > 1 {
				cause = errors.Join(errs...)
			}
			reason := failedAt(cause, p.cfg.clock.Now())
			p.reason.Store(reason)
			if allPermanent(errs) {
				p.permanent.Store(reason)
			} else {
				p.permanent.Store(nil)
			}
			return cause
		}
		if blks == nil {
			p.add(got, one)
		}
		for _, blk := range blks {
			p.add(got, blk)
		}
	}
}

// settle clears the refill request of every shard at or above its low
// watermark, and reports whether a shard is below it. A reader asks for a
// refill (low) just after its claim, without the shard's lock, so its
// request can come after the bytes it asked for arrived, and a later reader
// that finds the request set sends no wake of its own: so the refill does
// not go to sleep while a shard is low, whatever the flags say, and a
// request left set on a full shard is cleared.
func (p *Provider) settle() (low bool) {
	for _, s := range p.shards {
		s.mu.Lock()
		if s.avail() >= s.low {
			s.asked.Store(false)
		} else {
			low = true
		}
		s.mu.Unlock()
	}
	return low
}

// anyLow reports whether a shard is below its low watermark.
func (p *Provider) anyLow() bool {
	for _, s := range p.shards {
		s.mu.Lock()
		low := s.avail() < s.low
		s.mu.Unlock()
		if low {
			return true
		}
	}
	return false
}

// room is how many bytes the pool can take.
func (p *Provider) room() int { return p.cfg.bufferSize - p.pooled() }

// pooled is how many unread bytes the pool holds.
func (p *Provider) pooled() int {
	n := 0
	for _, s := range p.shards {
		s.mu.Lock()
		n += s.avail()
		s.mu.Unlock()
	}
	return n
}

// add copies a checked block into the shards with the most room, records it,
// and wakes readers waiting under Defer.
//
// A block costs one allocation, its bytes, and a share of one: its
// blockRuns (its origin and the runs it is cut into) comes from the batch
// of the shard it goes to (metaBatch). A block cut over shards costs its
// own blockRuns, and one more run for each shard past two. The copy is an
// append, which writes the new array once; make and copy would zero it
// first.
func (p *Provider) add(f *feeder, blk Block) {
	data := append([]byte(nil), blk.Data...)
	var meta *blockRuns
	k := 0
	f.accepted.Add(1)
	f.fetched.Add(uint64(len(data)))
	// Queued for the journal before any of its bytes can be read: a read may
	// take them the moment they are in a shard, and the Provider may close
	// right after. An event draw waits for the queue (notifier.flush) before
	// it records its event, so the block's record is on disk first.
	if p.cfg.journal != nil {
		p.notes.block(blockRecord(blk, p.cfg.clock.Now()))
	}
	off := 0
	for off < len(data) {
		var best *shard
		bestRoom := 0
		for _, s := range p.shards {
			s.mu.Lock()
			r := s.cap - s.avail()
			s.mu.Unlock()
			if best == nil || r > bestRoom {
				best, bestRoom = s, r
			}
		}
		n := min(len(data)-off, maxRun)
		if bestRoom > 0 && n > bestRoom {
			n = bestRoom
		}
		if meta == nil {
			// A block that goes whole to one shard takes its record from
			// that shard's batch (see metaBatch); one cut over shards has
			// a record of its own.
			if n == len(data) {
				meta = best.metas.get(p.metaBatch())
			} else {
				meta = new(blockRuns)
			}
			meta.from = origin{source: blk.Source, job: blk.JobID, public: blk.Public}
		}
		best.mu.Lock()
		if best.closed {
			best.mu.Unlock()
			clear(data[off:]) // the runs already made are zeroed by Close
			return
		}
		var r *run
		if k < len(meta.runs) {
			r = &meta.runs[k]
		} else {
			r = new(run)
		}
		k++
		r.data, r.base, r.from = data[off:off+n:off+n], off, &meta.from
		best.put(r)
		best.publish()
		if best.avail() >= best.low {
			best.asked.Store(false)
		}
		best.mu.Unlock()
		off += n
	}
	p.adds.Add(1) // before dry is cleared: see markDry
	p.dry.Store(false)
	p.reason.Store(poolEmpty)
	p.permanent.Store(nil)
	p.endWarm()
	p.wakeWaiters()
	select {
	case <-p.ready:
	default:
		p.mu.Lock()
		select {
		case <-p.ready:
		default:
			close(p.ready)
		}
		p.mu.Unlock()
	}
}

// metaBatch is how many blockRuns a shard's batch allocates at once (add).
// A batch stays alive while one of its blocks is in the pool or the shard
// still carves from it, and with it the (zeroed) bytes of its blocks
// already read. A shard's blocks are read in the order they were added, so
// only its oldest batch in the pool, or the one it carves from, holds read
// blocks: at most a batch of blocks per shard, which the size keeps under a
// 16th of the pool's size (a block is at most the fetch size, or the
// smallest block the health tests judge): one per allocation with the
// default sizes, up to 16 when the pool holds many blocks. Batches shared
// by the shards would not bound it: a shard that is never read keeps alive
// the batches of its blocks, and with them their batch-mates read from the
// other shards.
func (p *Provider) metaBatch() int {
	return min(16, p.cfg.bufferSize/(16*max(p.cfg.fetchSize, p.cfg.minFetch)*len(p.shards)))
}

// wakeWaiters wakes the reads waiting under Defer for bytes (deferTake):
// one send on each registered channel, which holds one, so a reader that
// has not reached its select yet still finds the wake there. The list is
// emptied; a woken reader registers again before it looks at the pool.
func (p *Provider) wakeWaiters() {
	p.mu.Lock()
	for i, w := range p.waiters {
		select {
		case w <- struct{}{}:
		default: // a wake is already there
		}
		p.waiters[i] = nil
	}
	p.waiters = p.waiters[:0]
	p.mu.Unlock()
}

// WaitReady waits until the pool first holds verifiable bytes (nil), ctx
// ends (ctx's error), or the [Provider] closes ([ErrClosed]). It returns early,
// with the error, when a refill round fails permanently on every source: a
// service that refuses the API key (401, 403), wants payment (402), or
// whose signatures never verify with the configured key is misconfigured,
// and waiting longer cannot help. That error wraps [ErrUnavailable],
// [ErrPermanent] and the source's own error (an *APIError with the service's
// message). Call it after [New] where the first bytes must be verifiable
// (a draw at start-up, a command that reads once and exits).
func (p *Provider) WaitReady(ctx context.Context) error {
	p.mustBeMade()
	if ctx == nil {
		return errNilContext
	}
	for {
		if p.closed.Load() {
			return ErrClosed
		}
		p.mu.Lock()
		failed := p.failed
		p.mu.Unlock()
		select {
		case <-p.ready:
			return nil
		default:
		}
		if perm := p.permanent.Load(); perm != nil {
			return perm
		}
		select {
		case <-p.ready:
			return nil
		case <-failed:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.ctx.Done():
			return ErrClosed
		}
	}
}
