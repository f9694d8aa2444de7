package entropy

import (
	"context"
	"errors"

	"github.com/sony/gobreaker/v2"
)

// fetch runs one refill of n bytes through breaker, retry and checks. It
// returns a block that passed every check, or the error that ended the
// attempt (the source's last error when retries ran out). call, if set,
// makes each request instead of the source's Fetch (see fetchFunc).
func (f *feeder) fetch(ctx context.Context, n int, call fetchFunc) (Block, error) {
	blk, err := f.cb.Execute(func() (Block, error) { return f.retrying(ctx, n, call) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		// The breaker refused without a request: report the source's last
		// error as the cause, with the breaker state beside it.
		return Block{}, &breakerError{state: err, last: f.lastError()}
	}
	return blk, err
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
