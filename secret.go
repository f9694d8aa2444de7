package entropy

import (
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
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

// A stream's state word (secretStream.state) packs what a claim reads and
// writes, so that a claim is one compare-and-swap:
//
//	bits  0-13  pos: buf[pos:] is output not yet handed out; buf[:pos] was
//	            handed out (and is zero once its claimers have copied it)
//	bits 14-27  reads the fast path served from the batch in buf
//	bits 28-61  gen: one more each time the holder of busy lets it go
//	bit  62     closed: Close ended the stream (busy is then set for good)
//	bit  63     busy: the owner is changing the stream (a batch, a new
//	            derivation), or Close is closing it; nobody claims meanwhile
const (
	secretPosMask    = 1<<14 - 1
	secretReadsShift = 14
	secretOneRead    = 1 << secretReadsShift
	secretReadsMask  = (1<<14 - 1) << secretReadsShift
	secretOneGen     = 1 << 28
	secretGenMask    = (1<<34 - 1) << 28
	secretClosed     = 1 << 62
	secretBusy       = 1 << 63
)

// A batch's positions and its read count (at most one read a byte) fit in
// their 14 bits.
var _ [secretPosMask - secretBatch]struct{}

// secretStream is one P's derived-read generator.
//
// A stream is used by its owner only: the goroutine running on its P while
// pinned there (procPin), or, for the one stream that the Ps New did not
// count share (the last of Provider.secrets), the holder of
// Provider.secretMu. So no two readers use a stream at once, and no reader
// that claimed output is still copying it when the owner makes the next
// batch into buf: that lets the fast path claim with one compare-and-swap
// and no lock. Stats and Close, from any goroutine, go through state.
type secretStream struct {
	state atomic.Uint64 // pos, reads, gen, closed, busy (see secretPosMask)
	// key, next, batches and spans are written by the owner holding busy
	// (key also by Close holding it) and read by the owner; the fast path
	// reads spans before its claim.
	key     [secretKey]byte // the next batch's key; zero when not keyed
	next    [secretKey]byte // where batch writes the key after key; zero outside batch
	batches int             // batches the derivation in use may still make
	spans   []Span          // the pool bytes that keyed the derivation in use (cap clipped, shared, read only)
	// Reads and bytes served but not counted in state, added to under busy
	// (counts). bytes starts at minus one batch, as a new stream's buffer
	// is empty (pos at its end): bytes + pos is what was handed out.
	reads, bytes atomic.Uint64
	buf          [secretBatch]byte
}

// newSecretStream returns an unkeyed stream: its buffer empty, no batch
// left to make.
func newSecretStream() *secretStream {
	st := new(secretStream)
	st.state.Store(secretBatch)
	st.bytes.Store(^uint64(secretBatch - 1)) // minus one batch
	return st
}

// ReadSecret fills b with bytes fit for keys, tokens and nonces (contract
// point 11). Raw verifiable bytes are known to the service that made them
// (GET /v1/jobs/{id} shows them to any auditor; a drand round is public), so
// ReadSecret never returns them. It reads from a generator of the caller's P
// (docs/secret.md):
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
	_, _ = crand.Read(ikm[secretSeed:]) // fresh crypto/rand bytes, single use; never fails (Go 1.24+)
	d.key = secretDerive(&ikm)
	d.spans = spans[:len(spans):len(spans)]
	return nil
}

// ownSecret makes the caller the owner of a stream (see secretStream): of
// its P's own, made on first use, pinned there; or, on a P that New did not
// count, of the shared last stream, with secretMu held. disown ends it.
func (p *Provider) ownSecret() (st *secretStream, pinned bool) {
	last := len(p.secrets) - 1
	if i := procPin(); i < last {
		if st = p.secrets[i].Load(); st == nil {
			st = newSecretStream()
			p.secrets[i].Store(st)
		}
		return st, true
	}
	procUnpin()
	p.secretMu.Lock()
	if st = p.secrets[last].Load(); st == nil {
		st = newSecretStream()
		p.secrets[last].Store(st)
	}
	return st, false
}

// disown ends the ownership ownSecret gave.
func (p *Provider) disown(pinned bool) {
	if pinned {
		procUnpin()
	} else {
		p.secretMu.Unlock()
	}
}

