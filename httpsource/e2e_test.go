package httpsource_test

// End-to-end tests: a Provider over an httpsource.Source over loopback HTTP to
// the simulator, one test per fault, checking the contract (README.md) from
// the server's side (which requests arrived, and when) and from the reader's
// (labels, fallback, policies).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/sim"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

const e2eKey = "sk-e2e-5c1f0e9d8b7a6f5e4d3c2b1a09f8"

// e2e is one Provider over the simulator.
type e2e struct {
	s    *sim.Server
	src  *httpsource.Source
	p    *entropy.Provider
	logs *testkit.SyncBuffer
}

// e2eConfig says how to build an e2e.
type e2eConfig struct {
	setup   func(s *sim.Server) // before the Provider starts: scripts, limits
	srcOpts []httpsource.Option
	opts    []entropy.Option
	// clock, if set, is the clock of the simulator, the source and the
	// Provider (a virtualClock: the tests of spacings).
	clock entropy.Clock
}

// virtualClock is a clock on which every wait passes at once: After(d)
// moves the time d ahead and fires. The spacings a Provider keeps by
// waiting (rate limit, Retry-After holds, backoff) then show exactly in
// the request times a simulator on the same clock records, however fast or
// loaded the machine is. It suits a Provider with one source (one goroutine
// that waits on it).
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newVirtualClock() *virtualClock {
	return newVirtualClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

func newVirtualClockAt(t time.Time) *virtualClock { return &virtualClock{now: t} }

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	c.mu.Unlock()
	return ch
}

