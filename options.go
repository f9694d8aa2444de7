package entropy

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"time"

	"github.com/provenrand/entropy/health"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// Defaults of a Provider's options; each option's comment repeats its own.
const (
	defaultBufferSize    = 64 << 10      // bytes held in the pool
	defaultFetchSize     = 64 << 10      // bytes asked of the source per request (the reference protocol's largest)
	defaultRate          = rate.Limit(5) // requests per second to each source
	defaultBurst         = 2             // requests the limiter lets through at once
	defaultRetryAttempts = 4             // attempts per refill (first try included)
	defaultRetryBase     = 100 * time.Millisecond
	defaultRetryMax      = 2 * time.Second
	defaultMaxRetryAfter = time.Minute      // longest Retry-After the Provider honours
	defaultFetchTimeout  = 15 * time.Second // per request
	defaultBreakerOpen   = 2 * time.Second  // breaker open → half-open
	defaultTripAfter     = 3                // consecutive failed refills that open the breaker
	defaultWarmStart     = 2 * time.Second  // how long reads wait for the first block after New
	defaultBatch         = 4                // most blocks per refill request to a batcher
)

// An Option configures a [Provider]. When an option is given twice, the later
// one wins ([WithFailover] adds to the list instead).
type Option func(*config) error

type config struct {
	policy        Policy
	bufferSize    int
	fetchSize     int
	batch         int // WithBatch: most blocks per refill request; 1 is none
	breaker       gobreaker.Settings
	limit         rate.Limit
	burst         int
	attempts      int
	retryBase     time.Duration
	retryMax      time.Duration
	maxRetryAfter time.Duration
	fetchTimeout  time.Duration
	logger        *slog.Logger
	hook          func(FallbackEpisode)
	journal       Journal
	clock         Clock
	failover      []Source
	shards        int
	health        *health.Config
	minFetch      int // the smallest block the health tests judge; New sets it
	derivedRead   bool
	warmStart     time.Duration
	fleet         Fleet
	fleetHook     func(FleetStatus)
}

func defaultConfig() config {
	return config{
		policy:        Degrade,
		bufferSize:    defaultBufferSize,
		fetchSize:     defaultFetchSize,
		batch:         defaultBatch,
		limit:         defaultRate,
		burst:         defaultBurst,
		attempts:      defaultRetryAttempts,
		retryBase:     defaultRetryBase,
		retryMax:      defaultRetryMax,
		maxRetryAfter: defaultMaxRetryAfter,
		fetchTimeout:  defaultFetchTimeout,
		breaker:       gobreaker.Settings{Timeout: defaultBreakerOpen},
		clock:         realClock{},
		warmStart:     defaultWarmStart,
	}
}

// WithBreaker sets the circuit breaker of each source (sony/gobreaker v2).
// Zero fields take gobreaker's defaults, except Timeout (open → half-open),
// which defaults to 2 s so that a recovered source is
// used again within seconds, and ReadyToTrip, which defaults to
// 3 consecutive failed refills (each one already retried).
// Whatever ReadyToTrip says, a permanent error opens the breaker at once, and
// a cancelled context, the caller's or [Provider.Close]'s, never counts
// (IsExcluded); a caller's deadline that passes during a request counts as
// a timeout. A custom
// OnStateChange runs under gobreaker's lock: it must not block.
//
// Negative durations are an error, and so is a BucketPeriod without an
// Interval (gobreaker would ignore it) or one that cuts the Interval into
// more than 4096 buckets, the last one counted whole (gobreaker rounds the
// Interval up, and allocates every bucket, per source).
func WithBreaker(s gobreaker.Settings) Option {
	return func(c *config) error {
		if err := checkBreakerSettings(s); err != nil {
			return err
		}
		if s.Timeout == 0 {
			s.Timeout = defaultBreakerOpen
		}
		c.breaker = s
		return nil
	}
}

// WithRateLimit caps the requests the [Provider] sends to each source at r per
// second with bursts of burst (golang.org/x/time/rate), retries included.
// (A source that polls a queued job inside one Fetch paces its polls itself;
// see httpsource.WithPollInterval.) [rate.Inf] removes the limit (for fast
// local sources). r must be positive, and burst at least 1 unless r is
// rate.Inf. Default: 5 requests a second, burst 2.
func WithRateLimit(r rate.Limit, burst int) Option {
	return func(c *config) error {
		if r < 0 || math.IsNaN(float64(r)) {
			return fmt.Errorf("entropy: rate limit %v is not a rate", r)
		}
		if r != rate.Inf && burst < 1 {
			return fmt.Errorf("entropy: rate limit burst %d must be at least 1", burst)
		}
		if r == 0 {
			return errors.New("entropy: a rate limit of 0 would never let a request through")
		}
		c.limit, c.burst = r, max(burst, 1)
		return nil
	}
}

