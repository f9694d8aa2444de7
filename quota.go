package entropy

import (
	"sync"
	"time"
)

// Quota is what a service last said is left of the caller's allowance:
// X-RateLimit-Remaining / -Limit / -Reset headers (or the IETF RateLimit-*
// ones), random.org's requestsLeft and bitsLeft, a 402 answer's balance.
// A figure the service did not give is -1; Updated is zero when the source
// never reported a quota.
type Quota struct {
	// RequestsRemaining is how many requests the current window still
	// allows (X-RateLimit-Remaining, requestsLeft).
	RequestsRemaining int64
	// RequestsLimit is how many the window allows in all (X-RateLimit-Limit).
	RequestsLimit int64
	// Reset is when the window starts afresh (X-RateLimit-Reset); zero if
	// not said.
	Reset time.Time
	// BytesRemaining is the entropy still paid for, in bytes (random.org's
	// bitsLeft / 8, a balance in bytes).
	BytesRemaining int64
	// Balance is the balance a 402 answer (or a header) gave, in the
	// service's own unit (credits, tokens); -1 if not said.
	Balance float64
	// Exhausted: the service answered that the balance or quota is spent
	// (402, or a remaining of 0).
	Exhausted bool
	// Updated is when the source read these figures (zero: never).
	Updated time.Time
}

// Known reports whether the source ever reported a quota.
func (q Quota) Known() bool { return !q.Updated.IsZero() }

// quotaReporter is a [Source] that reads what the service says is left of
// its quota (package httpsource does). The [Provider] asks it after every
// request, shows the answer in SourceStats.Quota, and paces its requests to
// the source so that what is left of a window lasts until the window's
// reset, rather than running into the limit (see quotaState.delay).
type quotaReporter interface {
	// Quota returns the figures of the last answer that had any, and
	// whether there was one.
	Quota() (Quota, bool)
}

// quotaState is a feeder's last quota report and the pacing it implies.
type quotaState struct {
	mu       sync.Mutex
	q        Quota
	lastSent time.Time // when the last request to the source went out
}

// note records a report of src, if it gives one.
func (qs *quotaState) note(src Source) {
	r, ok := src.(quotaReporter)
	if !ok {
		return
	}
	q, ok := r.Quota()
	if !ok || q.Updated.IsZero() {
		return
	}
	qs.mu.Lock()
	qs.q = q
	qs.mu.Unlock()
}

// get returns the last report (zero Quota if none).
func (qs *quotaState) get() Quota {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return qs.q
}

// sent records that a request goes out now.
func (qs *quotaState) sent(now time.Time) {
	qs.mu.Lock()
	qs.lastSent = now
	qs.mu.Unlock()
}

// delay is how long the next request must wait at now so that the
// requests left in the window are spread evenly until its reset: with r
// requests left and the reset d away, requests go out at least d/r apart
// (counted from the last one sent); with none left, not before the reset.
// Without a remaining count and a reset in the future there is no pacing.
func (qs *quotaState) delay(now time.Time) time.Duration {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	q := qs.q
	if q.RequestsRemaining < 0 || q.Reset.IsZero() {
		return 0
	}
	left := q.Reset.Sub(now)
	if left <= 0 {
		return 0 // the window has started afresh; the next answer says more
	}
	if q.RequestsRemaining == 0 {
		return left
	}
	spacing := left / time.Duration(q.RequestsRemaining)
	if qs.lastSent.IsZero() {
		return 0
	}
	return max(qs.lastSent.Add(spacing).Sub(now), 0)
}
