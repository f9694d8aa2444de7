package httpsource

// Class sentinels of HTTP statuses, matched with errors.Is by an
// *entropy.APIError (and by any error that wraps one) whose status is in the
// class, whichever source returned it: this package, package drandsource's
// relays or another. ErrServiceUnavailable (503) is also an ErrServer.
//
// The classes that the retry and breaker logic act on are the root package's:
// entropy.ErrPermanent, entropy.ErrQuotaExhausted (402, and a 429 read as an
// exhausted quota), entropy.ErrTooEarly (425) and entropy.ErrTimeout.
var (
	ErrBadRequest         error = &statusClass{"bad request", 400, 400}
	ErrUnauthorized       error = &statusClass{"unauthorized", 401, 401}
	ErrPaymentRequired    error = &statusClass{"payment required", 402, 402} // insufficient balance
	ErrForbidden          error = &statusClass{"forbidden", 403, 403}
	ErrNotFound           error = &statusClass{"not found", 404, 404}
	ErrConflict           error = &statusClass{"conflict", 409, 409} // resource busy
	ErrValidation         error = &statusClass{"validation failed", 422, 422}
	ErrRateLimited        error = &statusClass{"rate limited", 429, 429}
	ErrServer             error = &statusClass{"server error", 500, 599}
	ErrServiceUnavailable error = &statusClass{"service unavailable", 503, 503}
)

// statusClass is a class of HTTP statuses, from lo to hi.
type statusClass struct {
	text   string
	lo, hi int
}

// Error returns the class's name, e.g. "rate limited".
func (c *statusClass) Error() string { return c.text }

// MatchStatus reports whether status is in the class; *entropy.APIError's
// Is method calls it.
func (c *statusClass) MatchStatus(status int) bool { return status >= c.lo && status <= c.hi }
