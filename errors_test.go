package entropy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy/internal/sourceerr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A redirect that reached the Provider was not followed (package
// httpsource follows none out of the service's origin, and its own client
// none at all). One that says the service moved for good (301, 308) cannot
// succeed again without a new URL: it is Permanent, so a wrong URL shows as
// a misconfiguration (Stats.Permanent, WaitReady) rather than being retried
// for ever. The temporary ones (302, 303, 307) stay Transient.
func TestPermanentRedirectIsPermanent(t *testing.T) {
	for status, want := range map[int]ErrorClass{301: Permanent, 308: Permanent, 302: Transient, 303: Transient, 307: Transient} {
		e := fmt.Errorf("fetch: %w", &APIError{StatusCode: status, Message: "moved"})
		assert.Equal(t, want, Classify(e), "HTTP %d", status)
		assert.Equal(t, want == Permanent, errors.Is(e, ErrPermanent), "HTTP %d", status)
	}
}

// Every error status of the reference protocol has the right retry class
// (contract point 6, README.md) and its class's name in the message; a
// sentinel with a MatchStatus method (as the class sentinels have) matches the
// statuses it claims and no other.
func TestAPIErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		status int
		quota  bool
		name   string
		class  ErrorClass
	}{
		{400, false, "bad request", Permanent},
		{401, false, "unauthorized", Permanent},
		{402, false, "payment required", Permanent},
		{403, false, "forbidden", Permanent},
		{404, false, "not found", Permanent},
		{409, false, "conflict", Transient},
		{422, false, "validation failed", Permanent},
		{425, false, "too early", Transient},
		{429, false, "rate limited", Transient},
		{429, true, "rate limited", Permanent},
		{500, false, "server error", Transient},
		{502, false, "server error", Transient},
		{503, false, "service unavailable", Transient},
		{504, false, "server error", Transient},
	} {
		t.Run(fmt.Sprint(tc.status, tc.quota), func(t *testing.T) {
			e := &APIError{StatusCode: tc.status, Quota: tc.quota, Code: "c", Message: "m", RequestID: "r"}
			wrapped := fmt.Errorf("fetch: %w", e)
			assert.Equal(t, tc.class, Classify(wrapped))
			assert.Equal(t, tc.class == Transient, Retryable(wrapped))
			assert.Equal(t, tc.class == Permanent, errors.Is(wrapped, ErrPermanent))
			assert.ErrorIs(t, wrapped, httpStatus(tc.status))
			assert.NotErrorIs(t, wrapped, httpStatus(tc.status+1))
			assert.Equal(t, tc.status == 425, errors.Is(wrapped, sourceerr.ErrTooEarly))
			if tc.status == 402 || tc.quota {
				assert.ErrorIs(t, wrapped, sourceerr.ErrQuotaExhausted)
			} else {
				assert.NotErrorIs(t, wrapped, sourceerr.ErrQuotaExhausted)
			}
			msg := e.Error()
			assert.True(t, strings.HasPrefix(msg, fmt.Sprintf("HTTP %d %s: c: m (request id r", tc.status, tc.name)), msg)
		})
	}
	assert.Equal(t, "HTTP 418", (&APIError{StatusCode: 418}).Error(), "a status of no class")
}

