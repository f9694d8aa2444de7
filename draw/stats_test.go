package draw

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Chi-square critical values at p = 1e-4, by degrees of freedom. The seeds
// are fixed, so the tests are deterministic; the threshold says how far from
// uniform a correct implementation is allowed to look.
var chiCrit = map[int]float64{2: 18.42, 19: 51.1, 23: 57.4, 48: 93.4, 63: 113.7}

// chiSquare returns the statistic of counts against equal expectations.
func chiSquare(counts []int, total int) float64 {
	exp := float64(total) / float64(len(counts))
	var x float64
	for _, c := range counts {
		d := float64(c) - exp
		x += d * d / exp
	}
	return x
}

// statSeed is a fixed seed per test name.
func statSeed(name string) []byte {
	s := sha256.Sum256([]byte("provenrand/draw stats " + name))
	return s[:]
}

// bucket maps v in [0, n) to one of b equal buckets: ⌊v·b/n⌋.
func bucket(v, n, b uint64) uint64 {
	hi, lo := bits.Mul64(v, b)
	q, _ := bits.Div64(hi, lo, n)
	return q
}

// draws returns the number of draws per statistical test.
func draws() int {
	if testing.Short() {
		return 200_000
	}
	return 2_000_000
}

// TestUniformChiSquare draws millions of integers for awkward n (3, 49,
// 2^31+1, 2^63+1, which rejects almost half of all words, and ≈ 2/3·2^64,
// where a bare modulo would be badly biased) and checks that they are
// uniform, the large n over 64 equal buckets.
func TestUniformChiSquare(t *testing.T) {
	for _, n := range []uint64{3, 49, 1<<31 + 1, 1<<63 + 1, twoThirds} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			buckets := n
			if n > 64 {
				buckets = 64
			}
			s := newStream(statSeed(fmt.Sprint(n)))
			counts := make([]int, buckets)
			total := draws()
			for range total {
				v := uniform(s, n)
				if v >= n {
					t.Fatalf("uniform(%d) = %d", n, v)
				}
				counts[bucket(v, n, buckets)]++
			}
			x := chiSquare(counts, total)
			t.Logf("n=%d draws=%d chi2=%.1f df=%d", n, total, x, buckets-1)
			assert.Less(t, x, chiCrit[int(buckets-1)])
		})
	}
}

// twoThirds is about 2/3 of 2^64: a bare modulo by it hits the values below
// 2^64−n, half of the range, twice as often as the rest.
const twoThirds = 0xAAAA_AAAA_AAAA_AAAB

// TestChiSquareDetectsModuloBias shows that the test above has power: a bare
// modulo (no rejection) for n ≈ 2/3·2^64 fails it by far.
func TestChiSquareDetectsModuloBias(t *testing.T) {
	const n = twoThirds
	s := newStream(statSeed("bias"))
	counts := make([]int, 64)
	total := 100_000
	for range total {
		counts[bucket(s.next()%n, n, 64)]++
	}
	assert.Greater(t, chiSquare(counts, total), 10*chiCrit[63])
}

// TestPickChiSquare checks that every ordered pair of pick(2, 5) is equally
// likely (20 outcomes).
func TestPickChiSquare(t *testing.T) {
	s := newStream(statSeed("pick"))
	counts := make([]int, 20)
	total := draws() / 4
	for range total {
		p := pick(s, 2, 5)
		j := p[1]
		if j > p[0] {
			j--
		}
		counts[p[0]*4+j]++
	}
	x := chiSquare(counts, total)
	t.Logf("pick(2,5) chi2=%.1f", x)
	assert.Less(t, x, chiCrit[19])
}

// TestShuffleChiSquare checks that every permutation of 4 items is equally
// likely (24 outcomes).
func TestShuffleChiSquare(t *testing.T) {
	s := newStream(statSeed("shuffle"))
	index := make(map[uint64]int)
	counts := make([]int, 24)
	total := draws() / 4
	for range total {
		p := shuffle(s, 4)
		var key uint64
		for _, v := range p {
			key = key<<8 | v
		}
		i, ok := index[key]
		if !ok {
			i = len(index)
			index[key] = i
		}
		counts[i]++
	}
	assert.Len(t, index, 24)
	x := chiSquare(counts, total)
	t.Logf("shuffle(4) chi2=%.1f", x)
	assert.Less(t, x, chiCrit[23])
}

// TestStreamBytesUniform checks the expansion's bytes: 256 buckets would need
// a table entry, so it checks the 64 values of the top six bits of each word.
func TestStreamBytesUniform(t *testing.T) {
	s := newStream(statSeed("bytes"))
	counts := make([]int, 64)
	total := draws()
	var b [8]byte
	for range total {
		binary.BigEndian.PutUint64(b[:], s.next())
		counts[b[0]>>2]++
	}
	x := chiSquare(counts, total)
	assert.Less(t, x, chiCrit[63])
	assert.False(t, math.IsNaN(x))
}
