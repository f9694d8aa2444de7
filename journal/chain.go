package journal

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
)

// Entry is one record of a journal as a line: what a store other than a file
// (package pgjournal keeps one line per row) needs to index it.
type Entry struct {
	Seq   uint64
	Type  string // TypeJournal, TypeBlock, TypeFallback or TypeEvent
	Event string // the event's name, for an event record
	Data  []byte // the canonical JSON of the record's data member
	Line  []byte // the whole line, without a newline
	Hash  string // hex SHA-256 of Line: the next record's prev
}

// Chain builds and checks the hash chain of a journal one line at a time,
// with the record format, hashing and checks of the file journal, for
// journals kept elsewhere than in a file. A Chain is not safe for concurrent
// use.
type Chain struct {
	v verifier
}

// NewChain returns a Chain for a journal from its first record.
func NewChain() *Chain {
	return &Chain{v: verifier{seen: make(map[string]bool), whole: true}}
}

// ChainAt returns a Chain that continues a journal whose last record has
// sequence number seq and hash head (0 and "" for an empty journal).
func ChainAt(seq uint64, head string) *Chain {
	c := NewChain()
	c.v.whole = false // the lines before seq are not seen
	c.v.rep.LastSeq, c.v.rep.Head = seq, head
	return c
}

// Head returns the seq and hash of the last record appended or checked.
func (c *Chain) Head() (seq uint64, hash string) { return c.v.rep.LastSeq, c.v.rep.Head }

// Report summarises the records checked and appended so far.
func (c *Chain) Report() Report {
	r := c.v.rep
	r.EventNames = append([]string(nil), r.EventNames...)
	r.Attempts = maps.Clone(r.Attempts)
	return r
}

// Append encodes rec as the next record of the chain, stamped t, and
// advances the chain. rec is an entropy.BlockRecord, entropy.FallbackEpisode,
// entropy.EventAttempt, entropy.EventRecord or HeaderData (the first record). A record the file
// journal would refuse (an event without a name or data, a line too long,
// text that would not verify) is refused with ErrMalformed and the chain does
// not move.
func (c *Chain) Append(t time.Time, rec any) (Entry, error) {
	typ, data, err := recordData(rec)
	if err != nil {
		return Entry{}, err
	}
	d, err := json.Marshal(data)
	if err != nil {
		return Entry{}, fmt.Errorf("journal: encode %s record: %w", typ, err)
	}
	prev := c.v.rep.Head
	if prev == "" {
		prev = zeroHash
	}
	line, err := encode(record{Seq: c.v.rep.LastSeq + 1, Time: t.UTC(), Type: typ, Data: d, Prev: prev})
	if err != nil {
		return Entry{}, err
	}
	if len(line)+1 > MaxLineSize {
		return Entry{}, fmt.Errorf("%w: %s record of %d bytes, more than %d", ErrMalformed, typ, len(line)+1, MaxLineSize)
	}
	probe := verifier{rep: c.v.rep, seen: make(map[string]bool)}
	if err := probe.check(line, false); err != nil {
		return Entry{}, fmt.Errorf("journal: %s record refused, it would not verify: %w", typ, err)
	}
	return c.Check(line)
}

// Check verifies line (without its newline) as the next record of the chain:
// canonical form, hash, sequence, chain and, for events, that the event was
// not recorded before in the lines this Chain saw (a block of a job recorded
// before is listed in Report's DuplicateJobs, its Line the record's place in
// the chain). On success the chain
// advances and the record's Entry is returned; on failure the error is one
// of ErrHashMismatch, ErrChainBroken, ErrSequence or ErrMalformed (possibly
// wrapping a detail) and the chain does not advance.
func (c *Chain) Check(line []byte) (Entry, error) {
	c.v.line = c.v.rep.Records + 1
	if err := c.v.check(line, false); err != nil {
		return Entry{}, err
	}
	e := c.v.last
	e.Line = bytes.Clone(line)
	e.Data = bytes.Clone(e.Data)
	return e, nil
}

