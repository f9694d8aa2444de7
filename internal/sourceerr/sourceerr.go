// Package sourceerr holds the errors that the module's sources return and
// the Provider reads: the classes of HTTP statuses, the failure classes the
// retry logic acts on, connection failures and partial batch failures.
//
// Users meet them under the names of the packages that return them
// (httpsource.ErrRateLimited, httpsource.ConnError, drandsource.ErrBadProof,
// …): this package only makes those names one value each, whichever package
// exports them, so that errors.Is and errors.As work across packages.
package sourceerr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Failure classes the retry and breaker logic tell apart. Their texts keep
// the "entropy: " prefix they had when the root package exported them, so
// that logs and error strings read as they did.
var (
	// ErrQuotaExhausted: 402, a quota or contract job code, or a 429 read
	// as an exhausted quota. Permanent.
	ErrQuotaExhausted = errors.New("quota exhausted")
	// ErrTimeout: a ConnError whose cause is a timeout. Transient.
	ErrTimeout = errors.New("request timed out")
	// ErrTooEarly: 425, or a beacon round not yet due. Not a failure: the
	// Provider waits for the Retry-After it carries.
	ErrTooEarly = errors.New("too early")
	// ErrBadProof: a signature or proof did not check. Transient (a relay
	// may have sent a bad answer), unless it never stops happening.
	ErrBadProof = errors.New("entropy: proof did not verify")
	// ErrMalformed: an answer could not be parsed (bad JSON, bad base64,
	// truncated body, wrong length). Transient.
	ErrMalformed = errors.New("entropy: malformed response")
	// ErrBatchUnsupported: the service has no batch request (the batch path
	// answered 404, 405 or 501). The Provider then refills from that source
	// with single requests, and does not count it as a failure.
	ErrBatchUnsupported = errors.New("entropy: the service offers no batch request")
)

// StatusClass is a class of HTTP statuses, from Lo to Hi. An
// *entropy.APIError whose status is in the class matches it with errors.Is
// (APIError.Is calls MatchStatus).
type StatusClass struct {
	Text   string
	Lo, Hi int
}

// Error returns the class's name, e.g. "rate limited".
func (c *StatusClass) Error() string { return c.Text }

// MatchStatus reports whether status is in the class.
func (c *StatusClass) MatchStatus(status int) bool { return status >= c.Lo && status <= c.Hi }

// The classes of HTTP statuses. ErrServiceUnavailable (503) is also an
// ErrServer.
var (
	ErrBadRequest         error = classes[0]
	ErrUnauthorized       error = classes[1]
	ErrPaymentRequired    error = classes[2]
	ErrForbidden          error = classes[3]
	ErrNotFound           error = classes[4]
	ErrConflict           error = classes[5]
	ErrValidation         error = classes[6]
	ErrRateLimited        error = classes[7]
	ErrServiceUnavailable error = classes[8]
	ErrServer             error = classes[9]
)

// classes lists the status classes, each before any wider one.
var classes = [...]*StatusClass{
	{"bad request", 400, 400},
	{"unauthorized", 401, 401},
	{"payment required", 402, 402},
	{"forbidden", 403, 403},
	{"not found", 404, 404},
	{"conflict", 409, 409},
	{"validation failed", 422, 422},
	{"rate limited", 429, 429},
	{"service unavailable", 503, 503},
	{"server error", 500, 599},
}

// StatusText names the class of an HTTP status as its sentinel does (and
// 425 as ErrTooEarly does); "" for a status of no class.
func StatusText(status int) string {
	if status == 425 {
		return ErrTooEarly.Error()
	}
	for _, c := range classes {
		if c.MatchStatus(status) {
			return c.Text
		}
	}
	return ""
}

// ConnError is a failure to reach the service: DNS, refused or dropped
// connections, TLS, timeouts. It wraps the net or context cause.
type ConnError struct {
	Op  string // what was being done, e.g. "GET /v1/entropy"
	Err error  // the cause
}

// Error returns "Op: cause".
func (e *ConnError) Error() string {
	if e == nil {
		return "connection failed (nil *ConnError)"
	}
	cause := "connection failed"
	if e.Err != nil {
		cause = e.Err.Error()
	}
	if e.Op == "" {
		return "connection: " + cause
	}
	return e.Op + ": " + cause
}

// Unwrap returns the cause.
func (e *ConnError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// Is matches ErrTimeout when the cause is a timeout. Find every connection
// failure with errors.As.
func (e *ConnError) Is(target error) bool {
	return e != nil && target == ErrTimeout && isTimeout(e.Err)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// BatchError is a batch answer whose items did not all pass: it names the
// failed items. Find it with errors.As. It unwraps to the items' errors, so
// errors.As finds a failed item's *entropy.JobError too, and errors.Is its
// ErrBadProof or ErrMalformed.
type BatchError struct {
	Total     int              // items asked for
	Items     []BatchItemError // the failed items, by index
	RequestID string           // the request ID of the batch answer
}

// BatchItemError is one failed item of a batch.
type BatchItemError struct {
	Index   int    // its place in the request, from 0
	Code    string // the service's code (a job error code), "" for a check that failed here
	Message string // the service's message, or what the check found
	Err     error  // the item's error: a *entropy.JobError, or one wrapping ErrMalformed or ErrBadProof
}

// Error returns "batch: 2 of 5 items failed: item 1: Code: message; item 3: …".
func (e *BatchError) Error() string {
	if e == nil {
		return "batch failed (nil *BatchError)"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "batch: %d of %d items failed", len(e.Items), e.Total)
	for i, it := range e.Items {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		sb.WriteString("item ")
		sb.WriteString(strconv.Itoa(it.Index))
		WriteCodeMessage(&sb, it.Code, it.Message)
	}
	WriteRequestID(&sb, e.RequestID)
	return sb.String()
}

// Unwrap returns the items' errors.
func (e *BatchError) Unwrap() []error {
	if e == nil {
		return nil
	}
	errs := make([]error, 0, len(e.Items))
	for _, it := range e.Items {
		if it.Err != nil {
			errs = append(errs, it.Err)
		}
	}
	return errs
}

// ServiceRequestID returns the request ID of the batch answer, as every
// error of an answer that has one does: httpsource.RequestID reads it.
func (e *BatchError) ServiceRequestID() string {
	if e == nil {
		return ""
	}
	return e.RequestID
}

// WriteCodeMessage writes ": code" and ": message" to sb, each only when it
// is not empty: the middle of every error text of a service's answer.
func WriteCodeMessage(sb *strings.Builder, code, message string) {
	if code != "" {
		sb.WriteString(": ")
		sb.WriteString(code)
	}
	if message != "" {
		sb.WriteString(": ")
		sb.WriteString(message)
	}
}

// WriteRequestID writes " (request id R)" to sb when id is not empty.
func WriteRequestID(sb *strings.Builder, id string) {
	if id != "" {
		sb.WriteString(" (request id ")
		sb.WriteString(id)
		sb.WriteByte(')')
	}
}
