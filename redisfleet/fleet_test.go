package redisfleet_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/redisfleet"
	"github.com/provenrand/entropy/sim"
)

// startFleet starts n replicas of one fleet against svc.
func startFleet(t *testing.T, svc *service, fs fleetSetup, n int) []*replica {
	t.Helper()
	var rs []*replica
	for i := 0; i < n; i++ {
		rs = append(rs, startReplica(t, svc, fs, fmt.Sprintf("r%d", i)))
	}
	return rs
}

func stopFleet(t *testing.T, rs []*replica) {
	t.Helper()
	for _, r := range rs {
		r.close(t)
	}
}

// Three replicas, each with its own Redis client, draw from one limit of 20
// requests/s with a burst of 2: the service sees at most 20 + 2 requests in
// any second, and, itself limited to 20/s, answers no 429.
// (The same three replicas without the fleet would send 3 × 20/s: the bound
// and the service's limit would both be broken.)
func TestFleetSharesOneRateLimit(t *testing.T) {
	url := redisURL(t)
	// The service's limit is 20/s too. Its burst allows for the time between
	// Redis's grant and the arrival of the request, which on a loaded test
	// machine varies by up to about 150 ms (3 requests at 20/s) and lets
	// requests granted apart arrive close together: burst 2 + 1 + 3.
	svc := newService(t, sim.WithRateLimit(20, 6))
	fs := fleetSetup{redisURL: url, name: fleetName(t, url), size: 3, rate: 20, burst: 2}
	start := time.Now()
	rs := startFleet(t, svc, fs, 3)
	time.Sleep(6 * time.Second)
	end := time.Now()
	for _, r := range rs {
		st := r.p.Stats()
		require.NotNil(t, st.Fleet)
		assert.True(t, st.Fleet.Shared, "replica %s coordinated through Redis", r.name)
		assert.Zero(t, st.Fleet.Errors, "replica %s: no coordination error", r.name)
	}
	stopFleet(t, rs)

	as := between(svc.all(), start, end)
	busiest := maxInWindow(as, "", time.Second, start, end)
	t.Logf("%d requests in %v, at most %d in one second", len(as), end.Sub(start).Round(time.Millisecond), busiest)
	// Redis grants at most 20 a second plus the burst of 2; a request
	// reaches the service up to ~150 ms (3 requests) after its grant on a
	// loaded machine, so arrivals may bunch by that much, never more.
	assert.LessOrEqual(t, busiest, 20+2+3, "requests in the busiest 1 s window")
	assert.LessOrEqual(t, float64(len(as)), 20*end.Sub(start).Seconds()+2+3, "requests over the whole run")
	assert.GreaterOrEqual(t, len(as), 20*4, "the replicas kept the shared limit busy (else the bound proves nothing)")
	per := map[string]int{}
	for _, a := range as {
		per[a.replica]++
		assert.NotEqual(t, http.StatusTooManyRequests, a.status, "the service's own 20/s limit never answered 429")
	}
	for _, r := range rs {
		assert.Positive(t, per[r.name], "replica %s sent requests", r.name)
		assert.Zero(t, r.readErrs.Load(), "no read failed")
	}
}

// A Retry-After: 5 answered to one replica holds every replica: the service
// sees no request from any of them for those 5 s, then requests resume.
func TestFleetRetryAfterHoldsEveryReplica(t *testing.T) {
	url := redisURL(t)
	svc := newService(t)
	fs := fleetSetup{redisURL: url, name: fleetName(t, url), size: 3, rate: 20, burst: 2}
	rs := startFleet(t, svc, fs, 3)
	time.Sleep(time.Second)
	svc.sim.Script(sim.Status(http.StatusTooManyRequests, sim.ShapeNested, "5"))
	held := svc.waitStatus(t, http.StatusTooManyRequests, "the scripted 429 was answered")
	time.Sleep(time.Until(held.at.Add(5*time.Second + 700*time.Millisecond)))
	stopFleet(t, rs)

	as := svc.all()
	// A request another replica sent before the 429 came back and the hold
	// reached Redis may still arrive in the first moments (inflight): at most
	// one per replica, within that delay. After it, none until the hold ends.
	const inflight = 300 * time.Millisecond
	early := between(as, held.at.Add(time.Nanosecond), held.at.Add(inflight))
	assert.LessOrEqual(t, len(early), len(rs), "requests already on their way when the hold began: %v", early)
	during := between(as, held.at.Add(inflight), held.at.Add(5*time.Second))
	assert.Empty(t, during, "no replica sent a request during the 5 s hold that %s received", held.replica)
	after := between(as, held.at.Add(5*time.Second), held.at.Add(6*time.Second))
	assert.NotEmpty(t, after, "requests resumed when the hold had passed")
	for _, r := range rs {
		assert.Zero(t, r.readErrs.Load(), "no read failed under Degrade")
	}
}

