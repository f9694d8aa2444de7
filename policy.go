package entropy

import (
	"fmt"
	"time"
)

// Policy says what a read does when the pool cannot serve it with verifiable
// bytes (contract point 9).
type Policy int

const (
	// Degrade serves [crypto/rand] bytes, labelled non-verifiable with the
	// reason. Under Degrade, [Provider.Read] returns no error (like crypto/rand) until
	// the [Provider] is closed: then [ErrClosed].
	Degrade Policy = iota
	// Defer waits for verifiable entropy until the context ends, then returns
	// the context's error. [Provider.Read] (which has no context) waits until [Provider.Close].
	Defer
	// Fail returns at once an error wrapping [ErrUnavailable] and the cause
	// (after the warm start, see [WithWarmStart]).
	Fail
)

// String returns "degrade", "defer" or "fail".
func (p Policy) String() string {
	switch p {
	case Degrade:
		return "degrade"
	case Defer:
		return "defer"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// WithPolicy sets what a read does when the pool cannot serve it with
// verifiable bytes. Default: [Degrade].
func WithPolicy(p Policy) Option {
	return func(c *config) error {
		if p < Degrade || p > Fail {
			return fmt.Errorf("entropy: unknown policy %d", int(p))
		}
		c.policy = p
		return nil
	}
}

// WithWarmStart sets how long, after [New], a read that the pool cannot serve
// waits for the first block before the policy applies. The first refill
// starts in New; over a healthy source its block lands within a request's
// time, so the first [Provider.Read], [Provider.ReadLabelled] or [Provider.ReadSecret] after New serves
// verifiable (ReadSecret: derived) bytes instead of falling back at once. The wait ends as soon as
// the first block lands, the first refill round fails (an outage or a
// misconfiguration: the policy then applies at once), a Retry-After holds
// every source until after d has passed (no block could land in time), d
// has passed since New, the read's context ends, or [Provider.Close]. Once it is over, reads never
// wait for it again: a read the pool serves never waits at all (contract
// point 5). 0 turns the warm start off: reads right after New apply the
// policy at once. Default: 2 s.
func WithWarmStart(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("entropy: warm start %v must not be negative", d)
		}
		c.warmStart = d
		return nil
	}
}