// The class sentinels of the error taxonomy are the root's (DESIGN.md,
// "Errors"): an *APIError of any source matches its status's class with
// errors.Is, through any wrapping, and no other class (503 is also a server
// error).
func TestAPIErrorMatchesClassSentinels(t *testing.T) {
	classes := []struct {
		sentinel error
		name     string
		statuses []int
	}{
		{sourceerr.ErrBadRequest, "bad request", []int{400}},
		{sourceerr.ErrUnauthorized, "unauthorized", []int{401}},
		{sourceerr.ErrPaymentRequired, "payment required", []int{402}},
		{sourceerr.ErrForbidden, "forbidden", []int{403}},
		{sourceerr.ErrNotFound, "not found", []int{404}},
		{sourceerr.ErrConflict, "conflict", []int{409}},
		{sourceerr.ErrValidation, "validation failed", []int{422}},
		{sourceerr.ErrRateLimited, "rate limited", []int{429}},
		{sourceerr.ErrServer, "server error", []int{500, 502, 503, 504, 599}},
		{sourceerr.ErrServiceUnavailable, "service unavailable", []int{503}},
	}
	for _, c := range classes {
		assert.Equal(t, c.name, c.sentinel.Error())
		for _, status := range []int{400, 401, 402, 403, 404, 409, 418, 422, 425, 429, 500, 502, 503, 504, 599} {
			wrapped := fmt.Errorf("fetch: %w", &APIError{StatusCode: status})
			want := slices.Contains(c.statuses, status)
			assert.Equal(t, want, errors.Is(wrapped, c.sentinel), "HTTP %d is %q: %v", status, c.name, want)
		}
	}
	assert.NotErrorIs(t, &JobError{Code: "JobFailed"}, sourceerr.ErrServer, "a failed job is no HTTP status")
}

// Every job error code of the IonQ API and the job states of the Quantropy API are
// classified, and the request-shape, quota and contract codes are permanent.
func TestJobErrorCodes(t *testing.T) {
	permanent := []string{"ContractExpiredError", "QuotaExhaustedError", "NotEnoughQubits", "PreflightError",
		"QuantumCircuitComplexityError", "TooLongPredictedExecutionTime", "TooManyControls", "TooManyGates",
		"TooManyShots", "UnsupportedGate"}
	transient := []string{"BillingError", "CompilationError", "DebiasingError", "InternalError", "OptimizationError",
		"QuantumComputerError", "SimulationError", "SimulationTimeout", "SystemCancel", "UnknownBillingError",
		"JobFailed", "HardwareUnavailable", "Timeout", "JobLost", "SomethingNew"}
	codes := jobCodes
	assert.Len(t, codes, len(permanent)+len(transient)-1, "every seed code is listed (SomethingNew is not)")
	for _, c := range permanent {
		e := &JobError{JobID: "j", Code: c}
		assert.Equal(t, Permanent, Classify(e), c)
		assert.True(t, codes[c], c)
	}
	for _, c := range transient {
		e := &JobError{JobID: "j", Code: c}
		assert.Equal(t, Transient, Classify(e), c)
		assert.False(t, codes[c], c)
	}
	assert.ErrorIs(t, &JobError{Code: "QuotaExhaustedError"}, sourceerr.ErrQuotaExhausted)
	assert.Equal(t, "job j1 failed: QuantumComputerError: qpu fault", (&JobError{JobID: "j1", Code: "QuantumComputerError", Message: "qpu fault"}).Error())
}

// Connection and timeout errors wrap their cause and are transient;
// cancellation is its own class, never a source failure.
func TestConnErrorsAndCancellation(t *testing.T) {
	refused := &sourceerr.ConnError{Op: "GET /v1/entropy", Err: &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}}
	assert.ErrorIs(t, refused, sourceerr.ErrTimeout)
	assert.Equal(t, Transient, Classify(refused))
	dropped := &sourceerr.ConnError{Op: "GET", Err: errors.New("EOF")}
	assert.NotErrorIs(t, dropped, sourceerr.ErrTimeout)
	deadline := &sourceerr.ConnError{Op: "GET", Err: context.DeadlineExceeded}
	assert.ErrorIs(t, deadline, sourceerr.ErrTimeout)
	assert.ErrorIs(t, deadline, context.DeadlineExceeded)
	assert.Equal(t, Canceled, Classify(fmt.Errorf("x: %w", context.Canceled)))
	assert.Equal(t, Transient, Classify(errors.New("unknown")))
	assert.Equal(t, ErrorClass(0), Classify(nil))
}