// newE2E starts the simulator, runs setup, then starts a Provider over it
// with small, fast settings; everything is closed when the test ends.
func newE2E(t *testing.T, cfg e2eConfig) *e2e {
	t.Helper()
	simOpts := []sim.Option{sim.WithSeed(11), sim.WithKey(e2eKey, 1<<30)}
	srcOpts := []httpsource.Option{
		httpsource.WithAPIKey(e2eKey),
		httpsource.WithPollInterval(time.Millisecond, 5*time.Millisecond),
	}
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := []entropy.Option{
		entropy.WithBufferSize(1024),
		entropy.WithFetchSize(256),
		entropy.WithRetry(4, 5*time.Millisecond, 20*time.Millisecond),
		entropy.WithRateLimit(rate.Limit(1000), 10),
		entropy.WithLogger(logger),
	}
	if cfg.clock != nil {
		simOpts = append(simOpts, sim.WithClock(cfg.clock))
		srcOpts = append(srcOpts, httpsource.WithClock(cfg.clock))
		opts = append(opts, entropy.WithClock(cfg.clock))
	}
	s := sim.New(simOpts...)
	t.Cleanup(func() { _ = s.Close() })
	if cfg.setup != nil {
		cfg.setup(s)
	}
	src, err := s.Source(append(srcOpts, cfg.srcOpts...)...)
	require.NoError(t, err)
	p, err := entropy.New(src, append(opts, cfg.opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return &e2e{s: s, src: src, p: p, logs: logs}
}

// singleRequests turns batches off: the tests of a fault scripted for one
// GET /v1/entropy. A fault of a job's kind applies to one item of a batch
// (a partial batch, not a failed request); the batch tests and the fault
// matrix's batch cells prove what happens then.
var singleRequests = entropy.WithBatch(1)

// readVerifiable waits until the pool holds n bytes and reads n bytes that
// must be verifiable.
func (e *e2e) readVerifiable(t *testing.T, n int) entropy.Label {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.p.WaitReady(ctx))
	require.Eventually(t, func() bool { return e.p.Stats().Pooled >= n }, 10*time.Second, time.Millisecond)
	b := make([]byte, n)
	lbl, err := e.p.ReadLabelled(ctx, b)
	require.NoError(t, err)
	require.True(t, lbl.Verifiable, "label %v", lbl)
	return lbl
}

// checkSpans checks that every span of lbl names a completed job of the
// simulator whose bytes (at the span's offset) are the bytes read.
func (e *e2e) checkSpans(t *testing.T, lbl entropy.Label, read []byte) {
	t.Helper()
	off := 0
	for _, sp := range lbl.Spans {
		assert.Equal(t, sim.SourceName, sp.Source)
		job, err := e.src.Job(context.Background(), sp.JobID)
		require.NoError(t, err)
		require.Equal(t, httpsource.StatusCompleted, job.Status)
		require.True(t, job.Verified, "the job's signature checks")
		if read != nil {
			assert.Equal(t, job.Data[sp.Offset:sp.Offset+sp.Length], read[off:off+sp.Length])
		}
		off += sp.Length
	}
}

// entropyFaults returns the fault of each entropy request the server saw.
func entropyFaults(s *sim.Server) []sim.FaultKind {
	var out []sim.FaultKind
	for _, r := range s.EntropyRequests() {
		out = append(out, r.Fault)
	}
	return out
}

func TestE2EHealthy(t *testing.T) {
	e := newE2E(t, e2eConfig{})
	ctx := context.Background()
	require.NoError(t, e.p.WaitReady(ctx))
	b := make([]byte, 100)
	lbl, err := e.p.ReadLabelled(ctx, b)
	require.NoError(t, err)
	require.True(t, lbl.Verifiable)
	assert.Equal(t, 100, lbl.Len())
	e.checkSpans(t, lbl, b)
	reqs := e.s.EntropyRequests()
	require.NotEmpty(t, reqs)
	for _, r := range reqs {
		assert.True(t, r.Authorized)
		if r.Path == httpsource.BatchPath {
			require.NotEmpty(t, r.Items)
			for _, it := range r.Items {
				assert.LessOrEqual(t, it.Size, 256, "the fetch size is respected by every item")
			}
			continue
		}
		assert.LessOrEqual(t, r.Size, 256, "the fetch size is respected")
	}
}

// TestE2ETransientFaults: one fault, then a healthy service. Each fault
// produced nothing usable, so the Provider retries, and every byte it serves
// comes from a healthy, signed job; the faulty job is never served.
func TestE2ETransientFaults(t *testing.T) {
	faults := []sim.Fault{
		sim.Latency(30 * time.Millisecond),
		sim.Status(500, sim.ShapeStatus, ""),
		sim.Status(502, sim.ShapeText, ""),
		sim.Status(503, sim.ShapeNested, ""),
		sim.Status(409, sim.ShapeDetails, ""),
		sim.Status(429, sim.ShapeCode, ""),
		sim.JobFailure("QuantumComputerError"),
		sim.JobFailure("HardwareUnavailable"),
		sim.JobFailure("Timeout"),
		sim.Kind(sim.FaultDrop),
		sim.Kind(sim.FaultTruncate),
		sim.Kind(sim.FaultMalformedJSON),
		sim.Kind(sim.FaultWrongLength),
		sim.Kind(sim.FaultBadSignature),
		sim.Kind(sim.FaultStuck),
		sim.Kind(sim.FaultBiased),
		sim.Fault{Kind: sim.FaultQueued, Polls: 3},
	}
	for _, f := range faults {
		t.Run(f.String(), func(t *testing.T) {
			e := newE2E(t, e2eConfig{setup: func(s *sim.Server) { s.Script(f) }, opts: []entropy.Option{singleRequests}})
			b := make([]byte, 200)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, e.p.WaitReady(ctx))
			lbl, err := e.p.ReadLabelled(ctx, b)
			require.NoError(t, err)
			require.True(t, lbl.Verifiable, "label %v", lbl)
			e.checkSpans(t, lbl, b)

			kinds := entropyFaults(e.s)
			require.NotEmpty(t, kinds)
			assert.Equal(t, f.Kind, kinds[0], "the first request met the fault")

			// Only a fault that produced nothing usable is followed by a
			// retry: the bytes of the first job are served only when it was
			// healthy (latency, queued).
			first := e.s.EntropyRequests()[0]
			st := e.p.Stats().Sources[0]
			switch f.Kind {
			case sim.FaultLatency, sim.FaultQueued:
				assert.Zero(t, st.Failures)
			default:
				assert.GreaterOrEqual(t, st.Failures, uint64(1), "the fault counted as a source failure")
				assert.GreaterOrEqual(t, st.Retries, uint64(1), "and was retried")
				assert.GreaterOrEqual(t, len(kinds), 2)
			}
			switch f.Kind {
			case sim.FaultWrongLength, sim.FaultBadSignature, sim.FaultStuck, sim.FaultBiased:
				// The faulty job exists on the server, and none of its bytes
				// was served.
				assert.Equal(t, http.StatusOK, first.Status)
				for _, sp := range lbl.Spans {
					final, ok := e.s.Job(sp.JobID)
					require.True(t, ok)
					assert.Equal(t, httpsource.StatusCompleted, final.Status)
				}
				assert.NotContains(t, spanJobs(lbl), first.JobID, "the faulty job is never served")
			}
			if f.Kind == sim.FaultStuck || f.Kind == sim.FaultBiased {
				assert.GreaterOrEqual(t, st.BlocksRejected, uint64(1), "the health tests refused the block")
			}
		})
	}
}

