package entropy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/provenrand/entropy/internal/strictjson"
)

// FallbackSource is the [Source] name of the single span of every fallback read.
const FallbackSource = "crypto/rand"

// Span is one contiguous run of a read's bytes and where it came from: Length
// bytes starting at Offset within the Data of job JobID of source Source.
//
// In a fallback read the one span is {Source: "crypto/rand", Length: len(b)}
// with no job. In a derived read (see [Provider.ReadSecret]) the spans name the
// pool bytes that went into the key derivation, not the output bytes.
type Span struct {
	Source string `json:"source"`
	JobID  string `json:"job_id,omitempty"`
	Offset int    `json:"offset"` // offset of the span's first byte within that job's Data
	Length int    `json:"length"`
	// Public: the job's bytes are published to the whole world (a drand
	// round). Such bytes prove a draw to everyone and must never become a
	// secret; read keys with [Provider.ReadSecret].
	Public bool `json:"public,omitempty"`
}

// Label is the provenance of one read. A read has exactly one class
// ([Provenance]): verifiable, derived or fallback; it never mixes them.
//
//   - Verifiable: Verifiable is true, Derived false, Reason nil, and the spans
//     tile the read in order: for each span, the read's next Length bytes equal
//     Data[Offset:Offset+Length] of that job.
//   - Derived: Derived is true, Verifiable false. The output came from a key
//     derivation over pool bytes (the spans) and fresh local randomness, so no
//     service can compute it, and no third party can recompute it either.
//   - Fallback: both false, Reason says why the source was not used, and
//     Spans is one span {Source: "crypto/rand", Length: n}.
type Label struct {
	Verifiable bool
	Derived    bool   // a secret-safe read; see Provider.ReadSecret
	Spans      []Span // in order; lengths add up to the bytes read (derived: to the pool bytes used)
	Reason     error  // fallback reads: why the source was not used (errors.Is reaches the cause)
}

// Provenance is the class of a read.
type Provenance int

const (
	// ProvenanceFallback: local [crypto/rand] bytes, not verifiable by anyone.
	ProvenanceFallback Provenance = iota
	// ProvenanceVerifiable: raw bytes of verifiable jobs, checkable against them.
	ProvenanceVerifiable
	// ProvenanceDerived: a KDF over verifiable bytes and local randomness.
	ProvenanceDerived
)

// String returns "fallback", "verifiable" or "derived".
func (p Provenance) String() string {
	switch p {
	case ProvenanceFallback:
		return "fallback"
	case ProvenanceVerifiable:
		return "verifiable"
	case ProvenanceDerived:
		return "derived"
	}
	return fmt.Sprintf("Provenance(%d)", int(p))
}

// Provenance returns the class of the read the label describes.
func (l Label) Provenance() Provenance {
	switch {
	case l.Derived:
		return ProvenanceDerived
	case l.Verifiable:
		return ProvenanceVerifiable
	}
	return ProvenanceFallback
}

// Len returns the number of bytes the spans cover.
func (l Label) Len() int {
	n := 0
	for _, s := range l.Spans {
		n += s.Length
	}
	return n
}

// String gives a one-line summary such as
// "verifiable quantropy job-7[0:32]" or "fallback crypto/rand[32] (reason)".
// A source name or job ID that is not a plain word, or a reason that is not
// printable text, is quoted: the summary is always one line, whatever the
// names hold.
func (l Label) String() string {
	var sb strings.Builder
	sb.WriteString(l.Provenance().String())
	for _, s := range l.Spans {
		sb.WriteByte(' ')
		sb.WriteString(printName(s.Source))
		if s.JobID != "" {
			fmt.Fprintf(&sb, " %s[%d:%d]", printName(s.JobID), s.Offset, s.Offset+s.Length)
			if s.Public {
				sb.WriteString(" public")
			}
		} else {
			fmt.Fprintf(&sb, "[%d]", s.Length)
		}
	}
	if l.Reason != nil {
		fmt.Fprintf(&sb, " (%s)", printText(l.Reason.Error()))
	}
	return sb.String()
}

// labelJSON is the wire form of a Label: Reason as text, and the class spelt
// out so that no reader of a transcript can miss a fallback.
type labelJSON struct {
	Class      string `json:"class"`
	Verifiable bool   `json:"verifiable"`
	Derived    bool   `json:"derived,omitempty"`
	Spans      []Span `json:"spans"`
	Reason     string `json:"reason,omitempty"`
}

