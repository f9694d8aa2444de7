package entropy

import (
	"context"
	"errors"
	"fmt"

	"github.com/provenrand/entropy/health"
)

// fetchFunc makes one request of a refill path in place of src.Fetch: an
// event draw (drawBound) asks for its job through it, with the event's
// nonce. It runs once per attempt, so a retry makes a new request.
type fetchFunc func(ctx context.Context, src Source, n int) (Block, error)

// ReadProven fills b with the bytes of one job fetched for this read alone,
// not from the pool, and returns its label and the job's [Proof]: everything a
// third party needs to check the bytes offline, years later, with only a
// trust root (the service's public key, a drand chain's info). Draws use it
// (package draw), so that their transcripts carry a proof of len(b) bytes
// rather than of a whole pool block.
//
// The job is fetched through the same rate limit, breaker, retries, checks
// and replay guard as a refill (the sources in order, a Retry-After
// honoured) and is recorded in the journal like every block. Its size is
// len(b), except that a job of the reference protocol (from a source with a FetchNonce method, see [Provider.ReadFor]) has at
// least [health.AptWindow] (512) bytes, so that the health tests can judge it: b gets
// its first len(b) bytes, the Proof carries them all, and the rest are never
// served, nor put in the pool ([Stats].ProvenBytesDiscarded counts them).
// len(b) is 1 to 65536 for the reference protocol, at most 32 for a drand
// round, and at least the repetition count test's cutoff (7 bytes with
// [health.DefaultConfig]). The label is verifiable, with one span: offset 0,
// len(b) bytes of the job. A source that gives no proof (Block.Evidence
// nil: an in-memory source, say) still serves the read: the Proof is then
// the zero Proof (Scheme ""), and the bytes can be checked only against the
// service.
//
// If no source gives such a job, [Defer] waits and tries again until ctx
// ends or the Provider closes ([ErrClosed]), unless every source fails
// permanently (a misconfiguration no wait can cure): then, as under
// [Degrade] and [Fail], it returns at once an error wrapping
// [ErrUnavailable] and the cause. Degrade and Fail also answer at once,
// without a request, while the sources' last request failed and no block
// or job has come since, for the retry's longest delay ([WithRetry]), or
// while a Retry-After holds every source (a block the journal's replay
// guard could not claim is no such failure). ReadProven never serves
// fallback bytes; b is zeroed on error.
//
// With a journal, ReadProven returns once the job's block record is
// written (and every record queued before it), so that a crash just after
// the read cannot lose the record, and with it the replay guard's memory of
// the job in the next process; while the journal fails to write, or when
// ctx ends first, it returns the bytes anyway, the record is retried and
// the failure counted as for every block ([Journal]).
//
// The bytes are known to the service and are published with the proof: use
// them for draws, never for secrets.
func (p *Provider) ReadProven(ctx context.Context, b []byte) (Label, Proof, error) {
	l, pr, err := p.readProven(ctx, b, nil, p.cfg.policy, nil)
	if err == nil {
		p.servedVerifiable(len(b))
		if _, failing := p.notes.jq.failure(); failing == nil {
			_ = p.notes.flush(ctx) // its failure is the notifier's to report
		}
	}
	return l, pr, err
}

// readProven is ReadProven with call, if set, making each request, under
// policy, from the sources that use accepts (every source if nil).
func (p *Provider) readProven(ctx context.Context, b []byte, call fetchFunc, policy Policy, use func(*feeder) bool) (Label, Proof, error) {
	if err := p.checkRead(ctx, b); err != nil {
		return Label{}, Proof{}, err
	}
	if call == nil {
		call = func(ctx context.Context, src Source, n int) (Block, error) { return src.Fetch(ctx, n) }
	}
	exact := func(ctx context.Context, src Source, n int) (Block, error) {
		blk, err := call(ctx, src, n)
		switch {
		case err != nil:
			return Block{}, err
		case len(blk.Data) != n:
			return Block{}, fmt.Errorf("%w: %d bytes where exactly %d were asked for", errInvalidBlock, len(blk.Data), n)
		}
		return blk, nil
	}
	// Both contexts bound the wait: the caller's, and Close.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	unhook := context.AfterFunc(p.ctx, stop)
	defer unhook()
	if policy != Defer {
		// Sources known to be failing (the last request, a refill's or
		// one of ReadProven's, failed and nothing has come since):
		// Degrade and Fail answer at once, as a read from the pool does.
		// A block the journal could not claim (claimError) says nothing
		// of the sources: they are asked, and the journal may be back.
		if r := p.reason.Load(); r != nil && r != poolEmpty && !isClaimError(r) && p.stillFailing(r, use) {
			clear(b)
			return Label{}, Proof{}, r
		}
	}
	failed := 0
	for {
		blk, f, err := p.fetchOwn(ctx, len(b), exact, use)
		if err == nil {
			return p.proven(f, blk, b)
		}
		if p.closed.Load() {
			clear(b)
			return Label{}, Proof{}, ErrClosed
		}
		if ctx.Err() != nil {
			clear(b)
			return Label{}, Proof{}, ctx.Err()
		}
		if policy != Defer || everyPermanent(err) {
			// A permanent error on every source (a key refused, payment
			// required, signatures under another key) is a
			// misconfiguration, not an outage: waiting cannot end it.
			clear(b)
			return Label{}, Proof{}, newUnavailable(err)
		}
		d := backoff(min(failed, 30), p.cfg.retryBase, p.cfg.retryMax)
		failed++
		if e := sleep(ctx, p.cfg.clock, d); e != nil {
			clear(b)
			if p.closed.Load() {
				return Label{}, Proof{}, ErrClosed
			}
			return Label{}, Proof{}, e
		}
	}
}

