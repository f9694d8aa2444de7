package drandsource

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/ecc/bls12381"
	"github.com/provenrand/entropy/internal/sourceerr"
)

// The failure classes of the module's sources, which the Provider acts on:
// the same values as package httpsource's, so that one errors.Is serves
// every source.
var (
	// ErrBadProof is wrapped by the error of a beacon that does not verify.
	ErrBadProof = sourceerr.ErrBadProof
	// ErrMalformed is wrapped by the error of an answer that cannot be read.
	ErrMalformed = sourceerr.ErrMalformed
	// ErrTooEarly is matched by a [RoundNotDueError] and a relay's 425.
	ErrTooEarly = sourceerr.ErrTooEarly
	// ErrTimeout is matched by a [ConnError] whose cause is a timeout.
	ErrTimeout = sourceerr.ErrTimeout
)

// ConnError is a failure to reach a relay: DNS, refused or dropped
// connections, TLS, timeouts. Its fields are Op (what was being done) and
// Err (the net or context cause, which Unwrap returns); it matches
// [ErrTimeout] when the cause is a timeout. It is package httpsource's
// ConnError.
type ConnError = sourceerr.ConnError

// Errors of this package. Each wraps one of the classes above: a beacon
// that does not verify matches ErrBadProof, one that cannot be read matches
// ErrMalformed.
var (
	// ErrUnknownScheme: a scheme other than SchemeUnchainedG1 and
	// SchemeChained. It matches ErrMalformed.
	ErrUnknownScheme = fmt.Errorf("unknown drand scheme (%w)", ErrMalformed)
	// ErrWrongChain: a relay's chain info does not hash to the pinned chain
	// hash, or names another scheme. It matches ErrBadProof.
	ErrWrongChain = fmt.Errorf("wrong drand chain (%w)", ErrBadProof)
	// ErrWrongRound: a relay answered with a round other than the one asked
	// for. It matches ErrBadProof.
	ErrWrongRound = fmt.Errorf("wrong drand round (%w)", ErrBadProof)
	// ErrRoundServed: FetchRound was asked for a round this Source has
	// already handed out, is fetching now, or may have handed out (one at
	// or before the latest round it served). Handing it out again would
	// serve the same bytes twice.
	ErrRoundServed = errors.New("drandsource: round already served by this source")
)

// Domain separation tags of RFC 9380 hash-to-curve, per signature group.
const (
	dstG1 = "BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_"
	dstG2 = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"
)

// Verify checks the drand beacon signature sig of round under publicKey with
// the given scheme, and returns the round's randomness, SHA-256(sig). It needs
// nothing but its arguments, so anyone can check a label offline: the scheme
// and key come from the pinned chain ([Quicknet], [Default]), the round from
// the span's job ID, the signature from the block's proof or any relay.
//
//   - SchemeUnchainedG1 (quicknet): sig is a compressed G1 point (48 bytes),
//     publicKey a compressed G2 point (96 bytes), the message
//     sha256(u64be(round)). prevSig is ignored.
//   - SchemeChained (default): sig is a compressed G2 point (96 bytes),
//     publicKey a compressed G1 point (48 bytes), the message
//     sha256(prevSig || u64be(round)); prevSig is the previous round's
//     signature (the genesis seed for round 1) and must not be empty.
//
// Points must decode, lie in the prime-order subgroup and not be the
// identity. Errors match ErrMalformed (unknown scheme, wrong length,
// not a valid point) or ErrBadProof (identity point, signature that
// does not verify).
func Verify(scheme string, publicKey []byte, round uint64, prevSig, sig []byte) (randomness []byte, err error) {
	var ok bool
	switch scheme {
	case SchemeUnchainedG1:
		ok, err = verifyG1Sig(publicKey, unchainedMessage(round), sig)
	case SchemeChained:
		if len(prevSig) == 0 || len(prevSig) > maxPrevSig {
			return nil, fmt.Errorf("drandsource: %s round %d: previous signature of %d bytes: %w", scheme, round, len(prevSig), ErrMalformed)
		}
		ok, err = verifyG2Sig(publicKey, chainedMessage(prevSig, round), sig)
	default:
		return nil, fmt.Errorf("drandsource: %w %q", ErrUnknownScheme, scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("drandsource: %s round %d: %w", scheme, round, err)
	}
	if !ok {
		return nil, fmt.Errorf("drandsource: %s round %d: signature does not verify: %w", scheme, round, ErrBadProof)
	}
	r := sha256.Sum256(sig)
	return r[:], nil
}

// maxPrevSig bounds the previous signature of a chained beacon: a G2
// signature (96 bytes), or the 32-byte genesis seed for round 1.
const maxPrevSig = bls12381.G2SizeCompressed

// unchainedMessage returns sha256(u64be(round)).
func unchainedMessage(round uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], round)
	m := sha256.Sum256(b[:])
	return m[:]
}

