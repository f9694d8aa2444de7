package draw

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
)

// TestVerifyRefusesSpansThatOverflow is the regression test of a crash that
// fuzzing found: span lengths whose sum wraps around int to 32 passed Verify
// (Label.Len overflowed to the seed's length), and VerifyEntropy then indexed
// past the seed and the job (panic), because Offset+Length wrapped too.
func TestVerifyRefusesSpansThatOverflow(t *testing.T) {
	const huge = 1<<63 - 1
	tr := &Transcript{
		Algorithm: Algorithm, Version: Version, Verifiable: true, Kind: KindInt,
		Inputs: Inputs{N: 6}, Entropy: "0000000000000000000000000000000000000000000000000000000000000000",
		Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{
			{Source: "s", JobID: "j", Offset: 1, Length: huge},
			{Source: "s", JobID: "j", Offset: 0, Length: huge},
			{Source: "s", JobID: "j", Offset: 0, Length: 34},
		}},
	}
	require.Equal(t, SeedSize, tr.Label.Len(), "the lengths wrap around to the seed's length")
	tr.Outputs = replay(tr.Kind, tr.Inputs, make([]byte, SeedSize))
	var err error
	tr.Digest, err = digest(tr)
	require.NoError(t, err)

	assert.ErrorIs(t, Verify(tr), ErrInvalid)
	jobs := func(context.Context, string, string) ([]byte, error) { return make([]byte, 8), nil }
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, jobs), ErrInvalid)

	// An offset near the top of int with a fitting length: Offset+Length
	// wrapped negative and passed the bounds check of the job.
	tr.Label.Spans = []entropy.Span{{Source: "s", JobID: "j", Offset: huge - 4, Length: 32}}
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, jobs), ErrInvalid)
	lookups := 0
	tr.Label.Spans = []entropy.Span{{Source: "s", JobID: "j", Offset: 0, Length: 33}, {Source: "s", JobID: "j", Offset: 0, Length: -1}}
	err = VerifyEntropy(context.Background(), tr, func(context.Context, string, string) ([]byte, error) {
		lookups++
		return nil, errors.New("not asked")
	})
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Zero(t, lookups, "a span that cannot fit is refused before any job lookup")
}
