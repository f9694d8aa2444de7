package drandsource

import (
	"context"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/ecc/bls12381"
	"github.com/provenrand/entropy/httpsource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVerifyVectors(t *testing.T) {
	for name, v := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			r, err := Verify(v.chain.Scheme, v.chain.PublicKey, v.round, v.prevSig, v.sig)
			require.NoError(t, err)
			assert.Equal(t, v.randomness, r, "randomness is the vector's")
			sum := sha256.Sum256(v.sig)
			assert.Equal(t, sum[:], r, "randomness is SHA-256 of the signature")
		})
	}
}

func TestVerifyIgnoresPrevSigWhenUnchained(t *testing.T) {
	v := loadVectors(t)["quicknet"]
	_, err := Verify(v.chain.Scheme, v.chain.PublicKey, v.round, []byte("anything"), v.sig)
	require.NoError(t, err)
}

// TestVerifyRejects covers every way a beacon can fail: each case must be
// refused with an error of the named class.
func TestVerifyRejects(t *testing.T) {
	vs := loadVectors(t)
	q, d := vs["quicknet"], vs["default"]
	g1Identity := append([]byte{0xc0}, make([]byte, 47)...)
	g2Identity := append([]byte{0xc0}, make([]byte, 95)...)
	g1Gen := bls12381.G1Generator().BytesCompressed()
	g2Gen := bls12381.G2Generator().BytesCompressed()

	type args struct {
		scheme        string
		key           []byte
		round         uint64
		prevSig, sig  []byte
		want          error // the class the error must match
		orMalformed   bool  // a flipped bit may also leave no valid point
		wantSubstring string
	}
	cases := map[string]args{
		"quicknet wrong round":       {q.chain.Scheme, q.chain.PublicKey, q.round + 1, nil, q.sig, ErrBadProof, false, "does not verify"},
		"quicknet round 0":           {q.chain.Scheme, q.chain.PublicKey, 0, nil, q.sig, ErrBadProof, false, ""},
		"default wrong round":        {d.chain.Scheme, d.chain.PublicKey, d.round - 1, d.prevSig, d.sig, ErrBadProof, false, "does not verify"},
		"default wrong prev sig":     {d.chain.Scheme, d.chain.PublicKey, d.round, flip(d.prevSig, 100), d.sig, ErrBadProof, false, ""},
		"default prev sig missing":   {d.chain.Scheme, d.chain.PublicKey, d.round, nil, d.sig, ErrMalformed, false, "previous signature"},
		"default prev sig too long":  {d.chain.Scheme, d.chain.PublicKey, d.round, append(d.prevSig, 0), d.sig, ErrMalformed, false, ""},
		"quicknet with default key":  {q.chain.Scheme, d.chain.PublicKey, q.round, nil, q.sig, ErrMalformed, false, "public key of 48 bytes"},
		"default with quicknet key":  {d.chain.Scheme, q.chain.PublicKey, d.round, d.prevSig, d.sig, ErrMalformed, false, "public key of 96 bytes"},
		"quicknet sig under default": {d.chain.Scheme, d.chain.PublicKey, q.round, d.prevSig, q.sig, ErrMalformed, false, "signature of 48 bytes"},
		"quicknet other valid key":   {q.chain.Scheme, g2Gen, q.round, nil, q.sig, ErrBadProof, false, "does not verify"},
		"default other valid key":    {d.chain.Scheme, g1Gen, d.round, d.prevSig, d.sig, ErrBadProof, false, "does not verify"},
		"quicknet other valid sig":   {q.chain.Scheme, q.chain.PublicKey, q.round, nil, g1Gen, ErrBadProof, false, "does not verify"},
		"quicknet identity sig":      {q.chain.Scheme, q.chain.PublicKey, q.round, nil, g1Identity, ErrBadProof, false, "identity"},
		"quicknet identity key":      {q.chain.Scheme, g2Identity, q.round, nil, q.sig, ErrBadProof, false, "identity"},
		"quicknet identity both":     {q.chain.Scheme, g2Identity, q.round, nil, g1Identity, ErrBadProof, false, "identity"},
		"default identity sig":       {d.chain.Scheme, d.chain.PublicKey, d.round, d.prevSig, g2Identity, ErrBadProof, false, "identity"},
		"default identity key":       {d.chain.Scheme, g1Identity, d.round, d.prevSig, d.sig, ErrBadProof, false, "identity"},
		"quicknet sig truncated":     {q.chain.Scheme, q.chain.PublicKey, q.round, nil, q.sig[:47], ErrMalformed, false, "signature of 47 bytes"},
		"quicknet sig extended":      {q.chain.Scheme, q.chain.PublicKey, q.round, nil, append(q.sig, 0), ErrMalformed, false, ""},
		"quicknet sig empty":         {q.chain.Scheme, q.chain.PublicKey, q.round, nil, nil, ErrMalformed, false, ""},
		"quicknet key truncated":     {q.chain.Scheme, q.chain.PublicKey[:95], q.round, nil, q.sig, ErrMalformed, false, ""},
		"default sig truncated":      {d.chain.Scheme, d.chain.PublicKey, d.round, d.prevSig, d.sig[:95], ErrMalformed, false, ""},
		"default key extended":       {d.chain.Scheme, append(d.chain.PublicKey, 1), d.round, d.prevSig, d.sig, ErrMalformed, false, ""},
		"uncompressed G1 sig":        {q.chain.Scheme, q.chain.PublicKey, q.round, nil, bls12381.G1Generator().Bytes(), ErrMalformed, false, ""},
		"uncompressed G1 key":        {d.chain.Scheme, bls12381.G1Generator().Bytes(), d.round, d.prevSig, d.sig, ErrMalformed, false, ""},
		"compression flag cleared":   {q.chain.Scheme, q.chain.PublicKey, q.round, nil, flip(q.sig, 7), ErrMalformed, false, ""},
		"unknown scheme":             {"bls-unchained-on-g1", q.chain.PublicKey, q.round, nil, q.sig, ErrMalformed, false, "unknown drand scheme"},
		"empty scheme":               {"", q.chain.PublicKey, q.round, nil, q.sig, ErrUnknownScheme, false, ""},
	}
	// Flipped bits across the signatures and keys (not the three flag bits,
	// covered above): each is either no point at all or a wrong one.
	for _, bit := range []int{0, 1, 2, 3, 4, 100, 200, 383} {
		cases["quicknet sig bit "+itoa(bit)] = args{q.chain.Scheme, q.chain.PublicKey, q.round, nil, flip(q.sig, bit), ErrBadProof, true, ""}
		cases["quicknet key bit "+itoa(bit)] = args{q.chain.Scheme, flip(q.chain.PublicKey, bit), q.round, nil, q.sig, ErrBadProof, true, ""}
		cases["default sig bit "+itoa(bit)] = args{d.chain.Scheme, d.chain.PublicKey, d.round, d.prevSig, flip(d.sig, bit), ErrBadProof, true, ""}
		cases["default key bit "+itoa(bit)] = args{d.chain.Scheme, flip(d.chain.PublicKey, bit), d.round, d.prevSig, d.sig, ErrBadProof, true, ""}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := Verify(c.scheme, c.key, c.round, c.prevSig, c.sig)
			require.Error(t, err)
			assert.Nil(t, r, "no randomness for a beacon that fails")
			if c.orMalformed {
				assert.True(t, errorsIsAny(err, ErrBadProof, ErrMalformed), "error %v", err)
			} else {
				assert.ErrorIs(t, err, c.want)
			}
			assert.Contains(t, err.Error(), c.wantSubstring)
		})
	}
}