// stillFailing reports whether r, the failure of the sources' last request,
// still says that they are failing: it is younger than the retry's longest
// delay ([WithRetry]), or a Retry-After holds every source ReadProven may
// ask. Past that, ReadProven asks again. Nothing else would: a full pool
// asks for no refill, whose success would clear r.
func (p *Provider) stillFailing(r *unavailableError, use func(*feeder) bool) bool {
	if p.cfg.clock.Now().Sub(r.at) < p.cfg.retryMax {
		return true
	}
	for _, f := range p.feeders {
		if (use == nil || use(f)) && !f.held() {
			return false
		}
	}
	return true
}

// everyPermanent reports whether err, fetchOwn's error (one source's, or
// the join of every source's), is permanent for every source.
func everyPermanent(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return allPermanent(j.Unwrap())
	}
	return Classify(err) == Permanent
}

// provenSize is the size of the job a read of n bytes of its own asks src
// for: n, or, from a source of the reference protocol (nonceFetcher) and for
// fewer than health.AptWindow bytes, health.AptWindow, so that the health tests can judge
// the job (a source biased towards one value passes them in a block as
// small as a draw's 32 bytes more often than not). The bytes beyond n are
// published with the proof and never served.
func provenSize(src Source, n int) int {
	if _, ok := src.(nonceFetcher); ok && n < health.AptWindow {
		return health.AptWindow
	}
	return n
}

// fetchOwn asks the sources in order for a job of n bytes through call, as
// fill does for the pool, and returns the first block that passed every
// check, with its feeder.
func (p *Provider) fetchOwn(ctx context.Context, n int, call fetchFunc, use func(*feeder) bool) (Block, *feeder, error) {
	var errs []error
	for i, f := range p.feeders {
		if use != nil && !use(f) {
			continue
		}
		if f.heldBehind(ctx, p.feeders[i+1:]) {
			errs = append(errs, &sourceError{name: f.sourceName(), err: &heldError{until: f.holdTime(), last: f.lastError()}})
			continue
		}
		blk, err := f.fetch(ctx, provenSize(f.src, n), call)
		if err == nil {
			return blk, f, nil
		}
		if ctx.Err() != nil {
			return Block{}, nil, ctx.Err()
		}
		errs = append(errs, &sourceError{name: f.sourceName(), err: err})
	}
	switch len(errs) {
	case 0:
		return Block{}, nil, errors.New("entropy: no source can serve this read")
	case 1:
		return Block{}, nil, errs[0]
	}
	return Block{}, nil, errors.Join(errs...)
}

// proven hands out block blk of feeder f, fetched for one read, into b: it
// counts and journals the block like a refill's, and returns its label and
// proof. The caller counts the bytes as served when it hands them out.
func (p *Provider) proven(f *feeder, blk Block, b []byte) (Label, Proof, error) {
	// The block's record goes first: a job that came after Close had
	// delivered the journal's last record would be served with no record
	// (notifier.push), so it is not served.
	if p.cfg.journal != nil && !p.notes.block(blockRecord(blk, p.cfg.clock.Now())) {
		clear(b)
		return Label{}, Proof{}, ErrClosed
	}
	f.accepted.Add(1)
	f.fetched.Add(uint64(len(blk.Data)))
	// The bytes beyond len(b) (provenSize) are accepted but never served:
	// counted here, so that what the sources gave still adds up to what
	// was served, pooled and discarded (Stats.ProvenBytesDiscarded).
	p.provenDiscarded.Add(uint64(len(blk.Data) - len(b)))
	// A source answered with a checked job: as after a block lands in the
	// pool (add), a failure met on the way (and retried) no longer says
	// that the sources are failing.
	if r := p.reason.Load(); r != poolEmpty {
		p.reason.CompareAndSwap(r, poolEmpty)
		p.permanent.Store(nil)
	}
	copy(b, blk.Data) // its first len(b) bytes: provenSize
	var pr Proof
	if blk.Evidence != nil {
		pr = blk.Evidence.Clone()
		pr.Source, pr.JobID, pr.Data = blk.Source, blk.JobID, append([]byte(nil), blk.Data...)
	}
	return Label{Verifiable: true, Spans: []Span{{Source: blk.Source, JobID: blk.JobID, Length: len(b), Public: blk.Public}}}, pr, nil
}
