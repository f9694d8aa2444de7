package draw_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/internal/drandtest"
)

// A draw committed to "the first round after TIME" of a drand chain, from
// the real beacons of the vectors: the transcript carries the commitment and
// verifies offline with the chain's info, which shows the round is the first
// after TIME; a commitment edited to another time or round fails, and a draw
// whose entropy is another round is refused before any transcript exists.
func TestDrawCommittedToTheFirstRoundAfterATime(t *testing.T) {
	for _, b := range drandtest.Beacons(t) {
		t.Run(b.Chain, func(t *testing.T) {
			src, chain := beaconEntropy(t, b)
			id := strconv.FormatUint(b.Round, 10)
			// The list was fixed, and the draw committed, just after the
			// round before the vector's.
			after := chain.RoundTime(b.Round - 1).Add(time.Second / 2)
			c := draw.CommitAfter(chain, after)
			require.Equal(t, b.Round, c.Round)
			drawn := draw.WithClock(entropy.NowFunc(func() time.Time { return chain.RoundTime(b.Round).Add(time.Minute) }))
			_, tr, err := draw.Pick(context.Background(), src, 3, 10, drawn, draw.WithCommitment(c))
			require.NoError(t, err)
			js, err := json.Marshal(tr)
			require.NoError(t, err)
			tr, err = draw.ParseTranscript(js)
			require.NoError(t, err)
			require.NotNil(t, tr.Commitment)
			assert.Equal(t, c, *tr.Commitment)

			roots := draw.TrustRoots{Chains: []drandsource.ChainInfo{chain}}
			rep, err := draw.Check(tr, roots)
			require.NoError(t, err)
			assert.True(t, rep.OriginChecked, "%q", rep.Unchecked)
			found := false
			for _, line := range rep.Checks {
				found = found || strings.HasPrefix(line, "commitment: round "+id+" is the first")
			}
			assert.True(t, found, "the commitment's time is checked: %q", rep.Checks)
			require.NoError(t, draw.Verify(tr, roots))

			var m map[string]any
			require.NoError(t, json.Unmarshal(js, &m))
			m["commitment"].(map[string]any)["after"] = chain.RoundTime(b.Round).Format(time.RFC3339Nano) // after the round was due
			assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrInvalid)
			require.NoError(t, json.Unmarshal(js, &m))
			m["commitment"].(map[string]any)["round"] = b.Round + 1
			err = draw.Verify(redigest(t, m), roots)
			assert.ErrorIs(t, err, draw.ErrProof)
			assert.Contains(t, err.Error(), `"round"`)
			require.NoError(t, json.Unmarshal(js, &m))
			m["commitment"].(map[string]any)["chain"] = otherChain(b.Chain).HashString()
			assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrProof)

			// Committed to the next round, drawn from this one: refused.
			_, _, err = draw.Pick(context.Background(), src, 3, 10, drawn, draw.WithCommitment(draw.CommitAfter(chain, chain.RoundTime(b.Round))))
			assert.ErrorIs(t, err, draw.ErrProof)
		})
	}
}

// A commitment made For the draw fixes its parameters and its list of
// entrants with the round: once the round is known, the list reordered (so
// that another entrant wins), or k or n changed, fails, both when drawing
// and when a transcript is edited afterwards. A commitment to the round
// alone still verifies, and the report says the draw was not committed to.
func TestCommitmentFixesTheDrawAndItsEntrants(t *testing.T) {
	b := drandtest.Beacons(t)[0]
	src, chain := beaconEntropy(t, b)
	list := []string{"ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo"}
	e, err := draw.CommitEntrants(list)
	require.NoError(t, err)
	c := draw.CommitAfter(chain, chain.RoundTime(b.Round-1).Add(time.Second/2)).For(draw.KindPick, draw.Inputs{N: 10, K: 3}, &e)
	assert.Equal(t, "provenrand-draw/1;kind=pick;n=10;k=3;entrants="+e.SHA256+":10", c.Params)
	drawn := draw.WithClock(entropy.NowFunc(func() time.Time { return chain.RoundTime(b.Round).Add(time.Minute) }))
	roots := draw.TrustRoots{Chains: []drandsource.ChainInfo{chain}}

	_, tr, err := draw.Pick(context.Background(), src, 3, 10, drawn, draw.WithCommitment(c), draw.WithEntrants(list))
	require.NoError(t, err)
	assert.Equal(t, c, *tr.Commitment)
	rep, err := draw.Check(tr, roots)
	require.NoError(t, err)
	assert.Contains(t, rep.Checks, "commitment: to this draw, "+c.Params+", before its round existed")
	require.NoError(t, draw.Verify(tr, roots))

	// Drawn with the list reordered, or with another k or n: refused.
	reordered := append([]string{list[9]}, list[:9]...)
	_, _, err = draw.Pick(context.Background(), src, 3, 10, drawn, draw.WithCommitment(c), draw.WithEntrants(reordered))
	assert.ErrorIs(t, err, draw.ErrInvalid)
	_, _, err = draw.Pick(context.Background(), src, 4, 10, drawn, draw.WithCommitment(c), draw.WithEntrants(list))
	assert.ErrorIs(t, err, draw.ErrInvalid)
	_, _, err = draw.Shuffle(context.Background(), src, 10, drawn, draw.WithCommitment(c), draw.WithEntrants(list))
	assert.ErrorIs(t, err, draw.ErrInvalid)

	// The transcript edited to the reordered list: refused.
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	re, err := draw.CommitEntrants(reordered)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	m["entrants"].(map[string]any)["sha256"] = re.SHA256
	assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrInvalid)
	require.NoError(t, json.Unmarshal(js, &m))
	m["commitment"].(map[string]any)["params"] = "provenrand-draw/1;kind=pick;n=10;k=3"
	assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrInvalid)

	// A commitment to the round alone: the draw verifies, and the report
	// says its parameters were not committed to.
	bare := draw.CommitAfter(chain, chain.RoundTime(b.Round-1).Add(time.Second/2))
	_, tr, err = draw.Pick(context.Background(), src, 3, 10, drawn, draw.WithCommitment(bare), draw.WithEntrants(list))
	require.NoError(t, err)
	rep, err = draw.Check(tr, roots)
	require.NoError(t, err)
	assert.Contains(t, rep.Unchecked, "commitment: names the round but not the draw's parameters, so the entrants, k and n could have been chosen once the round was known")
	require.NoError(t, draw.Verify(tr, roots))
}
