// Package redisfleet lets the Providers of several processes (replicas of one
// application that share one API key) respect one service quota together,
// through one Redis: per source, one GCRA rate limit that all replicas draw
// from, one Retry-After hold, and one circuit breaker (gobreaker v2's
// DistributedCircuitBreaker), so that contract point 7 holds for the fleet.
//
//	client, err := redisfleet.NewClient("redis://redis:6379/0")
//	…
//	p, err := entropy.New(src,
//		entropy.WithRateLimit(20, 4), // 20 requests/s for the whole fleet
//		entropy.WithFleet(redisfleet.New(client, redisfleet.WithName("prod"), redisfleet.WithFleetSize(3))))
//
// Redis is coordination, not provenance: nothing about labels changes, and
// Redis is touched on the refill path only, never by a read. When Redis is
// down, slow or cut off, each replica goes on alone with a local limiter at
// its share of the rate (WithLocalShare; 1/N for WithFleetSize(N)) and a
// local breaker, says so in the Provider's Stats, logger and WithFleetHook,
// and returns to the shared state when Redis answers again, keeping to its
// local share as well for one more second (or the burst's time at the
// rate), since Redis knows nothing of what the replicas sent alone.
//
// Every replica of a fleet gives the same WithName, the same rate limit and
// its sources in the same order: a source's keys are named after the fleet
// and the source's place (0 for the primary, then the failovers).
package redisfleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/names"
)

// Defaults of a Fleet's options.
const (
	DefaultName          = "entropy"              // key prefix
	DefaultTimeout       = 250 * time.Millisecond // per Redis operation
	DefaultRetryInterval = time.Second            // a replica on local state tries Redis again after this
)

// An Option configures a Fleet. An invalid option makes entropy.New fail
// with its error (New of this package returns no error, so that it can be
// written inside entropy.WithFleet).
type Option func(*Fleet) error

// WithName sets the fleet's name, the prefix of every Redis key it uses.
// Replicas that share a quota use the same name; separate quotas (another
// API key, a staging fleet) use different names. The name is shown in
// Stats, logs and status lines, so it must also be a name by the rule of
// job IDs and source names (docs/protocol.md, "Names": printable, no bidi
// override or line separator). Default: DefaultName.
func WithName(name string) Option {
	return func(f *Fleet) error {
		if name == "" || len(name) > 200 || strings.ContainsAny(name, " \t\r\n{}") {
			return fmt.Errorf("redisfleet: fleet name %q must be 1 to 200 characters without spaces or braces", name)
		}
		if err := names.Check(name); err != nil {
			return fmt.Errorf("redisfleet: fleet name: %w (docs/protocol.md, \"Names\")", err)
		}
		f.name = name
		return nil
	}
}

// WithFleetSize declares how many replicas the fleet has. It sets the local
// share to 1/n: while Redis is unreachable, each replica sends at most 1/n of
// the rate, so that the fleet stays within the quota. Default: 1 (a replica
// alone keeps the whole rate).
func WithFleetSize(n int) Option {
	return func(f *Fleet) error {
		if n < 1 {
			return fmt.Errorf("redisfleet: fleet size %d must be at least 1", n)
		}
		f.share = 1 / float64(n)
		return nil
	}
}

// WithLocalShare sets the share (0 < share ≤ 1) of the configured rate and
// burst that this replica uses while Redis is unreachable (the burst rounds
// down, and is at least 1). It overrides WithFleetSize's 1/n.
func WithLocalShare(share float64) Option {
	return func(f *Fleet) error {
		if !(share > 0 && share <= 1) {
			return fmt.Errorf("redisfleet: local share %v must be in (0, 1]", share)
		}
		f.share = share
		return nil
	}
}

// WithTimeout bounds each Redis operation; one that takes longer counts as a
// coordination failure and the replica goes on local state. It takes effect
// only with a client that honours context deadlines (redis.Options'
// ContextTimeoutEnabled, as NewClient sets it). Default: DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(f *Fleet) error {
		if d <= 0 {
			return fmt.Errorf("redisfleet: timeout %v must be positive", d)
		}
		f.timeout = d
		return nil
	}
}

// WithRetryInterval sets how long a replica on local state waits before it
// asks Redis again. Default: DefaultRetryInterval.
func WithRetryInterval(d time.Duration) Option {
	return func(f *Fleet) error {
		if d <= 0 {
			return fmt.Errorf("redisfleet: retry interval %v must be positive", d)
		}
		f.retry = d
		return nil
	}
}