// A permanent error seen by one replica opens the breaker of all: no replica
// sends a request until the breaker's timeout, then one probe is sent for
// the whole fleet; when it succeeds, all resume.
func TestFleetPermanentErrorOpensEveryBreaker(t *testing.T) {
	url := redisURL(t)
	svc := newService(t)
	fs := fleetSetup{redisURL: url, name: fleetName(t, url), size: 3, rate: 20, burst: 2,
		opts: []entropy.Option{entropy.WithBreaker(gobreaker.Settings{Timeout: time.Second})}}
	rs := startFleet(t, svc, fs, 3)
	time.Sleep(time.Second)
	// The 401, then a slow answer to the probe: while it is on its way the
	// breaker is half-open, and the other replicas must wait for it.
	svc.sim.Script(sim.Status(http.StatusUnauthorized, sim.ShapeNested, ""), sim.Latency(700*time.Millisecond))
	failed := svc.waitStatus(t, http.StatusUnauthorized, "the scripted 401 was answered")
	time.Sleep(time.Until(failed.at.Add(4 * time.Second)))
	stopFleet(t, rs)

	as := svc.all()
	// As for a hold: requests already on their way when the breaker opened
	// may arrive in its first moments, at most one per replica.
	const inflight = 300 * time.Millisecond
	early := between(as, failed.at.Add(time.Nanosecond), failed.at.Add(inflight))
	assert.LessOrEqual(t, len(early), len(rs), "requests already on their way when the breaker opened: %v", early)
	assert.Empty(t, between(as, failed.at.Add(inflight), failed.at.Add(time.Second)),
		"no request within the breaker's timeout after %s met the permanent error", failed.replica)
	later := between(as, failed.at.Add(inflight), failed.at.Add(time.Hour))
	require.NotEmpty(t, later, "a probe was sent after the timeout")
	probe := later[0]
	assert.Len(t, between(as, probe.at, probe.at.Add(700*time.Millisecond)), 1,
		"one probe for the fleet while the breaker was half-open")
	assert.NotEmpty(t, between(as, probe.at.Add(700*time.Millisecond), failed.at.Add(4*time.Second)),
		"the fleet resumed after the probe succeeded")
	for _, r := range rs {
		assert.Zero(t, r.readErrs.Load(), "no read failed under Degrade")
	}
}

