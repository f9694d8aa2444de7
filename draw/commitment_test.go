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
