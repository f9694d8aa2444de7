package entropy_test

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/entropymetrics"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/sim"
)

// TestEveryWithClockTakesOneClock: every WithClock of the module takes an
// entropy.Clock, and every WithRateLimit a rate.Limit, so that one value
// configures them all. This fails to compile if one drifts.
func TestEveryWithClockTakesOneClock(t *testing.T) {
	var (
		_ func(entropy.Clock) entropy.Option        = entropy.WithClock
		_ func(entropy.Clock) draw.Option           = draw.WithClock
		_ func(entropy.Clock) journal.Option        = journal.WithClock
		_ func(entropy.Clock) sim.Option            = sim.WithClock
		_ func(entropy.Clock) httpsource.Option     = httpsource.WithClock
		_ func(entropy.Clock) drandsource.Option    = drandsource.WithClock
		_ func(entropy.Clock) entropymetrics.Option = entropymetrics.WithClock
		_ func(rate.Limit, int) entropy.Option      = entropy.WithRateLimit
		_ func(rate.Limit, int) sim.Option          = sim.WithRateLimit
		_ func(*sim.Server, rate.Limit, int)        = (*sim.Server).SetRateLimit
	)

	// One clock, given to the simulator, the journal and a draw, stamps
	// them all (at an instant the client accepts as a job's time).
	at := time.Now().UTC().Truncate(time.Second)
	clk := entropy.NowFunc(func() time.Time { return at })
	srv := sim.New(sim.WithClock(clk))
	defer srv.Close()
	src, err := srv.Source()
	require.NoError(t, err)
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.jsonl"), journal.WithClock(clk))
	require.NoError(t, err)
	p, err := entropy.New(src, entropy.WithJournal(j), entropy.WithPolicy(entropy.Defer))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, tr, err := draw.Int(ctx, p, 10, draw.WithClock(clk))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())
	assert.Equal(t, at, tr.Time)
	reqs := srv.Requests()
	require.NotEmpty(t, reqs)
	assert.Equal(t, at, reqs[0].Time)
}

// NowFunc adapts a plain time function to every WithClock: here a draw
// stamped at a fixed instant, as a test or a replay would want.
func ExampleNowFunc() {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	clk := entropy.NowFunc(func() time.Time { return at })
	p, err := entropy.New(exampleSource(), entropy.WithRateLimit(rate.Inf, 1), entropy.WithClock(clk))
	if err != nil {
		panic(err)
	}
	defer p.Close()
	_, tr, err := draw.Int(context.Background(), p, 6, draw.WithClock(clk))
	if err != nil {
		panic(err)
	}
	fmt.Println(tr.Time)
	// Output: 2026-12-03 09:00:00 +0000 UTC
}

// TestNilNowFuncIsTheSystemClock: a nil NowFunc passes every WithClock's nil
// check (it is a typed nil) and is the system clock, so that a Provider given
// one refills instead of panicking in its refill goroutine.
func TestNilNowFuncIsTheSystemClock(t *testing.T) {
	var clk entropy.NowFunc
	assert.False(t, clk.Now().IsZero())

	src := entropy.SourceFunc(func(ctx context.Context, n int) (entropy.Block, error) {
		b := make([]byte, n)
		_, _ = crand.Read(b)
		return entropy.Block{Data: b, Source: "mem", JobID: crand.Text(), Verifiable: true}, nil
	})
	p, err := entropy.New(src, entropy.WithClock(clk), entropy.WithRateLimit(rate.Inf, 1))
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx))
	l, err := p.ReadLabelled(ctx, make([]byte, 32))
	require.NoError(t, err)
	assert.True(t, l.Verifiable, "%v", l)
}
