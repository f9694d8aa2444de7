package redisfleet_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/redisfleet"
	"github.com/provenrand/entropy/sim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// redisURL returns the Redis of the integration tests, or skips the test.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("ENTROPY_TEST_REDIS")
	if u == "" {
		t.Skip("ENTROPY_TEST_REDIS is not set (e.g. redis://127.0.0.1:6379/0): skipping the Redis integration test")
	}
	return u
}

// fleetName returns a key prefix of the test's own, and deletes its keys
// when the test ends.
func fleetName(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "entropy-test-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c, err := redisfleet.NewClient(url)
		if err != nil {
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, pat := range []string{name + ":*", "rate:" + name + ":*"} {
			keys, _ := c.Keys(ctx, pat).Result()
			if len(keys) > 0 {
				c.Del(ctx, keys...)
			}
		}
	})
	return name
}

// arrival is one entropy request as the service saw it.
type arrival struct {
	at      time.Time
	replica string
	status  int
}

// service is the simulator behind a recorder that notes every entropy
// request with its arrival time and the replica that sent it.
type service struct {
	sim *sim.Server
	srv *httptest.Server
	key string

	mu       sync.Mutex
	arrivals []arrival
	// intercept, if set, may answer a request itself (true) instead of
	// the simulator; it is called with the replica that sent it.
	intercept func(w http.ResponseWriter, replica string) bool
}

// setIntercept sets the service's intercept (see service).
func (s *service) setIntercept(f func(w http.ResponseWriter, replica string) bool) {
	s.mu.Lock()
	s.intercept = f
	s.mu.Unlock()
}

func newService(t testing.TB, opts ...sim.Option) *service {
	t.Helper()
	s := &service{sim: sim.New(opts...), key: "fleet-test-key-0123456789"}
	s.sim.AddKey(s.key, math.MaxInt64)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/entropy") {
			s.sim.ServeHTTP(w, r)
			return
		}
		at := time.Now()
		replica := r.Header.Get("X-Test-Replica")
		rec := &statusWriter{ResponseWriter: w}
		s.mu.Lock()
		intercept := s.intercept
		s.mu.Unlock()
		if intercept == nil || !intercept(rec, replica) {
			s.sim.ServeHTTP(rec, r)
		}
		s.mu.Lock()
		s.arrivals = append(s.arrivals, arrival{at: at, replica: replica, status: rec.status})
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *service) all() []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]arrival(nil), s.arrivals...)
}