// WithBufferSize sets how many checked bytes the pool holds, at least twice
// the smallest block the health tests can judge (56 bytes with
// [health.DefaultConfig]; a smaller size is raised to that). Reads larger
// than the pool are served verifiably only under [Defer] (which gathers bytes
// as they arrive); under [Degrade] they fall back, under [Fail] they fail.
// Default: 64 KiB.
func WithBufferSize(bytes int) Option {
	return func(c *config) error {
		if bytes < 1 {
			return fmt.Errorf("entropy: buffer size %d must be positive", bytes)
		}
		c.bufferSize = bytes
		return nil
	}
}

// WithFetchSize sets how many bytes one request asks of a source (capped by
// the free room in the pool). A request never asks for fewer bytes than the
// health tests need to judge a block (28 with [health.DefaultConfig]), however
// small this size or the room: the bytes a read does not take are served to
// later reads. Default: 64 KiB, the largest request of
// the reference protocol (package httpsource), so that a request, its
// signature check and its job are paid once per 64 KiB rather than per
// 16 KiB, and the empty default pool fills in one request. A source that
// gives less returns less (a drand round is 32 bytes): the [Provider] asks
// again while the pool has room. Set it lower for a service whose
// requests are capped below 64 KiB.
func WithFetchSize(bytes int) Option {
	return func(c *config) error {
		if bytes < 1 {
			return fmt.Errorf("entropy: fetch size %d must be positive", bytes)
		}
		c.fetchSize = bytes
		return nil
	}
}

// WithBatch sets how many blocks of the fetch size the [Provider] asks for in
// one refill request to a source that offers batches: as many as the pool
// has room for, at most maxItems. A source offers batches (package
// httpsource's Source does) with two methods:
//
//	// FetchBatch asks for one block of each size in one request and returns
//	// the blocks that passed every check, in the order of sizes; if some
//	// items failed, with a *httpsource.BatchError listing them by index.
//	// Any other error fails the whole request (no blocks), and one that
//	// matches httpsource.ErrBatchUnsupported says there is no batch request.
//	FetchBatch(ctx context.Context, sizes []int) ([]Block, error)
//	// BatchLimits says how much one batch may ask for: at most items
//	// blocks, of at most bytes bytes in all; 0 or less for no limit.
//	BatchLimits() (items, bytes int)
//
// Batches are the default (4 items; at the default
// sizes one request of 64 KiB fills the empty pool, so batches are sent only
// when the pool has room for at least two blocks of the fetch size); WithBatch(1)
// turns them off, and a Provider then sends the source single requests
// only.
// Sources that do not offer batches always get single requests, and so does
// a source whose service answered that it has no batch request
// (httpsource.ErrBatchUnsupported).
//
// The blocks of a batch that pass every check (signature, length, health
// tests, replay guard) are taken, each a job of its own in labels and the
// journal; each failed item counts as a failure of its own
// (SourceStats.Failures, BatchItemsFailed), and a batch with some failed
// items is a successful request, not retried whole (the next refill asks
// for what is still missing). A batch whose items all failed is a failed
// request like any other, retried and counted by the breaker as one; not
// so a batch whose good items the journal's replay guard could not claim
// (a journal that cannot answer its ClaimJob, see [Journal]), which is no fault of
// the source's.
//
// maxItems must be in 1..64. A source that says how much one batch may ask
// for (BatchLimits; package httpsource: 64 items, 256 KiB in all) gets
// batches within that, and single requests where not two blocks fit.
func WithBatch(maxItems int) Option {
	return func(c *config) error {
		if maxItems < 1 || maxItems > 64 {
			return fmt.Errorf("entropy: batch of %d items: want 1..64", maxItems)
		}
		c.batch = maxItems
		return nil
	}
}

// WithRetry sets the retry of transient failures: at most attempts requests
// per refill (1 = no retry), with full-jitter exponential backoff starting at
// base and capped at max. attempts must be at least 1, and 0 < base <= max.
// Default: 4 attempts, 100 ms, 2 s.
func WithRetry(attempts int, base, max time.Duration) Option {
	return func(c *config) error {
		if attempts < 1 {
			return fmt.Errorf("entropy: retry attempts %d must be at least 1", attempts)
		}
		if base <= 0 || max < base {
			return fmt.Errorf("entropy: retry delays must satisfy 0 < base (%v) <= max (%v)", base, max)
		}
		c.attempts, c.retryBase, c.retryMax = attempts, base, max
		return nil
	}
}

