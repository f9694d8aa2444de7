// Package faultmatrix_test runs every fault of the simulator against every
// policy of the Provider, over loopback HTTP through package httpsource, with
// many concurrent readers, and checks the whole contract in each cell.
//
//	go test -run TestFaultMatrix -v ./faultmatrix
package faultmatrix_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
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
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The Provider's settings in every cell. The rate and the breaker's open
// time are what the request checks measure against.
const (
	clientRate    = 200 // requests per second
	clientBurst   = 2
	breakerOpen   = 60 * time.Millisecond
	retryAfterSec = 1                         // the Retry-After the status faults send, in seconds
	apiKey        = "sk_test_matrix_5f2b1c9e" // must never appear in any output
)

// cell is one fault: what the simulator does on the first few entropy
// requests (then it is healthy), and whether its answer is permanent.
//
// Every cell runs with the Provider's default configuration, which refills
// from the simulator with batches: a whole-request fault applies to a batch
// request as to a single one, and a fault of an item's kind (a failed job,
// a bad signature, stuck bytes, …) to the batch's first item (sim.Script).
// The cells of single requests run again with batches turned off
// (WithBatch(1)), named "… single".
type cell struct {
	name      string
	fault     sim.Fault
	repeat    int  // how many requests in a row get the fault
	permanent bool // the answer is a permanent error (no retry allowed)
	// items, if set, makes the cell a batch cell: the items of the first
	// repeat batches (of the default 4 items) take these faults,
	// one per item (sim.ScriptItems).
	items []sim.Fault
	// single: the Provider sends single requests only (WithBatch(1)).
	single bool
}

func cells() []cell {
	var cs []cell
	for _, st := range []struct {
		status    int
		ra        bool
		permanent bool
	}{
		{400, false, true}, {401, false, true}, {402, false, true}, {403, false, true}, {404, false, true},
		{409, false, false}, {422, false, true}, {429, true, false}, {429, false, false},
		{500, false, false}, {502, false, false}, {503, true, false},
	} {
		ra := ""
		name := fmt.Sprintf("status %d", st.status)
		if st.ra {
			ra = fmt.Sprint(retryAfterSec)
			name += " retry-after"
		}
		shape := sim.Shapes[st.status%len(sim.Shapes)]
		cs = append(cs, cell{name: name, fault: sim.Status(st.status, shape, ra), repeat: 3, permanent: st.permanent})
	}
	cs = append(cs,
		cell{name: "job QuantumComputerError", fault: sim.JobFailure("QuantumComputerError"), repeat: 3},
		cell{name: "job QuotaExhaustedError", fault: sim.JobFailure("QuotaExhaustedError"), repeat: 3, permanent: true},
		cell{name: "drop", fault: sim.Kind(sim.FaultDrop), repeat: 3},
		cell{name: "truncate", fault: sim.Kind(sim.FaultTruncate), repeat: 3},
		cell{name: "malformed", fault: sim.Kind(sim.FaultMalformedJSON), repeat: 3},
		cell{name: "wronglength", fault: sim.Kind(sim.FaultWrongLength), repeat: 3},
		cell{name: "badsig", fault: sim.Kind(sim.FaultBadSignature), repeat: 3},
		cell{name: "stuck", fault: sim.Kind(sim.FaultStuck), repeat: 3},
		cell{name: "biased", fault: sim.Kind(sim.FaultBiased), repeat: 3},
		cell{name: "queued", fault: sim.Fault{Kind: sim.FaultQueued, Polls: 2}, repeat: 3},
		cell{name: "latency", fault: sim.Latency(30 * time.Millisecond), repeat: 3},
		cell{name: "exhausted", fault: sim.Kind(sim.FaultExhausted), repeat: 1, permanent: true},
	)
	for _, c := range cs[:len(cs):len(cs)] {
		c.name += " single"
		c.single = true
		cs = append(cs, c)
	}
	// Partial batches: some items of a batch fail, the others
	// are taken; the failed ones must never be served.
	none := sim.Kind(sim.FaultNone)
	cs = append(cs,
		cell{name: "batch jobfail items", repeat: 2, items: []sim.Fault{none, sim.JobFailure("QuantumComputerError"), none, sim.JobErrorStatus("QuotaExhaustedError")}},
		cell{name: "batch badsig stuck wrong", repeat: 2, items: []sim.Fault{none, sim.Kind(sim.FaultBadSignature), sim.Kind(sim.FaultStuck), sim.Kind(sim.FaultWrongLength)}},
		cell{name: "batch malformed queued biased", repeat: 2, items: []sim.Fault{sim.Kind(sim.FaultMalformedJSON), sim.Kind(sim.FaultQueued), none, sim.Kind(sim.FaultBiased)}},
		cell{name: "batch all items fail", repeat: 2, items: []sim.Fault{sim.JobFailure("JobFailed"), sim.JobFailure("Timeout"), sim.JobFailure("HardwareUnavailable"), sim.JobFailure("QuantumComputerError")}},
		cell{name: "batch exhausted midway", repeat: 1, permanent: true, items: []sim.Fault{none, sim.Kind(sim.FaultExhausted)}},
		cell{name: "batch status 503", repeat: 3, fault: sim.Status(503, sim.ShapeNested, fmt.Sprint(retryAfterSec)), items: []sim.Fault{}},
	)
	return cs
}

