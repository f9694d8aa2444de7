package draw

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTranscriptSaysItsNumbering: every transcript says its outputs count
// from 0; Verify accepts that and the transcripts made before the member
// existed, and refuses any other numbering, so that a transcript cannot be
// relabelled 1-based to show another result.
func TestTranscriptSaysItsNumbering(t *testing.T) {
	_, tr, err := Pick(context.Background(), newFake(), 6, 49, clock())
	require.NoError(t, err)
	assert.Equal(t, ZeroBased, tr.Numbering)
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	assert.Contains(t, string(js), `"numbering":"0-based"`)
	for _, o := range tr.Outputs {
		assert.Less(t, o, uint64(49), "0-based: items 0 to 48")
	}
	require.NoError(t, Verify(tr))

	old := *tr
	old.Numbering = ""
	old.Digest, err = digest(&old)
	require.NoError(t, err)
	assert.NoError(t, Verify(&old), "a transcript made before the numbering member")

	other := *tr
	other.Numbering = "1-based"
	other.Digest, err = digest(&other)
	require.NoError(t, err)
	assert.ErrorIs(t, Verify(&other), ErrInvalid)
}
