package entropy

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// Limiter paces the requests a [Provider] sends to one source (contract point
// 7). The embedded default is golang.org/x/time/rate at [WithRateLimit]'s rate
// and burst, on the Provider's clock; a [Fleet] may put in its place a limiter
// that several processes draw from together.
type Limiter interface {
	// Wait blocks until one more request may be sent to the source, or
	// until ctx ends (then it returns ctx's error).
	Wait(ctx context.Context) error
}

// Hold is a source's Retry-After hold shared beyond one [Provider]. A Provider
// always keeps its own hold in memory (the embedded default); with a [Fleet]
// it also publishes to the Hold every Retry-After it receives (capped by
// [WithMaxRetryAfter]) and reads the Hold before each request, so that one
// replica's 429 or 503 holds every replica's requests to that source.
type Hold interface {
	// Until returns when the source's shared hold ends: the zero time (or a
	// time past) when there is none or it cannot be learnt now.
	Until(ctx context.Context) time.Time
	// Extend holds the source for d from now, unless a longer hold is in
	// place: a later, shorter hold never shortens an earlier one.
	Extend(ctx context.Context, d time.Duration)
}

// Breaker is the circuit breaker of one source. The embedded default is a
// sony/gobreaker v2 CircuitBreaker made from [WithBreaker]'s settings; a [Fleet]
// may put in its place one that several processes share, which must return
// gobreaker.ErrOpenState or gobreaker.ErrTooManyRequests when it refuses.
type Breaker interface {
	// Execute runs req (one refill, retries included) if the breaker lets
	// it, and counts its outcome.
	Execute(req func() (Block, error)) (Block, error)
	// State returns the breaker's state as this process last knew it.
	State() gobreaker.State
	// Gate is asked just before each request of a refill that Execute
	// admitted, since a fleet's breaker may change state (in another
	// process) while the refill waits for the rate limiter or backs off.
	// The [Provider] sends no request when it returns an error:
	// gobreaker.ErrOpenState when another replica opened the breaker
	// meanwhile, ErrTooManyRequests when the breaker is half-open and
	// another replica sends the probe. A breaker of one process returns nil.
	Gate(ctx context.Context) error
}

// Fleet coordinates the refills of Providers in several processes (replicas
// of one application) that share one service quota, so that contract point
// 7 holds for the whole fleet: one rate limit, one Retry-After hold and one
// breaker per source. Package redisfleet implements it on Redis.
//
// Coordination happens where the sources are asked: on the refill path, and
// in [Provider.ReadProven] and event draws, which fetch a job of their own;
// never on a read from the pool (Read, ReadLabelled, ReadSecret). When the
// fleet cannot coordinate (its store is down, slow or cut off), a Fleet keeps
// each source working on local state (a share of the rate, a local breaker)
// and says so in Status; the [Provider] reports each change in [Stats], to its
// logger and to the [WithFleetHook] hook.
type Fleet interface {
	// Coordinate returns what the fleet shares of one source of a [Provider].
	// [New] calls it once per source, in order; nil fields of the result keep
	// the Provider's embedded defaults. An error fails New.
	Coordinate(src FleetSource) (Coordination, error)
	// Status reports whether the fleet coordinates now. The [Provider] calls
	// it after each source's refill attempt, and [Provider.Stats] calls it,
	// so it must be cheap (no I/O).
	Status() FleetStatus
}

// FleetSource describes one source of a [Provider] to a [Fleet]: the Provider's
// own settings, which the fleet shares (the rate and burst of [WithRateLimit]
// become the rate and burst of the whole fleet).
type FleetSource struct {
	// Index is the source's place: 0 for the primary source, then the
	// [WithFailover] sources in order. Replicas that share a fleet list their
	// sources in the same order, so that index i names one service for all.
	Index         int
	Rate          rate.Limit // WithRateLimit's rate (rate.Inf: no limit)
	Burst         int        // WithRateLimit's burst
	MaxRetryAfter time.Duration
	// Breaker is the settings of the source's breaker as the [Provider] uses
	// them: Name, Timeout and the Provider's ReadyToTrip, IsExcluded and
	// OnStateChange (which open the breaker on a permanent error and leave
	// cancellations out).
	Breaker      gobreaker.Settings
	FetchTimeout time.Duration // WithFetchTimeout: the longest one request takes
	Attempts     int           // WithRetry's attempts per refill
	RetryMax     time.Duration // WithRetry's longest backoff
	Clock        Clock
}

// Coordination is what a [Fleet] shares of one source. A nil field keeps the
// [Provider]'s embedded default for it.
type Coordination struct {
	Limiter Limiter
	Hold    Hold
	Breaker Breaker
	// Close, if set, stops every goroutine the fleet started for this
	// source (a Hold that publishes a Retry-After its store did not take,
	// say) and returns when they have ended. [Provider.Close] calls it
	// once, after its own goroutines have ended, and returns after it; so
	// it must not wait on an unanswering store for longer than the fleet's
	// own timeouts. A call to Limiter, Hold or Breaker made after it (a
	// ReadProven that Close does not wait for) must start no goroutine.
	Close func()
}

