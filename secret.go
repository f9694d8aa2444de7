package entropy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"reflect"
	"runtime"
	"sync"
	"unsafe"
)

// The derived-read generator (docs/secret.md): per shard, an AES-256-CTR
// keystream with fast key erasure, keyed by HKDF-SHA-256 of 32 pool bytes
// and 32 local crypto/rand bytes, and keyed afresh that way every
// secretReseed bytes of output.
const (
	// secretSalt and secretInfo separate this derivation from every other
	// use of HKDF: the salt names the library, the info the purpose.
	secretSalt = "provenrand/entropy/derived/v2"
	secretInfo = "provenrand/entropy/secret-stream"
	// secretSeed is how many pool bytes and how many local bytes key a
	// stream: 256 bits of each.
	secretSeed = 32
	// secretKey is the AES-256 key size; the first secretKey bytes of each
	// batch become the next batch's key.
	secretKey = 32
	// secretBatch is the output one key makes for the buffer (after the
	// secretKey bytes of keystream that become the next key).
	secretBatch = 8192
	// secretReseed is how many output bytes one derivation may serve before
	// the stream is keyed again from fresh pool and local bytes.
	secretReseed = 64 << 10
)

// secretStream is one shard's derived-read generator. mu guards the rest.
type secretStream struct {
	mu    sync.Mutex
	key   [secretKey]byte   // the next batch's key; zero when not keyed
	next  [secretKey]byte   // where batch writes the key after key; zero outside batch
	buf   [secretBatch]byte // buf[pos:] is output not yet handed out; buf[:pos] is zero
	pos   int
	left  int    // output bytes this derivation may still serve; 0: key it again
	spans []Span // the pool bytes that keyed the stream now in use (cap clipped, shared, read only)
	// Derived reads served and their bytes, counted here under mu rather
	// than in the Provider's shared atomic counters: no locked instruction
	// beyond mu's, and readers on different shards never write one cache
	// line.
	reads, bytes uint64
	_            [64]byte
}

// ReadSecret fills b with bytes fit for keys, tokens and nonces (contract
// point 11). Raw verifiable bytes are known to the service that made them
// (GET /v1/jobs/{id} shows them to any auditor; a drand round is public), so
// ReadSecret never returns them. It reads from a per-shard generator
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
// and after 64 KiB of output the stream is keyed again from fresh pool and
// local bytes. The output is as unpredictable as the better of the two
// inputs: the service cannot compute it without the local bytes, and a weak
// local generator is covered by the verifiable bytes.
//
// The label is derived: Derived is true, Verifiable false, and the spans name
// the pool bytes that keyed the stream the output came from (a third party
// can check that the jobs exist, not recompute the output). Reads served by
// one derivation share its spans: treat a label's Spans as read only. When
// the stream must be keyed and the pool cannot serve, the policy applies as
// in [Provider.ReadLabelled]: under [Degrade] the output is [crypto/rand] alone, labelled
// as a fallback; [Defer] waits on ctx; [Fail] returns the error.
func (p *Provider) ReadSecret(ctx context.Context, b []byte) (Label, error) {
	if err := p.checkRead(ctx, b); err != nil {
		return Label{}, err
	}
	i := procPin() // Provider.secretStream written out: see shardOf
	procUnpin()
	st := p.secretOf(i)
	st.mu.Lock()
	spans := st.spans
	if st.left >= len(b) && len(st.buf)-st.pos >= len(b) {
		// The common case: the buffer holds the read.
		moveOut(b, st.buf[st.pos:st.pos+len(b)])
		st.pos += len(b)
		st.left -= len(b)
	} else {
		var err error
		if spans, err = p.secretFill(ctx, st, b); err != nil {
			st.mu.Unlock()
			if p.cfg.policy == Degrade && errors.Is(err, ErrUnavailable) {
				return p.fallbackInto(p.shard(), b, true, nil)
			}
			clear(b)
			return Label{}, err
		}
	}
	st.reads++
	st.bytes += uint64(len(b))
	st.mu.Unlock()
	if p.episodes.open.Load() {
		p.endEpisode()
	}
	return Label{Derived: true, Spans: spans}, nil
}

