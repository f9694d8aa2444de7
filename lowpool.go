package entropy

// The low-pool path: reads that the head run of the reader's shard cannot
// serve. Every path here holds one shard lock at a time: a read is taken
// whole from the first shard that holds it; a read no shard holds alone is
// gathered shard by shard, and under Defer a read gathers shard by shard as
// blocks arrive (see the concurrency model in provider.go).

import (
	"context"
	"sync"
	"time"
)

// takeVerifiable fills b with pool bytes and returns their spans: at once if
// the pool holds enough; otherwise Defer waits for more (until ctx ends or
// Close), and Degrade and Fail return the reason, an error wrapping
// ErrUnavailable (the caller of Degrade falls back itself).
func (p *Provider) takeVerifiable(ctx context.Context, b []byte, pol Policy) ([]Span, error) {
	return p.takeInto(ctx, b, pol, nil, true)
}

// takeInto is takeVerifiable appending the spans to into, or building none
// without label.
func (p *Provider) takeInto(ctx context.Context, b []byte, pol Policy, into []Span, label bool) ([]Span, error) {
	if !p.dry.Load() {
		if sp, ok := p.takeWhole(b, into, label); ok {
			return sp, nil
		}
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if pol == Defer {
		return p.deferTake(ctx, b, into, label, false)
	}
	if p.warm.Load() && p.warmUp(ctx) {
		if sp, ok := p.takeWhole(b, into, label); ok {
			return sp, nil
		}
	}
	p.short()
	return nil, p.reason.Load()
}

// warmUp waits while the warm start is on: until the first block lands,
// the first refill round fails, a Retry-After holds every source past the
// warm start's end, the warm start's time runs out, Close, or
// ctx ends. It reports whether the warm start is over (false: ctx ended
// first). Only reads the pool could not serve call it, and only before the
// warm start is over: once it is, the slow paths pay one atomic load.
func (p *Provider) warmUp(ctx context.Context) bool {
	select {
	case <-p.warmCtx.Done():
		p.warm.Store(false)
		return true
	case <-ctx.Done():
		return false
	}
}

// heldPastWarmStart reports whether a Retry-After holds every source until
// after the warm start ends: no block can land before then, so reads need
// not wait for one. The holds are timed by the Provider's clock, the warm
// start by the wall clock.
func (p *Provider) heldPastWarmStart() bool {
	end, ok := p.warmCtx.Deadline()
	if !ok {
		return false
	}
	left := time.Until(end)
	now := p.cfg.clock.Now()
	for _, f := range p.feeders {
		if f.holdTime().Sub(now) < left {
			return false
		}
	}
	return true
}

// endWarm ends the warm start: a block landed, a refill round failed, or a
// Retry-After holds every source past its end.
func (p *Provider) endWarm() {
	if p.warm.Load() {
		p.warm.Store(false)
		p.warmEnd()
	}
}

// takeWhole serves all of b from the pool, or nothing: from the first
// shard that holds len(b) bytes, locking one shard at a time, so that a read
// that finds its own shard low takes no other lock than the shard it takes
// from. A read that no shard can serve alone, because it is larger than
// every shard, because the bytes are spread over several, or because a
// read gathering from several had frozen shards it passed by, is gathered
// from several (takeSpread, which waits for that read to thaw them). It
// reports whether it took b, appending the spans to into (with label).
func (p *Provider) takeWhole(b []byte, into []Span, label bool) ([]Span, bool) {
	if len(b) > p.shards[0].cap { // shard 0 is the largest
		return p.takeSpread(b, into, label)
	}
	gen := p.adds.Load()
	empty := true
	sum := 0
	for _, s := range p.shards {
		s.mu.Lock()
		avail := s.avail()
		empty = empty && avail == 0
		sum += avail
		ok := false
		if avail >= len(b) && !s.frozen && !p.closed.Load() {
			// Stop the head, then count again: fast claims may have
			// taken some of it meanwhile.
			s.unpublish()
			if ok = s.queued >= len(b); ok {
				into = s.take(b, into, label)
			}
			s.publish()
		}
		p.unlockLow(s)
		if ok {
			return into, true
		}
	}
	if empty {
		p.markDry(gen)
	}
	if sum >= len(b) {
		// No shard held b alone, or one that did was frozen by a read
		// gathering from several (which may leave its bytes), but
		// together they held b as we passed them: gather it from
		// several, once that read has thawed its shards.
		return p.takeSpread(b, into, label)
	}
	return into, false
}

// unlockLow releases s.mu, which the caller holds, and asks for a refill
// if the shard is below its low watermark (outside the lock, as low wants).
func (p *Provider) unlockLow(s *shard) {
	isLow := s.avail() < s.low
	s.mu.Unlock()
	if isLow {
		p.low(s)
	}
}

// takeSpread serves all of b, a read no shard holds alone, from several
// shards, or nothing, holding one shard lock at a time. Spans as for
// takeWhole; on failure into is returned as it came.
//
// It works in two passes under spreadMu (so that one such read runs at a
// time). The first freezes shard after shard, in index order, until the
// frozen shards hold len(b) bytes: it stops the shard's head and sets
// frozen, so that no other read takes from it (the fast path finds no head,
// the slow paths pass it by) while the refill may still add to it. The
// second takes b from the frozen shards if they hold enough, and thaws each
// (publishes its head again). So a read that finds the pool short takes
// nothing, and none of the bytes it counted is lost; a read that Close
// overtakes between the passes returns nothing, b zeroed.
func (p *Provider) takeSpread(b []byte, into []Span, label bool) ([]Span, bool) {
	p.spreadMu.Lock()
	defer p.spreadMu.Unlock()
	gen := p.adds.Load()
	total, frozen := 0, 0
	for _, s := range p.shards {
		if total >= len(b) {
			break
		}
		s.mu.Lock()
		if !s.closed {
			s.unpublish()
			s.frozen = true
			total += s.queued
		}
		s.mu.Unlock()
		frozen++
	}
	ok := total >= len(b) && !p.closed.Load()
	k, rest, left := len(into), b, false
	for _, s := range p.shards[:frozen] {
		s.mu.Lock()
		s.frozen = false
		if ok && !s.closed {
			if n := min(s.queued, len(rest)); n > 0 {
				into = s.take(rest[:n], into, label)
				rest = rest[n:]
			}
		}
		left = left || s.queued > 0
		s.publish()
		p.unlockLow(s)
	}
	if left {
		// A Defer read may have passed a frozen shard by and be waiting
		// for bytes that were there all along.
		p.wakeWaiters()
	}
	switch {
	case ok && len(rest) == 0:
		return into, true
	case ok:
		clear(b) // Close came between the passes
	case total == 0:
		p.markDry(gen)
	}
	return into[:k], false
}

// gather takes what the shards hold into b, up to len(b), one shard at a
// time under its own lock (deferTake), passing by the shards a read larger
// than any shard has frozen (takeSpread). It returns the spans (appended
// to into, with label) and how many bytes it took.
func (p *Provider) gather(b []byte, into []Span, label bool) ([]Span, int) {
	gen := p.adds.Load()
	empty := true
	got := 0
	for _, s := range p.shards {
		if got == len(b) {
			break
		}
		s.mu.Lock()
		avail := s.avail()
		empty = empty && avail == 0
		if avail > 0 && !s.frozen && !p.closed.Load() {
			s.unpublish()
			if n := min(s.queued, len(b)-got); n > 0 {
				into = s.take(b[got:got+n], into, label)
				got += n
			}
			s.publish()
		}
		p.unlockLow(s)
	}
	if empty {
		p.markDry(gen)
	}
	return into, got
}

// markDry records that a read found every shard empty, one shard at a
// time, after add had counted gen blocks: reads then go to the policy
// without locking a shard until add puts bytes in. An add that put bytes
// into a shard after the read looked at it counts its block (adds) before
// it clears dry, so either markDry sees the count move and clears dry
// itself, or add's clear comes after markDry's set.
func (p *Provider) markDry(gen uint64) {
	p.dry.Store(true)
	if p.adds.Load() != gen {
		p.dry.Store(false)
	}
}

// takeForEvent is takeVerifiable under Defer for an event drawn from the
// pool, whose wait also ends when every source fails permanently, as the
// wait for an event's own job (drawBound, through readProven) does.
func (p *Provider) takeForEvent(ctx context.Context, b []byte) ([]Span, error) {
	if !p.dry.Load() {
		if sp, ok := p.takeWhole(b, nil, true); ok {
			return sp, nil
		}
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	return p.deferTake(ctx, b, nil, true, true)
}

// deferTake gathers verifiable bytes into b as they arrive until b is full,
// ctx ends (ctx's error), the Provider closes (ErrClosed) or, with
// untilPermanent, a refill round fails permanently on every source
// (Stats.Permanent: a misconfiguration no wait can cure). Bytes gathered
// before an error are zeroed in b and lost (Stats.AbandonedBytes): they
// were taken from the pool once.
// Spans as for takeInto.
//
// The read registers its wake channel before each look at the pool, so a
// block added after the look wakes it. The channel comes from wakePool
// and goes back to it drained, so waiting allocates nothing.
func (p *Provider) deferTake(ctx context.Context, b []byte, into []Span, label, untilPermanent bool) ([]Span, error) {
	w := wakePool.Get().(chan struct{})
	defer p.unwait(w)
	spans := into
	got := 0
	for {
		p.mu.Lock()
		p.waiters = append(p.waiters, w)
		var failed chan struct{} // nil: never ready
		if untilPermanent {
			failed = p.failed
		}
		p.mu.Unlock()
		var n int
		spans, n = p.gather(b[got:], spans, label)
		if got += n; got == len(b) {
			return spans, nil
		}
		if untilPermanent {
			if perm := p.permanent.Load(); perm != nil {
				p.abandon(b, got)
				return nil, perm
			}
		}
		if p.feeders[0].checker.Assist() {
			// Health tests of the block the refill is checking, on this
			// CPU that would sit idle: the bytes come sooner.
			p.unlist(w) // listed again at the top of the loop
			continue
		}
		select {
		case <-w: // wakeWaiters took w off the list
		case <-failed: // a refill round failed: permanently?
			p.unlist(w) // listed again at the top of the loop
		case <-ctx.Done():
			p.abandon(b, got)
			return nil, ctx.Err()
		case <-p.ctx.Done():
			p.abandon(b, got)
			return nil, ErrClosed
		}
	}
}

// abandon zeroes b, a Defer read that gives up, and counts the got bytes
// it had gathered from the pool.
func (p *Provider) abandon(b []byte, got int) {
	clear(b)
	p.abandoned.Add(uint64(got))
}

// unlist takes w off the list of waiting reads if it is still there.
func (p *Provider) unlist(w chan struct{}) {
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			last := len(p.waiters) - 1
			p.waiters[i] = p.waiters[last]
			p.waiters[last] = nil
			p.waiters = p.waiters[:last]
			break
		}
	}
	p.mu.Unlock()
}

// wakePool holds the wake channels of Defer reads (deferTake), each with
// room for one wake.
var wakePool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// unwait takes w off the list of waiting reads if it is still there,
// drains a wake sent before that, and gives w back to wakePool. Once w is
// off the list under mu, nothing sends on it again.
func (p *Provider) unwait(w chan struct{}) {
	p.unlist(w)
	select {
	case <-w:
	default:
	}
	wakePool.Put(w)
}