// Fleet is an entropy.Fleet on Redis. Make it with New and give it to
// entropy.WithFleet; one Fleet may serve several Providers of a process.
type Fleet struct {
	rdb     redis.UniversalClient
	lim     *redis_rate.Limiter
	name    string
	share   float64
	timeout time.Duration
	retry   time.Duration
	err     error // from New's options, reported by Coordinate

	errs atomic.Uint64

	mu       sync.Mutex
	shared   bool
	since    time.Time
	restored time.Time // when the fleet last came back from local state
	nextTry  time.Time // while local: when to ask Redis again
	lastErr  error
}

// New returns a Fleet that coordinates through client. It does not touch
// Redis; a bad option or a nil client is reported by entropy.New.
func New(client redis.UniversalClient, opts ...Option) *Fleet {
	f := &Fleet{
		rdb:     client,
		name:    DefaultName,
		share:   1,
		timeout: DefaultTimeout,
		retry:   DefaultRetryInterval,
		shared:  true,
		since:   time.Now(),
	}
	if client == nil || isNilPointer(client) {
		f.err = errors.New("redisfleet: nil Redis client")
	} else {
		f.lim = redis_rate.NewLimiter(client)
	}
	for i, o := range opts {
		if o == nil {
			f.err = errors.Join(f.err, fmt.Errorf("redisfleet: option %d is nil", i))
			continue
		}
		if err := o(f); err != nil {
			f.err = errors.Join(f.err, err)
		}
	}
	return f
}

// isNilPointer reports whether v holds a nil pointer (a typed nil client).
func isNilPointer(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// Err returns the error of New's options or client, if any: the error that
// entropy.New reports when given this Fleet.
func (f *Fleet) Err() error { return f.err }

// Name returns the fleet's name.
func (f *Fleet) Name() string { return f.name }

// Status reports whether the fleet coordinates through Redis now. It does no
// I/O.
func (f *Fleet) Status() entropy.FleetStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return entropy.FleetStatus{Name: f.name, Shared: f.shared, Since: f.since, Errors: f.errs.Load(), LastError: f.lastErr}
}

// Coordinate returns the shared limiter, hold and breaker of one source.
func (f *Fleet) Coordinate(src entropy.FleetSource) (entropy.Coordination, error) {
	if f.err != nil {
		return entropy.Coordination{}, f.err
	}
	if f.lim == nil {
		return entropy.Coordination{}, errors.New("redisfleet: a Fleet must be made by New")
	}
	if src.Clock == nil {
		return entropy.Coordination{}, errors.New("redisfleet: the source has no clock")
	}
	s := &source{
		f:     f,
		key:   fmt.Sprintf("%s:%d", f.name, src.Index),
		clk:   src.Clock,
		maxRA: src.MaxRetryAfter,
	}
	var c entropy.Coordination
	if src.Rate != rate.Inf {
		if !(src.Rate > 0) || src.Burst < 1 {
			return c, fmt.Errorf("redisfleet: rate %v with burst %d cannot be shared", src.Rate, src.Burst)
		}
		// One request every 1/rate seconds, bursts of burst: x/time/rate's
		// meaning, in redis_rate's integer terms.
		period := time.Duration(float64(time.Second) / float64(src.Rate))
		if period < time.Microsecond {
			return c, fmt.Errorf("redisfleet: rate %v is above what a shared limit can pace (1 per microsecond)", src.Rate)
		}
		s.limit = redis_rate.Limit{Rate: 1, Period: period, Burst: src.Burst}
		localBurst := max(1, int(math.Floor(float64(src.Burst)*f.share)))
		s.local = rate.NewLimiter(src.Rate*rate.Limit(f.share), localBurst)
		s.settle = max(time.Second, time.Duration(float64(src.Burst)/float64(src.Rate)*float64(time.Second)))
		c.Limiter = &limiter{s}
	}
	h := newHold(s)
	c.Hold, c.Close = h, h.Close
	b, err := newBreaker(s, src)
	if err != nil {
		return c, err
	}
	c.Breaker = b
	return c, nil
}

// errLocal is the answer of an operation not tried because the fleet is on
// local state until its next try.
var errLocal = errors.New("redisfleet: on local state")

// do runs one Redis operation under the fleet's timeout, unless the fleet is
// on local state and its next try has not come. A failure (other than
// redis.Nil, or the caller's own cancellation) puts the fleet on local
// state; a success puts it back on shared state.
func (f *Fleet) do(ctx context.Context, op func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	if !f.shared && time.Now().Before(f.nextTry) {
		f.mu.Unlock()
		return errLocal
	}
	f.mu.Unlock()
	c, cancel := context.WithTimeout(ctx, f.timeout)
	err := op(c)
	cancel()
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		f.ok()
	case ctx.Err() != nil:
		return ctx.Err() // the caller gave up: not the store's fault
	default:
		f.failed(err)
	}
	return err
}