// spanJobs lists the job IDs of a label.
func spanJobs(lbl entropy.Label) []string {
	var ids []string
	for _, sp := range lbl.Spans {
		ids = append(ids, sp.JobID)
	}
	return ids
}

// TestE2EPermanentFaults: a permanent failure is not retried (exactly one
// request), opens the breaker, and each policy does what it says.
func TestE2EPermanentFaults(t *testing.T) {
	type perm struct {
		fault    sim.Fault
		srcOpts  []httpsource.Option
		sentinel error
	}
	cases := []perm{
		{fault: sim.Status(400, sim.ShapeStatus, ""), sentinel: httpsource.ErrBadRequest},
		{fault: sim.Status(401, sim.ShapeStatus, ""), sentinel: httpsource.ErrUnauthorized},
		{fault: sim.Status(402, sim.ShapeNested, ""), sentinel: httpsource.ErrPaymentRequired},
		{fault: sim.Status(403, sim.ShapeDetails, ""), sentinel: httpsource.ErrForbidden},
		{fault: sim.Status(404, sim.ShapeCode, ""), sentinel: httpsource.ErrNotFound},
		{fault: sim.Status(422, sim.ShapeText, ""), sentinel: httpsource.ErrValidation},
		{fault: sim.Kind(sim.FaultExhausted), sentinel: httpsource.ErrQuotaExhausted},
		{fault: sim.JobFailure("QuotaExhaustedError"), sentinel: httpsource.ErrQuotaExhausted},
		{fault: sim.JobFailure("TooManyShots"), sentinel: entropy.ErrPermanent},
		{fault: sim.Status(429, sim.ShapeDetails, ""), sentinel: httpsource.ErrQuotaExhausted,
			srcOpts: []httpsource.Option{httpsource.WithQuotaOn429WithoutRetryAfter()}},
	}
	for _, tc := range cases {
		for _, pol := range []entropy.Policy{entropy.Degrade, entropy.Defer, entropy.Fail} {
			t.Run(tc.fault.String()+"/"+pol.String(), func(t *testing.T) {
				e := newE2E(t, e2eConfig{
					setup:   func(s *sim.Server) { s.Script(tc.fault) },
					srcOpts: tc.srcOpts,
					// A long open time, so that a slow, loaded machine cannot
					// reach the half-open probe before the request count below.
					opts: []entropy.Option{singleRequests, entropy.WithPolicy(pol), entropy.WithBreaker(gobreaker.Settings{Timeout: time.Minute})},
				})
				// Wait for the breaker to open on the failure, and for reads
				// to learn why (the Provider records the reason just after
				// the breaker has opened).
				require.Eventually(t, func() bool {
					st := e.p.Stats()
					return st.Sources[0].Breaker == "open" && errors.Is(st.Unavailable, tc.sentinel)
				}, 5*time.Second, time.Millisecond)
				st := e.p.Stats().Sources[0]
				assert.ErrorIs(t, st.LastError, tc.sentinel)
				assert.Equal(t, entropy.Permanent, entropy.Classify(st.LastError))
				assert.Zero(t, st.Retries, "a permanent failure is not retried")

				b := make([]byte, 16)
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				lbl, err := e.p.ReadLabelled(ctx, b)
				switch pol {
				case entropy.Degrade:
					require.NoError(t, err)
					assert.False(t, lbl.Verifiable, "fallback bytes are never labelled verifiable")
					assert.Equal(t, entropy.ProvenanceFallback, lbl.Provenance())
					require.Len(t, lbl.Spans, 1)
					assert.Equal(t, entropy.FallbackSource, lbl.Spans[0].Source)
					assert.ErrorIs(t, lbl.Reason, tc.sentinel, "the label says why")
					assert.Equal(t, uint64(1), e.p.Stats().FallbackEpisodes)
				case entropy.Defer:
					assert.ErrorIs(t, err, context.DeadlineExceeded, "defer waits until the context ends")
					assert.Equal(t, make([]byte, 16), b, "no entropy on an error")
				case entropy.Fail:
					assert.ErrorIs(t, err, entropy.ErrUnavailable)
					assert.ErrorIs(t, err, tc.sentinel)
				}

				// The breaker stays open: still exactly one entropy request.
				time.Sleep(100 * time.Millisecond)
				assert.Len(t, e.s.EntropyRequests(), 1, "no retry of a permanent failure")
			})
		}
	}
}