// waitStatus waits (bounded) for the first request answered with status,
// and returns it; what says what the wait is for.
func (s *service) waitStatus(t testing.TB, status int, what string) arrival {
	t.Helper()
	var first arrival
	require.Eventually(t, func() bool {
		for _, a := range s.all() {
			if a.status == status {
				first = a
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, what)
	return first
}

// source returns an HTTP source of the service for one replica.
func (s *service) source(t testing.TB, replica string) entropy.Source {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	src, err := httpsource.New(s.srv.URL,
		httpsource.WithAPIKey(s.key),
		httpsource.WithPublicKey(s.sim.PublicKey()),
		httpsource.WithName("fleet-test"),
		httpsource.WithHTTPClient(&http.Client{Transport: tagged{replica, tr}}),
	)
	require.NoError(t, err)
	return src
}

// tagged names the replica of every request in a header.
type tagged struct {
	replica string
	next    http.RoundTripper
}

func (t tagged) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Replica", t.replica)
	return t.next.RoundTrip(r)
}

// replica is one Provider of the fleet with its own Redis client and a
// reader that keeps its pool low, so that it refills all the time.
type replica struct {
	name   string
	p      *entropy.Provider
	client *redis.Client
	fleet  *redisfleet.Fleet

	mu     sync.Mutex
	events []entropy.FleetStatus

	reads    atomic.Int64
	readErrs atomic.Int64
	stop     chan struct{}
	done     chan struct{}
}

type fleetSetup struct {
	redisURL string // the URL the replicas' clients use
	name     string
	size     int
	rate     rate.Limit
	burst    int
	opts     []entropy.Option
	fleet    []redisfleet.Option
	// clientTimeout, if set, replaces the read and write timeouts of
	// NewClient's client (500 ms), so that a longer WithTimeout alone
	// bounds each Redis call.
	clientTimeout time.Duration
}

func startReplica(t testing.TB, svc *service, fs fleetSetup, name string) *replica {
	t.Helper()
	c, err := redisfleet.NewClient(fs.redisURL)
	require.NoError(t, err)
	if fs.clientTimeout > 0 {
		// NewClient's settings but the read and write timeouts.
		_ = c.Close()
		opt, err := redis.ParseURL(fs.redisURL)
		require.NoError(t, err)
		opt.ContextTimeoutEnabled = true
		opt.DialTimeout = 500 * time.Millisecond
		opt.ReadTimeout, opt.WriteTimeout = fs.clientTimeout, fs.clientTimeout
		opt.MaxRetries = -1
		c = redis.NewClient(opt)
	}
	t.Cleanup(func() { _ = c.Close() })
	// A timeout well above Redis's round trip on a loaded test machine: a
	// replica that takes a slow answer for a failure goes local for a
	// moment, which the counts would show.
	fl := redisfleet.New(c, append([]redisfleet.Option{redisfleet.WithName(fs.name), redisfleet.WithFleetSize(fs.size), redisfleet.WithTimeout(500 * time.Millisecond)}, fs.fleet...)...)
	r := &replica{name: name, client: c, fleet: fl, stop: make(chan struct{}), done: make(chan struct{})}
	opts := append([]entropy.Option{
		entropy.WithRateLimit(fs.rate, fs.burst),
		entropy.WithFleet(fl),
		entropy.WithBufferSize(1024),
		entropy.WithFetchSize(256),
		entropy.WithShards(1),
		entropy.WithPolicy(entropy.Degrade),
		entropy.WithFleetHook(func(ev entropy.FleetStatus) {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}),
	}, fs.opts...)
	p, err := entropy.New(svc.source(t, name), opts...)
	require.NoError(t, err)
	r.p = p
	go func() {
		defer close(r.done)
		buf := make([]byte, 256)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			if _, err := p.Read(buf); err != nil {
				r.readErrs.Add(1)
			}
			r.reads.Add(1)
		}
	}()
	t.Cleanup(func() { r.close(t) })
	return r
}

func (r *replica) close(t testing.TB) {
	select {
	case <-r.stop:
		return
	default:
	}
	close(r.stop)
	<-r.done
	require.NoError(t, r.p.Close())
}

func (r *replica) fleetEvents() []entropy.FleetStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]entropy.FleetStatus(nil), r.events...)
}

// maxInWindow returns the most arrivals (of replica, or of all if "") in
// any window [a.at, a.at+w) that starts at an arrival within [from, to).
func maxInWindow(as []arrival, replica string, w time.Duration, from, to time.Time) int {
	var ts []time.Time
	for _, a := range as {
		if replica == "" || a.replica == replica {
			ts = append(ts, a.at)
		}
	}
	best := 0
	j := 0
	for i, t0 := range ts {
		if t0.Before(from) || !t0.Before(to) {
			continue
		}
		if j < i {
			j = i
		}
		for j < len(ts) && ts[j].Before(t0.Add(w)) && ts[j].Before(to) {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// between returns the arrivals in [from, to).
func between(as []arrival, from, to time.Time) []arrival {
	var out []arrival
	for _, a := range as {
		if !a.at.Before(from) && a.at.Before(to) {
			out = append(out, a)
		}
	}
	return out
}

// redisAddr returns host:port of a redis:// URL.
func redisAddr(t testing.TB, url string) string {
	t.Helper()
	opt, err := redis.ParseURL(url)
	require.NoError(t, err)
	return opt.Addr
}

// proxied returns url with its address replaced by the proxy's.
func proxied(t testing.TB, url, addr string) string {
	t.Helper()
	return strings.Replace(url, redisAddr(t, url), addr, 1)
}