// TestVerifyRejectsPointsOutsideSubgroup builds compressed encodings of
// points that are on the curves but (with overwhelming probability, the
// cofactors being ~2^126 and ~2^380) outside the prime-order subgroups, and
// checks that Verify refuses them. Whether x gives a curve point is decided
// with Euler's criterion in math/big, independently of circl.
func TestVerifyRejectsPointsOutsideSubgroup(t *testing.T) {
	p, ok := new(big.Int).SetString("1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab", 16)
	require.True(t, ok)
	isSquare := func(a *big.Int) bool { // Euler's criterion, p odd prime
		e := new(big.Int).Rsh(new(big.Int).Sub(p, big.NewInt(1)), 1)
		return new(big.Int).Exp(new(big.Int).Mod(a, p), e, p).Cmp(big.NewInt(1)) == 0
	}
	fp := func(x *big.Int) []byte { return x.FillBytes(make([]byte, 48)) }
	vs := loadVectors(t)
	q, d := vs["quicknet"], vs["default"]

	// G1: y² = x³ + 4 over Fp.
	var g1 []byte
	for x := int64(1); g1 == nil; x++ {
		X := big.NewInt(x)
		if isSquare(new(big.Int).Add(new(big.Int).Exp(X, big.NewInt(3), nil), big.NewInt(4))) {
			g1 = fp(X)
			g1[0] |= 0x80 // compressed
		}
	}
	// G2: y² = x³ + 4(1+i) over Fp2 = Fp[i]/(i²+1). For x real, x³ + 4 + 4i
	// is a square in Fp2 iff its norm (x³+4)² + 16 is a square in Fp.
	var g2 []byte
	for x := int64(1); g2 == nil; x++ {
		a0 := new(big.Int).Add(new(big.Int).Exp(big.NewInt(x), big.NewInt(3), nil), big.NewInt(4))
		norm := new(big.Int).Add(new(big.Int).Mul(a0, a0), big.NewInt(16))
		if isSquare(norm) {
			g2 = append(fp(big.NewInt(0)), fp(big.NewInt(x))...) // c1 || c0
			g2[0] |= 0x80
		}
	}
	for name, c := range map[string]struct {
		scheme       string
		key, prev    []byte
		sig          []byte
		round        uint64
		wantInErrMsg string
	}{
		"G1 signature": {q.chain.Scheme, q.chain.PublicKey, nil, g1, q.round, "signature is not a G1 subgroup point"},
		"G2 key":       {q.chain.Scheme, g2, nil, q.sig, q.round, "public key is not a G2 subgroup point"},
		"G1 key":       {d.chain.Scheme, g1, d.prevSig, d.sig, d.round, "public key is not a G1 subgroup point"},
		"G2 signature": {d.chain.Scheme, d.chain.PublicKey, d.prevSig, g2, d.round, "signature is not a G2 subgroup point"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(c.scheme, c.key, c.round, c.prev, c.sig)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), c.wantInErrMsg)
		})
	}
}