// TestE2EWrongKey: a key the service does not know is a 401, not retried,
// and the key shows nowhere.
func TestE2EWrongKey(t *testing.T) {
	const wrong = "sk-wrong-aaaabbbbccccddddeeeeffff"
	e := newE2E(t, e2eConfig{srcOpts: []httpsource.Option{httpsource.WithAPIKey(wrong)}, opts: []entropy.Option{entropy.WithPolicy(entropy.Fail)}})
	require.Eventually(t, func() bool {
		st := e.p.Stats()
		return st.Sources[0].Breaker == "open" && errors.Is(st.Unavailable, httpsource.ErrUnauthorized)
	}, 5*time.Second, time.Millisecond)
	_, err := e.p.ReadLabelled(context.Background(), make([]byte, 8))
	require.ErrorIs(t, err, httpsource.ErrUnauthorized)
	reqs := e.s.EntropyRequests()
	require.Len(t, reqs, 1)
	assert.False(t, reqs[0].Authorized)
	assert.NotContains(t, err.Error(), wrong)
	assert.NotContains(t, e.logs.String(), wrong)
}

// TestE2ERetryAfterIsHonoured: after a Retry-After, in seconds or as an
// HTTP-date, no request reaches the server before the delay has passed. The
// simulator, the source and the Provider share a virtualClock, so the gap
// is measured on the clock the hold was kept on, not on a loaded machine's.
func TestE2ERetryAfterIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(now time.Time) sim.Fault
		min   time.Duration
	}{
		{"429-seconds", func(time.Time) sim.Fault { return sim.Status(429, sim.ShapeNested, "1") }, time.Second},
		{"503-seconds", func(time.Time) sim.Fault { return sim.Status(503, sim.ShapeStatus, "1") }, time.Second},
		{"503-date", func(now time.Time) sim.Fault {
			// Two seconds ahead of the clock, which stands on a whole second.
			return sim.Status(503, sim.ShapeCode, now.Add(2*time.Second).UTC().Format(http.TimeFormat))
		}, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newVirtualClock()
			e := newE2E(t, e2eConfig{clock: clk, setup: func(s *sim.Server) { s.Script(tc.fault(clk.Now())) }})
			e.readVerifiable(t, 32)
			reqs := e.s.EntropyRequests()
			require.GreaterOrEqual(t, len(reqs), 2)
			assert.Equal(t, sim.FaultStatus, reqs[0].Fault)
			assert.Equal(t, tc.min, reqs[0].RetryAfter, "the simulator's record of the hold it asked for")
			gap := reqs[1].Time.Sub(reqs[0].Time)
			assert.GreaterOrEqual(t, gap, tc.min, "no request before the Retry-After passed")
			assert.False(t, e.p.Stats().Sources[0].HoldUntil.IsZero(), "the hold is visible in Stats")
		})
	}
}

// TestE2ERateIsRespected: whatever the faults, the Provider's requests stay
// under its configured rate. The simulator, the source and the Provider
// share a virtualClock, so the times the simulator records are the ones the
// limiter let the requests out at: with burst 1, request j comes at least
// (j-i)/rate after request i, exactly, however slow the machine (a
// microsecond of slack for the limiter's float arithmetic).
func TestE2ERateIsRespected(t *testing.T) {
	const perSecond = 20
	e := newE2E(t, e2eConfig{
		clock: newVirtualClock(),
		setup: func(s *sim.Server) {
			for i := 0; i < 6; i++ {
				s.Script(sim.Status(500, sim.ShapeNested, ""))
			}
		},
		opts: []entropy.Option{
			entropy.WithPolicy(entropy.Defer),
			entropy.WithRateLimit(perSecond, 1),
			entropy.WithRetry(10, time.Millisecond, 2*time.Millisecond),
		},
	})
	// Drain the pool a few times so that refills keep coming.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		lbl, err := e.p.ReadLabelled(ctx, make([]byte, 900))
		require.NoError(t, err)
		require.True(t, lbl.Verifiable)
	}
	reqs := e.s.EntropyRequests()
	require.GreaterOrEqual(t, len(reqs), 10)
	over := 0
	for i := range reqs {
		for j := i + 1; j < len(reqs); j++ {
			gap := reqs[j].Time.Sub(reqs[i].Time)
			if want := time.Duration(j-i) * time.Second / perSecond; gap+time.Microsecond < want {
				over++
				t.Logf("requests %d and %d: %v apart, want at least %v", i, j, gap, want)
			}
		}
	}
	assert.Zero(t, over, "%d requests", len(reqs))
	// The limiter waited: the requests span the rate's time, on the clock.
	assert.GreaterOrEqual(t, reqs[len(reqs)-1].Time.Sub(reqs[0].Time), time.Duration(len(reqs)-1)*time.Second/perSecond-time.Microsecond)
}

