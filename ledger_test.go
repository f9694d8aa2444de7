package entropy

import (
	"fmt"
	"sync"

	"github.com/provenrand/entropy/internal/testkit"
)

// ledger is the byte ledger of package testkit over the jobs of script
// sources, with the checks of a label's class around it.
type ledger struct {
	*testkit.Ledger
	mu    sync.Mutex
	keyed map[Span]bool // spans that keyed a derived-read stream
}

func newLedger(srcs ...*scriptSource) *ledger {
	bySource := map[string]*scriptSource{}
	for _, s := range srcs {
		bySource[s.name] = s
	}
	job := func(source, id string) ([]byte, bool) {
		if s, ok := bySource[source]; ok {
			return s.job(id)
		}
		return nil, false
	}
	return &ledger{Ledger: testkit.NewLedger(job), keyed: map[Span]bool{}}
}

// check verifies one read: b and its label. It returns a description of
// the first problem, or "".
func (l *ledger) check(b []byte, lb Label) string {
	if lb.Verifiable && lb.Derived {
		return "label both verifiable and derived"
	}
	if !lb.Verifiable {
		if lb.Reason == nil {
			return "fallback label without reason"
		}
		if len(lb.Spans) != 1 || lb.Spans[0].Source != FallbackSource || lb.Spans[0].Length != len(b) || lb.Spans[0].JobID != "" {
			return fmt.Sprintf("fallback label spans wrong: %+v", lb.Spans)
		}
		return ""
	}
	if lb.Reason != nil {
		return "verifiable label with a reason"
	}
	off := 0
	for _, sp := range lb.Spans {
		if sp.Length <= 0 || off+sp.Length > len(b) {
			return fmt.Sprintf("span out of range: %+v", sp)
		}
		if msg := l.take(sp, b[off:off+sp.Length]); msg != "" {
			return msg
		}
		off += sp.Length
	}
	if off != len(b) {
		return fmt.Sprintf("spans cover %d bytes of %d", off, len(b))
	}
	return ""
}

// take checks a span against its job (got: the read's bytes for it; nil
// for pool bytes that keyed a derived read) and records its bytes as
// handed out; it returns the problem, or "".
func (l *ledger) take(sp Span, got []byte) string {
	_, msg := l.Take(testkit.Span{Source: sp.Source, Job: sp.JobID, Offset: sp.Offset, Length: sp.Length}, got)
	return msg
}

// claim records spans as handed out without comparing bytes (derived
// reads, whose output is not the job bytes); it returns the first problem,
// or "".
func (l *ledger) claim(spans []Span) string {
	for _, sp := range spans {
		if msg := l.take(sp, nil); msg != "" {
			return msg
		}
	}
	return ""
}

// claimDerived checks the spans of a derived read: many reads are served by
// one derivation and name its spans, so a span seen before in a derived
// label is that derivation again; any other span must name pool bytes never
// handed out before (as claim). It returns the problem, or "", and how many
// pool bytes the new derivations took.
func (l *ledger) claimDerived(spans []Span) (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, sp := range spans {
		if l.keyed[sp] {
			continue
		}
		if msg := l.take(sp, nil); msg != "" {
			return msg, 0
		}
		l.keyed[sp] = true
		n += sp.Length
	}
	return "", n
}
