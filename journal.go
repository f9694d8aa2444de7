package entropy

import (
	"bytes"
	"context"
	"time"
)

// Journal is an audit trail of a [Provider]: what it fetched, when it fell back
// and which events it drew for. Package journal implements it as a
// hash-chained, fsynced JSON Lines file (one process); package pgjournal
// implements it on PostgreSQL, shared by every replica of a fleet. Give one to
// a Provider with [WithJournal], and a drop-in [io.Reader] user gets an audit
// trail too.
//
// The Provider calls RecordBlock and RecordFallback from one goroutine of its
// own (the one that also runs the fallback hook), in order, never under one
// of its locks. It treats their errors as something to report ([Stats]'
// JournalErrors, the logger), not as a reason to stop serving, and retries a
// record that failed, with backoff, until it is written: records are never
// dropped silently, and every record queued before [Provider.Close] is tried before
// Close returns. A journal that keeps failing, or stalls, holds Close for
// 3 s at most (counted from Close, or from the first call after it when
// none was in flight, so that a slow fallback hook does not use the
// journal's time): the call in flight then sees its ctx end, and the records
// left are given up, each counted in [Stats]' JournalLost. RecordEvent and LookupEvent run on the goroutine that called
// [Provider.ReadFor], and their errors fail that ReadFor, because an event draw that
// cannot be recorded must not be handed out.
//
// RecordBlock and RecordFallback run where the fallback hook runs, and may
// call back into the Provider under the same rule ([WithFallbackHook]). An
// event that a hook draws is recorded after the records of its blocks, as
// every event is; one that RecordBlock or RecordFallback draws may be
// recorded before them, since the journal cannot be called again from
// inside its own call.
//
// Every method honours ctx: a journal on a database waits on the network.
//
// Two methods beyond the interface's, which packages journal and pgjournal
// have, make a journal do more; the Provider asks for each with a type
// assertion:
//
//   - ClaimJob(ctx context.Context, source, jobID string) (fresh bool, err error)
//     is the replay guard that outlives a process (contract point 3). For
//     every block that passed its checks, before any of its bytes enter the
//     pool, the Provider asks whether the job is new to the journal: it
//     reports false if the journal holds a block record of the job or the
//     job was claimed before (by this Provider, another one sharing the
//     journal, or one before a restart), and the block is refused as a
//     replay. A claimed job's record follows through RecordBlock. ctx ends
//     after the fetch timeout ([WithFetchTimeout]), one for all the blocks
//     of a batch request ([WithBatch]): a claim that has not answered by
//     then refuses the block, as an error does, and the refill goes on.
//   - RecordAttempt(ctx context.Context, a EventAttempt) error records a
//     request made for an event's job before it is sent, durably when it
//     returns without error; the request is not sent unless it did. Without
//     it, event draws still bind their jobs to the event, but the attempts
//     whose bytes were not used leave no trace.
type Journal interface {
	// RecordBlock records a block that passed every check: one that entered
	// the pool, or the job fetched for a [Provider.ReadProven] or an event
	// draw.
	RecordBlock(ctx context.Context, b BlockRecord) error
	// RecordFallback records a fallback episode when it ends (or at [Provider.Close]).
	RecordFallback(ctx context.Context, e FallbackEpisode) error
	// RecordEvent records the entropy of a named event if the journal holds
	// no record of that event yet, and returns the record the journal holds
	// for it when it returns: r itself, or the record stored before by
	// whoever drew the event first (another [Provider], another process or
	// replica sharing the journal). Insert-if-absent must be atomic: of any
	// number of concurrent callers for one event, across every process that
	// shares the journal, exactly one record is stored and all get it back.
	// The stored record is durable when RecordEvent returns without error.
	RecordEvent(ctx context.Context, r EventRecord) (stored EventRecord, err error)
	// LookupEvent returns the record of an event drawn before, in this process
	// or any other one that used the same journal.
	LookupEvent(ctx context.Context, event string) (EventRecord, bool, error)
}

// BlockRecord describes a block the [Provider] accepted: one that entered
// the pool, or the job fetched for a [Provider.ReadProven] or an event
// draw. Its bytes are not in it, only their SHA-256.
type BlockRecord struct {
	Source     string    `json:"source"`
	JobID      string    `json:"job_id"`
	Size       int       `json:"size"`
	Digest     [32]byte  `json:"-"` // SHA-256 of the block's Data
	Verifiable bool      `json:"verifiable"`
	Time       time.Time `json:"time"` // when the Provider accepted it
}

// FallbackEpisode is a run of fallback reads: from the first fallback read
// after verifiable service (or start-up) to the next read served with
// verifiable or derived bytes, or the next ReadProven or event draw that
// got its job (or [Provider.Close]). Hooks see it twice: when it starts (End zero, Ended false) and when
// it ends. Every fallback read is in exactly one episode: the episodes' Reads
// and Bytes add up to [Stats]' FallbackReads and FallbackBytes once Close has
// returned. (A fallback read is counted as it is served and opens its
// episode just after; reads that met Close in between are recorded by Close
// in one episode that starts and ends at Close.)
type FallbackEpisode struct {
	Start  time.Time
	End    time.Time
	Ended  bool
	Reads  int64 // fallback reads in the episode
	Bytes  int64 // fallback bytes served in the episode
	Reason error // why the first read of the episode fell back
}

// EventRecord is the entropy drawn for one named event (contract point 8):
// the bytes, their label and when they were drawn, and, when the event's job
// was bound to it (a source with a FetchNonce method, see [Provider.ReadFor]),
// what binds it: the parameters and salt its nonce was derived from (see
// docs/protocol.md, "Event nonces") and the
// job's [Proof]. Event entropy is stored in the journal, in clear: it is for
// public draws, never for secrets.
type EventRecord struct {
	Event string
	Data  []byte
	Label Label
	Time  time.Time

	Params []byte // the parameters the event was drawn with (ReadEvent); nil for ReadFor
	Salt   []byte // the salt of the request whose job was used; nil if the bytes came from the pool
	Proof  *Proof // that job's proof, with its Data (the whole job: the event's bytes are its first len(Data)); nil if the bytes came from the pool
}

// Clone returns a deep copy of r.
func (r EventRecord) Clone() EventRecord {
	r.Data = bytes.Clone(r.Data)
	r.Label = cloneLabel(r.Label)
	r.Params = bytes.Clone(r.Params)
	r.Salt = bytes.Clone(r.Salt)
	if r.Proof != nil {
		pr := r.Proof.Clone()
		r.Proof = &pr
	}
	return r
}
