package entropy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// feeder is the refill path of one source: rate limiter → breaker → retry →
// Source.Fetch → checks. Only the refill goroutine calls fetch, so the
// fields without a lock are its own; the ones Stats reads are atomic or
// under mu.
type feeder struct {
	idx     int
	src     Source
	cfg     *config
	cb      *gobreaker.CircuitBreaker[Block]
	limiter *rate.Limiter
	health  HealthConfig
	seen    *jobSet

	tripNow atomic.Bool // the last failure was permanent: ReadyToTrip says yes

	// badProofs counts the responses in a row that failed their proof
	// check before any block of this source was accepted (neverVerified).
	// Only the refill goroutine touches it.
	badProofs int

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

	mu      sync.Mutex
	name    string // from the blocks it returned; "source N" until the first
	lastErr error
}

func newFeeder(idx int, src Source, cfg *config, seen *jobSet, isClosed func() bool) *feeder {
	f := &feeder{idx: idx, src: src, cfg: cfg, seen: seen, name: fmt.Sprintf("source %d", idx)}
	if cfg.health != nil {
		f.health = *cfg.health
	} else {
		f.health = DefaultHealthConfig()
	}
	f.limiter = rate.NewLimiter(cfg.limit, cfg.burst)

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
		return c.ConsecutiveFailures >= DefaultTripAfter
	}
	userExcluded := st.IsExcluded
	st.IsExcluded = func(err error) bool {
		// Cancellation is not the source's fault, and "too early" (a
		// beacon round not yet due) is the source working as designed.
		if isClosed() || Classify(err) == Canceled || errors.Is(err, ErrTooEarly) {
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
	f.cb = gobreaker.NewCircuitBreaker[Block](st)
	return f
}

// fetch runs one refill of n bytes through breaker, retry and checks. It
// returns a block that passed every check, or the error that ended the
// attempt (the source's last error when retries ran out).
func (f *feeder) fetch(ctx context.Context, n int) (Block, error) {
	blk, err := f.cb.Execute(func() (Block, error) { return f.retrying(ctx, n) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		// The breaker refused without a request: report the source's last
		// error as the cause, with the breaker state beside it.
		return Block{}, &breakerError{state: err, last: f.lastError()}
	}
	return blk, err
}

// retrying is the retry loop: only failures that produced nothing and are
// transient are retried; a successful block is never retried.
func (f *feeder) retrying(ctx context.Context, n int) (Block, error) {
	f.tripNow.Store(false)
	var err error
	for attempt := 0; attempt < f.cfg.attempts; attempt++ {
		if attempt > 0 {
			f.retries.Add(1)
			if e := sleep(ctx, f.cfg.clock, backoff(attempt-1, f.cfg.retryBase, f.cfg.retryMax)); e != nil {
				return Block{}, e
			}
		}
		if e := f.wait(ctx); e != nil {
			return Block{}, e
		}
		var blk Block
		blk, err = f.once(ctx, n)
		if err == nil {
			f.setLastError(nil)
			return blk, nil
		}
		if ctx.Err() != nil {
			return Block{}, ctx.Err()
		}
		err = f.neverVerified(err)
		f.failures.Add(1)
		f.setLastError(err)
		f.onFailure(err)
		ra := RetryAfter(err)
		if ra > 0 {
			f.hold(ra)
		}
		// A permanent error opens the breaker whatever else it carries: a
		// 401 with a Retry-After is still a 401.
		switch Classify(err) {
		case Permanent:
			f.tripNow.Store(true)
			return Block{}, err
		case Canceled:
			return Block{}, err
		}
		if ra > 0 && !f.alone {
			// Do not sit out the hold here: a later source may serve
			// meanwhile (fill skips this one until the hold has passed).
			return Block{}, err
		}
	}
	return Block{}, err
}

// keyMismatchAfter is how many responses in a row must fail their proof
// check, before the source has given one block that passed, for the
// Provider to call the source misconfigured (a permanent error). One bad
// signature among good ones is a fault of the moment and is retried; a
// service none of whose answers verifies is signing with another key than
// the one configured (or is not the service it claims to be).
const keyMismatchAfter = DefaultRetryAttempts

// neverVerified turns err into a permanent error when it is the
// keyMismatchAfter-th proof failure in a row of a source that never gave
// a block that verified.
func (f *feeder) neverVerified(err error) error {
	if !errors.Is(err, ErrBadProof) || f.accepted.Load() > 0 {
		f.badProofs = 0
		return err
	}
	f.badProofs++
	if f.badProofs < keyMismatchAfter {
		return err
	}
	return &keyMismatchError{n: f.badProofs, err: err}
}

// keyMismatchError is a proof failure made permanent by neverVerified: it
// matches ErrPermanent and unwraps to the source's error.
type keyMismatchError struct {
	n   int
	err error
}

func (e *keyMismatchError) Error() string {
	return fmt.Sprintf("none of the source's %d answers so far passed its proof check (is the configured public key the service's?): %v", e.n, e.err)
}

func (e *keyMismatchError) Unwrap() error { return e.err }

// Is matches ErrPermanent: no retry will make another key's signatures verify.
func (e *keyMismatchError) Is(target error) bool { return target == ErrPermanent }

// wait holds the request back until the Retry-After hold has passed and the
// rate limiter lets it through.
func (f *feeder) wait(ctx context.Context) error {
	clk := f.cfg.clock
	for {
		until := f.holdUntil.Load()
		now := clk.Now()
		if d := time.Duration(until - now.UnixNano()); until != 0 && d > 0 {
			if err := sleep(ctx, clk, d); err != nil {
				return err
			}
			continue
		}
		r := f.limiter.ReserveN(now, 1)
		if !r.OK() {
			return errors.New("entropy: rate limiter refuses every request")
		}
		if d := r.DelayFrom(now); d > 0 {
			if err := sleep(ctx, clk, d); err != nil {
				r.CancelAt(clk.Now())
				return err
			}
		}
		return nil
	}
}

// hold records a Retry-After: no request to this source before now+d
// (capped by the configured maximum). A later, shorter hold never shortens
// an earlier one.
func (f *feeder) hold(d time.Duration) {
	if d > f.cfg.maxRetryAfter {
		d = f.cfg.maxRetryAfter
	}
	now := f.cfg.clock.Now().UnixNano()
	until := now + int64(d)
	if until < now { // past the year 2262 (a cap near the longest Duration)
		until = math.MaxInt64
	}
	for {
		cur := f.holdUntil.Load()
		if cur >= until || f.holdUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// once sends one request and checks what came back (contract point 4).
func (f *feeder) once(ctx context.Context, n int) (blk Block, err error) {
	f.requests.Add(1)
	rctx, cancel := context.WithTimeout(ctx, f.cfg.fetchTimeout)
	defer cancel()
	func() {
		defer func() {
			if r := recover(); r != nil {
				blk, err = Block{}, fmt.Errorf("%w: %T", ErrSourcePanic, r)
			}
		}()
		blk, err = f.src.Fetch(rctx, n)
	}()
	if err != nil {
		return Block{}, err
	}
	if err := f.check(blk, n); err != nil {
		f.rejected.Add(1)
		return Block{}, err
	}
	return blk, nil
}

// maxName is the longest source name or job ID a block may carry.
const maxName = 512

// check refuses a block that is empty, longer than asked for, not verified,
// anonymous, named with a source or job ID that is not short UTF-8 text, a
// replay of a job already taken, or that fails a health test.
func (f *feeder) check(b Block, n int) error {
	switch {
	case len(b.Data) == 0:
		return fmt.Errorf("%w: empty data", ErrInvalidBlock)
	case len(b.Data) > n:
		return fmt.Errorf("%w: %d bytes where at most %d were asked for", ErrInvalidBlock, len(b.Data), n)
	case !b.Verifiable:
		return fmt.Errorf("%w: not verifiable (no proof checked)", ErrInvalidBlock)
	case b.Source == "":
		return fmt.Errorf("%w: no source name", ErrInvalidBlock)
	case b.JobID == "":
		return fmt.Errorf("%w: no job ID", ErrInvalidBlock)
	case len(b.Source) > maxName || len(b.JobID) > maxName:
		return fmt.Errorf("%w: source name or job ID longer than %d bytes", ErrInvalidBlock, maxName)
	case !utf8.ValidString(b.Source) || !utf8.ValidString(b.JobID):
		// Labels, journals and transcripts carry these names as text.
		return fmt.Errorf("%w: source name or job ID not valid UTF-8 (%q, %q)", ErrInvalidBlock, b.Source, b.JobID)
	}
	if err := f.health.Check(b.Data); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBlock, err)
	}
	if !f.seen.add(b.Source, b.JobID) {
		return fmt.Errorf("%w: job %s of %s was already taken", ErrInvalidBlock, b.JobID, b.Source)
	}
	f.mu.Lock()
	f.name = b.Source
	f.mu.Unlock()
	return nil
}

func (f *feeder) setLastError(err error) {
	f.mu.Lock()
	f.lastErr = err
	f.mu.Unlock()
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

// breakerError is the error of a refill the breaker refused: it unwraps to
// both the breaker's state error and the source's last error.
type breakerError struct {
	state error // gobreaker.ErrOpenState or ErrTooManyRequests
	last  error // may be nil
}

func (e *breakerError) Error() string {
	if e.last == nil {
		return e.state.Error()
	}
	return e.last.Error() + " (" + e.state.Error() + ")"
}

func (e *breakerError) Unwrap() []error {
	if e.last == nil {
		return []error{e.state}
	}
	return []error{e.last, e.state}
}

// jobSet remembers every (source, job) pair the Provider has taken, so a
// source that hands out a job again, however long after, cannot make the
// Provider serve its bytes twice (contract point 3). It keeps a 64-bit keyed
// hash of each pair, not the names: about 16 bytes a job (a 64 KiB fetch),
// so a Provider that has taken 1 GiB in 64 KiB jobs holds 256 KiB. Two pairs
// with the same hash (probability about n²/2^65 after n jobs) make the later
// one look taken: a fresh block refused, never a replay served.
type jobSet struct {
	mu   sync.Mutex
	seed maphash.Seed
	set  map[uint64]struct{}
}

func newJobSet() *jobSet {
	return &jobSet{seed: maphash.MakeSeed(), set: make(map[uint64]struct{})}
}

// add records the job and reports whether it was new.
func (s *jobSet) add(source, job string) bool {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(source))) // so that no two pairs write the same bytes
	_, _ = h.Write(n[:])
	_, _ = h.WriteString(source)
	_, _ = h.WriteString(job)
	k := h.Sum64()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[k]; ok {
		return false
	}
	s.set[k] = struct{}{}
	return true
}

// holdTime returns the end of the Retry-After hold (zero if none).
func (f *feeder) holdTime() time.Time {
	if h := f.holdUntil.Load(); h != 0 {
		return time.Unix(0, h)
	}
	return time.Time{}
}

// held reports whether a Retry-After holds the source now.
func (f *feeder) held() bool {
	return f.holdUntil.Load() > f.cfg.clock.Now().UnixNano()
}

// heldBehind reports whether fill should pass this source over: a
// Retry-After holds it and one of the sources after it is free to ask.
func (f *feeder) heldBehind(rest []*feeder) bool {
	if !f.held() {
		return false
	}
	for _, g := range rest {
		if !g.held() {
			return true
		}
	}
	return false
}

// heldError is the error of a source passed over while a Retry-After holds
// it; it unwraps to the source's last error (the one that set the hold).
type heldError struct {
	until time.Time
	last  error
}

func (e *heldError) Error() string {
	msg := "held back by Retry-After until " + e.until.UTC().Format(time.RFC3339)
	if e.last != nil {
		msg += ": " + e.last.Error()
	}
	return msg
}

func (e *heldError) Unwrap() error { return e.last }
