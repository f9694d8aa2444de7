package entropy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/sony/gobreaker/v2"
)

// fetch runs one refill of n bytes through breaker, retry and checks. It
// returns a block that passed every check, or the error that ended the
// attempt (the source's last error when retries ran out). call, if set,
// makes each request instead of the source's Fetch (see fetchFunc).
func (f *feeder) fetch(ctx context.Context, n int, call fetchFunc) (Block, error) {
	r := fetchReqs.Get().(*fetchReq)
	r.f, r.ctx, r.n, r.call = f, ctx, n, call
	blk, err := f.cb.Execute(r.do)
	*r = fetchReq{do: r.do}
	fetchReqs.Put(r)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		// The breaker refused without a request: report the source's last
		// failure as the cause, with the breaker state beside it.
		return Block{}, &breakerError{state: err, last: f.lastFailure()}
	}
	return blk, err
}

// fetchReq holds the arguments of one fetch for the breaker's Execute,
// which takes a func: a closure over them would escape through the Breaker
// interface, one allocation per block. do is bound to its fetchReq once,
// and fetchReqs recycles them (Execute runs req before it returns).
type fetchReq struct {
	f    *feeder
	ctx  context.Context
	n    int
	call fetchFunc
	do   func() (Block, error) // run, bound to this fetchReq
}

// run is the request Execute runs: the retry loop of f.
func (r *fetchReq) run() (Block, error) { return r.f.retrying(r.ctx, r.n, r.call) }

// fetchReqs recycles fetchReqs.
var fetchReqs = sync.Pool{New: func() any {
	r := new(fetchReq)
	r.do = r.run
	return r
}}

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

// maxBreakerBuckets bounds the rolling window of a breaker (WithBreaker).
const maxBreakerBuckets = 4096

// checkBreakerSettings refuses the gobreaker settings that [WithBreaker]
// would otherwise take silently: a negative duration (gobreaker would use
// its default), a BucketPeriod without an Interval (ignored), and one that
// cuts the Interval into more than maxBreakerBuckets buckets (gobreaker
// allocates them all, per source).
func checkBreakerSettings(s gobreaker.Settings) error {
	if s.Timeout < 0 || s.Interval < 0 || s.BucketPeriod < 0 {
		return fmt.Errorf("entropy: breaker durations must not be negative (Timeout %v, Interval %v, BucketPeriod %v)",
			s.Timeout, s.Interval, s.BucketPeriod)
	}
	if s.BucketPeriod > 0 {
		if s.Interval == 0 {
			return fmt.Errorf("entropy: breaker BucketPeriod %v needs an Interval", s.BucketPeriod)
		}
		if s.Interval > math.MaxInt64-s.BucketPeriod {
			// gobreaker's rounding up of the Interval would overflow.
			return fmt.Errorf("entropy: breaker Interval %v too large for buckets of %v", s.Interval, s.BucketPeriod)
		}
		// gobreaker rounds the Interval up to a whole number of buckets.
		if (s.Interval+s.BucketPeriod-1)/s.BucketPeriod > maxBreakerBuckets {
			return fmt.Errorf("entropy: breaker Interval %v in buckets of %v: more than %d buckets",
				s.Interval, s.BucketPeriod, maxBreakerBuckets)
		}
	}
	return nil
}