// secretFill fills b from st, keying it afresh when its derivation is spent,
// and returns the spans of every derivation that went into b. st.mu is held
// (it is released while a reseed waits for pool bytes).
func (p *Provider) secretFill(ctx context.Context, st *secretStream, b []byte) ([]Span, error) {
	var spans []Span
	var last *Span // the first span of the derivation last appended
	for rest := b; len(rest) > 0; {
		if st.left == 0 {
			if err := p.secretReseed(ctx, st); err != nil {
				return nil, err
			}
		}
		if cur := &st.spans[0]; cur != last {
			// st.spans is clipped: appending to it copies, never writes
			// into a slice that other labels share.
			if last == nil {
				spans = st.spans
			} else {
				spans = append(spans, st.spans...)
			}
			last = cur
		}
		if st.pos == len(st.buf) {
			if n := min(len(rest), st.left); n >= len(st.buf) {
				// A large read: the batch goes straight into it.
				st.batch(rest[:n])
				st.left -= n
				rest = rest[n:]
				continue
			}
			st.batch(st.buf[:])
			st.pos = 0
		}
		n := min(len(rest), len(st.buf)-st.pos, st.left)
		src := st.buf[st.pos : st.pos+n]
		copy(rest, src)
		clear(src)
		st.pos += n
		st.left -= n
		rest = rest[n:]
	}
	return spans, nil
}

// secretReseed keys st from 32 fresh pool bytes, taken under the policy,
// and 32 fresh crypto/rand bytes. On an error st is left unkeyed.
func (p *Provider) secretReseed(ctx context.Context, st *secretStream) error {
	var ikm [2 * secretSeed]byte
	defer clear(ikm[:])
	// Once per secretReseed bytes of output, so the slow path of the pool
	// (a shard's lock) costs little per read. While it waits (Defer),
	// st.mu is released.
	st.mu.Unlock()
	spans, err := p.takeVerifiable(ctx, ikm[:secretSeed], p.cfg.policy)
	st.mu.Lock()
	if err != nil {
		return err
	}
	spans = spans[:len(spans):len(spans)]
	_, _ = crand.Read(ikm[secretSeed:]) // fresh crypto/rand bytes, single use; never fails (Go 1.24+)
	st.key = secretDerive(&ikm)
	clear(st.buf[st.pos:]) // output of the spent derivation is never served
	st.pos = len(st.buf)
	st.left = secretReseed
	st.spans = spans
	return nil
}

// secretDerive returns K0 = HKDF-SHA-256(salt, ikm, info, 32).
func secretDerive(ikm *[2 * secretSeed]byte) [secretKey]byte {
	return hkdfSHA256([]byte(secretSalt), ikm[:], secretInfo)
}

// hkdfSHA256 returns the first 32 bytes of HKDF-SHA-256 (RFC 5869) of ikm
// with salt and info: what crypto/hkdf.Key(sha256.New, ikm, salt, info, 32)
// returns, computed in arrays on the stack, so that keying a stream
// allocates nothing and leaves no copy of the key material on the heap.
// salt and ikm hold at most 64 bytes, info at most 63.
func hkdfSHA256(salt, ikm []byte, info string) [sha256.Size]byte {
	prk := hmacSHA256(salt, ikm) // extract
	var msg [sha256.BlockSize]byte
	n := copy(msg[:len(msg)-1], info)
	if n < len(info) {
		panic("entropy: HKDF info longer than 63 bytes")
	}
	msg[n] = 1
	okm := hmacSHA256(prk[:], msg[:n+1]) // expand: T(1), all of L = 32
	clear(prk[:])
	return okm
}

// hmacSHA256 returns HMAC-SHA-256 (RFC 2104) of msg under key, for a key
// and a msg of at most one SHA-256 block (64 bytes) each. It zeroes the
// padded key and the inner hash it made.
func hmacSHA256(key, msg []byte) [sha256.Size]byte {
	const ipad, opad = 0x36, 0x5c
	if len(key) > sha256.BlockSize || len(msg) > sha256.BlockSize {
		panic("entropy: HMAC key or message longer than 64 bytes")
	}
	var buf [2 * sha256.BlockSize]byte // the padded key, then the message
	for i := range sha256.BlockSize {
		buf[i] = ipad
	}
	for i, c := range key {
		buf[i] ^= c
	}
	n := copy(buf[sha256.BlockSize:], msg)
	inner := sha256.Sum256(buf[:sha256.BlockSize+n])
	for i := range sha256.BlockSize {
		buf[i] ^= ipad ^ opad
	}
	copy(buf[sha256.BlockSize:], inner[:])
	out := sha256.Sum256(buf[:sha256.BlockSize+sha256.Size])
	clear(buf[:])
	clear(inner[:])
	return out
}

