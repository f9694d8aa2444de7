package entropy

// The low-pool path: reads that the head run of the reader's shard cannot
// serve. A read is taken whole from the first shard that holds it, one lock
// at a time; only a read larger than any shard locks them all; under Defer
// it gathers shard by shard as blocks arrive (see the concurrency model in
// provider.go).

import (
	"context"
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
		return p.deferTake(ctx, b, into, label)
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
// the first refill round fails, the warm start's time runs out, Close, or
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

// endWarm ends the warm start: a block landed or a refill round failed.
func (p *Provider) endWarm() {
	if p.warm.Load() {
		p.warm.Store(false)
		p.warmEnd()
	}
}

// takeWhole serves all of b from the pool, or nothing: from the first
// shard that holds len(b) bytes, locking one shard at a time, so that a read
// that finds its own shard low takes no other lock than the shard it takes
// from. Only a read larger than every shard, which no shard can serve
// alone, gathers from all of them at once (takeShards). It reports whether
// it took b, appending the spans to into (with label).
func (p *Provider) takeWhole(b []byte, into []Span, label bool) ([]Span, bool) {
	if len(b) > p.shards[0].cap { // shard 0 is the largest
		sp, n := p.takeShards(b, into, true, label)
		return sp, n == len(b)
	}
	gen := p.adds.Load()
	empty := true
	for _, s := range p.shards {
		s.mu.Lock()
		avail := s.avail()
		empty = empty && avail == 0
		ok := false
		if avail >= len(b) && !p.closed.Load() {
			// Stop the head, then count again: fast claims may have
			// taken some of it meanwhile.
			s.unpublish()
			if ok = s.queued >= len(b); ok {
				into = s.take(b, into, label)
			}
			s.publish()
		}
		isLow := s.avail() < s.low
		s.mu.Unlock()
		if isLow {
			p.low(s)
		}
		if ok {
			return into, true
		}
	}
	if empty {
		p.markDry(gen)
	}
	return into, false
}

// gather takes what the shards hold into b, up to len(b), one shard at a
// time under its own lock (deferTake). It returns the spans (appended to
// into, with label) and how many bytes it took.
func (p *Provider) gather(b []byte, into []Span, label bool) ([]Span, int) {
	gen := p.adds.Load()
	empty := true
	got := 0
	for _, s := range p.shards {
		if got == len(b) {
			break
		}
		s.mu.Lock()
		if s.avail() > 0 && !p.closed.Load() {
			empty = false
			s.unpublish()
			if n := min(s.queued, len(b)-got); n > 0 {
				into = s.take(b[got:got+n], into, label)
				got += n
			}
			s.publish()
		}
		isLow := s.avail() < s.low
		s.mu.Unlock()
		if isLow {
			p.low(s)
		}
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

// takeShards serves b from all shards together, locking them all (in index
// order; other paths hold one shard lock at a time, so this cannot
// deadlock): with all set, nothing unless they hold len(b) bytes;
// otherwise what they hold, up to len(b). It returns the spans (appended to
// spans, with label) and how many bytes it took. Only a read larger than
// every shard comes here (takeWhole).
func (p *Provider) takeShards(b []byte, spans []Span, all, label bool) ([]Span, int) {
	for _, s := range p.shards {
		s.mu.Lock()
		s.unpublish()
	}
	total := 0
	for _, s := range p.shards {
		total += s.queued
	}
	if total == 0 {
		// Until add puts bytes in, reads need not lock the shards to learn
		// that they are empty. Set under every shard lock, so that an add
		// (which clears it after its put) cannot be missed.
		p.dry.Store(true)
	}
	rest := b
	if !p.closed.Load() && total > 0 && (!all || total >= len(b)) {
		for _, s := range p.shards {
			if n := min(s.queued, len(rest)); n > 0 {
				spans = s.take(rest[:n], spans, label)
				rest = rest[n:]
			}
		}
	}
	wake := false
	for _, s := range p.shards {
		s.publish()
		if s.avail() < s.low && s.asked.CompareAndSwap(false, true) {
			wake = true
		}
		s.mu.Unlock()
	}
	if wake {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return spans, len(b) - len(rest)
}

// deferTake gathers verifiable bytes into b as they arrive until b is full,
// ctx ends (ctx's error) or the Provider closes (ErrClosed). Bytes gathered
// before an error are zeroed in b and lost: they were handed out once.
// Spans as for takeInto.
func (p *Provider) deferTake(ctx context.Context, b []byte, into []Span, label bool) ([]Span, error) {
	spans := into
	got := 0
	for {
		p.mu.Lock()
		arrived := p.arrived
		p.arrivedTaken = true // the next add must close it
		p.mu.Unlock()
		var n int
		spans, n = p.gather(b[got:], spans, label)
		if got += n; got == len(b) {
			return spans, nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			clear(b)
			return nil, ctx.Err()
		case <-p.ctx.Done():
			clear(b)
			return nil, ErrClosed
		}
	}
}
