// Package entropy serves random bytes from a remote verifiable entropy service
// (a quantum RNG API, the drand beacon) through a plain io.Reader, keeps
// working when that service fails, and says of every byte where it came from.
//
// A Provider keeps a pool of checked bytes in memory and refills it in the
// background. Reads copy out of memory and never do I/O; each byte is handed
// out once and its pool slot zeroed. ReadLabelled returns, with the bytes, a
// Label: verifiable, with the spans of the jobs the bytes came from, or
// fallback (crypto/rand), with the reason. What happens when the pool cannot
// serve a read is the Provider's Policy: Degrade, Defer or Fail.
//
// Which entry point to use:
//
//   - Keys, tokens, nonces: ReadSecret or SecretReader. Raw verifiable bytes
//     are known to the service that made them (and a drand round to the whole
//     world); a derived read mixes them with local randomness through HKDF so
//     that nobody else can compute the output.
//   - Draws, lotteries, anything to prove afterwards: ReadLabelled, or
//     ReadFor for a named event that must be drawn exactly once, or package
//     draw on top of them.
//   - Read, the io.Reader, serves raw verifiable bytes (or fallback under
//     Degrade) and is as cheap as a copy. It stays raw by default because
//     its bytes are the ones the labels describe; give WithDerivedReads to
//     make it secret-safe when the Provider is handed to key-making code.
//
// The contract the Provider keeps is written down in README.md ("The contract"); the tests
// named after each point prove it.
package entropy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Provider is the labelled io.Reader over one or more Sources. It is safe for
// concurrent use. Close it to stop its goroutines and zero its pool. Make it
// with New: the zero Provider, like a nil one, panics when used.
type Provider struct {
	cfg     config
	feeders []*feeder
	shards  []*shard
	seen    *jobSet

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	wake   chan struct{} // cap 1: a shard fell below its low watermark

	refillDone sync.WaitGroup // the refill goroutine alone
	closeDone  chan struct{}  // closed when the first Close has finished

	mu      sync.Mutex    // guards arrived, failed, ready
	arrived chan struct{} // closed and replaced whenever bytes enter the pool
	failed  chan struct{} // closed and replaced whenever a refill round fails
	ready   chan struct{} // closed when the pool first holds bytes

	// The warm start (WithWarmStart): until the first block lands, the
	// first refill round fails, its time runs out or Close, reads that the
	// pool cannot serve wait for it (warmUp) before the policy applies.
	// warm is the flag the slow paths test; warmCtx ends with the warm start.
	warm    atomic.Bool
	warmCtx context.Context
	warmEnd context.CancelFunc

	// permanent is the error of the last refill round if every source
	// failed permanently in it (a 401, 402, 403, a key that never verifies),
	// nil otherwise: a misconfiguration, not an outage.
	permanent atomic.Pointer[unavailableError]

	reason    atomic.Pointer[unavailableError] // why a read now would not be verifiable
	dry       atomic.Bool                      // the pool was found empty and nothing was added since
	shortRead atomic.Bool                      // a read found the pool too short: fill to the brim

	episodes episodeState
	notes    notifier

	events eventTable

	// Counters of the slow paths (the fast path counts per shard).
	slowReads, slowBytes         atomic.Uint64
	fbDoneReads, fbDoneBytes     atomic.Uint64 // fallback runs retired from their lanes
	fbDirectReads, fbDirectBytes atomic.Uint64 // fallback reads too large for a lane
	// fbEpoch counts the fallback episodes ended (endCounts). It changes
	// only while every lane's fbMu and episodes.mu are held; a lane run
	// records the epoch it was made in.
	fbEpoch atomic.Uint64
	// fbClosed is set by Close's last endCounts, under every lane's fbMu:
	// from then on no fallback read is counted or served.
	fbClosed                   bool
	derivedReads, derivedBytes atomic.Uint64
	journalErrs                atomic.Uint64
}

