package redisfleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/provenrand/entropy"
)

// breaker is the fleet's breaker of one source: gobreaker v2's
// DistributedCircuitBreaker on a Redis SharedDataStore, with a local
// gobreaker CircuitBreaker while Redis is unreachable.
//
// The request does not run inside DistributedCircuitBreaker.Execute, which
// holds the store's mutex for the whole call: every replica's refills
// (their limiter waits, backoff and requests) would queue behind one Redis
// lock, and a replica kept waiting would take a busy fleet for a broken
// store. Instead a refill is admitted on the shared state: read with one
// GET while it is closed, or open and not due for a probe; through State,
// which moves an expired open breaker to half-open for the fleet, otherwise.
// Its outcome is counted by Execute with a request that only returns it. In half-open, a probe key
// taken with SET NX lets one replica of the fleet probe, and the probe
// sends each request only while the key is its own; the others are refused
// with gobreaker.ErrTooManyRequests until its outcome is known, and so is a
// refill of the probe's own process admitted before the breaker opened.
type breaker struct {
	s        *source
	settings gobreaker.Settings
	probeTTL time.Duration
	local    *gobreaker.CircuitBreaker[entropy.Block]
	store    *store

	mu      sync.Mutex // one DistributedCircuitBreaker call at a time
	dcb     *gobreaker.DistributedCircuitBreaker[entropy.Block]
	onLocal atomic.Bool            // the last refill ran on the local breaker
	known   atomic.Pointer[known]  // the fleet's breaker as this replica last read it
	probe   atomic.Pointer[string] // the probe key's token while the refill running now is the fleet's half-open probe
	// others counts this process's refills running now that are not the
	// probe: each counts itself before its request runs, so that a Gate
	// that finds it zero is the probe's.
	others atomic.Int64
}

func newBreaker(s *source, src entropy.FleetSource) (*breaker, error) {
	st := src.Breaker
	if st.Name == "" {
		st.Name = s.key
	}
	attempts := max(src.Attempts, 1)
	b := &breaker{
		s:        s,
		settings: st,
		// The probe is one refill: its attempts, their timeouts and backoff.
		probeTTL: time.Duration(attempts)*(max(src.FetchTimeout, time.Second)+src.RetryMax) + time.Second,
		local:    gobreaker.NewCircuitBreaker[entropy.Block](st),
		store:    &store{s: s, prefix: s.key + ":"},
	}
	return b, nil
}

// known is the state of the fleet's breaker as a replica last read it, and
// when it stops being open (zero if unknown).
type known struct {
	state  gobreaker.State
	expiry time.Time
}

// State returns the breaker's state as this replica last knew it: the
// fleet's as last read from Redis (another replica may have changed it),
// the local breaker's on local state. It does no I/O and takes no lock
// that Redis I/O holds.
func (b *breaker) State() gobreaker.State {
	k := b.known.Load()
	if b.onLocal.Load() || k == nil {
		return b.local.State()
	}
	if k.state == gobreaker.StateOpen && !k.expiry.IsZero() && !time.Now().Before(k.expiry) {
		return gobreaker.StateHalfOpen // due for the fleet's probe
	}
	return k.state
}

// learnt notes the state of the DistributedCircuitBreaker after a call
// that read (and may have changed) the shared state. The caller holds b.mu.
func (b *breaker) learnt(dcb *gobreaker.DistributedCircuitBreaker[entropy.Block]) {
	b.known.Store(&known{state: dcb.CircuitBreaker.State()})
}

// Execute runs one refill if the fleet's breaker lets it, and counts its
// outcome for the fleet.
func (b *breaker) Execute(req func() (entropy.Block, error)) (entropy.Block, error) {
	probe, gen, err := b.admit()
	if errors.Is(err, errLocal) {
		b.onLocal.Store(true)
		return b.local.Execute(req)
	}
	if err != nil {
		return entropy.Block{}, err
	}
	if b.local.State() == gobreaker.StateOpen {
		// The local breaker opened while Redis was out of reach: it stays
		// open until its timeout, Redis back or not, since the fleet's
		// breaker never learnt of the failures that opened it.
		b.onLocal.Store(true)
		b.record(gobreaker.ErrOpenState, probe, gen)
		return entropy.Block{}, gobreaker.ErrOpenState
	}
	b.onLocal.Store(false)
	if probe != "" {
		b.probe.Store(&probe)
	} else {
		b.others.Add(1)
	}
	blk, rerr := req()
	if probe != "" {
		b.probe.CompareAndSwap(&probe, nil)
	} else {
		b.others.Add(-1)
	}
	b.record(rerr, probe, gen)
	return blk, rerr
}