// Redis made unreachable mid-run (the replicas' connections cut and refused
// by a proxy): no read fails, each replica keeps to its local share, says so
// in Stats and to its hook, and all return to the shared limit when Redis is
// back.
func TestFleetWithoutRedisKeepsEachReplicaToItsShare(t *testing.T) {
	url := redisURL(t)
	px := testkit.StartProxy(t, redisAddr(t, url))
	svc := newService(t)
	// A local share of 0.2 (12 requests/s for three) below the shared 20,
	// so that the return to the shared limit shows in the counts.
	fs := fleetSetup{redisURL: proxied(t, url, px.Addr()), name: fleetName(t, url), size: 3, rate: 20, burst: 2,
		fleet: []redisfleet.Option{redisfleet.WithLocalShare(0.2), redisfleet.WithRetryInterval(300 * time.Millisecond)}}
	start := time.Now()
	rs := startFleet(t, svc, fs, 3)
	time.Sleep(2 * time.Second)

	cut := time.Now()
	px.SetCut(true)
	waitFleetState(t, rs, false, "every replica went on local state")
	// Redis restarted empty while it was away: the fleet's keys are gone.
	direct, err := redisfleet.NewClient(url)
	require.NoError(t, err)
	defer direct.Close()
	keys, err := direct.Keys(context.Background(), fs.name+":*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys, "the fleet kept its state in Redis")
	require.NoError(t, direct.Del(context.Background(), keys...).Err())
	time.Sleep(3 * time.Second)
	for _, r := range rs {
		st := r.p.Stats().Fleet
		assert.False(t, st.Shared)
		assert.Positive(t, st.Errors)
		assert.Error(t, st.LastError)
	}

	back := time.Now()
	px.SetCut(false)
	waitFleetState(t, rs, true, "every replica returned to the shared state")
	time.Sleep(3 * time.Second)
	end := time.Now()
	stopFleet(t, rs)

	as := svc.all()
	t.Logf("busiest second: shared %d, cut %d (per replica %d, %d, %d), shared again %d",
		maxInWindow(as, "", time.Second, start, cut), maxInWindow(as, "", time.Second, cut.Add(time.Second), back),
		maxInWindow(as, "r0", time.Second, cut, back), maxInWindow(as, "r1", time.Second, cut, back), maxInWindow(as, "r2", time.Second, cut, back),
		maxInWindow(as, "", time.Second, back.Add(time.Second), end))
	// Each replica at its share: 0.2 × 20/s with a burst of 1, in every
	// second of the cut (the first second, when the local limiters start
	// with a full burst beside what the shared one let through, included).
	for _, r := range rs {
		assert.LessOrEqual(t, maxInWindow(as, r.name, time.Second, cut, back), 1+4+1, "replica %s's busiest second without Redis", r.name)
	}
	assert.LessOrEqual(t, maxInWindow(as, "", time.Second, cut.Add(time.Second), back), 3*(1+4)+1, "the fleet's busiest second without Redis")
	// 20 a second and the burst of 2, and up to 3 requests bunched by the
	// time between Redis's grant and their arrival (as in
	// TestFleetSharesOneRateLimit); the second in which Redis came back
	// too: Redis then grants a full burst, and each replica keeps to its
	// local share as well until a second has passed.
	assert.LessOrEqual(t, maxInWindow(as, "", time.Second, start, cut), 20+2+3)
	assert.LessOrEqual(t, maxInWindow(as, "", time.Second, back.Add(-time.Second), end), 20+2+3)
	assert.Greater(t, maxInWindow(as, "", time.Second, back.Add(time.Second), end), 3*(1+4)+1,
		"back on the shared limit, the fleet sends more than its local shares allow")
	for _, r := range rs {
		assert.Zero(t, r.readErrs.Load(), "no read failed under Degrade")
		evs := r.fleetEvents()
		require.GreaterOrEqual(t, len(evs), 2, "replica %s: events lost and restored", r.name)
		assert.False(t, evs[0].Shared)
		assert.Error(t, evs[0].LastError)
		assert.True(t, evs[len(evs)-1].Shared)
	}
}

// Back from local state, a fleet whose shares add up to the whole rate
// keeps to the service's quota: Redis, back, grants a full burst knowing
// nothing of what the replicas sent on their own in the last second, so
// each keeps to its share a moment longer. The service (30/s) never
// answers 429, before, during or after the outage.
func TestFleetReturnFromLocalStateKeepsToTheQuota(t *testing.T) {
	url := redisURL(t)
	px := testkit.StartProxy(t, redisAddr(t, url))
	svc := newService(t, sim.WithRateLimit(30, 6))
	fs := fleetSetup{redisURL: proxied(t, url, px.Addr()), name: fleetName(t, url), size: 3, rate: 30, burst: 3,
		fleet: []redisfleet.Option{redisfleet.WithFleetSize(3), redisfleet.WithRetryInterval(300 * time.Millisecond)}}
	rs := startFleet(t, svc, fs, 3)
	time.Sleep(2 * time.Second)
	px.SetCut(true)
	time.Sleep(4 * time.Second)
	px.SetCut(false)
	waitFleetState(t, rs, true, "every replica returned to the shared state")
	time.Sleep(3 * time.Second)
	stopFleet(t, rs)

	as := svc.all()
	refused := 0
	for _, a := range as {
		if a.status == http.StatusTooManyRequests {
			refused++
		}
	}
	t.Logf("%d requests, %d answered 429", len(as), refused)
	assert.Greater(t, len(as), 30*6, "the replicas kept the quota busy (else no 429 proves nothing)")
	assert.Zero(t, refused, "the service's own 30/s limit answered 429")
	for _, r := range rs {
		assert.Zero(t, r.readErrs.Load(), "no read failed under Degrade")
	}
}

// A bad option, a nil client (typed nil too) or a Fleet not made by New
// fails entropy.New with a clear error, and NewClient never puts the
// password of a bad URL into its error.
func TestFleetRefusesBadConfiguration(t *testing.T) {
	src := entropy.SourceFunc(func(context.Context, int) (entropy.Block, error) { return entropy.Block{}, nil })
	_, err := entropy.New(src, entropy.WithFleet(redisfleet.New(nil)))
	assert.ErrorContains(t, err, "nil Redis client")
	var nilClient *redis.Client
	_, err = entropy.New(src, entropy.WithFleet(redisfleet.New(nilClient)))
	assert.ErrorContains(t, err, "nil Redis client")
	_, err = entropy.New(src, entropy.WithFleet(&redisfleet.Fleet{}))
	assert.ErrorContains(t, err, "made by New")
	c, err := redisfleet.NewClient("redis://127.0.0.1:1/0")
	require.NoError(t, err)
	defer c.Close()
	for _, o := range []redisfleet.Option{redisfleet.WithName(""), redisfleet.WithName("a b"), redisfleet.WithFleetSize(0),
		redisfleet.WithLocalShare(0), redisfleet.WithLocalShare(1.5), redisfleet.WithTimeout(0), redisfleet.WithRetryInterval(-1)} {
		_, err := entropy.New(src, entropy.WithFleet(redisfleet.New(c, o)))
		assert.Error(t, err)
	}
	// The name is shown in Stats, logs and the command's status lines: one
	// that could make printed text say something else is refused, as job
	// IDs and source names are (docs/protocol.md, "Names").
	for _, name := range []string{"prod\u202eKO", "prod\u2028x", "prod\x1b[2J", "prod\u200b", "prod\xff", "."} {
		_, err := entropy.New(src, entropy.WithFleet(redisfleet.New(c, redisfleet.WithName(name))))
		assert.Error(t, err, "%q", name)
	}
	// A URL that parses with a bad database number, and URLs that do not
	// parse at all, whose parser's error quotes the URL (or a piece of it).
	for _, u := range []string{
		"redis://user:hunter2secret@127.0.0.1:6379/notanumber",
		"redis://user:hunter2secret@127.0.0.1:badport/0",
		"redis://user:hunter2secret%zz@127.0.0.1:6379/0",
		"redis://user:hunter2 secret@127.0.0.1:6379/0",
		"redis://user:hunter2/secret@127.0.0.1:6379/0",
	} {
		_, err = redisfleet.NewClient(u)
		require.Error(t, err, u)
		assert.NotContains(t, err.Error(), "hunter2", u)
		assert.NotContains(t, err.Error(), "secret", u)
	}
}

// A Redis that stops answering (every byte held by the proxy) costs a
// refill no more than the fleet's timeout: the replica goes on its local
// share, its reads never wait, requests keep reaching the service, and it
// returns to the shared state when Redis answers again.
func TestFleetSlowRedisNeverStallsTheRefill(t *testing.T) {
	url := redisURL(t)
	px := testkit.StartProxy(t, redisAddr(t, url))
	svc := newService(t)
	fs := fleetSetup{redisURL: proxied(t, url, px.Addr()), name: fleetName(t, url), size: 2, rate: 20, burst: 2,
		fleet: []redisfleet.Option{redisfleet.WithTimeout(200 * time.Millisecond), redisfleet.WithRetryInterval(300 * time.Millisecond)}}
	rs := startFleet(t, svc, fs, 2)
	time.Sleep(time.Second)

	stall := time.Now()
	px.SetStalled(true)
	require.Eventually(t, func() bool { return !rs[0].p.Stats().Fleet.Shared && !rs[1].p.Stats().Fleet.Shared },
		5*time.Second, 10*time.Millisecond, "a Redis that does not answer puts the replicas on local state")
	time.Sleep(2 * time.Second)
	resume := time.Now()
	px.SetStalled(false)
	require.Eventually(t, func() bool { return rs[0].p.Stats().Fleet.Shared && rs[1].p.Stats().Fleet.Shared },
		5*time.Second, 10*time.Millisecond, "the replicas return to the shared state")
	stopFleet(t, rs)

	as := svc.all()
	during := between(as, stall.Add(time.Second), resume)
	t.Logf("%d requests in the last %v of the stall", len(during), resume.Sub(stall.Add(time.Second)).Round(time.Millisecond))
	for _, r := range rs {
		n := 0
		for _, a := range during {
			if a.replica == r.name {
				n++
			}
		}
		assert.Positive(t, n, "replica %s kept refilling while Redis did not answer", r.name)
		assert.LessOrEqual(t, maxInWindow(as, r.name, time.Second, stall.Add(time.Second), resume), 10+1+1, "replica %s at its half of the rate", r.name)
		assert.Zero(t, r.readErrs.Load(), "no read failed under Degrade")
		assert.Positive(t, r.reads.Load())
	}
}

// waitFleetState waits until every replica's fleet is on shared state
// (shared) or on local state.
func waitFleetState(t *testing.T, rs []*replica, shared bool, msg string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, r := range rs {
			if r.p.Stats().Fleet.Shared != shared {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, msg)
}

// The fleet's half-open probe stays the only request until its outcome is
// known, however long it waits: here a Retry-After longer than the probe's
// whole refill would take holds it, and when the hold has passed only the
// probe goes out (another replica's refill, admitted meanwhile, must not
// go out beside it while the probe's slow answer is on its way).
func TestFleetProbeWaitingOutARetryAfterStaysTheOnlyProbe(t *testing.T) {
	url := redisURL(t)
	svc := newService(t)
	fs := fleetSetup{redisURL: url, name: fleetName(t, url), size: 2, rate: 2, burst: 1,
		opts: []entropy.Option{
			entropy.WithBreaker(gobreaker.Settings{Timeout: time.Second}),
			// A probe's refill: 2 attempts of at most 1 s, 10 ms apart.
			entropy.WithRetry(2, 10*time.Millisecond, 10*time.Millisecond),
			entropy.WithFetchTimeout(time.Second),
		}}
	rs := startFleet(t, svc, fs, 2)
	time.Sleep(time.Second)
	// The 401 opens the breaker; the probe meets a Retry-After of 4 s,
	// longer than its refill's 2 attempts; once the hold has passed, the
	// probe's next request is answered slowly.
	require.NoError(t, svc.sim.Script(sim.Status(http.StatusUnauthorized, sim.ShapeNested, ""),
		sim.Status(http.StatusTooManyRequests, sim.ShapeNested, "4"), sim.Latency(800*time.Millisecond)))
	held := svc.waitStatus(t, http.StatusTooManyRequests, "the probe met the scripted 429")
	time.Sleep(time.Until(held.at.Add(6 * time.Second)))
	stopFleet(t, rs)

	as := svc.all()
	during := between(as, held.at.Add(time.Nanosecond), held.at.Add(4*time.Second+800*time.Millisecond))
	assert.Len(t, during, 1, "one request, the probe's, until the probe's answer came: %v", during)
	assert.NotEmpty(t, between(as, held.at.Add(4*time.Second+800*time.Millisecond), held.at.Add(6*time.Second)),
		"the fleet resumed after the probe succeeded")
	for _, r := range rs {
		assert.Zero(t, r.readErrs.Load(), "no read failed under Degrade")
	}
}

// The fleet's breaker is the source's, whatever each replica names it in
// its breaker settings (a name that says which replica logs a change):
// a permanent error seen by one replica holds the other too.
func TestFleetBreakerIsSharedWhateverEachReplicaNamesIt(t *testing.T) {
	url := redisURL(t)
	svc := newService(t)
	name := fleetName(t, url)
	var rs []*replica
	for _, r := range []string{"r0", "r1"} {
		fs := fleetSetup{redisURL: url, name: name, size: 2, rate: 10, burst: 1,
			opts: []entropy.Option{entropy.WithBreaker(gobreaker.Settings{Name: "entropy service (" + r + ")", Timeout: time.Minute})}}
		rs = append(rs, startReplica(t, svc, fs, r))
	}
	time.Sleep(time.Second)
	require.NoError(t, svc.sim.Script(sim.Status(http.StatusUnauthorized, sim.ShapeNested, "")))
	failed := svc.waitStatus(t, http.StatusUnauthorized, "the scripted 401 was answered")
	time.Sleep(time.Until(failed.at.Add(2 * time.Second)))
	stopFleet(t, rs)

	as := svc.all()
	// As in TestFleetPermanentErrorOpensEveryBreaker: a request already on
	// its way may arrive in the first moments, none after.
	const inflight = 300 * time.Millisecond
	assert.LessOrEqual(t, len(between(as, failed.at.Add(time.Nanosecond), failed.at.Add(inflight))), len(rs))
	assert.Empty(t, between(as, failed.at.Add(inflight), failed.at.Add(2*time.Second)),
		"no request while the breaker %s opened is open", failed.replica)
}

// A request sent before the breaker opened, answered while the fleet's
// probe is on its way, does not close the breaker (gobreaker's own breaker
// does not count an outcome of an earlier generation either): until the
// probe's answer, the probe is the fleet's only request.
func TestFleetAnswerFromBeforeTheBreakerOpenedDoesNotCloseIt(t *testing.T) {
	url := redisURL(t)
	svc := newService(t)
	fs := fleetSetup{redisURL: url, name: fleetName(t, url), size: 3, rate: 10, burst: 1,
		opts: []entropy.Option{entropy.WithBreaker(gobreaker.Settings{Timeout: 500 * time.Millisecond})}}
	rs := startFleet(t, svc, fs, 3)
	time.Sleep(time.Second)
	// A slow answer (1.5 s), a 401 to the next request, which opens the
	// breaker, and a slow answer (2 s) to the probe sent 0.5 s later: the
	// first slow answer comes while the probe is on its way.
	require.NoError(t, svc.sim.Script(sim.Latency(1500*time.Millisecond),
		sim.Status(http.StatusUnauthorized, sim.ShapeNested, ""), sim.Latency(2*time.Second)))
	failed := svc.waitStatus(t, http.StatusUnauthorized, "the scripted 401 was answered")
	time.Sleep(time.Until(failed.at.Add(4 * time.Second)))
	stopFleet(t, rs)

	as := svc.all()
	later := between(as, failed.at.Add(300*time.Millisecond), failed.at.Add(time.Hour))
	require.NotEmpty(t, later, "a probe was sent after the timeout")
	probe := later[0]
	assert.Empty(t, between(as, probe.at.Add(time.Nanosecond), probe.at.Add(1900*time.Millisecond)),
		"no request but the probe (from %s) until its answer", probe.replica)
	assert.NotEmpty(t, between(as, probe.at.Add(2*time.Second), failed.at.Add(4*time.Second)),
		"the fleet resumed after the probe succeeded")
}

// Stats tells the breaker's state as the fleet has it: a replica held by
// a breaker another replica opened says "open", not the "closed" it last
// counted an outcome in.
func TestFleetStatsShowTheBreakerAnotherReplicaOpened(t *testing.T) {
	url := redisURL(t)
	svc := newService(t)
	fs := fleetSetup{redisURL: url, name: fleetName(t, url), size: 2, rate: 10, burst: 1,
		opts: []entropy.Option{entropy.WithBreaker(gobreaker.Settings{Timeout: time.Minute})}}
	rs := startFleet(t, svc, fs, 2)
	time.Sleep(time.Second)
	require.NoError(t, svc.sim.Script(sim.Status(http.StatusUnauthorized, sim.ShapeNested, "")))
	failed := svc.waitStatus(t, http.StatusUnauthorized, "the scripted 401 was answered")
	for _, r := range rs {
		require.Eventually(t, func() bool { return r.p.Stats().Sources[0].Breaker == gobreaker.StateOpen.String() },
			5*time.Second, 10*time.Millisecond, "replica %s's Stats say the breaker %s opened is open (%s)", r.name, failed.replica, r.p.Stats().Sources[0].Breaker)
	}
}

// A breaker a replica opened on its own, while Redis was out of reach,
// stays open until its timeout when Redis answers again: the replica does
// not go back to a service that refused its key because the fleet's
// breaker, which never learnt of it, is closed.
func TestFleetBreakerOpenedWithoutRedisStaysOpenWhenRedisReturns(t *testing.T) {
	px, svc, rs := replicaBehindAProxy(t)
	px.SetCut(true)
	waitFleetState(t, rs, false, "the replica went on local state")
	require.NoError(t, svc.sim.Script(sim.Status(http.StatusUnauthorized, sim.ShapeNested, "")))
	failed := svc.waitStatus(t, http.StatusUnauthorized, "the scripted 401 was answered")
	require.Eventually(t, func() bool { return rs[0].p.Stats().Sources[0].Breaker == gobreaker.StateOpen.String() },
		5*time.Second, 10*time.Millisecond, "the local breaker opened")
	px.SetCut(false)
	waitFleetState(t, rs, true, "the replica returned to the shared state")
	time.Sleep(time.Second)
	stopFleet(t, rs)

	assert.Empty(t, between(svc.all(), failed.at.Add(time.Nanosecond), time.Now()),
		"no request within the breaker's timeout after the 401, Redis back or not")
}

// A Retry-After received by a replica while Redis is out of reach for it
// reaches the fleet as soon as Redis answers again, while the hold lasts:
// the replica itself sleeps through the hold, and the others, which Redis
// never stopped answering, must not go on sending until it has passed.
func TestFleetRetryAfterReceivedWithoutRedisReachesTheFleetWhenRedisReturns(t *testing.T) {
	url := redisURL(t)
	px := testkit.StartProxy(t, redisAddr(t, url))
	svc := newService(t)
	name := fleetName(t, url)
	direct := startReplica(t, svc, fleetSetup{redisURL: url, name: name, size: 2, rate: 20, burst: 2}, "direct")
	cutOff := startReplica(t, svc, fleetSetup{redisURL: proxied(t, url, px.Addr()), name: name, size: 2, rate: 20, burst: 2,
		fleet: []redisfleet.Option{redisfleet.WithRetryInterval(200 * time.Millisecond)}}, "cut-off")
	time.Sleep(time.Second)
	px.SetCut(true)
	waitFleetState(t, []*replica{cutOff}, false, "the cut-off replica went on local state")
	var once sync.Once
	svc.setIntercept(func(w http.ResponseWriter, replica string) bool {
		answered := false
		if replica == "cut-off" {
			once.Do(func() {
				w.Header().Set("Retry-After", "4")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"error":{"code":"TooManyRequests","message":"slow down"}}`))
				answered = true
			})
		}
		return answered
	})
	held := svc.waitStatus(t, http.StatusTooManyRequests, "the cut-off replica received the 429")
	time.Sleep(500 * time.Millisecond)
	px.SetCut(false)
	time.Sleep(time.Until(held.at.Add(4*time.Second + 500*time.Millisecond)))
	stopFleet(t, []*replica{direct, cutOff})

	as := svc.all()
	// Redis is back 0.5 s after the 429, and the cut-off replica tries it
	// every 0.2 s: from 1.5 s on, the whole fleet is held.
	assert.Empty(t, between(as, held.at.Add(1500*time.Millisecond), held.at.Add(4*time.Second)),
		"no request in the rest of the Retry-After the cut-off replica received")
	assert.NotEmpty(t, between(as, held.at.Add(4*time.Second), held.at.Add(4*time.Second+500*time.Millisecond)), "requests resumed after the hold")
}

// Close waits for the goroutine that publishes a Retry-After Redis did not
// take (contract point 10), for no longer than the fleet's timeout when
// Redis has gone silent: the 429 comes while Redis is cut off, Redis then
// takes the connection but answers nothing, and once Close has returned no
// goroutine of the Provider or its fleet is left.
func TestFleetCloseWaitsForTheHoldPublishingToASilentRedis(t *testing.T) {
	url := redisURL(t)
	px := testkit.StartProxy(t, redisAddr(t, url))
	svc := newService(t)
	// A fleet timeout of 2 s, which the client's own timeouts do not cut
	// short: the goroutine's call to the silent Redis outlasts goleak's
	// patience unless Close waits for it.
	r := startReplica(t, svc, fleetSetup{redisURL: proxied(t, url, px.Addr()), name: fleetName(t, url), size: 1, rate: 20, burst: 2,
		clientTimeout: 10 * time.Second,
		// The refill's second attempt comes at once, and sleeps through the
		// hold without asking Redis: only the goroutine asks it.
		opts:  []entropy.Option{entropy.WithRetry(2, time.Millisecond, time.Millisecond)},
		fleet: []redisfleet.Option{redisfleet.WithTimeout(2 * time.Second), redisfleet.WithRetryInterval(20 * time.Millisecond)}}, "r0")
	time.Sleep(500 * time.Millisecond)
	px.SetCut(true)
	waitFleetState(t, []*replica{r}, false, "the replica went on local state")
	svc.setIntercept(func(w http.ResponseWriter, _ string) bool {
		w.Header().Set("Retry-After", "60")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"TooManyRequests","message":"slow down"}}`))
		return true
	})
	svc.waitStatus(t, http.StatusTooManyRequests, "the replica received the 429")
	time.Sleep(300 * time.Millisecond)
	px.SetStalled(true)
	px.SetCut(false)
	// The goroutine tries Redis every 20 ms: by now it waits for an answer.
	time.Sleep(300 * time.Millisecond)
	r.close(t)
	goleak.VerifyNone(t,
		goleak.IgnoreAnyFunction("github.com/provenrand/entropy/internal/testkit.(*Proxy).pipe"),
		goleak.IgnoreAnyFunction("github.com/provenrand/entropy/internal/testkit.(*Proxy).serve"),
		goleak.IgnoreAnyFunction("net/http/httptest.(*Server).goServe.func1"),
	)
}

// A Retry-After that a ReadProven receives while Redis is out of reach
// reaches the fleet when Redis answers again, though the ReadProven has
// returned: the goroutine that publishes it runs on the hold's own
// context, not on the call's, which ends with the call; and Close ends it.
func TestFleetRetryAfterReceivedByReadProvenWithoutRedisReachesTheFleet(t *testing.T) {
	url := redisURL(t)
	name := fleetName(t, url)
	px := testkit.StartProxy(t, redisAddr(t, url))
	px.SetCut(true) // Redis out of reach from the start
	c, err := redisfleet.NewClient(proxied(t, url, px.Addr()))
	require.NoError(t, err)
	defer c.Close()
	type provenKey struct{}
	src := entropy.SourceFunc(func(ctx context.Context, n int) (entropy.Block, error) {
		if ctx.Value(provenKey{}) == nil {
			<-ctx.Done() // the refill's requests wait until Close
			return entropy.Block{}, ctx.Err()
		}
		return entropy.Block{}, &entropy.APIError{StatusCode: http.StatusTooManyRequests, RetryAfter: time.Minute}
	})
	p, err := entropy.New(src, entropy.WithPolicy(entropy.Fail), entropy.WithRetry(1, time.Millisecond, time.Millisecond),
		entropy.WithFleet(redisfleet.New(c, redisfleet.WithName(name), redisfleet.WithRetryInterval(20*time.Millisecond))))
	require.NoError(t, err)
	_, _, err = p.ReadProven(context.WithValue(context.Background(), provenKey{}, true), make([]byte, 32))
	require.Error(t, err, "the ReadProven met the 429")

	// Another replica, which reaches Redis, learns the hold once the
	// first reaches Redis again.
	direct, err := redisfleet.NewClient(url)
	require.NoError(t, err)
	defer direct.Close()
	other, err := redisfleet.New(direct, redisfleet.WithName(name)).Coordinate(entropy.FleetSource{
		Rate: rate.Inf, Burst: 1, MaxRetryAfter: time.Minute, Clock: wallClock{}, Attempts: 1})
	require.NoError(t, err)
	defer other.Close()
	px.SetCut(false)
	require.Eventually(t, func() bool { return other.Hold.Until(context.Background()).After(time.Now()) },
		5*time.Second, 10*time.Millisecond, "the ReadProven's Retry-After reached the fleet")

	require.NoError(t, p.Close())
	goleak.VerifyNone(t,
		goleak.IgnoreAnyFunction("github.com/provenrand/entropy/internal/testkit.(*Proxy).serve"),
		goleak.IgnoreAnyFunction("github.com/provenrand/entropy/internal/testkit.(*Proxy).pipe"),
		// The clients', which live on until their Close.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/maintnotifications.(*CircuitBreakerManager).cleanupLoop"),
	)
}

// A permanent error answered to a refill that Redis left while it ran
// (admitted by the fleet's breaker, its outcome not countable there) opens
// the replica's local breaker: it is counted somewhere, and the replica
// sends nothing more until the breaker's timeout.
func TestFleetPermanentErrorAnsweredAfterRedisWentAwayOpensTheLocalBreaker(t *testing.T) {
	px, svc, rs := replicaBehindAProxy(t)
	var once sync.Once
	svc.setIntercept(func(w http.ResponseWriter, replica string) bool {
		answered := false
		once.Do(func() {
			px.SetCut(true) // Redis goes away while the request is on its way
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"Unauthorized","message":"bad key"}}`))
			answered = true
		})
		return answered
	})
	failed := svc.waitStatus(t, http.StatusUnauthorized, "the 401 was answered")
	time.Sleep(time.Until(failed.at.Add(2 * time.Second)))
	assert.Equal(t, gobreaker.StateOpen.String(), rs[0].p.Stats().Sources[0].Breaker)
	stopFleet(t, rs)

	assert.Empty(t, between(svc.all(), failed.at.Add(time.Nanosecond), failed.at.Add(2*time.Second)),
		"no request after the 401, within the breaker's timeout")
}

// replicaBehindAProxy starts one replica of a fleet whose Redis it reaches
// through a proxy the test can cut, with a breaker that stays open a
// minute, and returns once it has run a second on the fleet's state.
func replicaBehindAProxy(t *testing.T) (*testkit.Proxy, *service, []*replica) {
	t.Helper()
	url := redisURL(t)
	px := testkit.StartProxy(t, redisAddr(t, url))
	svc := newService(t)
	fs := fleetSetup{redisURL: proxied(t, url, px.Addr()), name: fleetName(t, url), size: 1, rate: 10, burst: 1,
		opts:  []entropy.Option{entropy.WithBreaker(gobreaker.Settings{Timeout: time.Minute})},
		fleet: []redisfleet.Option{redisfleet.WithRetryInterval(200 * time.Millisecond)}}
	rs := startFleet(t, svc, fs, 1)
	time.Sleep(time.Second)
	return px, svc, rs
}

// wallClock is the system's clock, for a Coordinate called directly.
type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// In half-open, the fleet's probe is the only request, even beside a
// refill of the same process admitted before the breaker opened (a
// ReadProven that waited through a backoff, say): that refill's next
// request must not pass the Gate on the strength of the probe its
// process holds.
func TestFleetHalfOpenLetsOnlyTheProbeThroughInOneProcess(t *testing.T) {
	url := redisURL(t)
	c, err := redisfleet.NewClient(url)
	require.NoError(t, err)
	defer c.Close()
	fl := redisfleet.New(c, redisfleet.WithName(fleetName(t, url)), redisfleet.WithTimeout(time.Second))
	co, err := fl.Coordinate(entropy.FleetSource{
		Rate: rate.Inf, Burst: 1, MaxRetryAfter: time.Minute, Clock: wallClock{},
		Breaker: gobreaker.Settings{Timeout: 200 * time.Millisecond,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }},
		FetchTimeout: time.Second, Attempts: 1, RetryMax: time.Millisecond,
	})
	require.NoError(t, err)
	defer co.Close()
	cb, ctx := co.Breaker, context.Background()

	// The earlier refill, admitted while the breaker is closed, then
	// waiting before its next request.
	waiting, resume, earlierGate := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	earlierDone := make(chan struct{})
	go func() {
		defer close(earlierDone)
		_, _ = cb.Execute(func() (entropy.Block, error) {
			close(waiting)
			<-resume
			earlierGate <- cb.Gate(ctx)
			return entropy.Block{}, errors.New("answer from before the breaker opened")
		})
	}()
	<-waiting
	// Another refill meets a permanent error: the breaker opens, and is
	// due for a probe after its timeout.
	_, err = cb.Execute(func() (entropy.Block, error) { return entropy.Block{}, errors.New("401") })
	require.Error(t, err)
	time.Sleep(300 * time.Millisecond)

	// The probe: while it runs, the earlier refill asks for its next
	// request, then the probe for its own.
	ran := false
	_, err = cb.Execute(func() (entropy.Block, error) {
		ran = true
		close(resume)
		assert.Error(t, <-earlierGate, "the earlier refill's request passed the half-open breaker beside the probe")
		return entropy.Block{}, cb.Gate(ctx) // its own request: sent, or refused while the other ran
	})
	if !ran {
		close(resume)
	}
	<-earlierDone
	require.True(t, ran, "the refill after the timeout was the fleet's probe (%v)", err)
}
