package entropy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/provenrand/entropy/health"
)

// The concurrency model of a Provider: the one place it is written down.
// A change to a lock, an atomic or a goroutine changes this comment too.
//
// Goroutines. A Provider starts two. The refill goroutine (refillLoop) is
// the only one that refills the pool: it calls the sources' Fetch through
// their feeders, checks the blocks, adds them to the shards (add), then
// sleeps until a reader sends on wake. The notifier goroutine (notifier.run)
// runs every callback: the fallback hook, the fleet hook, the logger's
// episode lines and the journal's block and fallback records, in the order
// they were queued, with no lock held. Everything else runs on its caller's
// goroutine: reads, ReadFor, ReadProven (which fetches a job of its own
// through a feeder, beside the refill goroutine), Stats and Close. Close
// cancels ctx and waits for both (wg); the notifier delivers what is queued
// after the refill goroutine has stopped (refillDone). A callback may call
// back into the Provider, Close and ReadFor included: Close and an event's
// flush ask notifier.caller whether they run on the notifier goroutine, and
// then do not wait for it (it is waiting for them): Close returns once the
// refill has stopped, and flush writes the queued block records itself
// (flushSelf), so that the event's record follows them. caller tells one
// Provider's notifier from another's by the set of notifiers delivering;
// while two or more deliver at once it cannot, and then Close does not wait
// and flush does not write, so a callback should call another Provider's
// Close or ReadFor on a goroutine of its own (WithFallbackHook). A third
// goroutine, the health tests' helper (health.Checker, shared by the
// feeders), starts with the first block of 16 KiB or more and tests part of
// each such block beside the goroutine that checks it; it holds no lock of
// the Provider, and Close stops it once the refill has stopped. A Defer
// read about to wait for the pool tests pieces of the block being checked
// first (health.Checker.Assist, in deferTake), holding no lock either.
//
// Locks, and what each guards:
//   - shard.mu: the shard's queue behind its head (runs, first, queued),
//     closed, frozen, the claims of retired heads (reads, bytes) and each
//     queued run's start; the head is published, stopped and reopened
//     under it.
//   - Provider.spreadMu: held by a read no shard holds alone while it
//     freezes shards, takes from them and thaws them (takeSpread), so that
//     every frozen shard is that read's.
//   - shard.fbMu: replacing the shard's fallback lane run (fb) and counting
//     a direct fallback read. endCounts (ending a fallback epoch) takes one
//     lane's at a time; only fallbackCounts (Stats, no read path) holds
//     every lane's at once.
//   - episodeState.mu: the open episode (cur) and closed; the fallback
//     epoch moves, and the counts of ended epochs (fbEndedReads,
//     fbEndedBytes) change, only under it.
//   - Provider.mu: the list of Defer reads' wake channels (waiters), and
//     the failed and ready channels.
//   - Provider.secretMu: the last derived-read generator, which the Ps
//     that New did not count share (ownSecret); with BoringCrypto, every
//     P (secretpin_boring.go). The others have no lock:
//     see secretStream.state below.
//   - Leaves: notifier.mu (the queue of notes, and finished: the last
//     note was delivered at Close, later ones are refused), journalQueue.mu (the
//     journal's last failure, and the close budget: whether Close has
//     begun, whether the notifier is in a journal call, the budget's
//     timer), feeder.mu (a source's name, last error and last failure),
//     quotaState.mu, jobSet.mu (the jobs taken), eventTable.mu (the event
//     draws in flight and done), requestCtx.mu (a request's context, made
//     on demand), allocBatch.mu (a feeder's batch of request contexts,
//     a shard's of block records), delivering.mu (the notifiers of the
//     process that are delivering: notifier.caller).
//
// Lock order: episodeState.mu, then shards' fbMu (one at a time, or, in
// fallbackCounts, every one in shard order), then
// notifier.mu (an episode's start and end are queued under
// episodeState.mu); and spreadMu, then one shard.mu at a time or
// Provider.mu (takeSpread). No path holds two shard.mu at once: a read
// that finds its own shard short (takeWhole, takeSpread, gather), the
// refill (add, settle), Stats and Close lock one shard at a time, and never
// with an fbMu, episodeState.mu or Provider.mu. The other locks are leaves:
// nothing else is locked while one is held. No Source, callback or logger
// runs under a lock of the Provider; the Clock's Now does, under
// episodeState.mu (an episode's times), so it must not call into the
// Provider.
//
// Atomics, and what each publishes:
//   - shard.head: the run readers claim from without a lock (claimHead);
//     stored only under shard.mu. run.word: claims<<32 | stopped<<31 |
//     cursor; a claim is one compare-and-swap past the bytes it takes, so
//     no two claims overlap; stop sets the stopped bit, so every later
//     claim fails and the claims counted are final (reopen clears it under
//     shard.mu when the run is published again). run.wakeAt: the cursor
//     past which the shard is below its low watermark, set when the run is
//     published.
//   - shard.fb: the lane's fallback run, claimed like a head; stored under
//     fbMu. shard.slab and slab.next: the span slots of labels.
//   - shard.asked: a reader asked for a refill; set by the reader (low),
//     cleared by the refill goroutine when the shard is at its watermark.
//   - Provider.closed: Close has begun. dry: the pool was found empty
//     (markDry; cleared by add after its put). adds: blocks added, counted before dry is cleared, so that
//     markDry, which looks at one shard at a time, cannot leave dry set
//     over an add it did not see. shortRead: a read found the pool too
//     short; the refill fills it to the brim. reason: why a read now would
//     not be verifiable; stored by fill and add, by every failed request
//     (onFailure, on the refill goroutine or a ReadProven or event draw's
//     caller) and by a ReadProven that got its job; loaded by reads,
//     ReadProven and Stats. permanent: every source failed permanently;
//     stored where reason is by fill, add and ReadProven, loaded by
//     WaitReady and Stats. warm: the warm start is on.
//   - episodeState.open: an episode is open; readers load it per read, it
//     is stored under episodeState.mu. fbEpoch and fbClosed (Close's last
//     epoch has begun: no fallback read is served after it): see below.
//   - secretStream.state: a derived-read generator's cursor, its batch's
//     read count, gen, closed and busy (secretstream.go). A generator belongs to
//     its P: only a goroutine pinned there (procPin) uses it, so a derived
//     read claims output with one compare-and-swap, and no reader is still
//     copying when the owner, holding busy and pinned, makes the next
//     batch; a pinned section never waits. Close takes busy from any
//     goroutine to erase the generator; Stats reads the counts without
//     writing, retrying when gen moved (a batch's counts went to the
//     totals, reads and bytes, which change only under busy).
//     Provider.secrets: a P's generator, stored once by its owner.
//     secretLargeReads and secretLargeBytes count the reads larger than a
//     batch, which use no generator.
//   - feeder.holdUntil: the Retry-After hold, raised by compare-and-swap.
//     feeder.tripNow: the current refill's (or ReadProven's) last failure
//     was permanent (the breaker's ReadyToTrip); cleared when a retry loop
//     starts. feeder.badProofs: proof failures in a row.
//     feeder.noBatch: the service has no batch request; set once.
//   - Counters, read only by Stats: the Provider's slow-path and journal
//     counters, episodeState.count, the feeders' request counters; except
//     fbCounts, which endCounts also takes (see Fallback epochs), and
//     feeder.accepted, which neverVerified also reads.
//   - Outside the Provider, shared by every Provider of the process:
//     package health's lastCutoffs caches the health tests' cutoffs of the
//     last configuration checked; fetchReqs (breaker.go) is a sync.Pool of
//     a fetch's arguments; wakePool (lowpool.go) one of Defer reads' wake
//     channels; wipeTypes (secretcipher.go), replaced whole by
//     compare-and-swap, caches which types wipe may clear.
//
// Fallback epochs. A fallback read is counted when it is served (its claim
// on a lane run, or a direct read counted under the lane's fbMu) and opens
// its episode just after. fbEpoch numbers the stretches between episode
// ends; each read is counted in its epoch's fbCounts (by parity). Ending an
// episode (endCounts, under episodeState.mu) starts the new epoch, then
// visits the lanes one at a time under each fbMu and stops the runs of the
// ending epoch, counting their claims; the ending epoch's counts are then
// final, and are the episode's. A lane run records the epoch it was made
// in, and a read belongs to the epoch of the run it claimed from (a direct
// read, to the epoch it read under its lane's fbMu); count opens no episode
// for a read whose epoch has ended, because the episode that ended it holds
// that read. So every fallback read is in exactly one episode. Close ends
// the last epoch and sets fbClosed first: no fallback read is counted or
// served after it.