// FleetStatus is a [Fleet]'s state: shared (coordinating) or local.
type FleetStatus struct {
	Name string // the fleet's name (its key prefix in the store)
	// Shared is true while the fleet coordinates through its store; false
	// while each replica runs on local state at its share of the rate.
	Shared bool
	Since  time.Time // when the current state began
	// Errors counts the coordination operations that failed.
	Errors uint64
	// LastError is the last coordination failure (nil if none). It never
	// holds a credential of the store.
	LastError error
}

// WithFleet makes the [Provider] one replica of a fleet that shares the rate
// limit, Retry-After hold and breaker of each source with the other replicas
// (see [Fleet] and package redisfleet). Default: none (the embedded, per-process
// limiter, hold and breaker).
func WithFleet(f Fleet) Option {
	return func(c *config) error {
		if f == nil || isNilPointer(f) {
			return errors.New("entropy: nil fleet")
		}
		c.fleet = f
		return nil
	}
}

// WithFleetHook calls f with the fleet's new status when its state changes:
// coordination lost (Shared false; LastError says why) or restored (Shared
// true). Since is when the change happened (the time of the Provider's clock
// if the fleet does not say). It runs on the goroutine of the fallback hook,
// outside every lock, one call at a time, under the same rule as
// [WithFallbackHook]'s hook. Default: none.
func WithFleetHook(f func(FleetStatus)) Option {
	return func(c *config) error { c.fleetHook = f; return nil }
}

// isNilPointer reports whether v holds a nil pointer (a typed nil).
func isNilPointer(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// rateLimiter is the embedded Limiter: x/time/rate on the Provider's clock.
type rateLimiter struct {
	lim *rate.Limiter
	clk Clock
}

func (l *rateLimiter) Wait(ctx context.Context) error {
	now := l.clk.Now()
	// Always OK: one token, and WithRateLimit keeps the burst at 1 or more.
	r := l.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		if err := sleep(ctx, l.clk, d); err != nil {
			r.CancelAt(l.clk.Now())
			return err
		}
	}
	return nil
}

// coordinate asks the fleet for the coordination of feeder f and puts what
// it gives in place of the embedded defaults.
func (f *feeder) coordinate(fl Fleet, st gobreaker.Settings) error {
	c, err := fl.Coordinate(FleetSource{
		Index:         f.idx,
		Rate:          f.cfg.limit,
		Burst:         f.cfg.burst,
		MaxRetryAfter: f.cfg.maxRetryAfter,
		Breaker:       st,
		FetchTimeout:  f.cfg.fetchTimeout,
		Attempts:      f.cfg.attempts,
		RetryMax:      f.cfg.retryMax,
		Clock:         f.cfg.clock,
	})
	if err != nil {
		return err
	}
	if c.Limiter != nil {
		f.limiter = c.Limiter
	}
	if c.Breaker != nil {
		f.cb = c.Breaker
	}
	f.shared = c.Hold
	f.fleetClose = c.Close
	return nil
}

// localBreaker is the embedded Breaker: gobreaker's, in this process only,
// whose state no other process changes.
type localBreaker struct {
	*gobreaker.CircuitBreaker[Block]
}

// Gate lets every request of an admitted refill through.
func (localBreaker) Gate(context.Context) error { return nil }

// gate asks a fleet's breaker, just before a request, whether it still lets
// the refill through (see Breaker.Gate).
func (f *feeder) gate(ctx context.Context) error { return f.cb.Gate(ctx) }

// syncHold raises the in-memory hold to the fleet's shared hold, if any.
func (f *feeder) syncHold(ctx context.Context) {
	if f.shared == nil {
		return
	}
	if u := f.shared.Until(ctx); !u.IsZero() {
		now := f.cfg.clock.Now()
		if d := u.Sub(now); d > 0 {
			f.hold(d) // capped by this Provider's WithMaxRetryAfter
		}
	}
}

// watchFleet reports a change of the fleet's state to the logger and the
// fleet hook. It runs on the refill goroutine after each source's refill
// attempt (retries included).
func (p *Provider) watchFleet() {
	fl := p.cfg.fleet
	if fl == nil {
		return
	}
	st := fl.Status()
	if st.Shared == p.fleetShared {
		return
	}
	p.fleetShared = st.Shared
	if st.Since.IsZero() {
		st.Since = p.cfg.clock.Now()
	}
	p.notes.fleet(st)
}

// fleetStatus returns the fleet's status for Stats (nil without a fleet).
func (p *Provider) fleetStatus() *FleetStatus {
	if p.cfg.fleet == nil {
		return nil
	}
	st := p.cfg.fleet.Status()
	return &st
}

// deliverFleet hands a change of the fleet's status to the hook and the
// logger (on the notifier goroutine).
func (p *Provider) deliverFleet(ev FleetStatus) {
	if p.cfg.fleetHook != nil {
		p.cfg.fleetHook(ev)
	}
	if l := p.cfg.logger; l != nil {
		if ev.Shared {
			l.Info("entropy: fleet coordination restored: shared rate limit, Retry-After hold and breaker", "fleet", ev.Name)
		} else {
			reason := ""
			if ev.LastError != nil {
				reason = ev.LastError.Error()
			}
			l.Warn("entropy: fleet coordination lost: this replica runs on its local share of the rate and a local breaker", "fleet", ev.Name, "error", reason)
		}
	}
}