// Gate reads the fleet's breaker just before a request of an admitted
// refill (entropy.Breaker's Gate): another replica may have opened it, or
// moved it to half-open with its own probe, while this refill waited.
func (b *breaker) Gate(ctx context.Context) error {
	if b.onLocal.Load() {
		return nil
	}
	st, err := b.peek(ctx)
	if err != nil {
		return nil // no shared state to read: the refill goes on
	}
	switch {
	case st.State == gobreaker.StateOpen && time.Now().Before(st.Expiry):
		return gobreaker.ErrOpenState
	case st.State != gobreaker.StateClosed:
		// Only the probe sends. A refill of this process admitted before
		// the breaker opened may be running beside it, and the Gate cannot
		// tell which of them asks: while one is, it refuses both (the probe
		// gives its key back, and a later refill probes).
		token := b.probe.Load()
		if token == nil || b.others.Load() > 0 || !b.keepProbe(ctx, *token) {
			return gobreaker.ErrTooManyRequests
		}
	}
	return nil
}

// keepProbe reports whether the probe key is still token's, or free, and
// then sets it to token for another probeTTL. A probe may wait (a
// Retry-After, the rate limiter, its backoff) past its key's expiry, and
// another replica take the key meanwhile: only the key's holder sends.
// If Redis cannot say, the probe goes on.
func (b *breaker) keepProbe(ctx context.Context, token string) bool {
	var kept bool
	err := b.s.f.do(ctx, func(c context.Context) error {
		n, err := keepKey.Run(c, b.s.f.rdb, []string{b.s.key + ":probe"}, token, b.probeTTL.Milliseconds()).Int()
		kept = n == 1
		return err
	})
	return err != nil || kept
}

// peek reads the fleet's breaker state without its mutex: one GET of the
// key the store keeps DistributedCircuitBreaker's state under.
func (b *breaker) peek(ctx context.Context) (gobreaker.SharedState, error) {
	var st gobreaker.SharedState
	var data []byte
	err := b.s.f.do(ctx, func(c context.Context) error {
		d, err := b.s.f.rdb.Get(c, b.store.stateKey()).Bytes()
		data = d
		return err
	})
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, err
	}
	b.known.Store(&known{state: st.State, expiry: st.Expiry})
	return st, nil
}

// admit asks the fleet's breaker whether a refill may run. It returns the
// probe token if the refill is the fleet's half-open probe, and the
// breaker's generation when it let the refill through (-1 if unknown);
// gobreaker's ErrOpenState or ErrTooManyRequests if not, and errLocal if
// the breaker cannot be asked (Redis unreachable).
func (b *breaker) admit() (probe string, gen int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dcb := b.distributed()
	if dcb == nil {
		return "", -1, errLocal
	}
	// Closed, or open and not yet due for a probe: one GET says so, without
	// the mutex and the write of State.
	st, err := b.peek(context.Background())
	switch {
	case err == nil && st.State == gobreaker.StateClosed:
		return "", int64(st.Generation), nil
	case err == nil && st.State == gobreaker.StateOpen && time.Now().Before(st.Expiry):
		return "", -1, gobreaker.ErrOpenState
	case err != nil && !errors.Is(err, redis.Nil) && !b.s.f.usable():
		return "", -1, errLocal
	}
	// Open and due, or half-open: State moves the fleet's breaker on (open
	// to half-open) under the mutex.
	state, err := dcb.State()
	b.store.release()
	if err != nil {
		b.forget(err)
		return "", -1, errLocal
	}
	b.learnt(dcb)
	switch state {
	case gobreaker.StateOpen:
		return "", -1, gobreaker.ErrOpenState
	case gobreaker.StateHalfOpen:
		token := newToken()
		var got bool
		err := b.s.f.do(context.Background(), func(c context.Context) error {
			ok, err := b.s.f.rdb.SetNX(c, b.s.key+":probe", token, b.probeTTL).Result()
			got = ok
			return err
		})
		if err != nil {
			return "", -1, errLocal
		}
		if !got {
			return "", -1, gobreaker.ErrTooManyRequests
		}
		gen := int64(-1)
		if st, err := b.peek(context.Background()); err == nil {
			gen = int64(st.Generation)
		}
		return token, gen, nil
	}
	return "", -1, nil
}

// record counts a refill's outcome in the fleet's breaker and gives the
// probe key back. An outcome of a refill admitted in an earlier generation
// of the breaker (before it opened, say) is not counted, as gobreaker's own
// breaker does not count it: a request sent before the breaker opened must
// not close it while the fleet's probe is on its way.
func (b *breaker) record(outcome error, probe string, gen int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	refused := errors.Is(outcome, gobreaker.ErrOpenState) || errors.Is(outcome, gobreaker.ErrTooManyRequests)
	dcb := b.distributed()
	switch {
	case refused:
	case dcb == nil:
		b.countLocally(outcome)
	case !b.stale(gen):
		_, err := dcb.Execute(func() (entropy.Block, error) { return entropy.Block{}, outcome })
		switch {
		case err == nil || errors.Is(err, outcome):
			b.learnt(dcb)
		case errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests):
		default:
			b.forget(err)
			b.countLocally(outcome)
		}
	}
	b.store.release()
	if probe != "" {
		_ = b.s.f.do(context.Background(), func(c context.Context) error {
			return releaseKey.Run(c, b.s.f.rdb, []string{b.s.key + ":probe"}, probe).Err()
		})
	}
}