func (f *Fleet) ok() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.shared {
		f.shared, f.since = true, time.Now()
		f.restored = f.since
	}
}

// restoredWithin reports whether the fleet came back from local state less
// than d ago.
func (f *Fleet) restoredWithin(d time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.restored.IsZero() && time.Since(f.restored) < d
}

func (f *Fleet) failed(err error) {
	f.errs.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.lastErr = fmt.Errorf("redisfleet: %w", err)
	if f.shared {
		f.shared, f.since = false, now
	}
	f.nextTry = now.Add(f.retry)
}

// usable reports whether an operation would be tried now.
func (f *Fleet) usable() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.shared || !time.Now().Before(f.nextTry)
}

// source is the coordination of one source of one Provider.
type source struct {
	f     *Fleet
	key   string // "<fleet>:<index>"
	clk   entropy.Clock
	maxRA time.Duration
	limit redis_rate.Limit
	local *rate.Limiter // this replica's share, while Redis is unreachable
	// settle is how long after the fleet comes back from local state a
	// replica keeps to its local share as well: a second, or the time the
	// burst takes at the rate if longer.
	settle time.Duration
}

// limiter is the shared GCRA limit (redis_rate), with a local limiter at the
// replica's share while Redis is unreachable.
type limiter struct{ s *source }

