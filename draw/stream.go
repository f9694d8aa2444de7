package draw

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
)

// streamTag is the domain separation string of the expansion (docs/draw-spec.md §2).
const streamTag = "provenrand/draw/v1"

// words is a source of 64-bit words: the expansion of a seed, or a list of
// chosen words in the tests of the rejection boundary.
type words interface {
	next() uint64
}

// stream is the expansion of a seed: the bytes of block 0, block 1, … where
// block i = SHA-256(streamTag || 0x00 || seed || uint64be(i)), read as
// big-endian 64-bit words. A block holds four words exactly, so no word
// straddles two blocks.
type stream struct {
	prefix []byte   // streamTag || 0x00 || seed
	ctr    uint64   // index of the next block
	buf    [32]byte // the current block
	off    int      // next unread byte of buf; len(buf) when empty
}

// newStream starts the expansion of seed at block 0.
func newStream(seed []byte) *stream {
	p := make([]byte, 0, len(streamTag)+1+len(seed)+8)
	p = append(p, streamTag...)
	p = append(p, 0)
	p = append(p, seed...)
	return &stream{prefix: p, off: 32}
}

// refill computes the next block.
func (s *stream) refill() {
	in := binary.BigEndian.AppendUint64(s.prefix, s.ctr)
	s.buf = sha256.Sum256(in)
	s.ctr++
	s.off = 0
}

// read fills b with the next len(b) bytes of the stream.
func (s *stream) read(b []byte) {
	for len(b) > 0 {
		if s.off == len(s.buf) {
			s.refill()
		}
		n := copy(b, s.buf[s.off:])
		s.off += n
		b = b[n:]
	}
}

// next returns the next 8 bytes of the stream as a big-endian uint64.
func (s *stream) next() uint64 {
	if s.off == len(s.buf) {
		s.refill()
	}
	v := binary.BigEndian.Uint64(s.buf[s.off:])
	s.off += 8
	return v
}

// uniform returns an integer in [0, n) with every value equally likely, for
// 1 ≤ n ≤ 2^64−1, by rejection (docs/draw-spec.md §3): with r = 2^64 mod n,
// a word x is accepted when x ≤ 2^64−1−r (that is x < 2^64−r, the largest
// multiple of n not above 2^64) and gives x mod n; a larger word is rejected
// and the next one tried.
func uniform(w words, n uint64) uint64 {
	r := -n % n // 2^64 mod n, in uint64 arithmetic
	limit := uint64(math.MaxUint64) - r
	for {
		if x := w.next(); x <= limit {
			return x % n
		}
	}
}

// pick returns k distinct values of [0, n) in draw order by a partial
// Fisher–Yates shuffle of the virtual array a = [0, 1, …, n−1]: for
// i = 0 … k−1, j = i + uniform(n−i), swap a[i] and a[j], output a[i]. Only
// the moved entries are stored, so memory is O(k) whatever n is.
func pick(w words, k, n uint64) []uint64 {
	moved := make(map[uint64]uint64, k)
	at := func(i uint64) uint64 {
		if v, ok := moved[i]; ok {
			return v
		}
		return i
	}
	out := make([]uint64, k)
	for i := uint64(0); i < k; i++ {
		j := i + uniform(w, n-i)
		ai, aj := at(i), at(j)
		moved[i], moved[j] = aj, ai
		out[i] = aj
	}
	return out
}

// shuffle returns a permutation of [0, n) by Fisher–Yates from the end: start
// from a = [0, 1, …, n−1]; for i = n−1 down to 1, j = uniform(i+1), swap a[i]
// and a[j].
func shuffle(w words, n uint64) []uint64 {
	a := make([]uint64, n)
	for i := range a {
		a[i] = uint64(i)
	}
	for i := n - 1; i >= 1; i-- {
		j := uniform(w, i+1)
		a[i], a[j] = a[j], a[i]
	}
	return a
}
