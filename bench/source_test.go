package bench

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/health"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memSize is the size of the pre-generated random buffer the in-memory
// source hands out slices of.
const memSize = 16 << 20

var (
	memOnce sync.Once
	memData []byte
)

// randomBuffer returns memSize bytes of ChaCha8 output from a fixed seed,
// generated once per process. The seed is fixed so that the buffer is the
// same in every run, and TestMemSourcePassesHealthTests proves that every
// slice of it passes the SP 800-90B health tests whatever its alignment.
func randomBuffer() []byte {
	memOnce.Do(func() {
		memData = make([]byte, memSize)
		r := rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'})
		_, _ = r.Read(memData)
	})
	return memData
}

// memSource is the fastest Source there is: every block is a slice of the
// pre-generated random buffer, with a fresh job ID. Its job IDs are cut from
// one string made per nameBatch blocks, so it costs a slice per block and
// a benchmark over it counts the Provider's allocations, not the source's. (A real source must never repeat bytes; reusing the buffer is
// acceptable here only because nothing checks the bytes against their jobs.)
type memSource struct {
	data []byte

	mu    sync.Mutex
	off   int
	seq   uint64
	names string // the job IDs of the next blocks, nameLen bytes each
}

// nameBatch is how many job IDs memSource makes at once, nameLen the length
// of each: "job-" and 16 hex digits.
const (
	nameBatch = 1024
	nameLen   = 20
)

// jobName returns the job ID of block seq, making the next nameBatch IDs
// when the last batch is used up. Under s.mu.
func (s *memSource) jobName(seq uint64) string {
	if len(s.names) == 0 {
		b := make([]byte, 0, nameBatch*nameLen)
		for i := range uint64(nameBatch) {
			var hex [16]byte
			for j, v := 15, seq+i; j >= 0; j, v = j-1, v>>4 {
				hex[j] = "0123456789abcdef"[v&15]
			}
			b = append(append(b, "job-"...), hex[:]...)
		}
		s.names = string(b)
	}
	name := s.names[:nameLen]
	s.names = s.names[nameLen:]
	return name
}

func newMemSource() *memSource { return &memSource{data: randomBuffer()} }

// Fetch returns the next n bytes of the buffer (wrapping around) as a block
// of a new job.
func (s *memSource) Fetch(_ context.Context, n int) (entropy.Block, error) {
	n = min(n, len(s.data))
	s.mu.Lock()
	if s.off+n > len(s.data) {
		s.off = 0
	}
	off := s.off
	s.off += n
	s.seq++
	job := s.jobName(s.seq)
	s.mu.Unlock()
	return entropy.Block{
		Data:       s.data[off : off+n : off+n],
		Source:     "memory",
		JobID:      job,
		Verifiable: true,
	}, nil
}

// TestMemSourcePassesHealthTests checks that no slice of the benchmark buffer
// can fail a health test: no run reaches the RCT cutoff anywhere, and no byte
// value reaches the APT cutoff in any window of AptWindow bytes, at any
// offset (a sliding count covers every alignment the source can produce).
func TestMemSourcePassesHealthTests(t *testing.T) {
	data := randomBuffer()
	rct, apt := health.DefaultConfig().Cutoffs()
	require.Positive(t, rct)
	require.NoError(t, health.Check(data))

	run, maxRun := 1, 1
	for i := 1; i < len(data); i++ {
		if data[i] == data[i-1] {
			run++
			maxRun = max(maxRun, run)
		} else {
			run = 1
		}
	}
	require.Less(t, maxRun, rct, "longest run of one byte value")

	var counts [256]int
	maxCount := 0
	for i, v := range data {
		counts[v]++
		maxCount = max(maxCount, counts[v])
		if i >= health.AptWindow {
			counts[data[i-health.AptWindow]]--
		}
	}
	require.Less(t, maxCount, apt, "most frequent value in any window")

	blk, err := newMemSource().Fetch(context.Background(), 100)
	require.NoError(t, err)
	require.Len(t, blk.Data, 100)
	require.True(t, blk.Verifiable)
	require.NoError(t, health.Check(blk.Data))
}