// Provider is the labelled [io.Reader] over one or more Sources. It is safe for
// concurrent use. Close it to stop its goroutines and zero its pool. Make it
// with [New]: the zero Provider, like a nil one, panics when used.
type Provider struct {
	cfg     config
	feeders []*feeder
	shards  []*shard
	// secrets holds the derived-read generators (secretstream.go): one for each
	// P that New counted, made on its first derived read, and a last one
	// that the Ps beyond share under secretMu.
	secrets                            []atomic.Pointer[secretStream]
	secretMu                           sync.Mutex
	secretLargeReads, secretLargeBytes atomic.Uint64 // reads of more than one batch (secretLarge)
	seen                               *jobSet

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	wake   chan struct{} // cap 1: a shard fell below its low watermark

	refillDone sync.WaitGroup // the refill goroutine alone
	closeDone  chan struct{}  // closed when the first Close has finished

	// spreadMu lets one read no shard holds alone at a time freeze
	// shards (takeSpread).
	spreadMu sync.Mutex

	mu sync.Mutex // guards waiters, failed, ready
	// waiters are the wake channels of the reads waiting under Defer for
	// bytes (deferTake): the next wakeWaiters (a block added, or
	// takeSpread's thaw) sends on each and empties the list.
	waiters []chan struct{}
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
	adds      atomic.Uint64                    // blocks add has put into the pool (see markDry)
	shortRead atomic.Bool                      // a read found the pool too short: fill to the brim

	episodes episodeState
	notes    notifier

	events eventTable

	// Counters of the slow paths (the fast path counts per shard).
	slowReads, slowBytes atomic.Uint64
	// fbCounts are the fallback reads and bytes of the current epoch and of
	// the one before, by the epoch's parity: the claims of lane runs
	// retired from their lanes, and the reads too large for a lane. The
	// ending epoch's are taken, and zeroed, by endCounts; fbEnded sums the
	// epochs ended (under episodes.mu).
	fbCounts                   [2]fbCount
	fbEndedReads, fbEndedBytes uint64
	// fbEpoch counts the fallback epochs ended (endCounts: an episode's end,
	// and Close's). It changes only under episodes.mu; a lane run records
	// the epoch it was made in.
	fbEpoch atomic.Uint64
	// fbClosed is set by Close's last endCounts: from then on no fallback
	// read is counted or served.
	fbClosed       atomic.Bool
	journalErrs    atomic.Uint64 // failed journal writes (each retry counts)
	journalLost    atomic.Uint64 // records given up at Close
	eventDiscarded atomic.Uint64 // event bytes taken and zeroed: another drew the event first
	// provenDiscarded counts the bytes of jobs fetched for one read
	// (ReadProven, an event's own job) beyond the read's length: never
	// served (provenSize).
	provenDiscarded atomic.Uint64
	derivationBytes atomic.Uint64 // pool bytes that keyed derivations (derive): 32 each
	abandoned       atomic.Uint64 // pool bytes a Defer read gathered, then zeroed when it gave up (deferTake)
	// fleetShared is the fleet's state at the last watchFleet; the refill
	// goroutine's own.
	fleetShared bool
}

