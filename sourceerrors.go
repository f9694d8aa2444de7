package entropy

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/provenrand/entropy/internal/sourceerr"
)

// ErrPermanent is matched by every permanent source failure: an error that
// a repeat of the request cannot cure until someone acts ([Classify] reports
// it as [Permanent]). A [Source] marks a failure of its own as permanent by
// wrapping it.
var ErrPermanent = errors.New("permanent source failure")

// APIError is an HTTP error answer of a service. Match it with [errors.Is]
// against [ErrPermanent] and the class sentinels of its status that package
// httpsource exports (httpsource.ErrUnauthorized, httpsource.ErrRateLimited,
// …, httpsource.ErrQuotaExhausted), and read its fields with [errors.As].
//
// Sources must not put credentials into any field: Error() is logged and
// shown. Package httpsource removes its API key from every field it fills.
type APIError struct {
	StatusCode int    // HTTP status
	Code       string // the service's machine code, if it sent one
	Message    string // the service's message, if it sent one (a details list flattened to text)
	RequestID  string // the x-request-id header, for support
	// RetryAfter is the hold the Retry-After header asked for; 0 if the
	// header was absent or asked for no wait (see RetryAfterSet).
	RetryAfter time.Duration
	// RetryAfterSet tells the two zeros of RetryAfter apart (a client that
	// reads no header and one that reads "0" both see 0): true when the
	// answer had a Retry-After header
	// that could be read. RetryAfter 0 with RetryAfterSet true means the
	// service asked for no wait ("0", a negative number or a date already
	// past): retry at once, subject to the rate limit. RetryAfterSet false
	// means the service said nothing, and the caller's own backoff applies.
	RetryAfterSet bool
	// Details are the items of a details (or FastAPI detail) list in the
	// body, each with the field it is about, its message and its type, in
	// the order the service sent them; nil if the body had none.
	Details []ErrorItem
	Body    []byte // the raw body, bounded by the source
	// Quota marks a 429 read as an exhausted quota rather than a passing
	// rate limit (a 429 whose body says the quota is spent, or that carries
	// no Retry-After where the service's documentation says that means a
	// spent quota): permanent.
	Quota bool
}

// ErrorItem is one item of a structured error list in an error body: a
// "details" array of {"field","message","type"} objects, or FastAPI's
// "detail" array of {"loc","msg","type"} objects.
type ErrorItem struct {
	Field   string // what the item is about, e.g. "size" or "query.size"; "" if not said
	Message string // what is wrong with it
	Type    string // the service's kind of the error, e.g. "value_error"; "" if not said
}

// String returns "field: message (type)", leaving out what is empty.
func (it ErrorItem) String() string {
	s := it.Message
	if it.Field != "" {
		if s == "" {
			s = it.Field
		} else {
			s = it.Field + ": " + s
		}
	}
	if it.Type != "" {
		if s == "" {
			return it.Type
		}
		s += " (" + it.Type + ")"
	}
	return s
}

// Error returns "HTTP 429 rate limited: code: message (request id …, retry after 2s)".
func (e *APIError) Error() string {
	if e == nil {
		return "HTTP error (nil *APIError)"
	}
	var sb strings.Builder
	sb.WriteString("HTTP ")
	sb.WriteString(strconv.Itoa(e.StatusCode))
	if c := sourceerr.StatusText(e.StatusCode); c != "" {
		sb.WriteByte(' ')
		sb.WriteString(c)
	}
	sourceerr.WriteCodeMessage(&sb, e.Code, e.Message)
	var extra []string
	if e.RequestID != "" {
		extra = append(extra, "request id "+e.RequestID)
	}
	if e.RetryAfter > 0 || e.RetryAfterSet {
		extra = append(extra, "retry after "+e.RetryAfter.String())
	}
	if e.Quota {
		extra = append(extra, "quota exhausted")
	}
	if len(extra) > 0 {
		sb.WriteString(" (")
		sb.WriteString(strings.Join(extra, ", "))
		sb.WriteByte(')')
	}
	return sb.String()
}

