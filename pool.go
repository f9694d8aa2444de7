package entropy

import "sync"

// origin names the job a chunk of pool bytes came from. Chunks of one block
// share one origin, so a span costs no allocation beyond its slot.
type origin struct {
	source string
	job    string
	public bool
}

// chunk is a run of checked bytes of one job in a shard: data[pos:] is still
// unread; data[:pos] has been handed out and zeroed. base is the offset of
// data[0] within the job's Data.
type chunk struct {
	data []byte
	pos  int
	base int
	from *origin
}

// spanSlab is how many span slots a shard allocates at a time. Labels take
// their Spans from the slab with the capacity clipped, so appending to one
// never writes into another; a new slab is made when one runs out.
const spanSlab = 256

// shard is one independently locked part of the pool. Readers are spread over
// shards (see Provider.handles) so that concurrent reads seldom share a lock
// or a cache line.
type shard struct {
	mu     sync.Mutex
	chunks []chunk // queue; chunks[head:] hold unread bytes
	head   int
	avail  int // unread bytes in the shard
	cap    int // bytes the refill aims to keep here
	low    int // below this, the shard asks for a refill
	asked  bool
	slab   []Span
	closed bool

	// Read counters, under mu, summed by Stats.
	reads, bytes uint64

	_ [64]byte // keep shards on separate cache lines
}

// pick returns the shard a read should take from: the only one, or the one
// of the reader's P through the Provider's sync.Pool of handles (whose
// per-P cache gives each P a shard of its own). A non-nil handle must be
// given back with release. With one shard (GOMAXPROCS 1, or a small
// buffer) it skips the sync.Pool, a third of a small read's cost.
func (p *Provider) pick() (*shard, *handle) {
	if len(p.shards) == 1 {
		return p.shards[0], nil
	}
	h := p.handles.Get().(*handle)
	return h.s, h
}

// release gives back the handle pick returned, if any.
func (p *Provider) release(h *handle) {
	if h != nil {
		p.handles.Put(h)
	}
}

// take moves len(dst) bytes from the shard into dst, zeroing each pool byte
// as it goes (contract point 3). The caller holds s.mu and has checked that
// s.avail >= len(dst). With spans non-nil-able (want true), it appends one
// span per run of one job and returns the spans.
func (s *shard) take(dst []byte, spans []Span, want bool) []Span {
	for len(dst) > 0 {
		c := &s.chunks[s.head]
		src := c.data[c.pos:]
		n := copy(dst, src)
		clear(src[:n])
		if want {
			spans = appendSpan(spans, Span{Source: c.from.source, JobID: c.from.job, Offset: c.base + c.pos, Length: n, Public: c.from.public})
		}
		c.pos += n
		s.avail -= n
		dst = dst[n:]
		if c.pos == len(c.data) {
			s.chunks[s.head] = chunk{}
			s.head++
			if s.head == len(s.chunks) {
				s.chunks = s.chunks[:0]
				s.head = 0
			}
		}
	}
	return spans
}

// put appends a chunk; the caller holds s.mu.
func (s *shard) put(c chunk) {
	if s.head > 0 && s.head >= len(s.chunks)/2 {
		n := copy(s.chunks, s.chunks[s.head:])
		clear(s.chunks[n:])
		s.chunks = s.chunks[:n]
		s.head = 0
	}
	s.chunks = append(s.chunks, c)
	s.avail += len(c.data) - c.pos
}

// spans returns an empty slice of span slots from the shard's slab; the
// caller holds s.mu and must pass the result to commitSpans.
func (s *shard) spans() []Span {
	if cap(s.slab)-len(s.slab) < 8 {
		s.slab = make([]Span, 0, spanSlab)
	}
	return s.slab[len(s.slab):len(s.slab):cap(s.slab)]
}

// commitSpans marks the slots sp used (if it still lives in the slab) and
// clips its capacity, so that a caller's append cannot reach the next label.
func (s *shard) commitSpans(sp []Span) []Span {
	n := len(sp)
	if n > 0 && n <= cap(s.slab)-len(s.slab) && &s.slab[:len(s.slab)+1][len(s.slab)] == &sp[0] {
		s.slab = s.slab[:len(s.slab)+n]
	}
	return sp[:n:n]
}

// zero wipes every unread byte and marks the shard closed; the caller holds
// s.mu.
func (s *shard) zero() {
	for i := s.head; i < len(s.chunks); i++ {
		clear(s.chunks[i].data)
	}
	clear(s.chunks)
	s.chunks = nil
	s.head, s.avail = 0, 0
	s.closed = true
}

// appendSpan appends sp, merging it into the last span when it continues the
// same job (a job split over two chunks or two shards' reads).
func appendSpan(spans []Span, sp Span) []Span {
	if k := len(spans) - 1; k >= 0 {
		last := &spans[k]
		if last.JobID == sp.JobID && last.Source == sp.Source && last.Offset+last.Length == sp.Offset {
			last.Length += sp.Length
			return spans
		}
	}
	return append(spans, sp)
}
