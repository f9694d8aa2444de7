// Package retryafter reads the Retry-After header of an HTTP answer, for the
// sources and the simulator alike, so that they agree on every value.
package retryafter

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads v, a Retry-After value: delay-seconds (a decimal number, a
// fraction allowed) or an HTTP-date, taken relative to now. An absent,
// unreadable, zero, negative or past value gives 0.
//
// A value too big for a time.Duration, however it is spelled (400 digits,
// 1e400), gives the longest time.Duration: a long hold is passed on, never
// dropped, and whoever honours it caps it (entropy.WithMaxRetryAfter).
func Parse(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if d, ok := Seconds(v); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Seconds reads v as delay-seconds. ok is false if v is not a number; a
// number too big for a time.Duration gives the longest one, and zero,
// negative or NaN values give 0.
func Seconds(v string) (d time.Duration, ok bool) {
	secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		// ErrRange comes with ±Inf (too big) or 0 (too small): both read.
		return 0, false
	}
	const maxSecs = float64(math.MaxInt64) / float64(time.Second)
	switch {
	case math.IsNaN(secs) || secs <= 0:
		return 0, true
	case secs >= maxSecs: // +Inf too
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(secs * float64(time.Second)), true
}
