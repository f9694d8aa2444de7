package faultmatrix_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSoakCommandsReachThisPackage checks every soak command the repository
// shows (README, .ci/run, this file): go test passes a flag it does not
// know, and every argument after it, to the test binary of the current
// directory, so a -soak written before ./faultmatrix runs the root
// package's tests, which have no -soak, and fails.
func TestSoakCommandsReachThisPackage(t *testing.T) {
	commands := 0
	for _, file := range []string{"../README.md", "../.ci/run", "soak_test.go"} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			flagAt := strings.Index(line, "-soak=")
			if !strings.Contains(line, "go test") || flagAt < 0 {
				continue
			}
			commands++
			pkgAt := strings.Index(line, "./faultmatrix")
			assert.True(t, pkgAt >= 0 && pkgAt < flagAt, "%s: %q: -soak must come after ./faultmatrix", file, strings.TrimSpace(line))
		}
	}
	assert.GreaterOrEqual(t, commands, 3, "the soak commands of README, .ci/run and this file")
}

var soakFor = flag.Duration("soak", 0, "run TestSoak for this long (e.g. -soak=2m); 0 skips it")

// TestSoak runs random faults of every kind against two Providers (Degrade
// with a journal, and Defer) with concurrent readers of every entry point,
// for as long as -soak says, and then checks the whole contract: no
// mislabelled byte, none served twice, none from a faulty job, events drawn
// once, a journal that verifies, no API key anywhere, no goroutine left.
//
//	go test -race -run TestSoak -v ./faultmatrix -soak=2m
//
// -soak comes after the package: go test passes a flag it does not know,
// and every argument after it, to the test binary of the current
// directory, which has no -soak.
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("soak test: run with -soak=DURATION")
	}
	probs := map[sim.FaultKind]float64{}
	for _, k := range sim.FaultKinds() {
		probs[k] = 0.03
	}
	probs[sim.FaultExhausted] = 0.005
	probs[sim.FaultLatency] = 0.05

	deadline := time.Now().Add(*soakFor)
	var wg sync.WaitGroup
	for _, pol := range []entropy.Policy{entropy.Degrade, entropy.Defer} {
		wg.Add(1)
		go func(pol entropy.Policy) {
			defer wg.Done()
			soakOne(t, pol, probs, deadline)
		}(pol)
	}
	wg.Wait()
}

