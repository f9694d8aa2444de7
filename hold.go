package entropy

import (
	"context"
	"math"
	"time"
)

// hold records a Retry-After: no request to this source before now+d
// (capped by the configured maximum). A later, shorter hold never shortens
// an earlier one.
func (f *feeder) hold(d time.Duration) {
	if d > f.cfg.maxRetryAfter {
		d = f.cfg.maxRetryAfter
	}
	now := f.cfg.clock.Now().UnixNano()
	until := now + int64(d)
	if until < now { // past the year 2262 (a cap near the longest Duration)
		until = math.MaxInt64
	}
	for {
		cur := f.holdUntil.Load()
		if cur >= until || f.holdUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// holdTime returns the end of the Retry-After hold (zero if none).
func (f *feeder) holdTime() time.Time {
	if h := f.holdUntil.Load(); h != 0 {
		return time.Unix(0, h)
	}
	return time.Time{}
}

// held reports whether a Retry-After holds the source now.
func (f *feeder) held() bool {
	return f.holdUntil.Load() > f.cfg.clock.Now().UnixNano()
}

// heldBehind reports whether fill should pass this source over: a
// Retry-After holds it and one of the sources after it is free to ask.
// With a fleet, the hold is the fleet's too (another replica's 429), read
// first when there is a later source to pass to.
func (f *feeder) heldBehind(ctx context.Context, rest []*feeder) bool {
	if len(rest) == 0 {
		return false
	}
	f.syncHold(ctx)
	if !f.held() {
		return false
	}
	for _, g := range rest {
		if !g.held() {
			return true
		}
	}
	return false
}

// heldError is the error of a source passed over while a Retry-After holds
// it; it unwraps to the source's last error (the one that set the hold).
type heldError struct {
	until time.Time
	last  error
}

func (e *heldError) Error() string {
	msg := "held back by Retry-After until " + e.until.UTC().Format(time.RFC3339)
	if e.last != nil {
		msg += ": " + e.last.Error()
	}
	return msg
}

func (e *heldError) Unwrap() error { return e.last }