// MarshalJSON writes the label with its class ("verifiable", "derived" or
// "fallback") and its Reason as text.
func (l Label) MarshalJSON() ([]byte, error) {
	j := labelJSON{Class: l.Provenance().String(), Verifiable: l.Verifiable, Derived: l.Derived, Spans: l.Spans}
	if j.Spans == nil {
		j.Spans = []Span{}
	}
	if l.Reason != nil {
		j.Reason = l.Reason.Error()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote, strictly: a missing class, a
// class that contradicts the flags, a member it does not know (in the label
// or a span), a member name in other case, or a member given twice is an
// error, and so is a span no read makes (a negative offset or length, a
// fallback span naming a job, a verifiable or derived span of
// [FallbackSource] or of no job), so that an edited transcript does not load.
// The Reason comes back as a plain error with the same text.
func (l *Label) UnmarshalJSON(b []byte) error {
	if err := strictjson.Keys(b); err != nil {
		return fmt.Errorf("entropy: label: %w", err)
	}
	var j labelJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // in the label and in its spans: nothing can be slipped in
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("entropy: label: %w", err)
	}
	if dec.More() {
		return errors.New("entropy: label: data after the object")
	}
	if j.Class == "" {
		return errors.New("entropy: label has no class")
	}
	out := Label{Verifiable: j.Verifiable, Derived: j.Derived, Spans: j.Spans}
	if j.Reason != "" {
		out.Reason = errors.New(j.Reason)
	}
	if j.Class != out.Provenance().String() {
		return fmt.Errorf("entropy: label class %q contradicts its flags (%s)", j.Class, out.Provenance())
	}
	if out.Verifiable && out.Derived {
		return errors.New("entropy: label is both verifiable and derived")
	}
	if err := out.checkSpans(); err != nil {
		return fmt.Errorf("entropy: label: %w", err)
	}
	*l = out
	return nil
}

// checkSpans reports a span that the label's class rules out, as no read
// of a [Provider] makes it: a negative offset or length; in a fallback
// label, a span that is not [FallbackSource]'s (one naming a job, an offset
// or public bytes); in a verifiable or derived label, a span of
// [FallbackSource] or of no job, or a Reason.
func (l Label) checkSpans() error {
	fallback := l.Provenance() == ProvenanceFallback
	if !fallback && l.Reason != nil {
		return fmt.Errorf("a %s label has a reason", l.Provenance())
	}
	for i, s := range l.Spans {
		switch {
		case s.Offset < 0 || s.Length < 0:
			return fmt.Errorf("span %d has offset %d and length %d", i, s.Offset, s.Length)
		case fallback && (s.Source != FallbackSource || s.JobID != "" || s.Offset != 0 || s.Public):
			return fmt.Errorf("span %d of a fallback label is not %s's", i, FallbackSource)
		case !fallback && s.Source == FallbackSource:
			return fmt.Errorf("span %d of a %s label is %s's", i, l.Provenance(), FallbackSource)
		case !fallback && s.JobID == "":
			return fmt.Errorf("span %d of a %s label names no job", i, l.Provenance())
		}
	}
	return nil
}

// spanSlab is how many span slots a slab holds. Labels take their Spans from
// a slab with the capacity clipped, so appending to one never writes into
// another; a new slab is made when one runs out (one allocation per
// spanSlab labelled reads). 292 slots and the counter fill the 16 KiB size
// class of the allocator to within 24 bytes (256 left an eighth unused).
const spanSlab = 292

// slab is a block of span slots; next counts the slots handed out.
type slab struct {
	next  atomic.Uint32
	spans [spanSlab]Span
}

// span returns a one-element slice of a fresh span slot holding the span
// of the n bytes at offset off in run r. The span is built in its slot
// rather than passed in, which saves copying 56 bytes through the call.
func (s *shard) span(r *run, off, n int) []Span {
	for {
		sl := s.slab.Load()
		if sl != nil {
			if i := sl.next.Add(1); i <= spanSlab {
				sp := &sl.spans[i-1]
				sp.Source, sp.JobID, sp.Public = r.from.source, r.from.job, r.from.public
				sp.Offset, sp.Length = r.base+off, n
				return sl.spans[i-1 : i : i]
			}
		}
		s.slab.CompareAndSwap(sl, new(slab))
	}
}

// appendSpan appends sp, merging it into the last span when it continues the
// same job (a job split over two runs or two shards' reads).
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