// counts are what one cell measured. Every field but the first four must be 0.
type counts struct {
	reads, verifiable, fallback, errs       int
	mislabelled, servedTwice, unchecked     int
	overRate, beforeRetryAfter, permRetries int
	badErrors                               int
	requests                                int
}

func (c counts) violations() int {
	return c.mislabelled + c.servedTwice + c.unchecked + c.overRate + c.beforeRetryAfter + c.permRetries + c.badErrors
}

func TestFaultMatrix(t *testing.T) {
	policies := []entropy.Policy{entropy.Degrade, entropy.Defer, entropy.Fail}
	results := map[string]map[entropy.Policy]counts{}
	var mu sync.Mutex
	t.Run("cells", func(t *testing.T) {
		for _, c := range cells() {
			for _, pol := range policies {
				t.Run(c.name+"/"+pol.String(), func(t *testing.T) {
					t.Parallel()
					got := runCell(t, c, pol)
					mu.Lock()
					if results[c.name] == nil {
						results[c.name] = map[entropy.Policy]counts{}
					}
					results[c.name][pol] = got
					mu.Unlock()
					assert.Zero(t, got.violations(), "%+v", got)
				})
			}
		}
	})
	leaked := 0
	if err := goleak.Find(); err != nil {
		leaked = strings.Count(err.Error(), "Goroutine ")
		t.Errorf("leaked goroutines: %v", err)
	}
	printTable(t, results, policies, leaked)
}

// runCell runs one fault against one policy and counts what it saw.
func runCell(t *testing.T, c cell, pol entropy.Policy) counts {
	s := sim.New(sim.WithSeed(int64(len(c.name))*31+int64(pol)), sim.WithKey(apiKey, 1<<40))
	t.Cleanup(func() { _ = s.Close() })
	faults := make([]sim.Fault, c.repeat)
	for i := range faults {
		faults[i] = c.fault
	}
	if c.fault.Kind != sim.FaultNone {
		s.Script(faults...)
	}
	if c.items != nil {
		for range c.repeat {
			s.ScriptItems(c.items...)
		}
	}
	src, err := s.Source(httpsource.WithAPIKey(apiKey))
	require.NoError(t, err)

	var logs testkit.SyncBuffer
	opts := clientOptions(pol, newLogger(&logs), 4096, 1024, 10*time.Millisecond, 2*time.Second)
	if c.single {
		opts = append(opts, entropy.WithBatch(1))
	}
	p, err := entropy.New(src, opts...)
	require.NoError(t, err)

	var got counts
	led := newLedger(s)
	var cmu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), uint64(pol)))
			for i := 0; i < 30; i++ {
				b := make([]byte, 1+r.IntN(200))
				ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
				lb, err := p.ReadLabelled(ctx, b)
				cancel()
				msg := ""
				cmu.Lock()
				got.reads++
				switch {
				case err != nil:
					got.errs++
					if !expectedError(pol, err) {
						got.badErrors++
						msg = "unexpected error: " + err.Error()
					}
				case lb.Verifiable:
					got.verifiable++
				default:
					got.fallback++
					if pol != entropy.Degrade {
						got.mislabelled++
						msg = "fallback bytes under " + pol.String()
					}
				}
				cmu.Unlock()
				if err == nil && msg == "" {
					m, twice, unchecked := led.check(b, lb)
					cmu.Lock()
					got.mislabelled += m
					got.servedTwice += twice
					got.unchecked += unchecked
					cmu.Unlock()
				}
				if msg != "" {
					t.Log(msg)
				}
				time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
			}
		}(g)
	}
	wg.Wait()
	require.NoError(t, p.Close())

	reqs := refillRequests(s)
	got.requests = len(reqs)
	got.overRate = overRate(reqs)
	got.beforeRetryAfter = beforeRetryAfter(reqs)
	got.permRetries = permanentRetries(reqs)

	// The key never shows, in logs, labels or errors.
	assert.NotContains(t, logs.String(), apiKey)
	return got
}

