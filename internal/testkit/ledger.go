// Package testkit holds the test harnesses that more than one package of
// the module uses. It imports no package of the module, so that package
// entropy's own tests can use it as well as the packages above it.
package testkit

import (
	"bytes"
	"fmt"
	"sync"
)

// Span is one span of a label as the ledger sees it: Length bytes at Offset
// in job Job of source Source.
type Span struct {
	Source, Job    string
	Offset, Length int
}

// Fault is what Ledger.Take found wrong with a span.
type Fault int

const (
	OK         Fault = iota
	UnknownJob       // the span names a job the ledger's lookup does not know
	OutOfRange       // the span is empty or lies outside its job or the read
	Differs          // the read's bytes are not the job's bytes at the span
	Twice            // a byte of the span was handed out before
)

// Ledger is the byte ledger of the tests: it checks served bytes against
// the jobs they came from (contract points 1 and 3). Every span a read
// names must lie in a job the ledger's lookup knows, the read's bytes must
// equal the job's bytes there, and no byte of a job may be handed out
// twice. It is safe for concurrent use.
type Ledger struct {
	job  func(source, id string) ([]byte, bool)
	mu   sync.Mutex
	used map[[2]string][]bool // (source, job) → byte handed out
}

// NewLedger returns a ledger that looks jobs up with job: their bytes as
// the service made them, and whether the job is known.
func NewLedger(job func(source, id string) ([]byte, bool)) *Ledger {
	return &Ledger{job: job, used: map[[2]string][]bool{}}
}

// Take checks span sp of a read and records its bytes as handed out. got
// holds the read's bytes for the span; nil skips the comparison (a derived
// read, whose output is not the job's bytes, names the pool bytes that
// keyed it). It returns the fault, if any, and a sentence that says what it
// is ("" for OK). A span that lies in its job is recorded even when it
// differs, so that a byte served again is still found.
func (l *Ledger) Take(sp Span, got []byte) (Fault, string) {
	data, ok := l.job(sp.Source, sp.Job)
	if !ok {
		return UnknownJob, fmt.Sprintf("span names unknown job %s of %s", sp.Job, sp.Source)
	}
	if sp.Length <= 0 || sp.Offset < 0 || sp.Offset+sp.Length > len(data) || (got != nil && len(got) != sp.Length) {
		return OutOfRange, fmt.Sprintf("span out of range: %+v", sp)
	}
	fault, msg := OK, ""
	if got != nil && !bytes.Equal(got, data[sp.Offset:sp.Offset+sp.Length]) {
		fault, msg = Differs, fmt.Sprintf("bytes differ from job data at span %+v", sp)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	key := [2]string{sp.Source, sp.Job}
	u := l.used[key]
	if u == nil {
		u = make([]bool, len(data))
		l.used[key] = u
	}
	twice := -1
	for i := sp.Offset; i < sp.Offset+sp.Length; i++ {
		if u[i] && twice < 0 {
			twice = i
		}
		u[i] = true
	}
	if twice >= 0 && fault == OK {
		return Twice, fmt.Sprintf("byte %d of job %s of %s handed out twice", twice, sp.Job, sp.Source)
	}
	return fault, msg
}