// acquire takes busy for the owner and returns the state it replaced; false
// if st is closed or being closed (only Close takes busy from an owner).
func (st *secretStream) acquire() (uint64, bool) {
	w := st.state.Load()
	if w&secretBusy != 0 || !st.state.CompareAndSwap(w, w|secretBusy) {
		return 0, false
	}
	return w, true
}

// holds reports whether the derivation in use can serve n more bytes, from
// the buffer and the batches it may still make (the owner holds busy; w is
// the state).
func (st *secretStream) holds(w uint64, n int) bool {
	return secretBatch-int(w&secretPosMask)+st.batches*secretBatch >= n
}

// serve fills b (at most one batch) from st, which the caller owns and
// holds busy on (w is the state it replaced), and lets busy go. With a
// derivation in d it first keys st with it (the output the old one has left
// is zeroed, never served); otherwise st.holds the read.
func (st *secretStream) serve(w uint64, b []byte, d *derivation) []Span {
	pos := int(w & secretPosMask)
	reads := w & secretReadsMask
	if d.spans != nil {
		clear(st.buf[pos:])
		st.bytes.Add(uint64(pos) - secretBatch) // keeps bytes + pos
		pos = secretBatch
		st.key, st.spans, st.batches = d.key, d.spans, secretBatches
		d.wipe()
	}
	n := min(len(b), secretBatch-pos)
	moveOut(b[:n], st.buf[pos:pos+n])
	pos += n
	if n < len(b) {
		// The rest comes from the next batch.
		st.reads.Add(reads >> secretReadsShift)
		st.bytes.Add(uint64(pos))
		reads = 0
		st.batches--
		st.batch(st.buf[:])
		pos = len(b) - n
		moveOut(b[n:], st.buf[:pos])
	}
	st.reads.Add(1)
	spans := st.spans // before busy goes: the next owner may replace it
	st.state.Store(uint64(pos) | reads | (w+secretOneGen)&secretGenMask)
	return spans
}

// close ends st for good: the caller holds busy (w is the state it
// replaced). It adds the batch's counts to the totals and erases the key and
// the output not handed out (what was is its claimers' to zero).
func (st *secretStream) close(w uint64) {
	pos := int(w & secretPosMask)
	st.reads.Add((w & secretReadsMask) >> secretReadsShift)
	st.bytes.Add(uint64(pos))
	clear(st.key[:])
	clear(st.buf[pos:])
	st.state.Store(secretClosed | secretBusy)
}

// counts returns the reads and bytes st served: its totals plus the counts
// of the batch in state, read so that no batch is counted twice or not at
// all (the owner adds a batch's counts to the totals only while it holds
// busy, and gen moves when it lets go).
func (st *secretStream) counts() (reads, bytes uint64) {
	for {
		w := st.state.Load()
		if w&secretClosed != 0 {
			return st.reads.Load(), st.bytes.Load()
		}
		if w&secretBusy == 0 {
			r, by := st.reads.Load(), st.bytes.Load()
			if st.state.Load()&(secretGenMask|secretBusy) == w&secretGenMask {
				return r + (w&secretReadsMask)>>secretReadsShift, by + w&secretPosMask
			}
		}
		runtime.Gosched() // the owner is making a batch, pinned: not for long
	}
}

// secretCounts adds up the derived reads served and their bytes (Stats).
func (p *Provider) secretCounts() (reads, bytes uint64) {
	reads, bytes = p.secretLargeReads.Load(), p.secretLargeBytes.Load()
	for i := range p.secrets {
		if st := p.secrets[i].Load(); st != nil {
			r, by := st.counts()
			reads += r
			bytes += by
		}
	}
	return reads, bytes
}

// closeSecrets ends every stream (Close): once an owner holding busy lets
// it go, Close takes it and erases the stream's key and buffered output.
func (p *Provider) closeSecrets() {
	for i := range p.secrets {
		st := p.secrets[i].Load()
		for st != nil {
			w := st.state.Load()
			if w&secretClosed != 0 {
				break
			}
			if w&secretBusy == 0 && st.state.CompareAndSwap(w, w|secretBusy) {
				st.close(w)
				break
			}
			runtime.Gosched()
		}
	}
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
