package draw_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/sim"
)

// A draw committed to a list of entrants carries the list's SHA-256 and
// count in its transcript (covered by the digest and replayed by Verify),
// names its winners from the list, and any change to the list after the
// draw fails verification.
func TestEntrantsCommittedAndChecked(t *testing.T) {
	list, err := draw.ReadEntrants(strings.NewReader("Ada\r\nBo\n\nCy\nDee\nEve\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"Ada", "Bo", "Cy", "Dee", "Eve"}, list)
	_, err = draw.ReadEntrants(nil)
	require.ErrorIs(t, err, draw.ErrBadInput, "a nil reader is an error, not a panic")
	e, err := draw.CommitEntrants(list)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), e.Count)
	// SHA-256 of "Ada\nBo\nCy\nDee\nEve\n", computed with sha256sum.
	assert.Equal(t, "eb4e44a5ce2f5fa9aaf3c41bf2b5489c0c45ee405a15005dcbd6dd15558e7aad", e.SHA256)

	s := sim.New()
	p, stop := simProvider(t, s, entropy.WithPolicy(entropy.Defer))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	picked, tr, err := draw.Pick(ctx, p, 2, len(list), draw.WithEntrants(list))
	require.NoError(t, err)
	stop()
	require.NotNil(t, tr.Entrants)
	assert.Equal(t, e, *tr.Entrants)
	require.NoError(t, draw.Verify(tr, draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: s.PublicKey()}}))

	names, err := draw.VerifyEntrants(tr, list)
	require.NoError(t, err)
	assert.Equal(t, []string{list[picked[0]], list[picked[1]]}, names)

	for _, changed := range [][]string{
		{"Ada", "Bo", "Cy", "Dee"},               // one left out
		{"Ada", "Bo", "Cy", "Dee", "Eve", "Fay"}, // one added
		{"Bo", "Ada", "Cy", "Dee", "Eve"},        // reordered
		{"Ada", "Bo", "Cy", "Dee", "Eve "},       // one renamed
	} {
		_, err := draw.VerifyEntrants(tr, changed)
		assert.ErrorIs(t, err, draw.ErrInvalid, "%q", changed)
	}

	// The commitment is part of what the digest covers and must match n.
	edited := *tr
	c := *tr.Entrants
	c.Count = 6
	edited.Entrants = &c
	assert.Error(t, draw.Verify(&edited))

	_, _, err = draw.Pick(ctx, p, 2, 4, draw.WithEntrants(list))
	assert.ErrorIs(t, err, draw.ErrBadInput, "n must be the number of entrants")
	_, _, err = draw.Shuffle(ctx, p, 2, draw.WithEntrants([]string{"a", "b\nc"}))
	assert.ErrorIs(t, err, draw.ErrBadInput)
	_, err = draw.VerifyEntrants(&draw.Transcript{}, list)
	assert.ErrorIs(t, err, draw.ErrInvalid, "no commitment to check")
}
