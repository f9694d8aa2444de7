package drandsource

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/draw"
)

// A draw committed to a round reads that round's verified randomness, says
// so in its transcript, replays, and gives the same result every time.
func TestDrawCommittedToRound(t *testing.T) {
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
	got, tr, err := draw.Pick(ctx, committed, 6, 49)
	require.NoError(t, err)
	require.NoError(t, draw.Verify(tr))
	assert.True(t, tr.Label.Verifiable)
	require.Len(t, tr.Label.Spans, 1)
	assert.Equal(t, "123", tr.Label.Spans[0].JobID)
	assert.True(t, tr.Label.Spans[0].Public, "the transcript says the entropy is public")

	again, _, err := draw.Pick(ctx, committed, 6, 49)
	require.NoError(t, err)
	assert.Equal(t, got, again, "a committed round has one value")
	blk, ok := committed.Block()
	require.True(t, ok)
	assert.Equal(t, q.randomness, blk.Data)

	_, err = committed.ReadLabelled(ctx, make([]byte, 33))
	assert.Error(t, err)
}
