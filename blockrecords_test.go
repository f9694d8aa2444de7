package entropy

import (
	"runtime"
	"testing"
	"weak"

	"github.com/stretchr/testify/require"
)

// A block's record (blockRuns) holds its bytes, and records come in
// batches (metaBatch), so a record kept alive keeps its batch-mates' blocks
// alive too. Read, zeroed blocks kept alive that way stay under a 16th of
// the pool's size: when one reader drains one shard of two, the way a lone
// reader drains its P's shard, while the other shard keeps the blocks it
// was given when the pool first filled (one in two of them); and when
// blocks are larger than the fetch size (raised to the smallest block the
// health tests judge).
func TestReadBlocksKeptAliveByRecordsStayUnderASixteenth(t *testing.T) {
	for _, tc := range []struct {
		name                string
		shards, size, fetch int
	}{
		{"one shard of two drained", 2, 256 << 10, 1 << 10},
		{"blocks larger than the fetch size", 1, 160 * 28, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newScriptSource("r")
			p := newTestProvider(t, src, fast(WithShards(tc.shards), WithBufferSize(tc.size), WithFetchSize(tc.fetch))...)
			require.Greater(t, p.metaBatch(), 1, "records come in batches here")
			full(t, p, tc.size)
			src.set(&step{err: &APIError{StatusCode: 503}}) // no block is added from here on

			// Weak pointers to the bytes of shard 0's blocks; then read
			// them all, as reads do, under the shard's lock.
			s := p.shards[0]
			type block struct {
				data weak.Pointer[byte]
				n    int
			}
			var blocks []block
			s.mu.Lock()
			s.unpublish()
			for _, r := range s.runs[s.first:] {
				blocks = append(blocks, block{weak.Make(&r.data[0]), len(r.data)})
			}
			n := s.queued
			s.take(make([]byte, n), nil, false)
			s.publish()
			s.mu.Unlock()
			require.GreaterOrEqual(t, n, tc.size/(2*tc.shards), "the first fill gave shard 0 its share")

			runtime.GC()
			runtime.GC()
			kept, keptBytes := 0, 0
			for _, b := range blocks {
				if b.data.Value() != nil {
					kept++
					keptBytes += b.n
				}
			}
			t.Logf("%d of shard 0's %d read blocks (%d bytes) still in memory", kept, len(blocks), keptBytes)
			require.LessOrEqual(t, keptBytes, tc.size/16, "read blocks kept alive by their records' batches")
			runtime.KeepAlive(p)
		})
	}
}