// batch writes into out the output of one batch of st's stream: it makes
// len(out)+32 bytes of AES-256-CTR keystream under st.key with a zero IV,
// takes the first 32 as the next key, and erases the key it used (and the
// cipher's copies of it).
func (st *secretStream) batch(out []byte) {
	secretKeystream(&st.key, &st.next, out)
	st.key = st.next
	clear(st.next[:])
}

// secretKeystream writes the AES-256-CTR keystream of key (IV zero) into
// next and then out, and erases the key, the key schedule and the counter
// state it made.
func secretKeystream(key, next *[secretKey]byte, out []byte) {
	ctrKeystream(key[:], zeroIV[:], next[:], out)
	clear(key[:])
}

// zeroIV is the stream's counter block 0. It is never written: a package
// variable rather than a local array, which would escape to the heap on
// every batch.
var zeroIV [aes.BlockSize]byte

// ctrKeystream writes the AES-CTR keystream of key from counter iv into a
// and then b (which it overwrites), and wipes the cipher objects it made.
func ctrKeystream(key, iv, a, b []byte) {
	blk, err := aes.NewCipher(key)
	if err != nil { // a key of 32 bytes is always accepted
		panic("entropy: AES-256 refused a 32-byte key")
	}
	ctr := cipher.NewCTR(blk, iv)
	wipe(blk) // NewCTR has its own copy of the key schedule
	clear(a)
	ctr.XORKeyStream(a, a)
	clear(b)
	ctr.XORKeyStream(b, b)
	wipe(ctr)
}

// wipe zeroes the memory behind a cipher.Block or cipher.Stream of the
// standard library (a pointer, or a struct holding only a pointer), so that
// a key schedule does not outlive its use in freed heap memory. It does so
// only when that memory holds no pointers (as the AES block and CTR of every
// platform but s390x do), so that the garbage collector never sees a pointer
// cleared behind its back; elsewhere it does nothing.
func wipe(v any) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Struct && rv.NumField() == 1 {
		rv = rv.Field(0)
	}
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return
	}
	t := rv.Type().Elem()
	if !wipeable(t) {
		return
	}
	clear(unsafe.Slice((*byte)(rv.UnsafePointer()), t.Size()))
	runtime.KeepAlive(v)
}

// wipeTypes caches pointerFree for the few types wipe sees (reflect.Type →
// bool).
var wipeTypes sync.Map

// wipeable reports whether wipe may clear values of t: pointerFree, cached.
func wipeable(t reflect.Type) bool {
	if ok, seen := wipeTypes.Load(t); seen {
		return ok.(bool)
	}
	ok := pointerFree(t)
	wipeTypes.Store(t, ok)
	return ok
}

// pointerFree reports whether values of t hold no pointers.
func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// secretOf returns the generator of the shard of the P with index i, as
// Provider.shardOf picks the shard.
func (p *Provider) secretOf(i int) *secretStream { return &p.secrets[pIndex(i, len(p.secrets))] }

// secretReads and secretBytes add up the generators' counts of derived reads.
func (p *Provider) secretReads() (n uint64) {
	for i := range p.secrets {
		st := &p.secrets[i]
		st.mu.Lock()
		n += st.reads
		st.mu.Unlock()
	}
	return n
}

func (p *Provider) secretBytes() (n uint64) {
	for i := range p.secrets {
		st := &p.secrets[i]
		st.mu.Lock()
		n += st.bytes
		st.mu.Unlock()
	}
	return n
}

// zeroSecrets erases every generator's key and buffered output (Close).
func (p *Provider) zeroSecrets() {
	for i := range p.secrets {
		st := &p.secrets[i]
		st.mu.Lock()
		clear(st.key[:])
		clear(st.buf[:])
		st.pos, st.left, st.spans = len(st.buf), 0, nil
		st.mu.Unlock()
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