// ParseEvent returns the event record that an "event" line holds. It checks
// the line's own hash (a line changed by hand is refused with
// ErrHashMismatch), not its place in a chain: that is Check's and Verify's
// work.
func ParseEvent(line []byte) (entropy.EventRecord, error) {
	var got entropy.EventRecord
	v := verifier{seen: make(map[string]bool), onEvent: func(r entropy.EventRecord) { got = r }}
	var r record
	if err := json.Unmarshal(line, &r); err != nil {
		return entropy.EventRecord{}, fmt.Errorf("%w: not a JSON record", ErrMalformed)
	}
	if r.Type != TypeEvent {
		return entropy.EventRecord{}, fmt.Errorf("%w: a %q record, not an event", ErrMalformed, r.Type)
	}
	// Check it as the record after its own predecessor: everything but the
	// chain is verified.
	if r.Seq == 0 {
		return entropy.EventRecord{}, fmt.Errorf("%w: seq 0", ErrMalformed)
	}
	v.rep.LastSeq, v.rep.Head = r.Seq-1, r.Prev
	if err := v.check(line, false); err != nil {
		return entropy.EventRecord{}, err
	}
	return got, nil
}

// recordData returns the type and data member of rec.
func recordData(rec any) (string, any, error) {
	switch r := rec.(type) {
	case HeaderData:
		return TypeJournal, r, nil
	case entropy.BlockRecord:
		return TypeBlock, blockData(r), nil
	case entropy.FallbackEpisode:
		return TypeFallback, fallbackData(r), nil
	case entropy.EventRecord:
		if r.Event == "" {
			return "", nil, fmt.Errorf("%w: event name is empty", ErrMalformed)
		}
		if len(r.Data) == 0 {
			return "", nil, fmt.Errorf("%w: event %q has no data", ErrMalformed, r.Event)
		}
		return TypeEvent, eventData(r), nil
	case entropy.EventAttempt:
		d, err := attemptData(r)
		if err != nil {
			return "", nil, err
		}
		return TypeAttempt, d, nil
	}
	return "", nil, fmt.Errorf("%w: cannot record a %T", ErrMalformed, rec)
}

func blockData(b entropy.BlockRecord) BlockData {
	return BlockData{
		Source: b.Source, JobID: b.JobID, Size: b.Size,
		Digest: hex.EncodeToString(b.Digest[:]), Verifiable: b.Verifiable, Time: b.Time.UTC(),
	}
}

func fallbackData(e entropy.FallbackEpisode) FallbackData {
	d := FallbackData{Start: e.Start.UTC(), End: e.End.UTC(), Ended: e.Ended, Reads: e.Reads, Bytes: e.Bytes}
	if e.Reason != nil {
		d.Reason = reasonText(e.Reason.Error())
	}
	return d
}

func eventData(r entropy.EventRecord) EventData {
	return EventData{
		Event: r.Event, Data: hex.EncodeToString(r.Data), Label: r.Label, Time: r.Time.UTC(),
		Params: hex.EncodeToString(r.Params), Salt: hex.EncodeToString(r.Salt), Proof: r.Proof,
	}
}

// attemptData is the data of an attempt record, or ErrMalformed for an
// attempt that would not verify.
func attemptData(a entropy.EventAttempt) (AttemptData, error) {
	switch {
	case a.Event == "":
		return AttemptData{}, fmt.Errorf("%w: attempt: event name is empty", ErrMalformed)
	case len(a.Salt) == 0:
		return AttemptData{}, fmt.Errorf("%w: attempt for event %q: no salt", ErrMalformed, a.Event)
	case !bytes.Equal(a.Nonce, evidence.EventNonce(a.Event, a.Params, a.Salt)):
		return AttemptData{}, fmt.Errorf("%w: attempt for event %q: the nonce is not the one of its event, params and salt", ErrMalformed, a.Event)
	}
	return AttemptData{
		Event: a.Event, Source: a.Source, Params: hex.EncodeToString(a.Params),
		Salt: hex.EncodeToString(a.Salt), Nonce: hex.EncodeToString(a.Nonce), Time: a.Time.UTC(),
	}, nil
}
