package entropy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provenrand/entropy/health"
	"github.com/provenrand/entropy/internal/sourceerr"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// feeder is the refill path of one source: breaker → retry → (Retry-After
// hold, quota pacing, rate limiter, fleet gate) → Source.Fetch → checks. The refill goroutine calls fetch, and so does
// every ReadProven that fetches a job of its own, at the same time: every
// field fetch changes is atomic or under mu.
type feeder struct {
	idx     int
	src     Source
	cfg     *config
	cb      Breaker // gobreaker's, or a fleet's
	limiter Limiter // x/time/rate, or a fleet's
	shared  Hold    // a fleet's shared Retry-After hold; nil without a fleet
	// fleetClose is the fleet's Coordination.Close for this source (nil if
	// none), called by Provider.Close.
	fleetClose func()
	health     health.Config
	checker    *health.Checker // the health tests, on two goroutines for large blocks; shared by the Provider's feeders
	seen       *jobSet
	ctxs       allocBatch[requestCtx] // the contexts of the refill's requests (once)
	// refillCtx is the refill goroutine's context (Provider.ctx): requests
	// made under it take their contexts from ctxs.
	refillCtx context.Context

	tripNow atomic.Bool // the last failure was permanent: ReadyToTrip says yes

	// badProofs counts the responses in a row that failed their proof
	// check before any block of this source was accepted (neverVerified).
	// The refill goroutine and ReadProven's own fetches both update it.
	badProofs atomic.Int64

	// onFailure is told of every failed request at once, so that reads see
	// the cause without waiting for the refill round to end.
	onFailure func(error)
	// alone: the Provider has no other source, so a Retry-After is waited
	// out inside the retry loop rather than handed back to fill.
	alone bool

	requests  atomic.Uint64
	failures  atomic.Uint64
	retries   atomic.Uint64
	rejected  atomic.Uint64
	accepted  atomic.Uint64
	fetched   atomic.Uint64
	holdUntil atomic.Int64 // unix nanos before which no request may be sent (Retry-After)
	quota     quotaState   // what the service said is left, and the pacing it implies

	batchItemsFailed atomic.Uint64 // failed items of batches that served some blocks
	noBatch          atomic.Bool   // the service answered it has no batch request

	mu      sync.Mutex
	name    string // from the blocks it returned; "source N" until the first
	lastErr error  // the last request's error: nil after a success (Stats)
	// lastFail is the last failure, kept after a success: the cause a
	// breaker refusal reports. A refill admitted before the breaker opened
	// may succeed after the failure that opened it.
	lastFail error
}