// expectedError: Fail returns ErrUnavailable; Defer returns the context's
// error when the wait ends; Degrade never fails.
func expectedError(pol entropy.Policy, err error) bool {
	if strings.Contains(err.Error(), apiKey) {
		return false
	}
	switch pol {
	case entropy.Fail:
		return errors.Is(err, entropy.ErrUnavailable)
	case entropy.Defer:
		return errors.Is(err, context.DeadlineExceeded)
	}
	return false
}

// clientOptions are the options of a Provider of the matrix and the soak:
// the client's rate and breaker, a pool of buffer bytes filled fetch at a
// time, retries backing off to retryMax, and wait as both the longest
// Retry-After honoured and the fetch timeout.
func clientOptions(pol entropy.Policy, l *slog.Logger, buffer, fetch int, retryMax, wait time.Duration) []entropy.Option {
	return []entropy.Option{
		entropy.WithPolicy(pol),
		entropy.WithRateLimit(clientRate, clientBurst),
		entropy.WithRetry(3, 2*time.Millisecond, retryMax),
		entropy.WithBreaker(gobreaker.Settings{Timeout: breakerOpen}),
		entropy.WithBufferSize(buffer),
		entropy.WithFetchSize(fetch),
		entropy.WithMaxRetryAfter(wait),
		entropy.WithFetchTimeout(wait),
		entropy.WithLogger(l),
	}
}

// ledger is the byte ledger of package testkit over the simulator's own
// record of its jobs, with the checks of a label's class and of the jobs'
// faults around it.
type ledger struct {
	*testkit.Ledger
	s      *sim.Server
	mu     sync.Mutex // guards jobs and faults, the caches of the simulator's record
	jobs   map[string][]byte
	faults map[string]sim.FaultKind
	// keys are the pool spans that keyed a derivation (ReadSecret): every
	// read a derivation serves names the same spans (docs/secret.md). Under
	// dmu, which claimDerived holds for a whole read.
	dmu  sync.Mutex
	keys map[entropy.Span]bool
}

func newLedger(s *sim.Server) *ledger {
	l := &ledger{s: s, jobs: map[string][]byte{}, faults: map[string]sim.FaultKind{}, keys: map[entropy.Span]bool{}}
	l.Ledger = testkit.NewLedger(func(source, id string) ([]byte, bool) {
		if source != sim.SourceName {
			return nil, false
		}
		d, _, ok := l.job(id)
		return d, ok
	})
	return l
}

// take checks a span with the ledger (got: the read's bytes for it, nil for
// pool bytes that keyed a derivation). It reports whether the span named
// bytes of a job the simulator made (known), whether it was mislabelled
// (unknown, out of range, other bytes) or handed out before (twice), and
// whether the job's bytes should never have passed the checks (unchecked).
func (l *ledger) take(sp entropy.Span, got []byte) (known, mislabelled, twice, unchecked bool) {
	f, _ := l.Take(testkit.Span{Source: sp.Source, Job: sp.JobID, Offset: sp.Offset, Length: sp.Length}, got)
	if f == testkit.UnknownJob || f == testkit.OutOfRange {
		return false, true, false, false
	}
	_, bad, _ := l.job(sp.JobID)
	return true, f == testkit.Differs, f == testkit.Twice, bad
}

// check returns how many of the read's spans are mislabelled, served twice,
// or come from a job whose bytes should not have passed the checks.
func (l *ledger) check(b []byte, lb entropy.Label) (mislabelled, twice, unchecked int) {
	if !lb.Verifiable {
		if lb.Derived || lb.Reason == nil || len(lb.Spans) != 1 || lb.Spans[0].Source != entropy.FallbackSource || lb.Spans[0].Length != len(b) {
			return 1, 0, 0
		}
		return 0, 0, 0
	}
	off := 0
	for _, sp := range lb.Spans {
		if sp.Length <= 0 || off+sp.Length > len(b) {
			mislabelled++
			continue
		}
		_, m, tw, u := l.take(sp, b[off:off+sp.Length])
		mislabelled += count(m)
		twice += count(tw)
		unchecked += count(u)
		off += sp.Length
	}
	if off != len(b) {
		mislabelled++
	}
	return
}

