package entropy

import (
	"bytes"
	"context"
	"errors"
	"sync"
)

// memJournal is the in-memory Journal of the tests; it outlives Providers,
// as a file journal outlives a process, and like package journal's it
// refuses appends once closed and records an event only if absent. Its
// optional fields stand in for a slow or misbehaving journal: blockGate
// holds every RecordBlock until it is closed (a slow disk), beforeFallback
// runs at the start of every RecordFallback, afterEvent runs once an event
// is recorded, failBlock fails RecordBlock and RecordFallback while set, and
// failEvent fails RecordEvent. Its methods use their receiver, as package
// journal's do, so a typed-nil *memJournal crashes where a nil file journal
// would.
type memJournal struct {
	blockGate      chan struct{}
	beforeFallback func(FallbackEpisode)
	afterEvent     func()

	mu          sync.Mutex
	blocks      []BlockRecord
	episodes    []FallbackEpisode
	events      map[string]EventRecord
	early       []string // events recorded before a block their spans name
	failEvent   error
	failBlock   error
	failAttempt error
	attempts    []EventAttempt
	closed      bool
}

var errMemJournalClosed = errors.New("memJournal: closed")

func newMemJournal() *memJournal { return &memJournal{events: map[string]EventRecord{}} }

func (j *memJournal) RecordBlock(_ context.Context, b BlockRecord) error {
	if j.blockGate != nil {
		<-j.blockGate
	}
	return j.write(func() { j.blocks = append(j.blocks, b) })
}

// write runs add under the lock unless the journal fails (failBlock) or
// is closed.
func (j *memJournal) write(add func()) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failBlock != nil {
		return j.failBlock
	}
	if j.closed {
		return errMemJournalClosed
	}
	add()
	return nil
}

func (j *memJournal) RecordFallback(_ context.Context, e FallbackEpisode) error {
	if j.beforeFallback != nil {
		j.beforeFallback(e)
	}
	return j.write(func() { j.episodes = append(j.episodes, e) })
}

func (j *memJournal) RecordEvent(_ context.Context, e EventRecord) (EventRecord, error) {
	stored, err := j.recordEvent(e)
	if err == nil && j.afterEvent != nil {
		j.afterEvent()
	}
	return stored, err
}

func (j *memJournal) recordEvent(e EventRecord) (EventRecord, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failEvent != nil {
		return EventRecord{}, j.failEvent
	}
	if j.closed {
		return EventRecord{}, errMemJournalClosed
	}
	if old, ok := j.events[e.Event]; ok {
		old.Data = bytes.Clone(old.Data)
		return old, nil
	}
	for _, sp := range e.Label.Spans {
		if !j.hasBlock(sp.Source, sp.JobID) {
			j.early = append(j.early, e.Event+": "+sp.JobID)
		}
	}
	e.Data = bytes.Clone(e.Data)
	j.events[e.Event] = e
	return e, nil
}

// hasBlock reports whether the block of job of source is recorded; j.mu is
// held.
func (j *memJournal) hasBlock(source, job string) bool {
	for _, b := range j.blocks {
		if b.Source == source && b.JobID == job {
			return true
		}
	}
	return false
}

func (j *memJournal) RecordAttempt(_ context.Context, a EventAttempt) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failAttempt != nil {
		return j.failAttempt
	}
	if j.closed {
		return errMemJournalClosed
	}
	j.attempts = append(j.attempts, a)
	return nil
}

// hasAttempt reports whether an attempt with nonce is recorded.
func (j *memJournal) hasAttempt(nonce []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, a := range j.attempts {
		if bytes.Equal(a.Nonce, nonce) {
			return true
		}
	}
	return false
}

func (j *memJournal) LookupEvent(_ context.Context, name string) (EventRecord, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.events[name]
	return e, ok, nil
}

// close makes the journal refuse every later append, as a closed file
// journal does.
func (j *memJournal) close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
}

// episodeSums returns how many episodes the journal holds and their reads
// and bytes.
func (j *memJournal) episodeSums() (n int, reads, byts int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, ep := range j.episodes {
		n++
		reads += ep.Reads
		byts += ep.Bytes
	}
	return n, reads, byts
}
