package entropy

import (
	"context"
	"errors"
	"time"
)

// Errors of the Provider itself.
var (
	// ErrUnavailable: no verifiable entropy could be served. Errors of the [Fail]
	// policy and the Reason of fallback reads wrap it together with the cause.
	ErrUnavailable = errors.New("entropy: verifiable entropy unavailable")
	// ErrClosed is returned by every read after [Provider.Close].
	ErrClosed = errors.New("entropy: provider closed")
	// ErrPoolEmpty: the source is healthy as far as the [Provider] knows, but the
	// pool held too few checked bytes for the read (at start-up, or reads outran
	// the refill). A cause inside [ErrUnavailable].
	ErrPoolEmpty = errors.New("entropy: pool holds too few verifiable bytes")
	// errInvalidBlock: a source returned a block the [Provider] refused (empty,
	// longer than asked for, not verifiable, or failed a health test). It counts
	// as a source failure and is retried.
	errInvalidBlock = errors.New("entropy: invalid block")
)

// Errors of a read's arguments (see checkRead).
var (
	errEmptyRead  = errors.New("entropy: empty read")
	errNilContext = errors.New("entropy: nil context")
)

// checkRead returns the error of a read of b under ctx that cannot start:
// b empty, ctx nil, or the Provider closed (ErrClosed); nil if it can.
func (p *Provider) checkRead(ctx context.Context, b []byte) error {
	switch {
	case len(b) == 0:
		return errEmptyRead
	case ctx == nil:
		return errNilContext
	case p.closed.Load():
		return ErrClosed
	}
	return nil
}

// errSourcePanic: a [Source] panicked; the panic is turned into this error
// (with the panic value's type) and counted as a source failure.
var errSourcePanic = errors.New("entropy: source panicked")

// unavailableError is the error of a read that got no verifiable entropy: it
// matches ErrUnavailable and unwraps to the cause. Fallback reads carry one
// as their Reason, so newUnavailable builds its Unwrap list once, not per
// errors.Is.
type unavailableError struct {
	cause error
	errs  []error   // ErrUnavailable and cause, built by newUnavailable
	at    time.Time // when a source's failure was met (failedAt); zero otherwise
}

// newUnavailable returns the error of reads that cannot be served because
// of cause.
func newUnavailable(cause error) *unavailableError {
	if cause == nil {
		return &unavailableError{errs: []error{ErrUnavailable}}
	}
	return &unavailableError{cause: cause, errs: []error{ErrUnavailable, cause}}
}

// failedAt returns the reason of reads after a source's failure, cause,
// met at now.
func failedAt(cause error, now time.Time) *unavailableError {
	u := newUnavailable(cause)
	u.at = now
	return u
}

// poolEmpty is the reason while the sources are healthy but the pool short.
var poolEmpty = newUnavailable(ErrPoolEmpty)

func (e *unavailableError) Error() string {
	if e.cause == nil {
		return ErrUnavailable.Error()
	}
	return ErrUnavailable.Error() + ": " + e.cause.Error()
}

func (e *unavailableError) Unwrap() []error { return e.errs }

// sourceError names the source an error came from.
type sourceError struct {
	name string
	err  error
}

func (e *sourceError) Error() string { return e.name + ": " + e.err.Error() }

func (e *sourceError) Unwrap() error { return e.err }
