package entropy

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Contract point 3 (and Source's documentation: the Provider refuses "a
// (Source, JobID) it has taken before"): a source that hands out an old job
// again, however many jobs later, must not get its bytes served twice.
func TestReplayedOldJobNotServedTwice(t *testing.T) {
	src := newScriptSource("quantropy")
	l := newLedger(src)
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(64), WithFetchSize(64))...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	read := func() {
		t.Helper()
		b := make([]byte, 64)
		lb, err := p.ReadLabelled(ctx, b)
		require.NoError(t, err)
		require.Empty(t, l.check(b, lb))
	}
	const jobs = 5000
	for src.callCount() < jobs {
		read()
	}
	first, ok := src.job("quantropy-job-1")
	require.True(t, ok)
	replay := Block{Data: append([]byte(nil), first...), Source: "quantropy", JobID: "quantropy-job-1",
		Verifiable: true, Proof: []byte("sig"), Time: time.Now()}
	src.set(nil, step{block: &replay})
	for i := 0; i < 4; i++ {
		read()
	}
}