// count is 1 for true, 0 for false.
func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// job returns a job's bytes as the simulator keeps them, and whether the job
// carries a fault whose bytes must never be served (bad signature, wrong
// length, stuck or biased data).
func (l *ledger) job(id string) ([]byte, bool, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.jobs[id]; ok {
		return d, l.badJob(id, d), true
	}
	j, ok := l.s.Job(id)
	if !ok || j.Status != httpsource.StatusCompleted {
		return nil, false, false
	}
	d, err := base64.StdEncoding.DecodeString(j.Entropy)
	if err != nil {
		return nil, false, false
	}
	l.jobs[id] = d
	return d, l.badJob(id, d), true
}

// badJob reports whether the request that made the job carried a fault
// whose bytes must never pass the checks. A job the simulator's record does
// not know counts as bad.
func (l *ledger) badJob(id string, _ []byte) bool {
	k, ok := l.faults[id]
	if !ok {
		for _, r := range refillRequests(l.s) {
			if r.JobID != "" {
				l.faults[r.JobID] = r.Fault
			}
			for _, it := range r.Items {
				if it.JobID != "" {
					l.faults[it.JobID] = it.Fault
				}
			}
		}
		if k, ok = l.faults[id]; !ok {
			return true
		}
	}
	switch k {
	case sim.FaultBadSignature, sim.FaultWrongLength, sim.FaultStuck, sim.FaultBiased:
		return true
	}
	return false
}

// refillRequests returns the requests that ask for entropy: GET
// /v1/entropy and POST /v1/entropy/batch.
func refillRequests(s *sim.Server) []sim.Request {
	var out []sim.Request
	for _, r := range s.Requests() {
		if r.Path == httpsource.EntropyPath || r.Path == httpsource.BatchPath {
			out = append(out, r)
		}
	}
	return out
}

// overRate counts requests beyond what a limiter of clientRate with
// clientBurst allows in any window between two requests (one request of
// slack for arrival jitter).
func overRate(reqs []sim.Request) int {
	over := 0
	for i := range reqs {
		for j := i + 1; j < len(reqs); j++ {
			window := reqs[j].Time.Sub(reqs[i].Time).Seconds()
			allowed := clientBurst + int(window*clientRate) + 1
			if j-i+1 > allowed {
				over++
				break
			}
		}
	}
	return over
}

// beforeRetryAfter counts requests sent before the Retry-After of an earlier
// answer had passed (10 ms of slack for the two clocks' reading points).
func beforeRetryAfter(reqs []sim.Request) int {
	n := 0
	for i, r := range reqs {
		if r.RetryAfter <= 0 {
			continue
		}
		until := r.Time.Add(r.RetryAfter - 10*time.Millisecond)
		for _, later := range reqs[i+1:] {
			if later.Time.Before(until) {
				n++
			}
		}
	}
	return n
}

// permanentRetries counts requests sent within the breaker's open time after
// a permanent error: a retry instead of the breaker's half-open probe.
func permanentRetries(reqs []sim.Request) int {
	n := 0
	for i, r := range reqs {
		if !permanentStatus(r) {
			continue
		}
		if r.Path == httpsource.BatchPath && r.Status == 404 && i+1 < len(reqs) && reqs[i+1].Path == httpsource.EntropyPath {
			// A 404 to a batch request says the service has none: the
			// Provider asks again with a single request, another request.
			continue
		}
		if i+1 < len(reqs) && reqs[i+1].Time.Sub(r.Time) < breakerOpen-10*time.Millisecond {
			n++
		}
	}
	return n
}

func permanentStatus(r sim.Request) bool {
	switch r.Status {
	case 400, 401, 402, 403, 404, 422:
		return true
	}
	return false
}

func printTable(t *testing.T, results map[string]map[entropy.Policy]counts, policies []entropy.Policy, leaked int) {
	var names []string
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-28s %-8s %6s %6s %6s %6s %6s | %5s %5s %5s %5s %5s %5s %5s\n",
		"fault", "policy", "reads", "verif", "fallbk", "errors", "reqs", "mislb", "twice", "unchk", "rate", "retra", "perm", "bderr")
	for _, n := range names {
		for _, pol := range policies {
			c, ok := results[n][pol]
			if !ok {
				continue
			}
			fmt.Fprintf(&sb, "%-28s %-8s %6d %6d %6d %6d %6d | %5d %5d %5d %5d %5d %5d %5d\n",
				n, pol, c.reads, c.verifiable, c.fallback, c.errs, c.requests,
				c.mislabelled, c.servedTwice, c.unchecked, c.overRate, c.beforeRetryAfter, c.permRetries, c.badErrors)
		}
	}
	fmt.Fprintf(&sb, "leaked goroutines after all cells: %d\n", leaked)
	t.Log(sb.String())
}
