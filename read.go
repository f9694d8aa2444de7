package entropy

import (
	"context"
	"errors"
	"runtime"
)

// Read fills b with random bytes under the [Provider]'s policy, like
// [crypto/rand.Read]: raw verifiable bytes from the pool when it holds enough,
// otherwise [Degrade] fills b from [crypto/rand] (and returns no error before
// [Provider.Close]; a read that Close overtakes returns [ErrClosed] with b zeroed),
// [Defer] waits (without a deadline, until Close), and [Fail] returns an error
// wrapping [ErrUnavailable] and the cause (each after the warm start, see
// [WithWarmStart]). Use [Provider.ReadLabelled] to learn which.
// With [WithDerivedReads], Read serves derived bytes as [Provider.ReadSecret] does.
func (p *Provider) Read(b []byte) (int, error) {
	if len(b) == 0 || p.cfg.derivedRead || p.closed.Load() {
		return p.readOther(b)
	}
	// The fast path: one compare-and-swap on the head run of the reader's
	// shard, a copy and a clear. No lock, no clock, no allocation. It is
	// claimHead written out (reserve and moveOut are inlined here;
	// claimHead, too large to inline, would cost the io.Reader a call per
	// read). The shard is picked as Provider.shard picks it, written out
	// too (see shardOf).
	i := procPin()
	procUnpin()
	s := p.shardOf(i)
	if r := s.head.Load(); r != nil {
		if off, ok := r.reserve(len(b)); ok {
			end := off + len(b)
			moveOut(b, r.data[off:end])
			if int64(end) > r.wakeAt.Load() || p.episodes.open.Load() {
				p.claimed(s, r, end) // seldom: kept out of line
			}
			return len(b), nil
		}
	}
	return p.readSlow(s, b)
}

// readSlow is Read when the head of the reader's shard s cannot serve b:
// out of line, so that the fast path keeps a small frame.
func (p *Provider) readSlow(s *shard, b []byte) (int, error) {
	if p.warm.Load() {
		p.warmUp(context.Background())
	}
	if p.dry.Load() && p.cfg.policy == Degrade && !p.closed.Load() {
		// The pool is empty: a Degrade fallback read, as readShard would
		// serve it, without building a label nobody reads.
		p.short()
		if !p.fallbackRead(s, b) {
			return 0, ErrClosed
		}
		return len(b), nil
	}
	if _, err := p.readShard(context.Background(), s, b, false, nil); err != nil {
		return 0, err
	}
	return len(b), nil
}