// TestE2EFetchTimeout: a service slower than the fetch timeout is a timeout,
// retried; the Provider still serves verifiable bytes once it answers in time.
func TestE2EFetchTimeout(t *testing.T) {
	e := newE2E(t, e2eConfig{
		setup: func(s *sim.Server) { s.Script(sim.Latency(2 * time.Second)) },
		opts:  []entropy.Option{entropy.WithFetchTimeout(100 * time.Millisecond)},
	})
	e.readVerifiable(t, 64)
	st := e.p.Stats().Sources[0]
	assert.GreaterOrEqual(t, st.Failures, uint64(1))
	assert.Equal(t, sim.FaultLatency, e.s.EntropyRequests()[0].Fault)
}

// TestE2EFallbackEpisodeEnds: Degrade serves labelled fallback while the
// service is down and verifiable bytes again once it is back, and the episode
// is reported through the hook.
func TestE2EFallbackEpisodeEnds(t *testing.T) {
	var mu sync.Mutex
	var episodes []entropy.FallbackEpisode
	e := newE2E(t, e2eConfig{
		setup: func(s *sim.Server) {
			for i := 0; i < 10000; i++ {
				s.Script(sim.Status(503, sim.ShapeNested, ""))
			}
		},
		opts: []entropy.Option{
			entropy.WithBreaker(gobreakerFast()),
			entropy.WithFallbackHook(func(ep entropy.FallbackEpisode) {
				mu.Lock()
				episodes = append(episodes, ep)
				mu.Unlock()
			}),
		},
	})
	// While the service is down, reads fall back, labelled with the reason.
	require.Eventually(t, func() bool {
		return errors.Is(e.p.Stats().Unavailable, httpsource.ErrServiceUnavailable)
	}, 5*time.Second, time.Millisecond)
	b := make([]byte, 8)
	lbl, err := e.p.ReadLabelled(context.Background(), b)
	require.NoError(t, err)
	require.False(t, lbl.Verifiable)
	assert.ErrorIs(t, lbl.Reason, httpsource.ErrServiceUnavailable)
	assert.Equal(t, []entropy.Span{{Source: entropy.FallbackSource, Length: 8}}, lbl.Spans)

	// The service recovers; verifiable reads end the episode.
	e.s.ClearFaults()
	e.readVerifiable(t, 8)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(episodes) >= 2 && episodes[len(episodes)-1].Ended
	}, 5*time.Second, time.Millisecond)
	mu.Lock()
	first, last := episodes[0], episodes[len(episodes)-1]
	mu.Unlock()
	assert.False(t, first.Ended, "the hook sees the start")
	assert.Equal(t, int64(8), last.Bytes)
	assert.Equal(t, int64(1), last.Reads)
	assert.ErrorIs(t, last.Reason, httpsource.ErrServiceUnavailable)
	assert.False(t, e.p.Stats().InFallback)
}