func soakOne(t *testing.T, pol entropy.Policy, probs map[sim.FaultKind]float64, deadline time.Time) {
	s := sim.New(sim.WithSeed(int64(pol)+7), sim.WithKey(apiKey, 1<<40))
	defer s.Close()
	require.NoError(t, s.SetRandomFaults(int64(pol)+11, probs))
	src, err := s.Source(httpsource.WithAPIKey(apiKey))
	require.NoError(t, err)

	var logs testkit.SyncBuffer
	opts := clientOptions(pol, newLogger(&logs), 16<<10, 4096, 20*time.Millisecond, time.Second)
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	var j *journal.Journal
	if pol == entropy.Degrade {
		j, err = journal.Open(jpath)
		require.NoError(t, err)
		opts = append(opts, entropy.WithJournal(j))
	}
	p, err := entropy.New(src, opts...)
	require.NoError(t, err)

	// An operator tops the balance up now and then, so "exhausted" passes.
	stopTopUp := make(chan struct{})
	var topUp sync.WaitGroup
	topUp.Add(1)
	go func() {
		defer topUp.Done()
		for {
			select {
			case <-stopTopUp:
				return
			case <-time.After(200 * time.Millisecond):
				s.AddKey(apiKey, 1<<40)
			}
		}
	}()

	led := newLedger(s)
	var reads, verifiable, fallback, derived, errs, refused, violations atomic.Int64
	var events sync.Map // name → hex of its bytes
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), uint64(pol)+99))
			for i := 0; time.Now().Before(deadline); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				b := make([]byte, 1+r.IntN(512))
				var lb entropy.Label
				var err error
				repeatEvent, isEvent := false, false
				switch op := r.IntN(10); {
				case op < 6:
					lb, err = p.ReadLabelled(ctx, b)
				case op < 8:
					lb, err = p.ReadSecret(ctx, b)
				default:
					isEvent = true
					name := fmt.Sprintf("event-%d", r.IntN(20))
					b = make([]byte, 32)
					lb, err = p.ReadFor(ctx, name, b)
					if err == nil {
						prev, loaded := events.LoadOrStore(name, string(b))
						if loaded && prev.(string) != string(b) {
							violations.Add(1)
							t.Errorf("event %s re-rolled", name)
						}
						repeatEvent = loaded // same event, same bytes: served again on purpose
					}
				}
				cancel()
				reads.Add(1)
				if err != nil {
					errs.Add(1)
					if strings.Contains(err.Error(), apiKey) {
						violations.Add(1)
						t.Errorf("API key in error")
					}
					// Only a wait may end in an error: Defer's, or an event's
					// (events wait for verifiable bytes under every policy),
					// and an event when the service refused for good (a 402
					// of a spent balance): it ends at once with the
					// service's error, permanent, rather than wait.
					if isEvent && errors.Is(err, entropy.ErrUnavailable) && entropy.Classify(err) == entropy.Permanent {
						refused.Add(1)
						continue
					}
					if !errors.Is(err, context.DeadlineExceeded) || (pol == entropy.Degrade && !isEvent) {
						violations.Add(1)
						t.Errorf("unexpected error under %s: %v", pol, err)
					}
					continue
				}
				switch lb.Provenance() {
				case entropy.ProvenanceDerived:
					derived.Add(1)
					if v := led.claimDerived(lb); v > 0 {
						violations.Add(int64(v))
						t.Errorf("derived read spans: %+v", lb.Spans)
					}
					continue
				case entropy.ProvenanceVerifiable:
					verifiable.Add(1)
				default:
					fallback.Add(1)
					if pol != entropy.Degrade {
						violations.Add(1)
						t.Errorf("fallback under %s", pol)
					}
				}
				if repeatEvent {
					continue
				}
				if m, twice, unchecked := led.check(b, lb); m+twice+unchecked > 0 {
					violations.Add(int64(m + twice + unchecked))
					t.Errorf("read violates the contract: mislabelled %d, twice %d, unchecked %d: %s", m, twice, unchecked, led.describe(lb))
				}
			}
		}(g)
	}
	wg.Wait()
	close(stopTopUp)
	topUp.Wait()
	require.NoError(t, p.Close())
	st := p.Stats()
	if j != nil {
		require.NoError(t, j.Close())
		rep, err := journal.VerifyFile(jpath)
		require.NoError(t, err)
		raw, err := os.ReadFile(jpath)
		require.NoError(t, err)
		assert.NotContains(t, string(raw), apiKey)
		t.Logf("journal: %+v", rep)
	}
	assert.NotContains(t, logs.String(), apiKey)
	assert.NotContains(t, fmt.Sprintf("%+v", st), apiKey)
	assert.Zero(t, violations.Load())
	t.Logf("soak %s: %d reads (%d verifiable, %d derived, %d fallback, %d errors, %d of them events the service refused), %d requests, %d fallback episodes, violations %d",
		pol, reads.Load(), verifiable.Load(), derived.Load(), fallback.Load(), errs.Load(), refused.Load(), len(s.EntropyRequests()), st.FallbackEpisodes, violations.Load())
}

// describe names the jobs of a label's spans and what the simulator did to
// the requests that made them, for a violation's message.
func (l *ledger) describe(lb entropy.Label) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for _, sp := range lb.Spans {
		k, known := l.faults[sp.JobID]
		parts = append(parts, fmt.Sprintf("%s[%d:%d] fault %q (known %v)", sp.JobID, sp.Offset, sp.Offset+sp.Length, k, known))
	}
	return strings.Join(parts, "; ")
}

// claimDerived records the pool spans a derived read drew on, and returns
// how many were wrong: unknown, from a faulty job, or used before by
// anything but the same derivation. A keystream serves many reads from one
// keying (docs/secret.md), and each of them names the same spans: a span
// seen before is fine only if a derivation claimed it, never if a plain
// read was served its bytes (or another derivation overlapped it).
func (l *ledger) claimDerived(lb entropy.Label) int {
	if lb.Verifiable || lb.Reason != nil {
		return 1
	}
	l.dmu.Lock()
	defer l.dmu.Unlock()
	bad := 0
	for _, sp := range lb.Spans {
		if l.keys[sp] {
			continue // the same derivation, serving another read
		}
		known, m, twice, unchecked := l.take(sp, nil)
		bad += count(!known || m || twice || unchecked)
		l.keys[sp] = true
	}
	return bad
}