// WithMaxRetryAfter caps how long a Retry-After from a source holds back the
// [Provider]'s requests to it; it must be positive (there is no switching
// Retry-After off). Default: 1 min.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			// 0 would make every hold no hold: contract point 7 off.
			return fmt.Errorf("entropy: max Retry-After %v must be positive", d)
		}
		c.maxRetryAfter = d
		return nil
	}
}

// WithFetchTimeout bounds each request to a source, and each claim of a
// block's job in a journal that has ClaimJob ([Journal]; the claims of a batch's
// blocks have one such bound between them). Default: 15 s.
func WithFetchTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("entropy: fetch timeout %v must be positive", d)
		}
		c.fetchTimeout = d
		return nil
	}
}

// WithLogger reports source failures, breaker changes and fallback episodes
// to l. Default: no logging. Nothing the [Provider] logs holds a credential or
// a byte of entropy.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithFallbackHook calls f when a fallback episode starts and when it ends.
// It runs on a goroutine of the [Provider], outside every lock, one call at a
// time. Default: none.
//
// A hook may call back into its own Provider ([Provider.Close] and
// [Provider.ReadFor] included). A hook that closes or draws from another
// Provider should do so on a goroutine of its own: while that Provider's
// hooks run at the same moment as this one, its Close may return before
// they have all run, and an event drawn from it may reach its journal
// before the records of the blocks it came from.
func WithFallbackHook(f func(FallbackEpisode)) Option {
	return func(c *config) error { c.hook = f; return nil }
}

// WithJournal records blocks, fallback episodes and event draws in j (see
// package journal). A nil j, or a typed nil such as an unset
// *journal.Journal, means no journal. Default: none.
func WithJournal(j Journal) Option {
	return func(c *config) error {
		if isNilJournal(j) {
			// A typed nil (var j *journal.Journal left unset): no journal,
			// as WithJournal(nil), not a crash at the first record.
			j = nil
		}
		c.journal = j
		return nil
	}
}

// isNilJournal reports whether j is nil or holds a nil pointer, map, slice,
// channel or func.
func isNilJournal(j Journal) bool {
	if j == nil {
		return true
	}
	switch v := reflect.ValueOf(j); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// WithClock replaces the clock used for backoff, Retry-After, rate limiting
// and episode times (tests). Default: the system clock.
func WithClock(clk Clock) Option {
	return func(c *config) error {
		if clk == nil || isNilPointer(clk) {
			return errors.New("entropy: nil clock")
		}
		c.clock = clk
		return nil
	}
}

// WithFailover adds sources tried, in order, when the ones before them fail.
// Each source has its own breaker, limiter and Retry-After hold; a read may
// hold spans of several verifiable sources, each span naming its source.
func WithFailover(srcs ...Source) Option {
	return func(c *config) error {
		for i, s := range srcs {
			if s == nil {
				return fmt.Errorf("entropy: failover source %d is nil", i)
			}
		}
		c.failover = append(c.failover, srcs...)
		return nil
	}
}

// WithShards sets how many independently locked parts the pool has, so that
// concurrent readers do not contend on one lock. Default: GOMAXPROCS, at
// most 64; either way [New] then caps it at one shard per 64 bytes of
// buffer ([WithBufferSize]), and at least one. n must be in 1..1024.
func WithShards(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("entropy: shard count %d out of range 1..1024", n)
		}
		c.shards = n
		return nil
	}
}

// WithHealthTests sets the SP 800-90B health tests run on every block before
// it enters the pool. Default: [health.DefaultConfig].
func WithHealthTests(h health.Config) Option {
	return func(c *config) error {
		if err := h.Validate(); err != nil {
			return err
		}
		c.health = &h
		return nil
	}
}

// WithDerivedReads makes [Provider.Read] (the [io.Reader]) serve derived, secret-safe
// bytes, as [Provider.ReadSecret] does, instead of raw verifiable bytes. Use it when the
// [Provider] is handed to code that makes keys. Default: off (raw).
func WithDerivedReads() Option {
	return func(c *config) error { c.derivedRead = true; return nil }
}

// healthConfig returns the health-test configuration in force.
func (c *config) healthConfig() health.Config {
	if c.health != nil {
		return *c.health
	}
	return health.DefaultConfig()
}
