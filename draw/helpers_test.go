package draw_test

import (
	"context"
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/internal/drandtest"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/require"
)

// simProvider makes a Provider with opts over s, a simulator of the test's
// own. stop closes the Provider, then the simulator, and requires that both
// close cleanly.
func simProvider(tb testing.TB, s *sim.Server, opts ...entropy.Option) (p *entropy.Provider, stop func()) {
	tb.Helper()
	src, err := s.Source()
	require.NoError(tb, err)
	p, err = entropy.New(src, opts...)
	require.NoError(tb, err)
	return p, func() {
		tb.Helper()
		require.NoError(tb, p.Close())
		require.NoError(tb, s.Close())
	}
}

// roundEntropy is a ProvenEntropy that serves one drand round from its
// published beacon, as drandsource.RoundEntropy does from a relay.
type roundEntropy struct {
	label entropy.Label
	proof entropy.Proof
}

func (r roundEntropy) ReadLabelled(_ context.Context, b []byte) (entropy.Label, error) {
	copy(b, r.proof.Data)
	return r.label, nil
}

func (r roundEntropy) ReadProven(_ context.Context, b []byte) (entropy.Label, entropy.Proof, error) {
	copy(b, r.proof.Data)
	return r.label, r.proof.Clone(), nil
}

// beaconEntropy serves b, a beacon of the vectors, as roundEntropy, and
// returns the pinned info of its chain.
func beaconEntropy(t *testing.T, b drandtest.Beacon) (roundEntropy, drandsource.ChainInfo) {
	t.Helper()
	chain, err := drandsource.Chain(b.Chain)
	require.NoError(t, err)
	dec := func(s string) []byte { v, err := hex.DecodeString(s); require.NoError(t, err); return v }
	id := strconv.FormatUint(b.Round, 10)
	src := roundEntropy{
		label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "drand/" + b.Chain, JobID: id, Length: 32, Public: true}}},
		proof: entropy.Proof{Scheme: evidence.SchemeDrand, Source: "drand/" + b.Chain, JobID: id, Data: dec(b.Randomness),
			Chain: chain.Hash, Round: b.Round, Signature: dec(b.Signature)},
	}
	if b.PreviousSignature != "" {
		src.proof.PrevSignature = dec(b.PreviousSignature)
	}
	return src, chain
}