// New starts a [Provider] over src (and any [WithFailover] sources). It returns
// at once, with the first refill already under way; the pool fills in the
// background. Until the first block lands (for at most the warm start,
// 2 s unless [WithWarmStart] says otherwise), a read the pool
// cannot serve waits for it before the policy applies, so that the first
// [Provider.Read] after New over a healthy source is verifiable. [Provider.WaitReady] waits for
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
	// Every request asks for a block the health tests can judge, and the
	// pool has room for one whenever a shard is below its low watermark.
	cfg.minFetch = cfg.healthConfig().MinBlock()
	cfg.bufferSize = max(cfg.bufferSize, 2*cfg.minFetch)
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
	p.fleetShared = true
	checker := health.NewChecker(cfg.healthConfig())
	for i, s := range append([]Source{src}, cfg.failover...) {
		f, err := newFeeder(i, s, &p.cfg, p.seen, p.closed.Load)
		if err != nil {
			for _, g := range p.feeders {
				if g.fleetClose != nil {
					g.fleetClose()
				}
			}
			return nil, err
		}
		f.checker = checker
		f.refillCtx = p.ctx
		f.onFailure = func(err error) {
			p.reason.Store(failedAt(&sourceError{name: f.sourceName(), err: err}, p.cfg.clock.Now()))
			if p.warm.Load() && p.heldPastWarmStart() {
				p.endWarm()
			}
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
	owned := runtime.GOMAXPROCS(0)
	if secretCgo() {
		owned = 0 // batches call into C: never pinned (secretpin_boring.go)
	}
	p.secrets = make([]atomic.Pointer[secretStream], owned+1)
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

// Close stops every goroutine the [Provider] started (with a [Fleet], the
// fleet's for its sources too: see Coordination.Close), records an open
// fallback episode as ended, and zeroes the pool. Reads after Close return [ErrClosed];
// reads waiting under [Defer] return ErrClosed. Close is idempotent.
//
// Called from a fallback or fleet hook, or from a [Journal] method the
// Provider called, Close does not wait for the goroutine that runs the
// hooks and the journal's writes, since that is the caller's own: it
// returns once the refill has stopped, and that goroutine delivers what is
// still queued, and ends, after the hook or method returns.
func (p *Provider) Close() error {
	p.mustBeMade()
	// Asked before Close wakes the notifier: once it delivers Close's notes,
	// a callback of another Provider could no longer tell (callerUnsure).
	who := p.notes.caller()
	if !p.closed.CompareAndSwap(false, true) {
		// Another Close is under way: return only when it has finished,
		// unless this is a hook or journal calling Close from the notifier
		// goroutine that the first Close is waiting for. A Close that a
		// hook or journal made does not wait for the notifier (it is that
		// goroutine), so this one waits for it too: every episode queued
		// is then delivered before Close returns, and a journal closed
		// after it has them all.
		if who == callerOther {
			<-p.closeDone
			p.wg.Wait()
		}
		return nil
	}
	p.notes.jq.closeBegan()
	p.finishEpisode(true)
	p.cancel()
	p.warmEnd()
	if who == callerOther {
		p.wg.Wait()
	} else {
		// Called from a hook or journal: the notifier goroutine is this one
		// (or may be: callerUnsure), and it ends when the hook returns (its
		// context is cancelled).
		p.refillDone.Wait()
	}
	p.feeders[0].checker.Close() // its helper goroutine, if it started
	for _, f := range p.feeders {
		if f.fleetClose != nil {
			f.fleetClose() // the fleet's goroutines of the source, if any
		}
	}
	for _, s := range p.shards {
		s.mu.Lock()
		s.zero()
		s.mu.Unlock()
	}
	for _, s := range p.shards {
		p.zeroLocal(s)
	}
	p.closeSecrets()
	close(p.closeDone)
	return nil
}

// mustBeMade panics with a message that says what is wrong when p was not
// made by New (nil, or the zero Provider), as the reads do (shard).
func (p *Provider) mustBeMade() {
	if p == nil || p.cancel == nil {
		panic("entropy: a Provider must be made by New")
	}
}