// TestVerifyMadeUpChains checks Verify against chains made up for the tests
// with their own keys, for both schemes and many rounds, including round 1
// of a chained scheme (whose previous signature is the group hash).
func TestVerifyMadeUpChains(t *testing.T) {
	for _, scheme := range []string{SchemeUnchainedG1, SchemeChained} {
		s := newSigner(t, scheme, 3*time.Second, 1_700_000_000)
		for _, round := range []uint64{1, 2, 3, 50} {
			b := s.beacon(round)
			r, err := Verify(scheme, s.info.PublicKey, round, b.prevSig, b.sig)
			require.NoError(t, err, "%s round %d", scheme, round)
			require.Equal(t, b.randomness, r)
			_, err = Verify(scheme, s.info.PublicKey, round+1, b.prevSig, b.sig)
			require.ErrorIs(t, err, ErrBadProof, "%s round %d as round %d", scheme, round, round+1)
		}
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errorsIs(err, t) {
			return true
		}
	}
	return false
}

// TestVerifyRejectsEveryTamper checks the exported Verify against the real
// beacons: accepted as published, refused with any sampled bit of the
// signature, previous signature or key flipped, another round, the other
// chain's key or scheme, identity points, or an unknown scheme.
func TestVerifyRejectsEveryTamper(t *testing.T) {
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
				assert.ErrorIs(t, err, ErrBadProof, "round %d", rd)
			}
			if c.Scheme == SchemeChained {
				for bit := 0; bit < len(v.prevSig)*8; bit += 29 {
					_, err := Verify(c.Scheme, c.PublicKey, v.round, flip(v.prevSig, bit), v.sig)
					assert.ErrorIs(t, err, ErrBadProof, "previous signature bit %d", bit)
				}
				_, err := Verify(c.Scheme, c.PublicKey, v.round, nil, v.sig)
				assert.Error(t, err, "no previous signature")
				_, err = Verify(c.Scheme, []byte("\xc0"+strings.Repeat("\x00", 47)), v.round, v.prevSig, v.sig)
				assert.Error(t, err, "identity key")
				_, err = Verify(c.Scheme, c.PublicKey, v.round, v.prevSig, []byte("\xc0"+strings.Repeat("\x00", 95)))
				assert.ErrorIs(t, err, ErrBadProof, "identity signature")
			} else {
				_, err := Verify(c.Scheme, []byte("\xc0"+strings.Repeat("\x00", 95)), v.round, v.prevSig, v.sig)
				assert.ErrorIs(t, err, ErrBadProof, "identity key")
				_, err = Verify(c.Scheme, c.PublicKey, v.round, v.prevSig, []byte("\xc0"+strings.Repeat("\x00", 47)))
				assert.ErrorIs(t, err, ErrBadProof, "identity signature")
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

// The failure classes a drand source returns are package httpsource's
// values, not copies: one errors.Is serves a Provider's every source.
func TestFailureClassesAreHTTPSourceValues(t *testing.T) {
	assert.Same(t, httpsource.ErrBadProof, ErrBadProof)
	assert.Same(t, httpsource.ErrMalformed, ErrMalformed)
	assert.Same(t, httpsource.ErrTooEarly, ErrTooEarly)
	assert.Same(t, httpsource.ErrTimeout, ErrTimeout)
	var err error = &ConnError{Op: "GET /public/latest", Err: context.DeadlineExceeded}
	var he *httpsource.ConnError
	assert.ErrorAs(t, err, &he, "the same type")
	assert.ErrorIs(t, err, httpsource.ErrTimeout)
	assert.ErrorIs(t, ErrWrongChain, httpsource.ErrBadProof)
	assert.ErrorIs(t, &RoundNotDueError{Round: 7}, httpsource.ErrTooEarly)
}
