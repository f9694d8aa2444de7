package entropy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"reflect"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// The derived-read generator's cryptography (docs/secret.md): the HKDF that
// keys a derivation and the AES-256-CTR keystream of a batch, both of which
// erase what they made of the key.

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

// wipeTypes caches pointerFree for the few types wipe sees. It is a map
// replaced whole, never written in place, so that wipe takes no lock: a
// stream makes its batches pinned to its P (secretStream), where nothing
// may wait.
var wipeTypes atomic.Pointer[map[reflect.Type]bool]

// wipeable reports whether wipe may clear values of t: pointerFree, cached.
func wipeable(t reflect.Type) bool {
	if m := wipeTypes.Load(); m != nil {
		if ok, seen := (*m)[t]; seen {
			return ok
		}
	}
	ok := pointerFree(t)
	for {
		old := wipeTypes.Load()
		m := map[reflect.Type]bool{t: ok}
		if old != nil {
			for k, v := range *old {
				m[k] = v
			}
		}
		if wipeTypes.CompareAndSwap(old, &m) {
			return ok
		}
	}
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
