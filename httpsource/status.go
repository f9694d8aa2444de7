package httpsource

import (
	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/sourceerr"
)

// Class sentinels of HTTP statuses, matched with errors.Is by an
// *entropy.APIError (and by any error that wraps one) whose status is in the
// class, whichever source returned it: this package, package drandsource's
// relays or another. ErrServiceUnavailable (503) is also an ErrServer.
var (
	ErrBadRequest         = sourceerr.ErrBadRequest
	ErrUnauthorized       = sourceerr.ErrUnauthorized
	ErrPaymentRequired    = sourceerr.ErrPaymentRequired // insufficient balance
	ErrForbidden          = sourceerr.ErrForbidden
	ErrNotFound           = sourceerr.ErrNotFound
	ErrConflict           = sourceerr.ErrConflict // resource busy
	ErrValidation         = sourceerr.ErrValidation
	ErrRateLimited        = sourceerr.ErrRateLimited
	ErrServer             = sourceerr.ErrServer
	ErrServiceUnavailable = sourceerr.ErrServiceUnavailable
)

// The failure classes that the retry and breaker logic act on, beside
// entropy.ErrPermanent (every permanent failure) and the status classes
// above. Package drandsource returns the same values.
var (
	// ErrQuotaExhausted is matched by a 402, a 429 read as an exhausted
	// quota (APIError.Quota), and a job failed with a quota or contract
	// code. Permanent.
	ErrQuotaExhausted = sourceerr.ErrQuotaExhausted
	// ErrTooEarly is matched by a 425 (package drandsource: a round not yet
	// due). Not a failure: the Provider waits out the Retry-After it
	// carries.
	ErrTooEarly = sourceerr.ErrTooEarly
	// ErrTimeout is matched by a [ConnError] whose cause is a timeout.
	ErrTimeout = sourceerr.ErrTimeout
	// ErrMalformed is wrapped by the error of an answer that could not be
	// read: bad JSON or base64, a truncated or oversized body, a wrong
	// length, a job ID outside the protocol's character set. Transient.
	ErrMalformed = sourceerr.ErrMalformed
	// ErrBadProof is wrapped by the error of a job whose signature does not
	// check, or whose nonce, size or timestamp is not the request's.
	ErrBadProof = sourceerr.ErrBadProof
	// ErrBatchUnsupported is wrapped by the error of [Source.FetchBatch]
	// when the service has no batch request (the batch path answered 404,
	// 405 or 501). A Provider that meets it refills from the source with
	// single requests from then on, and does not count it as a failure.
	ErrBatchUnsupported = sourceerr.ErrBatchUnsupported
)

// ConnError is a failure to reach the service: DNS, refused or dropped
// connections, TLS, timeouts. Its fields are Op (what was being done, e.g.
// "GET /v1/entropy") and Err (the net or context cause, which Unwrap
// returns); it matches [ErrTimeout] when the cause is a timeout. Find it
// with errors.As. Package drandsource returns the same type.
type ConnError = sourceerr.ConnError

// BatchError is a batch answer whose items did not all pass
// ([Source.FetchBatch]): it names the failed items. Its fields are Total
// (the items asked for), Items (a [BatchItemError] for each failed item)
// and RequestID (of the batch answer, which [RequestID] finds too). Find
// it with errors.As. It unwraps to the items' errors, so errors.As finds a
// failed item's *entropy.JobError too, and errors.Is its [ErrBadProof] or
// [ErrMalformed].
type BatchError = sourceerr.BatchError

// BatchItemError is one failed item of a [BatchError]: Index (its place in
// the request, from 0), Code (the service's job error code; "" for a check
// that failed here), Message (the service's message, or what the check
// found) and Err (a *entropy.JobError, or an error wrapping [ErrMalformed]
// or [ErrBadProof]).
type BatchItemError = sourceerr.BatchItemError

// RequestID returns the service's request ID that err, or an error it
// wraps, carries: the x-request-id of the answer that produced it, for
// support. Every error this package returns for an answer it received
// carries one (*entropy.APIError, *entropy.JobError, [BatchError],
// malformed answers, bad signatures) when the service sent it; errors
// without an answer ([ConnError]) have none, and give "".
func RequestID(err error) string {
	id := ""
	walkErrors(err, 0, func(e error) bool {
		switch e := e.(type) {
		case *entropy.APIError:
			if e != nil {
				id = e.RequestID
			}
		case *entropy.JobError:
			if e != nil {
				id = e.RequestID
			}
		case interface{ ServiceRequestID() string }:
			id = e.ServiceRequestID()
		}
		return id == ""
	})
	return id
}

// walkErrors calls f on err and on every error it wraps (Unwrap() error or
// Unwrap() []error), depth first, to a depth of 32, while f returns true.
func walkErrors(err error, depth int, f func(error) bool) bool {
	if err == nil || depth > 32 {
		return true
	}
	if !f(err) {
		return false
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walkErrors(u.Unwrap(), depth+1, f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if !walkErrors(e, depth+1, f) {
				return false
			}
		}
	}
	return true
}