func TestRetryAfterFoundInEveryWrappedError(t *testing.T) {
	e := fmt.Errorf("wrapped: %w", &APIError{StatusCode: 429, RetryAfter: 3 * time.Second})
	assert.Equal(t, 3*time.Second, RetryAfter(e))
	assert.Zero(t, RetryAfter(errors.New("plain")))
	assert.Contains(t, e.Error(), "retry after 3s")
	// Every error err wraps: one without a Retry-After must not hide the
	// one beside it.
	joined := errors.Join(&APIError{StatusCode: 502}, &APIError{StatusCode: 429, RetryAfter: 5 * time.Second})
	assert.Equal(t, 5*time.Second, RetryAfter(joined))
}

// Contract point 9: the error of a failed read wraps ErrUnavailable and the
// cause; a breaker refusal carries the source's last error too.
func TestUnavailableWrapsCause(t *testing.T) {
	cause := &APIError{StatusCode: 401}
	u := newUnavailable(&breakerError{state: errors.New("circuit breaker is open"), last: cause})
	assert.ErrorIs(t, u, ErrUnavailable)
	assert.ErrorIs(t, u, httpStatus(401))
	var ae *APIError
	require.ErrorAs(t, u, &ae)
	assert.True(t, strings.HasPrefix(u.Error(), ErrUnavailable.Error()))
}

// httpsource.ConnError's Error must not panic when Err is nil: the Provider calls it
// on its refill goroutine (logger, Stats, fallback reasons), where a panic
// ends the program.
func TestConnErrorWithoutCauseDoesNotPanic(t *testing.T) {
	for _, e := range []*sourceerr.ConnError{{}, {Op: "GET /v1/entropy"}} {
		require.NotPanics(t, func() { _ = e.Error() }, "%#v", e)
		require.NotPanics(t, func() { _ = newUnavailable(&sourceError{name: "s", err: e}).Error() })
		var ce *sourceerr.ConnError
		require.True(t, errors.As(newUnavailable(e), &ce))
	}
}

func TestErrorItemString(t *testing.T) {
	for _, tc := range []struct {
		it   ErrorItem
		want string
	}{
		{ErrorItem{Field: "size", Message: "too big", Type: "range"}, "size: too big (range)"},
		{ErrorItem{Message: "too big"}, "too big"},
		{ErrorItem{Field: "size"}, "size"},
		{ErrorItem{Type: "range"}, "range"},
		{ErrorItem{Field: "size", Type: "range"}, "size (range)"},
		{ErrorItem{}, ""},
	} {
		assert.Equal(t, tc.want, tc.it.String())
	}
}

// An answer's Retry-After of 0 ("retry at once") is shown; an absent one is not.
func TestRetryAfterZeroToldFromAbsent(t *testing.T) {
	assert.Contains(t, (&APIError{StatusCode: 429, RetryAfterSet: true}).Error(), "retry after 0s")
	assert.NotContains(t, (&APIError{StatusCode: 429}).Error(), "retry after")
}

// A typed nil error (a nil *APIError, *JobError, *ConnError or *BatchError
// returned as an error) is an error like any other to every function that
// inspects errors: none of them panics.
func TestTypedNilErrorsDoNotPanic(t *testing.T) {
	for _, err := range []error{(*APIError)(nil), (*JobError)(nil), (*sourceerr.ConnError)(nil), (*sourceerr.BatchError)(nil)} {
		wrapped := fmt.Errorf("fetch: %w", err)
		require.NotPanics(t, func() {
			assert.NotEmpty(t, wrapped.Error())
			assert.Equal(t, Transient, Classify(wrapped))
			assert.True(t, Retryable(wrapped))
			assert.Zero(t, RetryAfter(wrapped))
			assert.NotErrorIs(t, wrapped, ErrPermanent)
			assert.NotErrorIs(t, wrapped, sourceerr.ErrTimeout)
		}, "%T", err)
	}
}
