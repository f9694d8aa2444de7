package drandsource

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
)

// TestReviewVerifyRejects checks the exported Verify against the real
// beacons: accepted as published, refused with any sampled bit of the
// signature, previous signature or key flipped, another round, the other
// chain's key or scheme, identity points, or an unknown scheme.
func TestReviewVerifyRejects(t *testing.T) {
	vs := loadVectors(t)
	for name, v := range vs {
		t.Run(name, func(t *testing.T) {
			c := v.chain
			r, err := Verify(c.Scheme, c.PublicKey, v.round, v.prevSig, v.sig)
			require.NoError(t, err)
			require.Equal(t, v.randomness, r)

			for bit := 0; bit < len(v.sig)*8; bit += 37 {
				_, err := Verify(c.Scheme, c.PublicKey, v.round, v.prevSig, flip(v.sig, bit))
				assert.Error(t, err, "signature bit %d", bit)
			}
			for bit := 0; bit < len(c.PublicKey)*8; bit += 41 {
				_, err := Verify(c.Scheme, flip(c.PublicKey, bit), v.round, v.prevSig, v.sig)
				assert.Error(t, err, "key bit %d", bit)
			}
			for _, rd := range []uint64{v.round - 1, v.round + 1, 0, 1<<64 - 1} {
				_, err := Verify(c.Scheme, c.PublicKey, rd, v.prevSig, v.sig)
				assert.ErrorIs(t, err, entropy.ErrBadProof, "round %d", rd)
			}
			if c.Scheme == SchemeChained {
				for bit := 0; bit < len(v.prevSig)*8; bit += 29 {
					_, err := Verify(c.Scheme, c.PublicKey, v.round, flip(v.prevSig, bit), v.sig)
					assert.ErrorIs(t, err, entropy.ErrBadProof, "previous signature bit %d", bit)
				}
				_, err := Verify(c.Scheme, c.PublicKey, v.round, nil, v.sig)
				assert.Error(t, err, "no previous signature")
				_, err = Verify(c.Scheme, []byte("\xc0"+strings.Repeat("\x00", 47)), v.round, v.prevSig, v.sig)
				assert.Error(t, err, "identity key")
				_, err = Verify(c.Scheme, c.PublicKey, v.round, v.prevSig, []byte("\xc0"+strings.Repeat("\x00", 95)))
				assert.ErrorIs(t, err, entropy.ErrBadProof, "identity signature")
			} else {
				_, err := Verify(c.Scheme, []byte("\xc0"+strings.Repeat("\x00", 95)), v.round, v.prevSig, v.sig)
				assert.ErrorIs(t, err, entropy.ErrBadProof, "identity key")
				_, err = Verify(c.Scheme, c.PublicKey, v.round, v.prevSig, []byte("\xc0"+strings.Repeat("\x00", 47)))
				assert.ErrorIs(t, err, entropy.ErrBadProof, "identity signature")
			}
			for oname, o := range vs {
				if oname == name {
					continue
				}
				_, err := Verify(c.Scheme, o.chain.PublicKey, v.round, v.prevSig, v.sig)
				assert.Error(t, err, "the other chain's key")
				_, err = Verify(o.chain.Scheme, c.PublicKey, v.round, v.prevSig, v.sig)
				assert.Error(t, err, "the other chain's scheme")
			}
			_, err = Verify("bls-unknown", c.PublicKey, v.round, v.prevSig, v.sig)
			assert.ErrorIs(t, err, ErrUnknownScheme)
			_, err = Verify("", c.PublicKey, v.round, v.prevSig, v.sig)
			assert.ErrorIs(t, err, ErrUnknownScheme)
		})
	}
}

// TestReviewProviderLabelsRoundPublic: through a Provider, a read of drand
// bytes is labelled verifiable, its span's JobID is the round in decimal and
// marked public, and the bytes are the round's randomness.
func TestReviewProviderLabelsRoundPublic(t *testing.T) {
	vs := loadVectors(t)
	v := vs["quicknet"]
	now := fixedClock(v.chain.RoundTime(v.round).Add(time.Second))
	relay := newTestRelay(t, now, vectorChain(v))
	s := mustNew(t, v.chain, []string{relay.URL()}, WithClock(now))
	p, err := entropy.New(s, entropy.WithPolicy(entropy.Defer), entropy.WithFetchSize(32), entropy.WithBufferSize(32))
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := make([]byte, 32)
	l, err := p.ReadLabelled(ctx, b)
	require.NoError(t, err)
	require.True(t, l.Verifiable)
	require.Len(t, l.Spans, 1)
	sp := l.Spans[0]
	assert.Equal(t, strconv.FormatUint(v.round, 10), sp.JobID)
	assert.True(t, sp.Public, "drand bytes are public")
	assert.Equal(t, "drand/quicknet", sp.Source)
	assert.Equal(t, v.randomness[sp.Offset:sp.Offset+sp.Length], b)
	assert.Contains(t, l.String(), "public")

	// The only round this relay has was served: the same round is not
	// served again, by Fetch or FetchRound.
	_, err = s.FetchRound(ctx, v.round)
	assert.ErrorIs(t, err, ErrRoundServed)
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	blk, err := s.Fetch(short, 32)
	assert.Error(t, err)
	assert.Nil(t, blk.Data)
}