// countLocally counts in the local breaker the outcome of a refill that
// Redis, gone away while it ran, could not count for the fleet: a
// permanent error must open a breaker, the local one at least.
func (b *breaker) countLocally(outcome error) {
	_, _ = b.local.Execute(func() (entropy.Block, error) { return entropy.Block{}, outcome })
}

// stale reports whether the fleet's breaker has left generation gen (-1:
// unknown, never stale). It takes the store's mutex, which the caller's
// DistributedCircuitBreaker call then finds held and gives back, so that
// no other replica changes the breaker in between.
func (b *breaker) stale(gen int64) bool {
	if gen < 0 || b.store.acquire() != nil {
		return false
	}
	st, err := b.peek(context.Background())
	return err == nil && int64(st.Generation) != gen
}

// forget drops the DistributedCircuitBreaker after a store failure or a lost
// shared state (Redis restarted empty): the next call makes it again, which
// writes the state anew if Redis has none.
func (b *breaker) forget(err error) {
	if errors.Is(err, gobreaker.ErrNoSharedState) {
		b.dcb = nil
	}
}

// distributed returns the DistributedCircuitBreaker, made on first use when
// Redis answers; nil while it does not. The caller holds b.mu.
func (b *breaker) distributed() *gobreaker.DistributedCircuitBreaker[entropy.Block] {
	if b.dcb != nil {
		if !b.s.f.usable() {
			return nil
		}
		return b.dcb
	}
	if !b.s.f.usable() {
		return nil
	}
	// Take the store's mutex first: the constructor's own lock call then
	// finds it held and does not sit in gobreaker's 5 s retry loop when
	// Redis fails.
	if err := b.store.acquire(); err != nil {
		return nil
	}
	dcb, err := gobreaker.NewDistributedCircuitBreaker[entropy.Block](b.store, b.settings)
	b.store.release()
	if err != nil {
		return nil
	}
	b.dcb = dcb
	return dcb
}

// keepKey sets a key to the caller's token for ARGV[2] milliseconds if it
// holds that token or does not exist; it returns 1 then, 0 if another
// token holds it.
var keepKey = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// releaseKey deletes a key if it still holds the caller's token.
var releaseKey = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// store is gobreaker's SharedDataStore on Redis for one source's breaker.
//
// Its mutex is taken by the first GetData or Lock of a call and kept until
// Unlock (or release): gobreaker reads the shared state before it locks, so
// without this a replica could act on a state another replica was changing.
// The mutex is a key set with NX and an expiry, so that a replica that dies
// holding it does not hold the fleet for longer than lockTTL.
type store struct {
	s      *source
	prefix string
	token  string // the mutex token while this replica holds it
}

// stateKey is the key of the shared state: the source's, whatever name the
// breaker's settings give it (gobreaker asks for "gobreaker:state:" and
// that name), so that replicas that name their breakers apart (to tell
// them apart in logs) still share one.
func (st *store) stateKey() string { return st.prefix + "gobreaker:state" }

func (st *store) lockTTL() time.Duration { return max(time.Second, 10*st.s.f.timeout) }

// acquire takes the fleet's mutex of this breaker, waiting while another
// replica holds it (its critical section is a few round trips).
func (st *store) acquire() error {
	if st.token != "" {
		return nil
	}
	f := st.s.f
	token := newToken()
	deadline := time.Now().Add(st.lockTTL() + f.timeout)
	for {
		var got bool
		err := f.do(context.Background(), func(c context.Context) error {
			ok, err := f.rdb.SetNX(c, st.prefix+"breaker-lock", token, st.lockTTL()).Result()
			got = ok
			return err
		})
		if err != nil {
			return err
		}
		if got {
			st.token = token
			return nil
		}
		if time.Now().After(deadline) {
			err := errors.New("breaker lock held past its expiry")
			f.failed(err)
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// release gives the mutex back if this replica holds it.
func (st *store) release() {
	if st.token == "" {
		return
	}
	token := st.token
	st.token = ""
	f := st.s.f
	_ = f.do(context.Background(), func(c context.Context) error {
		return releaseKey.Run(c, f.rdb, []string{st.prefix + "breaker-lock"}, token).Err()
	})
}

// Lock takes the breaker's mutex (see store).
func (st *store) Lock(string) error { return st.acquire() }

// Unlock gives the breaker's mutex back.
func (st *store) Unlock(string) error { st.release(); return nil }

// GetData reads the shared state, under the mutex.
func (st *store) GetData(string) ([]byte, error) {
	if err := st.acquire(); err != nil {
		return nil, err
	}
	var data []byte
	f := st.s.f
	err := f.do(context.Background(), func(c context.Context) error {
		d, err := f.rdb.Get(c, st.stateKey()).Bytes()
		data = d
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return data, err
}

// SetData writes the shared state. It expires after a day unused, so that
// a fleet that is gone leaves nothing behind for ever.
func (st *store) SetData(_ string, data []byte) error {
	f := st.s.f
	return f.do(context.Background(), func(c context.Context) error {
		return f.rdb.Set(c, st.stateKey(), data, 24*time.Hour).Err()
	})
}
