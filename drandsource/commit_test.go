package drandsource

import (
	"context"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Entropy committed to a round reads that round's verified randomness, says
// so in its label, gives the same bytes every time, and its proof carries
// the chain hash, round and signature that check it offline. (Package draw's
// tests draw from such a proof and verify the transcript with the chain's
// info alone.)
func TestCommittedRoundEntropy(t *testing.T) {
	vs := loadVectors(t)
	q := vs["quicknet"]
	// The draw was announced as "the first round after T", T the time of
	// the round before the vector's.
	round := q.chain.FirstRoundAfter(q.chain.RoundTime(q.round - 1))
	require.Equal(t, q.round, round)
	now := fixedClock(q.chain.RoundTime(q.round))
	relay := newTestRelay(t, now, vectorChain(q))
	src := mustNew(t, q.chain, []string{relay.URL()}, WithClock(entropy.NowFunc(now)))

	committed := src.Committed(round)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make([]byte, 32)
	lbl, pr, err := committed.ReadProven(ctx, got)
	require.NoError(t, err)
	assert.True(t, lbl.Verifiable)
	require.Len(t, lbl.Spans, 1)
	assert.Equal(t, "123", lbl.Spans[0].JobID)
	assert.True(t, lbl.Spans[0].Public, "the label says the entropy is public")
	assert.Equal(t, q.randomness, got)
	assert.Equal(t, evidence.SchemeDrand, pr.Scheme)
	assert.Equal(t, q.chain.Hash, pr.Chain)
	assert.Equal(t, uint64(123), pr.Round)
	assert.Equal(t, q.randomness, pr.Data)
	randomness, err := Verify(q.chain.Scheme, q.chain.PublicKey, pr.Round, pr.PrevSignature, pr.Signature)
	require.NoError(t, err, "the proof checks offline")
	assert.Equal(t, pr.Data, randomness)

	again := make([]byte, 32)
	_, err = committed.ReadLabelled(ctx, again)
	require.NoError(t, err)
	assert.Equal(t, got, again, "a committed round has one value")
	blk, ok := committed.Block()
	require.True(t, ok)
	assert.Equal(t, q.randomness, blk.Data)

	_, err = committed.ReadLabelled(ctx, make([]byte, 33))
	assert.Error(t, err)
	_, _, err = committed.ReadProven(ctx, make([]byte, 16))
	assert.Error(t, err, "a proof covers the whole round")
}