// TestE2EAPIKeyNeverLeaks runs every fault, each policy, with a server that
// echoes the key in its error bodies, and looks for the key in every error,
// label, Stats field and log line.
func TestE2EAPIKeyNeverLeaks(t *testing.T) {
	echo := func(status int, shape sim.BodyShape) sim.Fault {
		return sim.Fault{Kind: sim.FaultStatus, Status: status, Shape: shape, Code: "Bad " + e2eKey,
			Message: "key " + e2eKey + " refused", RetryAfter: ""}
	}
	var faults []sim.Fault
	for _, k := range sim.FaultKinds() {
		if k != sim.FaultStatus && k != sim.FaultLatency {
			faults = append(faults, sim.Kind(k))
		}
	}
	for _, status := range []int{400, 401, 402, 403, 404, 409, 422, 429, 500, 502, 503} {
		faults = append(faults, echo(status, sim.Shapes[status%len(sim.Shapes)]))
	}
	for _, shape := range sim.Shapes {
		faults = append(faults, echo(500, shape))
	}
	faults = append(faults, sim.Fault{Kind: sim.FaultJobFailed, Code: "JobFailed", Message: "key " + e2eKey})

	var seen strings.Builder
	for _, pol := range []entropy.Policy{entropy.Degrade, entropy.Fail} {
		e := newE2E(t, e2eConfig{
			setup: func(s *sim.Server) { s.Script(faults...) },
			opts: []entropy.Option{
				entropy.WithPolicy(pol),
				entropy.WithBreaker(gobreakerFast()),
				entropy.WithRetry(2, time.Millisecond, 2*time.Millisecond),
			},
		})
		// Read until the script is used up, collecting everything shown.
		deadline := time.Now().Add(20 * time.Second)
		for len(e.s.EntropyRequests()) <= len(faults) && time.Now().Before(deadline) {
			// Each permanent fault opens the breaker; top the balance up
			// after an exhaustion so that the script goes on.
			e.s.AddKey(e2eKey, 1<<30)
			lbl, err := e.p.ReadLabelled(context.Background(), make([]byte, 4))
			if err != nil {
				fmt.Fprintf(&seen, "%v\n%+v\n", err, err)
			}
			js, _ := json.Marshal(lbl)
			fmt.Fprintf(&seen, "%s\n%v\n", js, lbl)
			st := e.p.Stats()
			fmt.Fprintf(&seen, "%v\n%+v\n", st.Unavailable, st)
			for _, s := range st.Sources {
				fmt.Fprintf(&seen, "%v\n", s.LastError)
				var ae *entropy.APIError
				if errors.As(s.LastError, &ae) {
					fmt.Fprintf(&seen, "%s %s %s %s\n", ae.Code, ae.Message, ae.RequestID, ae.Body)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		require.Greater(t, len(e.s.EntropyRequests()), len(faults), "the whole script ran")
		require.NoError(t, e.p.Close())
		seen.WriteString(e.logs.String())
	}
	out := seen.String()
	assert.Contains(t, out, "[REDACTED]", "the echoed key was seen and removed")
	for _, line := range strings.Split(out, "\n") {
		assert.NotContains(t, line, e2eKey)
	}
}

// gobreakerFast is a breaker that half-opens quickly, so a script of
// permanent faults runs through in a test.
func gobreakerFast() gobreaker.Settings {
	return gobreaker.Settings{Timeout: 20 * time.Millisecond}
}

// TestE2EHugeRetryAfterHoldsForTheCap: a Retry-After too big for any
// duration (400 digits, 1e400) holds the Provider for its cap
// (WithMaxRetryAfter), like one of 30 digits: one request, then none until
// the cap has passed.
func TestE2EHugeRetryAfterHoldsForTheCap(t *testing.T) {
	const maxHold = time.Hour
	for name, v := range map[string]string{
		"30 digits":  strings.Repeat("9", 30),
		"400 digits": strings.Repeat("9", 400),
		"1e400":      "1e400",
	} {
		t.Run(name, func(t *testing.T) {
			e := newE2E(t, e2eConfig{
				setup: func(s *sim.Server) {
					for range 20 {
						s.Script(sim.Status(503, sim.ShapeNested, v))
					}
				},
				opts: []entropy.Option{entropy.WithMaxRetryAfter(maxHold), entropy.WithPolicy(entropy.Fail)},
			})
			require.Eventually(t, func() bool { return !e.p.Stats().Sources[0].HoldUntil.IsZero() },
				10*time.Second, time.Millisecond, "no hold after Retry-After %q", v)
			st := e.p.Stats().Sources[0]
			assert.WithinDuration(t, time.Now().Add(maxHold), st.HoldUntil, maxHold/2, "the hold is the cap")
			assert.Len(t, e.s.EntropyRequests(), 1, "a request went out during the hold")
		})
	}
}
