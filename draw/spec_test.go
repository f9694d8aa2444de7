package draw

import (
	"bytes"
	"encoding/hex"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seedA is 00 01 … 1f and seedB 32 bytes ff: the seeds of docs/draw-spec.md §9.
var (
	seedA = func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()
	seedB = bytes.Repeat([]byte{0xff}, 32)
)

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestSpecVectors checks every test vector of docs/draw-spec.md §9.
func TestSpecVectors(t *testing.T) {
	s := newStream(seedA)
	blocks := make([]byte, 64)
	s.read(blocks)
	assert.Equal(t, hexBytes(t, "0dd62a5e85eaed3765755e27e3387897ca2980f944c43fa876eddd48319a43eb"), blocks[:32])
	assert.Equal(t, hexBytes(t, "70e6d72eeab208c121f9d3da935b6ef6be9e4c1f0dc6bc9dc4f2e4ad3ca59db6"), blocks[32:])

	s = newStream(seedA)
	assert.Equal(t, []uint64{0x0dd62a5e85eaed37, 0x65755e27e3387897, 0xca2980f944c43fa8, 0x76eddd48319a43eb},
		[]uint64{s.next(), s.next(), s.next(), s.next()})
	s = newStream(seedB)
	assert.Equal(t, []uint64{0xeae43faac5cc019c, 0x7e012b44029e902b, 0xffd268d91f935f5b, 0x82691aeeece0e139},
		[]uint64{s.next(), s.next(), s.next(), s.next()})

	assert.Equal(t, uint64(34), uniform(newStream(seedA), 49))
	assert.Equal(t, uint64(2), uniform(newStream(seedB), 3))
	assert.Equal(t, uint64(997030952971201847), uniform(newStream(seedA), 1<<63+1))
	assert.Equal(t, uint64(9079585894857347115), uniform(newStream(seedB), 1<<63+1))
	assert.Equal(t, uint64(997030952971201847), uniform(newStream(seedA), math.MaxUint64))

	assert.Equal(t, []uint64{34, 24, 37, 0, 35, 27}, pick(newStream(seedA), 6, 49))
	assert.Equal(t, []uint64{47, 28, 11, 20, 48, 27}, pick(newStream(seedB), 6, 49))
	assert.Equal(t, []uint64{405973691703, 171322502646, 1070627066538}, pick(newStream(seedA), 3, 1<<40))
	assert.Equal(t, []uint64{4, 6, 8, 5, 9, 1, 3, 0, 2, 7}, shuffle(newStream(seedA), 10))
	assert.Equal(t, []uint64{1, 40, 42, 21, 0, 33, 16, 38, 51, 28, 3, 34, 35, 18, 17, 39, 20, 2, 14, 23, 22, 50,
		10, 37, 13, 11, 31, 43, 30, 49, 4, 27, 36, 46, 44, 41, 8, 5, 12, 7, 9, 45, 47, 19, 29, 6, 32, 26, 15, 25, 24, 48},
		shuffle(newStream(seedB), 52))
}

// listWords hands out chosen words and counts them.
type listWords struct {
	w    []uint64
	used int
}

func (l *listWords) next() uint64 {
	v := l.w[l.used]
	l.used++
	return v
}

// TestRejectionBoundary checks the exact boundary of docs/draw-spec.md §3:
// the smallest rejected word is rejected (and the next word used), the
// largest accepted word is accepted.
func TestRejectionBoundary(t *testing.T) {
	const max = math.MaxUint64
	cases := []struct {
		name           string
		n              uint64
		largestAccept  uint64
		smallestReject uint64 // 0: nothing is rejected
	}{
		{"1", 1, max, 0},
		{"2", 2, max, 0},
		{"2^32", 1 << 32, max, 0},
		{"3", 3, max - 1, max},
		{"49", 49, max - 2, max - 1},
		{"2^31+1", 1<<31 + 1, max - 4, max - 3},
		{"2^63+1", 1<<63 + 1, 1 << 63, 1<<63 + 1},
		{"2^64-1", max, max - 1, max},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The boundary agrees with 2^64 mod n.
			r := -c.n % c.n
			assert.Equal(t, uint64(max)-r, c.largestAccept)

			w := &listWords{w: []uint64{c.largestAccept, 7}}
			assert.Equal(t, c.largestAccept%c.n, uniform(w, c.n))
			assert.Equal(t, 1, w.used, "largest accepted word must be used")

			if c.smallestReject != 0 {
				w = &listWords{w: []uint64{c.smallestReject, max, c.largestAccept - 1, 7}}
				assert.Equal(t, (c.largestAccept-1)%c.n, uniform(w, c.n))
				assert.Equal(t, 3, w.used, "words at or above the limit must be rejected")
			}
			// Word 0 is always accepted.
			w = &listWords{w: []uint64{0}}
			assert.Equal(t, uint64(0), uniform(w, c.n))
		})
	}
}

// The stream's rejection path: seed B's first word is rejected for 2^63+1.
func TestStreamRejectsThenAccepts(t *testing.T) {
	s := newStream(seedB)
	first, second := s.next(), s.next()
	require.Greater(t, first, uint64(1<<63), "vector premise: first word above the limit")
	require.LessOrEqual(t, second, uint64(1<<63))
	assert.Equal(t, second, uniform(newStream(seedB), 1<<63+1))
}

func TestPickAndShuffleShape(t *testing.T) {
	for _, n := range []uint64{1, 2, 7, 49, 100} {
		p := shuffle(newStream(seedA), n)
		seen := make(map[uint64]bool)
		for _, v := range p {
			require.Less(t, v, n)
			seen[v] = true
		}
		assert.Len(t, seen, int(n), "shuffle is a permutation")

		all := pick(newStream(seedA), n, n)
		seen = make(map[uint64]bool)
		for _, v := range all {
			seen[v] = true
		}
		assert.Len(t, seen, int(n), "pick n of n is a permutation")
	}
	// A pick is a prefix of a longer pick from the same seed.
	assert.Equal(t, pick(newStream(seedB), 3, 49), pick(newStream(seedB), 6, 49)[:3])
	// n = 1 shuffles without reading a word.
	w := &listWords{}
	assert.Equal(t, []uint64{0}, shuffle(w, 1))
	assert.Equal(t, 0, w.used)
}
