package entropy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrorClass is what the retry and breaker logic do with an error.
type ErrorClass int

const (
	// Transient: the request produced nothing and a repeat may succeed
	// (connection errors, timeouts, 5xx, 503, 409, 429, failed or lost jobs,
	// malformed or unverifiable responses). Retried with backoff.
	Transient ErrorClass = iota + 1
	// Permanent: a repeat cannot succeed until someone acts (400, 401, 402,
	// 403, 404, 422, quota and contract errors, request-shape job errors). Not
	// retried; opens the breaker at once.
	Permanent
	// Canceled: the caller or [Provider.Close] ended the wait. Not a source failure.
	Canceled
)

// String returns "transient", "permanent" or "canceled".
func (c ErrorClass) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Canceled:
		return "canceled"
	}
	return fmt.Sprintf("ErrorClass(%d)", int(c))
}

// Classify returns the class of a non-nil error: the one function the retry
// and breaker logic use. Errors it does not know are [Transient]: the request
// produced nothing, and a repeat costs at most one more request.
func Classify(err error) ErrorClass {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, ErrPermanent):
		return Permanent
	}
	return Transient
}

// Retryable reports whether err is [Transient].
func Retryable(err error) bool { return Classify(err) == Transient }

// RetryAfter returns the longest Retry-After carried by err or anything it
// wraps (through Unwrap, including joined errors), or 0.
func RetryAfter(err error) time.Duration {
	// Every error in the tree, not the first that has the method
	// (errors.As): a joined error of two relays, one answering 502 and
	// one 429 with a hold, must report the hold.
	var d time.Duration
	walkErrors(err, 0, func(e error) {
		switch e := e.(type) {
		case *APIError:
			if e != nil {
				d = max(d, e.RetryAfter)
			}
		case interface{ RetryAfterDelay() time.Duration }:
			d = max(d, e.RetryAfterDelay())
		}
	})
	return d
}

// walkErrors calls f on err and on every error it wraps (Unwrap() error or
// Unwrap() []error), depth first, to a depth of 32.
func walkErrors(err error, depth int, f func(error)) {
	if err == nil || depth > 32 {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), depth+1, f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, depth+1, f)
		}
	}
}
