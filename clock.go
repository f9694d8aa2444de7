package entropy

import (
	"context"
	"time"
)

// Clock is the time the refill path uses for backoff, Retry-After, rate
// limiting and episode times. Tests pass their own with [WithClock]. Reads
// from the pool consult it only when a fallback episode starts or ends,
// never per read; ReadProven and event draws, which make requests, use it
// on every call.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// NowFunc is a [Clock] that tells the time by calling the function and
// waits (After) on real timers. It adapts a plain time function (a fixed
// instant in a test, a clock of your own) to every [WithClock] of the module:
// entropy, draw, journal, pgjournal, sim, httpsource, drandsource and
// entropymetrics. A nil NowFunc is the system clock.
type NowFunc func() time.Time

// Now returns f(), or time.Now() when f is nil.
func (f NowFunc) Now() time.Time {
	if f == nil {
		return time.Now()
	}
	return f()
}

// After waits d on a real timer.
func (f NowFunc) After(d time.Duration) <-chan time.Time { return time.After(d) }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// sleep waits d on clk, or until ctx ends (then it returns ctx.Err()).
func sleep(ctx context.Context, clk Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-clk.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
