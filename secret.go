package entropy

import (
	"context"
	crand "crypto/rand"
	"errors"
	"io"
)

// The derived-read generator (docs/secret.md): per P, an AES-256-CTR
// keystream with fast key erasure, keyed by HKDF-SHA-256 of 32 pool bytes
// and 32 local crypto/rand bytes, and keyed afresh that way every
// secretReseed bytes of output.
const (
	// secretSalt and secretInfo separate this derivation from every other
	// use of HKDF: the salt names the library, the info the purpose.
	secretSalt = "provenrand/entropy/derived/v2"
	secretInfo = "provenrand/entropy/secret-stream"
	// secretSeed is how many pool bytes and how many local bytes key a
	// derivation: 256 bits of each.
	secretSeed = 32
	// secretKey is the AES-256 key size; the first secretKey bytes of each
	// batch become the next batch's key.
	secretKey = 32
	// secretBatch is the output one key makes for a stream's buffer (after
	// the secretKey bytes of keystream that become the next key).
	secretBatch = 8192
	// secretReseed is how many output bytes one derivation may serve before
	// it is spent: secretBatches batches of a stream, or one key of a read
	// larger than a batch.
	secretReseed  = 64 << 10
	secretBatches = secretReseed / secretBatch
)

// ReadSecret fills b with bytes fit for keys, tokens and nonces (contract
// point 11). Raw verifiable bytes are known to the service that made them
// (the reference protocol's GET /v1/jobs/{id}, docs/protocol.md, shows them
// to any auditor; a drand round is public), so ReadSecret never returns
// them. It reads from a generator of the processor slot (one of
// GOMAXPROCS) that the calling goroutine runs on (docs/secret.md):
//
//	K0 = HKDF-SHA-256(salt = "provenrand/entropy/derived/v2",
//	                  IKM = 32 pool bytes ‖ 32 crypto/rand bytes,
//	                  info = "provenrand/entropy/secret-stream", 32 bytes)
//	batch i = AES-256-CTR keystream of K_i (IV = 0), 32 + 8192 bytes
//	K_{i+1} = batch i [0:32]; batch i [32:] is output
//
// Each key is overwritten by the next as soon as its batch is made (fast key
// erasure), each output byte is zeroed in the buffer as it is handed out,
// and after 64 KiB of output the generator is keyed again from fresh pool
// and local bytes. A read of more than 8 KiB is keyed for itself the same
// way, one key per 64 KiB, erased when the read ends. The output is as
// unpredictable as the better of the two inputs: the service cannot compute
// it without the local bytes, and a weak local generator is covered by the
// verifiable bytes.
//
// The label is derived: Derived is true, Verifiable false, and the spans name
// the pool bytes that keyed the output (a third party can check that the jobs
// exist, not recompute the output). Reads served by one derivation share its
// spans: treat a label's Spans as read only. When a derivation must be made
// and the pool cannot serve, the policy applies as in [Provider.ReadLabelled]:
// under [Degrade] the output is [crypto/rand] alone, labelled as a fallback;
// [Defer] waits on ctx; [Fail] returns the error.
func (p *Provider) ReadSecret(ctx context.Context, b []byte) (Label, error) {
	if err := p.checkRead(ctx, b); err != nil {
		return Label{}, err
	}
	// The fast path: the buffer of the P's stream holds the read.
	if i := procPin(); i < len(p.secrets)-1 {
		if st := p.secrets[i].Load(); st != nil {
			w := st.state.Load()
			pos := int(w & secretPosMask)
			if w&secretBusy == 0 && len(b) <= secretBatch-pos {
				spans := st.spans // before the claim: the owner's next write of it follows the claim
				if st.state.CompareAndSwap(w, w+uint64(len(b))+secretOneRead) {
					moveOut(b, st.buf[pos:pos+len(b)])
					if raceEnabled {
						// Pinning orders this copy before the owner's next
						// batch; the race detector sees that only through
						// state.
						st.state.Add(0)
					}
					procUnpin()
					if p.episodes.open.Load() {
						p.endEpisode()
					}
					return Label{Derived: true, Spans: spans}, nil
				}
			}
		}
	}
	procUnpin()
	return p.readSecretSlow(ctx, b)
}