// Is matches [ErrPermanent] for permanent statuses, httpsource's
// ErrQuotaExhausted for 402 and quota 429s and its ErrTooEarly for 425, and
// every target with a MatchStatus(int) bool method that returns true for the
// status: httpsource's class sentinels (503 matches both
// ErrServiceUnavailable and ErrServer).
func (e *APIError) Is(target error) bool {
	if e == nil {
		return false
	}
	switch target {
	case nil:
		return false
	case sourceerr.ErrQuotaExhausted:
		return e.StatusCode == 402 || (e.StatusCode == 429 && e.Quota)
	case sourceerr.ErrTooEarly:
		return e.StatusCode == 425
	case ErrPermanent:
		return e.permanent()
	}
	if m, ok := target.(interface{ MatchStatus(int) bool }); ok {
		return m.MatchStatus(e.StatusCode)
	}
	return false
}

// permanent reports whether a repeat of the request cannot succeed without a
// change on the caller's side (contract point 6, README.md).
func (e *APIError) permanent() bool {
	switch s := e.StatusCode; {
	case s == 429:
		return e.Quota
	case s == 408, s == 409, s == 425:
		return false // request timeout, resource busy, too early: try again later
	case s >= 400 && s <= 499:
		return true
	case s == 301, s == 308:
		// Moved for good, and not followed (package httpsource follows no
		// redirect out of the service's origin): only a new URL helps.
		return true
	}
	return false
}

// jobCodes classes every job error code of the IonQ API (v0.3) and the job
// states of the Quantropy entropy API as transient or permanent. Codes not
// listed are transient (a failed job produced nothing, and a new job may
// succeed).
var jobCodes = map[string]bool{ // code → permanent
	// IonQ: service-side failures that a new job may not meet.
	"BillingError":                  false,
	"CompilationError":              false,
	"DebiasingError":                false,
	"InternalError":                 false,
	"OptimizationError":             false,
	"QuantumComputerError":          false,
	"SimulationError":               false,
	"SimulationTimeout":             false,
	"SystemCancel":                  false,
	"UnknownBillingError":           false,
	"ContractExpiredError":          true, // contract and quota: nothing changes until a person acts
	"QuotaExhaustedError":           true,
	"NotEnoughQubits":               true, // request shape: the same request fails the same way
	"PreflightError":                true,
	"QuantumCircuitComplexityError": true,
	"TooLongPredictedExecutionTime": true,
	"TooManyControls":               true,
	"TooManyGates":                  true,
	"TooManyShots":                  true,
	"UnsupportedGate":               true,
	// The Quantropy API and the reference protocol.
	"JobFailed":           false,
	"HardwareUnavailable": false,
	"Timeout":             false,
	"JobLost":             false,
}

// JobError is a job of the service that failed: it produced no entropy.
// A job that ends in the protocol's "failed" state and one that ends in
// "error" (a job polled to {"status": "error", ...}) are both a JobError.
type JobError struct {
	JobID   string
	Code    string // e.g. "QuantumComputerError", "QuotaExhaustedError", "JobFailed"
	Message string
	// RequestID is the x-request-id of the answer that told of the failure
	// (the poll, or the request itself), for support; "" if it had none.
	RequestID string
	// Details are the structured items of the failure, if the service
	// sent a details list (see APIError.Details).
	Details []ErrorItem
}

// Error returns "job J failed: Code: message (request id R)".
func (e *JobError) Error() string {
	if e == nil {
		return "job failed (nil *JobError)"
	}
	var sb strings.Builder
	sb.WriteString("job ")
	if e.JobID != "" {
		sb.WriteString(e.JobID)
		sb.WriteByte(' ')
	}
	sb.WriteString("failed")
	sourceerr.WriteCodeMessage(&sb, e.Code, e.Message)
	sourceerr.WriteRequestID(&sb, e.RequestID)
	return sb.String()
}

// permanent reports whether the code says that a new job would fail too
// ([Classify] reports it as [Permanent]).
func (e *JobError) permanent() bool { return jobCodes[e.Code] }

// Is matches [ErrPermanent] for permanent codes and httpsource's
// ErrQuotaExhausted for the quota and contract codes. Find every job error with [errors.As].
func (e *JobError) Is(target error) bool {
	if e == nil {
		return false
	}
	switch target {
	case ErrPermanent:
		return e.permanent()
	case sourceerr.ErrQuotaExhausted:
		return e.Code == "QuotaExhaustedError" || e.Code == "ContractExpiredError"
	}
	return false
}
