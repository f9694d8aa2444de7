package httpsource

import "github.com/provenrand/entropy"

// Class sentinels of HTTP statuses, matched with errors.Is by an
// *entropy.APIError (and by any error that wraps one) whose status is in the
// class, whichever source returned it: this package, package drandsource's
// relays or another. ErrServiceUnavailable (503) is also an ErrServer. They
// are the root package's sentinels (ErrRateLimited is entropy.ErrRateLimited),
// under the names this package has always given them.
//
// The classes that the retry and breaker logic act on are the root package's
// too: entropy.ErrPermanent, entropy.ErrQuotaExhausted (402, and a 429 read as
// an exhausted quota), entropy.ErrTooEarly (425) and entropy.ErrTimeout.
var (
	ErrBadRequest         = entropy.ErrBadRequest
	ErrUnauthorized       = entropy.ErrUnauthorized
	ErrPaymentRequired    = entropy.ErrPaymentRequired // insufficient balance
	ErrForbidden          = entropy.ErrForbidden
	ErrNotFound           = entropy.ErrNotFound
	ErrConflict           = entropy.ErrConflict // resource busy
	ErrValidation         = entropy.ErrValidation
	ErrRateLimited        = entropy.ErrRateLimited
	ErrServer             = entropy.ErrServer
	ErrServiceUnavailable = entropy.ErrServiceUnavailable
)