// readOther is Read of an empty b, with derived reads, or after Close.
func (p *Provider) readOther(b []byte) (int, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	if len(b) == 0 {
		return 0, nil
	}
	if _, err := p.ReadSecret(context.Background(), b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// ReadLabelled fills b and says where its bytes came from. With enough
// checked bytes in the pool it copies them (no I/O) and returns a verifiable
// label whose spans tile b. Otherwise the policy decides: [Degrade] fills b
// from [crypto/rand] and returns a fallback label with the Reason; [Defer] waits
// for verifiable bytes until ctx ends and then returns ctx's error; [Fail]
// returns at once (after the warm start) an error wrapping [ErrUnavailable]
// and the cause. On an error
// b holds no entropy (it is zeroed).
func (p *Provider) ReadLabelled(ctx context.Context, b []byte) (Label, error) {
	if err := p.checkRead(ctx, b); err != nil {
		return Label{}, err
	}
	i := procPin() // Provider.shard written out: see shardOf
	procUnpin()
	s := p.shardOf(i)
	if r, off, ok := p.claimHead(s, b); ok {
		return Label{Verifiable: true, Spans: s.span(r, off, len(b))}, nil
	}
	return p.readShard(ctx, s, b, true, nil)
}

// ReadLabelledInto is [Provider.ReadLabelled] without an allocation: it fills b and
// writes the label into *lb, reusing the backing array of lb.Spans. A caller
// that keeps one [Label] for its reads allocates nothing once that array holds
// a read's spans (one for a read from a full pool). The label's spans are
// overwritten by the next ReadLabelledInto with the same lb: copy a label
// (slices.Clone of its Spans) to keep it. The array of a derived label
// ([Provider.ReadSecret]), which other reads share, is never reused. On an
// error *lb is the zero Label (its Spans emptied, capacity kept but for a
// derived label's) and b holds no entropy.
func (p *Provider) ReadLabelledInto(ctx context.Context, b []byte, lb *Label) error {
	if lb == nil {
		return errors.New("entropy: nil label")
	}
	if lb.Derived {
		*lb = Label{} // a derived label's array is its derivation's, shared (ReadSecret)
	}
	if err := p.checkRead(ctx, b); err != nil {
		*lb = Label{Spans: lb.Spans[:0]}
		return err
	}
	i := procPin() // Provider.shard written out: see shardOf
	procUnpin()
	s := p.shardOf(i)
	if r, off, ok := p.claimHead(s, b); ok {
		lb.setVerifiable(r.from, r.base+off, len(b))
		return nil
	}
	// The slow paths append the spans to lb's array too.
	spans := lb.Spans[:0]
	*lb = Label{Spans: spans}
	got, err := p.readShard(ctx, s, b, true, spans)
	if err != nil {
		return err
	}
	*lb = got
	return nil
}

// setVerifiable makes lb the label of a verifiable read of n bytes at offset
// off of the job from, in lb's own array. It writes a pointer only where it
// changes: while the garbage collector runs, each pointer written costs a
// write barrier, and a caller reading one job's bytes in a loop rewrites the
// same strings every time.
func (lb *Label) setVerifiable(from *origin, off, n int) {
	lb.Verifiable, lb.Derived = true, false
	if lb.Reason != nil {
		lb.Reason = nil
	}
	if cap(lb.Spans) == 0 {
		lb.Spans = []Span{{Source: from.source, JobID: from.job, Offset: off, Length: n, Public: from.public}}
		return
	}
	lb.Spans = lb.Spans[:1]
	sp := &lb.Spans[0]
	if sp.Source != from.source {
		sp.Source = from.source
	}
	if sp.JobID != from.job {
		sp.JobID = from.job
	}
	sp.Offset, sp.Length, sp.Public = off, n, from.public
}

// claimed ends a fast read that claimed r's bytes up to end (r is, or was
// a moment ago, the head of shard s): it asks for a refill if the shard is
// now low, and ends an open fallback episode.
func (p *Provider) claimed(s *shard, r *run, end int) {
	if int64(end) > r.wakeAt.Load() {
		p.low(s)
	}
	if p.episodes.open.Load() {
		p.endEpisode()
	}
}

// low asks the refill goroutine to top the pool up: a read took shard s
// below its low watermark. It runs once per refill, not per read.
//
// With GOMAXPROCS 1 the woken refill goroutine would not run until the
// reader blocks or is preempted (up to 10 ms later), and a loop of small
// reads drains the pool long before that; so the reader that asked yields
// once, and the refill runs first.
func (p *Provider) low(s *shard) {
	if s.asked.Load() || !s.asked.CompareAndSwap(false, true) {
		return
	}
	select {
	case p.wake <- struct{}{}:
		if runtime.GOMAXPROCS(0) == 1 {
			runtime.Gosched()
		}
	default:
	}
}

// readShard serves a read that the head run of shard s could not: from the
// shard's next run, from the whole shard under its lock, or else from
// another shard or by the policy (slowRead). With label set the label's
// spans are appended to into (a fresh array when into is nil; ReadLabelled
// takes a span slot of the shard for a read of one run); without it the
// read builds no spans, and a read without a label allocates nothing
// beyond a fallback lane's 4 KiB refill (Degrade); a read waiting under
// Defer takes its wake channel from a pool (deferTake).
func (p *Provider) readShard(ctx context.Context, s *shard, b []byte, label bool, into []Span) (Label, error) {
	if p.warm.Load() {
		p.warmUp(ctx)
	}
	if p.dry.Load() && p.cfg.policy == Degrade && !p.closed.Load() {
		// The pool is empty (nothing arrived since a read found it so):
		// what slowRead would do, without its detours.
		p.short()
		return p.fallbackInto(s, b, label, into)
	}
	if p.dry.Load() || p.closed.Load() {
		return p.slowRead(ctx, b, label, into, p.cfg.policy)
	}
	s.mu.Lock()
	if h := s.head.Load(); h == nil || h.cursor() == len(h.data) {
		s.publish() // the head is used up: the next run takes its place
	}
	s.mu.Unlock()
	// The next run, if there was one, is the head now: claim from it as
	// the fast path does (it may have been taken meanwhile; then the claim
	// fails and the shard's lock settles it).
	if r, off, ok := p.claimHead(s, b); ok {
		lb := Label{Verifiable: true}
		switch {
		case !label:
		case into != nil:
			lb.Spans = append(into, Span{Source: r.from.source, JobID: r.from.job, Offset: r.base + off, Length: len(b), Public: r.from.public})
		default:
			lb.Spans = s.span(r, off, len(b))
		}
		return lb, nil
	}
	s.mu.Lock()
	// Stop the head first, then count: readers on the fast path may claim
	// from it until it is stopped.
	s.unpublish()
	if s.queued < len(b) || s.frozen {
		s.publish()
		s.mu.Unlock()
		return p.slowRead(ctx, b, label, into, p.cfg.policy)
	}
	sp := s.take(b, into, label)
	s.publish()
	p.unlockLow(s)
	p.servedVerifiable(len(b))
	return Label{Verifiable: true, Spans: sp}, nil
}

// slowRead serves a read the reader's own shard could not: from another
// shard if one holds enough, else by the policy. Spans as for readShard.
func (p *Provider) slowRead(ctx context.Context, b []byte, label bool, into []Span, pol Policy) (Label, error) {
	spans, err := p.takeInto(ctx, b, pol, into, label)
	if err == nil {
		p.servedVerifiable(len(b))
		return Label{Verifiable: true, Spans: spans}, nil
	}
	if _, unavailable := err.(*unavailableError); unavailable && pol == Degrade {
		return p.fallbackInto(p.shard(), b, label, into)
	}
	clear(b)
	return Label{}, err
}

// short tells the refill goroutine that a read found the pool too short:
// it then tops the pool up to the brim, even by a small request, so that a
// read nearly as large as the pool is not refused for ever.
func (p *Provider) short() {
	if p.shortRead.Load() {
		return // asked already; the refill clears it when the pool is full
	}
	p.shortRead.Store(true)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// servedVerifiable counts a verifiable read of n bytes served by a slow path
// and ends an open fallback episode.
func (p *Provider) servedVerifiable(n int) {
	p.slowReads.Add(1)
	p.slowBytes.Add(uint64(n))
	if p.episodes.open.Load() {
		p.endEpisode()
	}
}