// New starts a Provider over src (and any WithFailover sources). It returns
// at once, with the first refill already under way; the pool fills in the
// background. Until the first block lands (for at most the warm start,
// DefaultWarmStart unless WithWarmStart says otherwise), a read the pool
// cannot serve waits for it before the policy applies, so that the first
// Read after New over a healthy source is verifiable. WaitReady waits for
// the pool explicitly, and reports a misconfigured source.
func New(src Source, opts ...Option) (*Provider, error) {
	if src == nil {
		return nil, errors.New("entropy: nil Source")
	}
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("entropy: option %d is nil", i)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.shards == 0 {
		cfg.shards = min(runtime.GOMAXPROCS(0), 64)
	}
	// A shard must hold at least a useful read; with a small buffer, fewer shards.
	cfg.shards = max(1, min(cfg.shards, cfg.bufferSize/64))

	p := &Provider{
		cfg:       cfg,
		seen:      newJobSet(),
		wake:      make(chan struct{}, 1),
		closeDone: make(chan struct{}),
		arrived:   make(chan struct{}),
		failed:    make(chan struct{}),
		ready:     make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if cfg.warmStart > 0 {
		p.warmCtx, p.warmEnd = context.WithTimeout(p.ctx, cfg.warmStart)
		p.warm.Store(true)
	} else {
		p.warmCtx, p.warmEnd = p.ctx, func() {}
	}
	p.reason.Store(poolEmpty)
	for i, s := range append([]Source{src}, cfg.failover...) {
		f := newFeeder(i, s, &p.cfg, p.seen, p.closed.Load)
		f.onFailure = func(err error) {
			p.reason.Store(newUnavailable(&sourceError{name: f.sourceName(), err: err}))
		}
		p.feeders = append(p.feeders, f)
	}
	p.feeders[0].alone = len(p.feeders) == 1
	per := cfg.bufferSize / cfg.shards
	for i := 0; i < cfg.shards; i++ {
		c := per
		if i == 0 {
			c += cfg.bufferSize % cfg.shards
		}
		p.shards = append(p.shards, &shard{cap: c, low: max(1, c/2)})
	}
	p.notes.init(p)
	p.wg.Add(2)
	p.refillDone.Add(1)
	go func() {
		defer p.refillDone.Done()
		p.refillLoop()
	}()
	go p.notes.run(&p.wg)
	return p, nil
}

// Read fills b with random bytes under the Provider's policy, like
// crypto/rand.Read: raw verifiable bytes from the pool when it holds enough,
// otherwise Degrade fills b from crypto/rand (and returns no error before
// Close; a read that Close overtakes returns ErrClosed with b zeroed),
// Defer waits (without a deadline, until Close), and Fail returns an error
// wrapping ErrUnavailable and the cause. Use ReadLabelled to learn which.
// With WithDerivedReads, Read serves derived bytes as ReadSecret does.
func (p *Provider) Read(b []byte) (int, error) {
	if len(b) == 0 || p.cfg.derivedRead || p.closed.Load() {
		return p.readOther(b)
	}
	// The fast path: one compare-and-swap on the head run of the reader's
	// shard, a copy and a clear. No lock, no clock, no allocation.
	s := p.shard()
	if r := s.head.Load(); r != nil {
		if _, end, ok := r.claim(b); ok {
			if int64(end) > r.wakeAt.Load() || p.episodes.open.Load() {
				p.claimed(s, r, end) // seldom: kept out of line
			}
			return len(b), nil
		}
	}
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
	if _, err := p.readShard(context.Background(), s, b, false); err != nil {
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
// label whose spans tile b. Otherwise the policy decides: Degrade fills b
// from crypto/rand and returns a fallback label with the Reason; Defer waits
// for verifiable bytes until ctx ends and then returns ctx's error; Fail
// returns at once an error wrapping ErrUnavailable and the cause. On an error
// b holds no entropy (it is zeroed).
func (p *Provider) ReadLabelled(ctx context.Context, b []byte) (Label, error) {
	if len(b) == 0 {
		return Label{}, errors.New("entropy: empty read")
	}
	if ctx == nil {
		return Label{}, errors.New("entropy: nil context")
	}
	if p.closed.Load() {
		return Label{}, ErrClosed
	}
	s := p.shard()
	if r := s.head.Load(); r != nil {
		if off, end, ok := r.claim(b); ok {
			sp := s.span(r, off, len(b))
			if int64(end) > r.wakeAt.Load() || p.episodes.open.Load() {
				p.claimed(s, r, end)
			}
			return Label{Verifiable: true, Spans: sp}, nil
		}
	}
	return p.readShard(ctx, s, b, true)
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
// shard's next run, from the whole shard under its lock, or else from all
// shards together or by the policy (slowRead).
func (p *Provider) readShard(ctx context.Context, s *shard, b []byte, label bool) (Label, error) {
	if p.warm.Load() {
		p.warmUp(ctx)
	}
	if p.dry.Load() && p.cfg.policy == Degrade && !p.closed.Load() {
		// The pool is empty (nothing arrived since a read found it so):
		// what slowRead would do, without its detours.
		p.short()
		return p.fallback(s, b, label)
	}
	if p.dry.Load() || p.closed.Load() {
		return p.slowRead(ctx, b, label, p.cfg.policy)
	}
	s.mu.Lock()
	if h := s.head.Load(); h == nil || h.cursor() == len(h.data) {
		s.publish() // the head is used up: the next run takes its place
	}
	if r := s.head.Load(); r != nil {
		if off, end, ok := r.claim(b); ok {
			isLow := int64(end) > r.wakeAt.Load()
			s.mu.Unlock()
			lb := Label{Verifiable: true}
			if label {
				lb.Spans = s.span(r, off, len(b))
			}
			if isLow {
				p.low(s)
			}
			if p.episodes.open.Load() {
				p.endEpisode()
			}
			return lb, nil
		}
	}
	// Stop the head first, then count: readers on the fast path may claim
	// from it until it is stopped.
	s.unpublish()
	if s.queued < len(b) {
		s.publish()
		s.mu.Unlock()
		return p.slowRead(ctx, b, label, p.cfg.policy)
	}
	sp := s.take(b, nil, label)
	s.publish()
	isLow := s.avail() < s.low
	s.mu.Unlock()
	if isLow {
		p.low(s)
	}
	p.servedVerifiable(len(b))
	return Label{Verifiable: true, Spans: sp}, nil
}

// slowRead serves a read the reader's own shard could not: from all shards
// together if they hold enough, else by the policy.
func (p *Provider) slowRead(ctx context.Context, b []byte, label bool, pol Policy) (Label, error) {
	spans, err := p.takeVerifiable(ctx, b, pol)
	if err == nil {
		p.servedVerifiable(len(b))
		return Label{Verifiable: true, Spans: spans}, nil
	}
	if _, unavailable := err.(*unavailableError); unavailable && pol == Degrade {
		return p.fallback(p.shard(), b, label)
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

// takeVerifiable fills b with pool bytes and returns their spans: at once if
// the pool holds enough; otherwise Defer waits for more (until ctx ends or
// Close), and Degrade and Fail return the reason, an error wrapping
// ErrUnavailable (the caller of Degrade falls back itself).
func (p *Provider) takeVerifiable(ctx context.Context, b []byte, pol Policy) ([]Span, error) {
	if !p.dry.Load() {
		if sp, n := p.takeShards(b, nil, true); n == len(b) {
			return sp, nil
		}
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if pol == Defer {
		return p.deferTake(ctx, b)
	}
	if p.warm.Load() && p.warmUp(ctx) {
		if sp, n := p.takeShards(b, nil, true); n == len(b) {
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

// takeShards serves b from all shards together: with all set, nothing
// unless they hold len(b) bytes; otherwise what they hold, up to len(b). It
// returns the spans (appended to spans) and how many bytes it took. It locks
// the shards in index order; other paths hold one shard lock at a time, so
// this cannot deadlock.
func (p *Provider) takeShards(b []byte, spans []Span, all bool) ([]Span, int) {
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
				spans = s.take(rest[:n], spans, true)
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
func (p *Provider) deferTake(ctx context.Context, b []byte) ([]Span, error) {
	var spans []Span
	got := 0
	for {
		p.mu.Lock()
		arrived := p.arrived
		p.mu.Unlock()
		var n int
		spans, n = p.takeShards(b[got:], spans, false)
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

// servedVerifiable counts a verifiable read of n bytes served by a slow path
// and ends an open fallback episode.
func (p *Provider) servedVerifiable(n int) {
	p.slowReads.Add(1)
	p.slowBytes.Add(uint64(n))
	if p.episodes.open.Load() {
		p.endEpisode()
	}
}

// WaitReady waits until the pool first holds verifiable bytes (nil), ctx
// ends (ctx's error), or the Provider closes (ErrClosed). It returns early,
// with the error, when a refill round fails permanently on every source: a
// service that refuses the API key (401, 403), wants payment (402), or
// whose signatures never verify with the configured key is misconfigured,
// and waiting longer cannot help. That error wraps ErrUnavailable,
// ErrPermanent and the source's own error (an *APIError with the service's
// message). Call it after New where the first bytes must be verifiable
// (a draw at start-up, a command that reads once and exits).
func (p *Provider) WaitReady(ctx context.Context) error {
	if ctx == nil {
		return errors.New("entropy: nil context")
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

// Close stops every goroutine the Provider started, records an open fallback
// episode as ended, and zeroes the pool. Reads after Close return ErrClosed;
// reads waiting under Defer return ErrClosed. Close is idempotent.
func (p *Provider) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		// Another Close is under way: return only when it has finished,
		// unless this is a hook or journal calling Close from the notifier
		// goroutine that the first Close is waiting for. A Close that a
		// hook or journal made does not wait for the notifier (it is that
		// goroutine), so this one waits for it too: every episode queued
		// is then delivered before Close returns, and a journal closed
		// after it has them all.
		if !p.notes.isSelf() {
			<-p.closeDone
			p.wg.Wait()
		}
		return nil
	}
	p.finishEpisode(true)
	p.cancel()
	p.warmEnd()
	if p.notes.isSelf() {
		// Called from a hook or journal: the notifier goroutine is this one,
		// and it ends when the hook returns (its context is cancelled).
		p.refillDone.Wait()
	} else {
		p.wg.Wait()
	}
	for _, s := range p.shards {
		s.mu.Lock()
		s.zero()
		s.mu.Unlock()
	}
	for _, s := range p.shards {
		p.zeroLocal(s)
	}
	close(p.closeDone)
	return nil
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
		var errs []error
		var blk Block
		var got *feeder
		for i, f := range p.feeders {
			if f.heldBehind(p.feeders[i+1:]) {
				// A Retry-After holds this source; a later one may serve now.
				errs = append(errs, &sourceError{name: f.sourceName(), err: &heldError{until: f.holdTime(), last: f.lastError()}})
				continue
			}
			b, err := f.fetch(p.ctx, n)
			if err == nil {
				blk, got = b, f
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
			reason := newUnavailable(cause)
			p.reason.Store(reason)
			if allPermanent(errs) {
				p.permanent.Store(reason)
			} else {
				p.permanent.Store(nil)
			}
			return cause
		}
		p.add(got, blk)
	}
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
func (p *Provider) add(f *feeder, blk Block) {
	data := make([]byte, len(blk.Data))
	copy(data, blk.Data)
	from := &origin{source: blk.Source, job: blk.JobID, public: blk.Public}
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
		best.mu.Lock()
		if best.closed {
			best.mu.Unlock()
			clear(data)
			return
		}
		best.put(&run{data: data[off : off+n : off+n], base: off, from: from})
		best.publish()
		if best.avail() >= best.low {
			best.asked.Store(false)
		}
		best.mu.Unlock()
		off += n
	}
	p.dry.Store(false)
	p.reason.Store(poolEmpty)
	p.permanent.Store(nil)
	p.endWarm()
	p.mu.Lock()
	close(p.arrived)
	p.arrived = make(chan struct{})
	select {
	case <-p.ready:
	default:
		close(p.ready)
	}
	p.mu.Unlock()
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

// fallback fills b from crypto/rand (through shard s's lane) and labels it
// (contract points 1 and 9); it returns ErrClosed, with no bytes in b, if
// Close has counted the last fallback read.
func (p *Provider) fallback(s *shard, b []byte, label bool) (Label, error) {
	if !p.fallbackRead(s, b) {
		return Label{}, ErrClosed
	}
	if !label {
		return Label{}, nil
	}
	return Label{Spans: []Span{{Source: FallbackSource, Length: len(b)}}, Reason: p.reason.Load()}, nil
}

// sourceError names the source an error came from.
type sourceError struct {
	name string
	err  error
}

func (e *sourceError) Error() string { return e.name + ": " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
