package entropy

import (
	"context"
	"crypto/hkdf"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
)

// Domain separation of derived reads: the HKDF salt, and the info prefix
// that each output chunk's index follows.
const (
	secretSalt = "provenrand/entropy/derived/v1"
	secretInfo = "provenrand/entropy/secret-read"
	// secretSeed is how many pool bytes and how many local bytes go into each
	// derivation: 256 bits of each.
	secretSeed = 32
	// secretChunk is the most one HKDF-SHA-256 derivation may output.
	secretChunk = 255 * sha256.Size
)

// ReadSecret fills b with bytes fit for keys, tokens and nonces (contract
// point 11). Raw verifiable bytes are known to the service that made them
// (GET /v1/jobs/{id} shows them to any auditor; a drand round is public), so
// ReadSecret never returns them. For every 8160 bytes of output it takes 32
// bytes from the pool (single use, as always) and 32 fresh bytes from
// crypto/rand, and derives the output with HKDF-SHA-256 (RFC 5869):
//
//	PRK = HKDF-Extract(salt = "provenrand/entropy/derived/v1", IKM = pool ‖ local)
//	OKM = HKDF-Expand(PRK, info = "provenrand/entropy/secret-read" ‖ u32be(chunk index), len)
//
// The output is as unpredictable as the better of the two inputs: the
// service cannot compute it without the local bytes, and a weak local
// generator is covered by the verifiable bytes.
//
// The label is derived: Derived is true, Verifiable false, and the spans name
// the pool bytes that went in (a third party can check that the jobs exist,
// not recompute the output). When the pool cannot serve, the policy applies
// as in ReadLabelled: under Degrade the output is crypto/rand alone, labelled
// as a fallback; Defer waits on ctx; Fail returns the error.
func (p *Provider) ReadSecret(ctx context.Context, b []byte) (Label, error) {
	if len(b) == 0 {
		return Label{}, errors.New("entropy: empty read")
	}
	if ctx == nil {
		return Label{}, errors.New("entropy: nil context")
	}
	if p.closed.Load() {
		return Label{}, ErrClosed
	}
	chunks := (len(b) + secretChunk - 1) / secretChunk
	var one [secretSeed]byte
	seed := one[:]
	if chunks > 1 {
		seed = make([]byte, secretSeed*chunks)
	}
	defer clear(seed)
	spans, err := p.takeVerifiable(ctx, seed, p.cfg.policy)
	if err != nil {
		if p.cfg.policy == Degrade && errors.Is(err, ErrUnavailable) {
			return p.fallback(p.shard(), b, true)
		}
		clear(b)
		return Label{}, err
	}
	var ikm [2 * secretSeed]byte
	defer clear(ikm[:])
	var info [len(secretInfo) + 4]byte
	copy(info[:], secretInfo)
	for i := 0; i < chunks; i++ {
		out := b[i*secretChunk : min((i+1)*secretChunk, len(b))]
		copy(ikm[:secretSeed], seed[i*secretSeed:])
		_, _ = crand.Read(ikm[secretSeed:]) // fresh crypto/rand bytes, single use; never fails (Go 1.24+)
		binary.BigEndian.PutUint32(info[len(secretInfo):], uint32(i))
		okm, err := hkdf.Key(sha256.New, ikm[:], []byte(secretSalt), string(info[:]), len(out))
		if err != nil { // only for lengths over the limit, which chunking rules out
			clear(b)
			return Label{}, err
		}
		copy(out, okm)
		clear(okm)
	}
	p.derivedReads.Add(1)
	p.derivedBytes.Add(uint64(len(b)))
	if p.episodes.open.Load() {
		p.endEpisode()
	}
	return Label{Derived: true, Spans: spans}, nil
}

// SecretReader returns an io.Reader whose reads are ReadSecret under the
// Provider's policy (Defer waits until Close). Hand it, not the Provider, to
// code that makes keys: ed25519.GenerateKey, rsa.GenerateKey, uuid.NewRandomFromReader.
func (p *Provider) SecretReader() io.Reader { return secretReader{p} }

type secretReader struct{ p *Provider }

func (r secretReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if _, err := r.p.ReadSecret(context.Background(), b); err != nil {
		return 0, err
	}
	return len(b), nil
}
