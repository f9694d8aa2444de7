package entropy

import (
	"math/bits"
	"sync"
)

// Block buffers. The refill copies every checked block into a buffer of the
// pool's own (the source keeps its Data). Copying into memory just
// allocated costs about a fifth of the refill (the memory is in no cache,
// and the collector must then find it garbage), so buffers are recycled:
// a buffer goes back to a free list when every byte of it has been handed
// out or zeroed by Close, and every reader that claimed bytes of it has
// finished copying and clearing them. It is then all zeros, and no run
// will ever read it again: a run whose bytes are all gone fails every
// claim (its cursor is at its end, or it is stopped), so a reader still
// holding such a run touches no byte of it. Run records are not
// recycled, only the bytes, so a stale pointer to a run never sees
// another block's run.
//
// Each run counts its bytes not yet cleared (run.left): a claim, a take
// under the shard's lock and Close's zero each subtract the bytes they
// cleared, after clearing them. The run that reaches zero tells its block
// (blockRuns.pending), and the block whose runs are all at zero, after add
// has made them all, releases its buffer.
//
// The free lists are sync.Pools, one per power-of-two capacity from
// 1<<minBufShift to 1<<maxBufShift bytes, shared by every Provider of the
// process (so a Provider that closes leaves its buffers to the next).
// A block whose length is under three quarters of its capacity class is
// copied into memory of its own, as before, and not recycled: so at most a
// third of a recycled buffer is unused.

const (
	minBufShift = 5
	maxBufShift = 20
)

// bufPools are the free lists of blockBufs, by capacity class.
var bufPools [maxBufShift - minBufShift + 1]sync.Pool

// blockBuf holds a recyclable buffer of one capacity class (b has
// capacity 1<<class and is all zeros while it is in its free list).
type blockBuf struct {
	b     []byte
	class uint8
}

// newBlockBuf returns a buffer of n zero bytes and, if it is recyclable,
// the blockBuf to release when its bytes are all gone (nil otherwise).
func newBlockBuf(n int) (*blockBuf, []byte) {
	if n <= 0 {
		return nil, nil
	}
	k := bits.Len(uint(n - 1)) // 1<<k >= n
	if k < minBufShift || k > maxBufShift || 4*n < 3<<k {
		return nil, make([]byte, n)
	}
	pool := &bufPools[k-minBufShift]
	if b, _ := pool.Get().(*blockBuf); b != nil {
		return b, b.b[:n]
	}
	b := &blockBuf{b: make([]byte, 1<<k), class: uint8(k)}
	return b, b.b[:n]
}

// release puts b back in its free list; every byte of it is zero.
func (b *blockBuf) release() {
	bufPools[int(b.class)-minBufShift].Put(b)
}

// cleared records that n bytes of r were cleared (handed out or zeroed)
// by a caller that is done with them; the last releases r's block.
func (r *run) cleared(n int) {
	if r.left.Add(-int64(n)) == 0 && r.owner != nil {
		r.owner.runDone()
	}
}

// runDone records that every byte of one run of the block is cleared, or
// (from add) that add has made all of its runs; the last releases the
// block's buffer.
func (b *blockRuns) runDone() {
	if b.pending.Add(-1) == 0 && b.buf != nil {
		b.buf.release()
	}
}