// chainedMessage returns sha256(prevSig || u64be(round)).
func chainedMessage(prevSig []byte, round uint64) []byte {
	h := sha256.New()
	h.Write(prevSig)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], round)
	h.Write(b[:])
	return h.Sum(nil)
}

// verifyG1Sig checks e(sig, g2) == e(H(msg), pk) for a signature on G1 and a
// key on G2.
func verifyG1Sig(publicKey, msg, sig []byte) (bool, error) {
	pk, err := decodeG2(publicKey, "public key")
	if err != nil {
		return false, err
	}
	s, err := decodeG1(sig, "signature")
	if err != nil {
		return false, err
	}
	var h bls12381.G1
	h.Hash(msg, []byte(dstG1))
	res := bls12381.ProdPairFrac(
		[]*bls12381.G1{s, &h},
		[]*bls12381.G2{bls12381.G2Generator(), pk},
		[]int{1, -1})
	return res.IsIdentity(), nil
}

// verifyG2Sig checks e(g1, sig) == e(pk, H(msg)) for a signature on G2 and a
// key on G1.
func verifyG2Sig(publicKey, msg, sig []byte) (bool, error) {
	pk, err := decodeG1(publicKey, "public key")
	if err != nil {
		return false, err
	}
	s, err := decodeG2(sig, "signature")
	if err != nil {
		return false, err
	}
	var h bls12381.G2
	h.Hash(msg, []byte(dstG2))
	res := bls12381.ProdPairFrac(
		[]*bls12381.G1{bls12381.G1Generator(), pk},
		[]*bls12381.G2{s, &h},
		[]int{1, -1})
	return res.IsIdentity(), nil
}

// decodeG1 decodes a compressed G1 point; circl's SetBytes checks that it is
// on the curve and in the prime-order subgroup. The identity is refused: an
// identity key or signature would make the pairing check vacuous.
func decodeG1(b []byte, what string) (*bls12381.G1, error) {
	if len(b) != bls12381.G1SizeCompressed {
		return nil, fmt.Errorf("%s of %d bytes, want %d (compressed G1): %w", what, len(b), bls12381.G1SizeCompressed, ErrMalformed)
	}
	var p bls12381.G1
	if err := p.SetBytes(b); err != nil {
		return nil, fmt.Errorf("%s is not a G1 subgroup point (%v): %w", what, err, ErrMalformed)
	}
	if p.IsIdentity() {
		return nil, fmt.Errorf("%s is the identity point: %w", what, ErrBadProof)
	}
	return &p, nil
}

// decodeG2 decodes a compressed G2 point, as decodeG1 does.
func decodeG2(b []byte, what string) (*bls12381.G2, error) {
	if len(b) != bls12381.G2SizeCompressed {
		return nil, fmt.Errorf("%s of %d bytes, want %d (compressed G2): %w", what, len(b), bls12381.G2SizeCompressed, ErrMalformed)
	}
	var p bls12381.G2
	if err := p.SetBytes(b); err != nil {
		return nil, fmt.Errorf("%s is not a G2 subgroup point (%v): %w", what, err, ErrMalformed)
	}
	if p.IsIdentity() {
		return nil, fmt.Errorf("%s is the identity point: %w", what, ErrBadProof)
	}
	return &p, nil
}