func newFeeder(idx int, src Source, cfg *config, seen *jobSet, isClosed func() bool) (*feeder, error) {
	f := &feeder{idx: idx, src: src, cfg: cfg, seen: seen, name: fmt.Sprintf("source %d", idx)}
	f.health = cfg.healthConfig()
	f.limiter = &rateLimiter{lim: rate.NewLimiter(cfg.limit, cfg.burst), clk: cfg.clock}

	st := cfg.breaker
	if st.Name == "" {
		st.Name = f.name
	}
	userTrip := st.ReadyToTrip
	st.ReadyToTrip = func(c gobreaker.Counts) bool {
		if f.tripNow.Load() {
			return true
		}
		if userTrip != nil {
			return userTrip(c)
		}
		return c.ConsecutiveFailures >= defaultTripAfter
	}
	userExcluded := st.IsExcluded
	st.IsExcluded = func(err error) bool {
		// Cancellation is not the source's fault, and "too early" (a
		// beacon round not yet due) is the source working as designed.
		// Nor is a block the journal's replay guard refused through no
		// fault of the source (claimError).
		if isClosed() || Classify(err) == Canceled || errors.Is(err, sourceerr.ErrTooEarly) || isClaimError(err) {
			return true
		}
		return userExcluded != nil && userExcluded(err)
	}
	userChange := st.OnStateChange
	st.OnStateChange = func(name string, from, to gobreaker.State) {
		if l := cfg.logger; l != nil {
			l.Warn("entropy: breaker state change", "source", name, "from", from.String(), "to", to.String())
		}
		if userChange != nil {
			userChange(name, from, to)
		}
	}
	f.cb = localBreaker{gobreaker.NewCircuitBreaker[Block](st)}
	if cfg.fleet != nil {
		if err := f.coordinate(cfg.fleet, st); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// retrying is the retry loop: only failures that produced nothing and are
// transient are retried; a successful block is never retried.
func (f *feeder) retrying(ctx context.Context, n int, call fetchFunc) (Block, error) {
	// The block comes back through blk rather than a slice of one: no
	// allocation per request (the closure stays on the stack).
	var blk Block
	_, err := f.retryingWith(ctx, func(ctx context.Context) ([]Block, error) {
		var err error
		blk, err = f.once(ctx, n, call)
		return nil, err
	})
	if err != nil {
		return Block{}, err
	}
	return blk, nil
}

// retryingWith is the retry loop around one request, do, which returns the
// blocks that passed every check (one, or the good items of a batch).
func (f *feeder) retryingWith(ctx context.Context, do func(context.Context) ([]Block, error)) ([]Block, error) {
	f.tripNow.Store(false)
	var err error
	for attempt := 0; attempt < f.cfg.attempts; attempt++ {
		if attempt > 0 {
			f.retries.Add(1)
			if e := sleep(ctx, f.cfg.clock, backoff(attempt-1, f.cfg.retryBase, f.cfg.retryMax)); e != nil {
				return nil, e
			}
		}
		if e := f.wait(ctx); e != nil {
			return nil, e
		}
		var blks []Block
		blks, err = do(ctx)
		if err == nil {
			f.setLastError(nil)
			return blks, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		err = f.neverVerified(err)
		f.failures.Add(1)
		f.setLastError(err)
		ra := RetryAfter(err)
		if ra > 0 {
			f.hold(ra)
			if f.shared != nil {
				f.shared.Extend(ctx, min(ra, f.cfg.maxRetryAfter))
			}
		}
		f.onFailure(err)
		// A permanent error opens the breaker whatever else it carries: a
		// 401 with a Retry-After is still a 401.
		switch Classify(err) {
		case Permanent:
			f.tripNow.Store(true)
			return nil, err
		case Canceled:
			return nil, err
		}
		if isClaimError(err) {
			// Not the source's fault: another request now would be
			// answered, and its block refused the same way (the same
			// journal, or the same round).
			return nil, err
		}
		if ra > 0 && !f.alone {
			// Do not sit out the hold here: a later source may serve
			// meanwhile (fill skips this one until the hold has passed).
			return nil, err
		}
	}
	return nil, err
}

// backoff returns a full-jitter delay for retry k (0-based): uniform in
// [0, min(max, base·2^k)].
func backoff(k int, base, max time.Duration) time.Duration {
	d := max
	if k < 32 && base <= max>>uint(k) { // base<<k fits under max: no overflow
		d = base << uint(k)
	}
	if d < math.MaxInt64 {
		d++ // full jitter over [0, d]
	}
	return rand.N(d)
}

// keyMismatchAfter is how many responses in a row must fail their proof
// check, before the source has given one block that passed, for the
// Provider to call the source misconfigured (a permanent error). One bad
// signature among good ones is a fault of the moment and is retried; a
// service none of whose answers verifies is signing with another key than
// the one configured (or is not the service it claims to be).
const keyMismatchAfter = defaultRetryAttempts

// neverVerified turns err into a permanent error when it is the
// keyMismatchAfter-th proof failure in a row of a source that never gave
// a block that verified.
func (f *feeder) neverVerified(err error) error {
	if !errors.Is(err, sourceerr.ErrBadProof) || f.accepted.Load() > 0 {
		f.badProofs.Store(0)
		return err
	}
	n := f.badProofs.Add(1)
	if n < keyMismatchAfter {
		return err
	}
	return &keyMismatchError{n: int(n), err: err}
}

// keyMismatchError is a proof failure made permanent by neverVerified: it
// matches ErrPermanent and unwraps to the source's error.
type keyMismatchError struct {
	n   int
	err error
}

func (e *keyMismatchError) Error() string {
	return fmt.Sprintf("none of the source's %d answers so far passed its proof check (is the configured public key the service's, and is nothing between replaying its answers?): %v", e.n, e.err)
}

func (e *keyMismatchError) Unwrap() error { return e.err }

// Is matches ErrPermanent: no retry will make another key's signatures verify.
func (e *keyMismatchError) Is(target error) bool { return target == ErrPermanent }

// wait holds the request back until the Retry-After hold has passed and the
// rate limiter lets it through. With a fleet, the hold is the fleet's too,
// and it is read again after the limiter's wait: another replica may have
// received a Retry-After meanwhile.
func (f *feeder) wait(ctx context.Context) error {
	clk := f.cfg.clock
	for {
		// No request once ctx has ended (Close, for the refill), even when
		// nothing below would wait: a source that ignores its context
		// would otherwise be asked again and again.
		if err := ctx.Err(); err != nil {
			return err
		}
		f.syncHold(ctx)
		until := f.holdUntil.Load()
		now := clk.Now()
		if d := time.Duration(until - now.UnixNano()); until != 0 && d > 0 {
			if err := sleep(ctx, clk, d); err != nil {
				return err
			}
			continue
		}
		if d := f.quota.delay(now); d > 0 {
			// Spread what is left of the service's quota until its reset,
			// rather than spend it and meet the limit.
			if err := sleep(ctx, clk, min(d, f.cfg.maxRetryAfter)); err != nil {
				return err
			}
			continue
		}
		if err := f.limiter.Wait(ctx); err != nil {
			return err
		}
		if f.shared != nil {
			f.syncHold(ctx)
			if f.held() {
				continue
			}
		}
		return f.gate(ctx)
	}
}

// requestCtx returns the context of one request to the source, or of one
// claim in the journal (claim): ctx bounded by the fetch timeout. Only the
// refill's requests take their contexts from the batch: their parent lives
// as long as the Provider. A caller's context (ReadProven, an event draw)
// must not be kept alive by the batch after its call.
func (f *feeder) requestCtx(ctx context.Context) *requestCtx {
	batch := &f.ctxs
	if ctx != f.refillCtx {
		batch = nil
	}
	return newRequestCtx(batch, ctx, f.cfg.fetchTimeout)
}

// once sends one request and checks what came back (contract point 4).
func (f *feeder) once(ctx context.Context, n int, call fetchFunc) (blk Block, err error) {
	f.requests.Add(1)
	f.quota.sent(f.cfg.clock.Now())
	defer f.quota.note(f.src)
	rctx := f.requestCtx(ctx)
	defer rctx.end()
	func() {
		defer func() {
			if r := recover(); r != nil {
				blk, err = Block{}, fmt.Errorf("%w: %T", errSourcePanic, r)
			}
		}()
		if call != nil {
			blk, err = call(rctx, f.src, n)
		} else {
			blk, err = f.src.Fetch(rctx, n)
		}
	}()
	if err != nil {
		return Block{}, err
	}
	if err := f.check(blk, n); err != nil {
		f.rejected.Add(1)
		return Block{}, err
	}
	if err := f.claim(ctx, blk); err != nil {
		f.rejected.Add(1)
		return Block{}, err
	}
	return blk, nil
}

func (f *feeder) setLastError(err error) {
	f.mu.Lock()
	f.lastErr = err
	if err != nil {
		f.lastFail = err
	}
	f.mu.Unlock()
}

// lastFailure returns the source's last failure, even if a request has
// succeeded since: why its breaker opened.
func (f *feeder) lastFailure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastFail
}

func (f *feeder) lastError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

func (f *feeder) sourceName() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name
}
