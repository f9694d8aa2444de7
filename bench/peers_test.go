package bench

import (
	"bufio"
	crand "crypto/rand"
	"io"
	"math/rand/v2"
	"testing"
)

// The peers, measured in the same run as the Provider so that the ratios of
// the target table compare like with like.

// BenchmarkCryptoRand is crypto/rand.Read, the reference of every ratio.
func BenchmarkCryptoRand(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for range b.N {
				_, _ = crand.Read(buf)
			}
		})
	}
}

// BenchmarkCryptoRandParallel is crypto/rand.Read from GOMAXPROCS goroutines.
func BenchmarkCryptoRandParallel(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, n)
				for pb.Next() {
					_, _ = crand.Read(buf)
				}
			})
		})
	}
}

// BenchmarkBufioCryptoRand is a bufio.Reader (4 KiB) over crypto/rand: the
// cheap way to amortise the system call (without zeroing what it served).
func BenchmarkBufioCryptoRand(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			r := bufio.NewReaderSize(crand.Reader, 4096)
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for range b.N {
				if _, err := io.ReadFull(r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChaCha8 is math/rand/v2's ChaCha8 generator, seeded once: a
// userspace CSPRNG with no provenance at all.
func BenchmarkChaCha8(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			var seed [32]byte
			_, _ = crand.Read(seed[:])
			r := rand.NewChaCha8(seed)
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for range b.N {
				_, _ = r.Read(buf)
			}
		})
	}
}