// Wait blocks until the fleet's limit lets one more request through.
func (l *limiter) Wait(ctx context.Context) error {
	s := l.s
	// Back from local state, Redis grants a full burst, knowing nothing of
	// what each replica sent on its own in the last moments, which the
	// service still counts. Until that has passed, a replica keeps to its
	// local share first, then asks Redis, so that Redis's count follows
	// what is sent.
	settling := s.f.restoredWithin(s.settle)
	if settling {
		if err := s.localWait(ctx); err != nil {
			return err
		}
	}
	for {
		var res *redis_rate.Result
		err := s.f.do(ctx, func(c context.Context) error {
			r, err := s.f.lim.Allow(c, s.key, s.limit)
			res = r
			return err
		})
		if err == nil {
			if res.Allowed > 0 {
				if !settling {
					// The local limiter spends a token too when it has
					// one, so that a replica that goes local does not
					// start with a full burst on top of what the fleet
					// just sent.
					s.local.AllowN(s.clk.Now(), 1)
				}
				return nil
			}
			if err := sleep(ctx, s.clk, max(res.RetryAfter, time.Millisecond)); err != nil {
				return err
			}
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.localWait(ctx)
	}
}

// localWait paces a request by the replica's local share of the rate.
func (s *source) localWait(ctx context.Context) error {
	now := s.clk.Now()
	r := s.local.ReserveN(now, 1)
	if !r.OK() {
		return errors.New("redisfleet: local limiter refuses every request")
	}
	if d := r.DelayFrom(now); d > 0 {
		if err := sleep(ctx, s.clk, d); err != nil {
			r.CancelAt(s.clk.Now())
			return err
		}
	}
	return nil
}

// extendHold sets the hold key to expire in ms milliseconds unless it
// expires later already; its value is the hold's end (Unix milliseconds) for
// whoever reads Redis. The expiry, not the value, is what replicas read, so
// that their clocks need not agree.
var extendHold = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
  return 1
end
return 0
`)

// hold is the fleet's Retry-After hold of one source: a key whose expiry is
// the end of the hold.
//
// Its one goroutine is publishLater's, which runs under the hold's own
// context (life), not a caller's: a refill's or a ReadProven's context may
// end, or outlive the Provider, while the hold waits for Redis. mu guards
// publishing, closed and the WaitGroup's Add, so that Close, once it has
// set closed, waits for every goroutine there will be.
type hold struct {
	s       *source
	pending atomic.Int64 // unix nanos (source clock) of a hold Redis has not taken yet

	life context.Context    // ends with Close
	stop context.CancelFunc // ends life
	wg   sync.WaitGroup     // publishLater's goroutine

	mu         sync.Mutex
	publishing bool // publishLater's goroutine runs
	closed     bool // Close was called: no goroutine starts
}

// newHold returns the hold of source s.
func newHold(s *source) *hold {
	h := &hold{s: s}
	h.life, h.stop = context.WithCancel(context.Background())
	return h
}

// Close stops publishLater's goroutine, if it runs, and waits for it: it
// ends at once if it is waiting for its next try, else when its Redis
// operation ends, within the fleet's timeout (WithTimeout) with a client
// that honours context deadlines (NewClient's), or the client's own read
// and write timeouts otherwise. A hold Redis has not taken by then is
// dropped: the Provider it belonged to sends nothing more. The Provider's
// Close calls it (entropy.Coordination's Close).
func (h *hold) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.stop()
	h.wg.Wait()
}

// Until returns when the fleet's hold ends, capped by this Provider's
// WithMaxRetryAfter; zero if there is none or Redis cannot say.
func (h *hold) Until(ctx context.Context) time.Time {
	s := h.s
	var ttl time.Duration
	err := s.f.do(ctx, func(c context.Context) error {
		d, err := s.f.rdb.PTTL(c, s.key+":hold").Result()
		ttl = d
		return err
	})
	if err != nil {
		return time.Time{}
	}
	now := s.clk.Now()
	if p := h.pending.Load(); p != 0 {
		// A hold received while Redis was unreachable: the fleet learns it
		// now, for what is left of it.
		h.pending.Store(0)
		if left := time.Duration(p - now.UnixNano()); left > 0 {
			h.Extend(ctx, left)
			ttl = max(ttl, left)
		}
	}
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(min(ttl, s.maxRA))
}

// Extend holds every replica's requests to the source for d.
func (h *hold) Extend(ctx context.Context, d time.Duration) {
	s := h.s
	if d <= 0 {
		return
	}
	d = min(d, s.maxRA)
	ms := max(1, int64((d+time.Millisecond-1)/time.Millisecond))
	until := s.clk.Now().Add(d)
	err := s.f.do(ctx, func(c context.Context) error {
		return extendHold.Run(c, s.f.rdb, []string{s.key + ":hold"}, ms, until.UnixMilli()).Err()
	})
	if err != nil && ctx.Err() == nil {
		for {
			cur := h.pending.Load()
			if cur >= until.UnixNano() || h.pending.CompareAndSwap(cur, until.UnixNano()) {
				break
			}
		}
		h.publishLater()
	}
}

// publishLater hands the fleet a hold Redis did not take, as soon as Redis
// answers again: the Provider that received it sleeps through the hold and
// asks nothing of the fleet meanwhile, while the other replicas, which
// Redis may never have stopped answering, would go on sending. It tries
// every retry interval, on a goroutine of its own, until Redis takes the
// hold, the hold has passed, or the hold is closed (its Provider is).
func (h *hold) publishLater() {
	h.mu.Lock()
	if h.closed || h.publishing {
		h.mu.Unlock()
		return
	}
	h.publishing = true
	h.wg.Add(1)
	h.mu.Unlock()
	s, ctx := h.s, h.life
	go func() {
		defer h.wg.Done()
		defer func() {
			h.mu.Lock()
			h.publishing = false
			h.mu.Unlock()
		}()
		for {
			p := h.pending.Load()
			if p == 0 {
				return
			}
			left := time.Duration(p - s.clk.Now().UnixNano())
			if left <= 0 {
				h.pending.CompareAndSwap(p, 0)
				return
			}
			if sleep(ctx, s.clk, min(s.f.retry, left)) != nil {
				return
			}
			if s.f.usable() {
				h.Until(ctx) // publishes the pending hold when Redis answers
			}
		}
	}()
}

// sleep waits d on clk, or until ctx ends.
func sleep(ctx context.Context, clk entropy.Clock, d time.Duration) error {
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

// NewClient returns a client for the Redis at rawURL
// (redis://[user:password@]host:port/db, or rediss:// for TLS) set up for a
// fleet: context deadlines honoured (so that WithTimeout bounds every
// operation), short dial, read and write timeouts, and no retry of a failed
// command (the fleet goes on local state instead). The error never holds the
// password.
func NewClient(rawURL string) (*redis.Client, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		u, uerr := url.Parse(rawURL)
		if uerr != nil {
			// The parser's error quotes the URL, or a piece of it that may
			// be the password (a bad port, a bad escape): none of its text.
			return nil, errors.New("redisfleet: bad Redis URL: not a valid URL")
		}
		msg := err.Error()
		if u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
		return nil, fmt.Errorf("redisfleet: bad Redis URL: %s", msg)
	}
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = 500 * time.Millisecond
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.MaxRetries = -1
	return redis.NewClient(opt), nil
}