// readSecretSlow serves a derived read that the fast path could not, and
// applies the policy when no derivation could be made for it.
func (p *Provider) readSecretSlow(ctx context.Context, b []byte) (Label, error) {
	p.mustBeMade()
	var spans []Span
	var err error
	if len(b) > secretBatch {
		spans, err = p.secretLarge(ctx, b)
	} else {
		spans, err = p.secretSmall(ctx, b)
	}
	if err != nil {
		if p.cfg.policy == Degrade && errors.Is(err, ErrUnavailable) {
			return p.fallbackInto(p.shard(), b, true, nil)
		}
		clear(b)
		return Label{}, err
	}
	if p.episodes.open.Load() {
		p.endEpisode()
	}
	return Label{Derived: true, Spans: spans}, nil
}

// secretSmall serves a read of at most one batch from a stream the caller
// owns. When that stream's derivation cannot serve it, it makes a new
// derivation owning no stream (waiting for pool bytes as the policy says),
// then owns a stream again and keys it with that: a read takes output only
// once nothing can fail.
func (p *Provider) secretSmall(ctx context.Context, b []byte) ([]Span, error) {
	var d derivation
	defer d.wipe()
	for {
		st, pinned := p.ownSecret()
		w, ok := st.acquire()
		if ok && p.closed.Load() {
			// Close may have passed this stream before it was made.
			st.close(w)
			ok = false
		}
		if !ok {
			p.disown(pinned)
			return nil, ErrClosed
		}
		if d.spans != nil || st.holds(w, len(b)) {
			spans := st.serve(w, b, &d)
			p.disown(pinned)
			return spans, nil
		}
		st.state.Store(w) // unchanged
		p.disown(pinned)
		if err := p.derive(ctx, &d); err != nil {
			return nil, err
		}
	}
}

// secretLarge serves a read of more than one batch with derivations of its
// own, one per secretReseed bytes, made and erased within the read: it owns
// no stream, so it is never pinned while it makes its output.
func (p *Provider) secretLarge(ctx context.Context, b []byte) ([]Span, error) {
	var spans []Span
	var d derivation
	defer d.wipe()
	for rest := b; len(rest) > 0; {
		if err := p.derive(ctx, &d); err != nil {
			return nil, err
		}
		if spans == nil {
			spans = d.spans
		} else {
			spans = append(spans, d.spans...) // d.spans is clipped: a copy
		}
		n := min(len(rest), secretReseed)
		var next [secretKey]byte
		secretKeystream(&d.key, &next, rest[:n])
		clear(next[:])
		d.spans = nil
		rest = rest[n:]
	}
	p.secretLargeReads.Add(1)
	p.secretLargeBytes.Add(uint64(len(b)))
	return spans, nil
}

// derivation is a key K0 made and not yet used, and the spans of the pool
// bytes that keyed it; spans is nil when there is none.
type derivation struct {
	key   [secretKey]byte
	spans []Span
}

func (d *derivation) wipe() {
	clear(d.key[:])
	d.spans = nil
}

// derive makes a derivation into d: K0 from 32 fresh pool bytes, taken under
// the policy, and 32 fresh crypto/rand bytes.
func (p *Provider) derive(ctx context.Context, d *derivation) error {
	var ikm [2 * secretSeed]byte
	defer clear(ikm[:])
	spans, err := p.takeVerifiable(ctx, ikm[:secretSeed], p.cfg.policy)
	if err != nil {
		return err
	}
	p.derivationBytes.Add(secretSeed)
	_, _ = crand.Read(ikm[secretSeed:]) // fresh crypto/rand bytes, single use; never fails (Go 1.24+)
	d.key = secretDerive(&ikm)
	d.spans = spans[:len(spans):len(spans)]
	return nil
}

// SecretReader returns an [io.Reader] whose reads are [Provider.ReadSecret] under the
// [Provider]'s policy ([Defer] waits until [Provider.Close]). Hand it, not the Provider, to
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
