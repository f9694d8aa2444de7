package entropy

import (
	"runtime"
	"sync/atomic"
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
// pinned there (procPin), or, for the last of Provider.secrets (the one
// stream shared by the Ps that New did not count), the holder of
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
