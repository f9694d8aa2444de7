package entropy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/provenrand/entropy/internal/sourceerr"
)

// eventNonceDomain opens the bytes hashed into an event's nonce
// ([EventNonce]), so that they can never be taken for another hash's input.
const eventNonceDomain = "provenrand/entropy event nonce v1"

// EventSaltSize is the size of the random salt of an event's request.
const EventSaltSize = 16

// ErrEventParams is returned by [Provider.ReadFor] and [Provider.ReadEvent]
// when an event is asked for with another size, or other parameters, than it
// was drawn with.
var ErrEventParams = errors.New("entropy: event was drawn with other parameters")

// EventNonce returns the nonce of a request for the job of a named event:
// SHA-256 of
//
//	eventNonceDomain || 0x00 ||
//	u32be(len(event)) || event || u32be(len(params)) || params ||
//	u32be(len(salt)) || salt
//
// (32 bytes). params are the draw's parameters in the caller's canonical
// encoding (package draw's Params), salt the random bytes chosen for the
// request ([EventSaltSize]). A service signs the nonce with the job (protocol
// v2), so whoever holds the job, the event name, the parameters and the salt
// sees that the job was requested for this event and these parameters: a job
// made for anything else has another nonce.
func EventNonce(event string, params, salt []byte) []byte {
	h := sha256.New()
	h.Write([]byte(eventNonceDomain))
	h.Write([]byte{0})
	var n [4]byte
	for _, part := range [][]byte{[]byte(event), params, salt} {
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

// NonceSource is a [Source] that can fetch a job bound to a nonce the caller
// chose, as the reference protocol (v2) binds every job to its request.
// [Provider.ReadFor] and [Provider.ReadEvent] use it: the nonce of an event's job is derived from
// the event ([EventNonce]); the block it returns carries the nonce in its
// Evidence.
type NonceSource interface {
	Source
	// FetchNonce is Fetch with the request's nonce given: the block's
	// Evidence.Nonce must equal nonce, or the block is refused.
	FetchNonce(ctx context.Context, n int, nonce []byte) (Block, error)
}

// EventAttempt is one request made for the job of a named event, recorded
// in the journal before it is sent ([EventAttemptRecorder]), so that an audit
// lists every attempt an event had, including any whose bytes were never
// used.
type EventAttempt struct {
	Event  string
	Source string // the source the request goes to (its name as far as known)
	Params []byte // the draw's parameters, as hashed into the nonce
	Salt   []byte // the request's random salt
	Nonce  []byte // EventNonce(Event, Params, Salt): what the request carries
	Time   time.Time
}

// EventAttemptRecorder is a [Journal] that records the requests made for
// events before they are sent. Package journal and package pgjournal
// implement it. With a Journal that does not, event draws still bind their
// jobs to the event, but the attempts that were not used leave no trace.
type EventAttemptRecorder interface {
	// RecordAttempt records a, durably when it returns without error. The
	// request is not sent unless it did.
	RecordAttempt(ctx context.Context, a EventAttempt) error
}

// nonceFeeders reports whether a source of p can bind a job to a nonce.
func (p *Provider) nonceFeeders() bool {
	for _, f := range p.feeders {
		if _, ok := f.src.(NonceSource); ok {
			return true
		}
	}
	return false
}

// drawBound fetches the job of an event, bound to it: every request carries
// EventNonce(event, params, salt) with a fresh salt, and is journalled
// before it is sent. Only the sources that can bind a job are asked; the
// draw waits, retrying, until ctx ends.
func (p *Provider) drawBound(ctx context.Context, event string, params []byte, data []byte) (EventRecord, error) {
	// A journal that refuses an attempt ends the draw: no request is sent
	// that the journal does not list.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var salt []byte // the salt of the last request made
	call := func(ctx context.Context, src Source, n int) (Block, error) {
		ns, ok := src.(NonceSource)
		if !ok {
			return Block{}, fmt.Errorf("%w: the source cannot bind a job to an event", errInvalidBlock)
		}
		s := make([]byte, EventSaltSize)
		if _, err := rand.Read(s); err != nil {
			return Block{}, fmt.Errorf("entropy: event salt: %w", err)
		}
		nonce := EventNonce(event, params, s)
		if ar, ok := p.cfg.journal.(EventAttemptRecorder); ok {
			a := EventAttempt{Event: event, Source: sourceName(src), Params: bytes.Clone(params), Salt: s, Nonce: nonce, Time: p.cfg.clock.Now()}
			if err := ar.RecordAttempt(ctx, a); err != nil {
				err = &journalAttemptError{err: err}
				cancel(err)
				return Block{}, err
			}
		}
		salt = s
		return ns.FetchNonce(ctx, n, nonce)
	}
	label, proof, err := p.readProven(ctx, data, call, Defer, func(f *feeder) bool {
		_, ok := f.src.(NonceSource)
		return ok
	})
	if err != nil {
		if cause := context.Cause(ctx); errors.As(cause, new(*journalAttemptError)) {
			return EventRecord{}, cause
		}
		return EventRecord{}, err
	}
	if proof.Scheme == "" || !bytes.Equal(proof.Nonce, EventNonce(event, params, salt)) {
		// The job was accepted (its bytes are in BytesAccepted) and is
		// not handed out: its bytes are zeroed and counted as discarded.
		clear(data)
		clear(proof.Data)
		p.eventDiscarded.Add(uint64(len(data)))
		return EventRecord{}, fmt.Errorf("%w: the event's job does not carry the nonce it was asked with", sourceerr.ErrBadProof)
	}
	return EventRecord{
		Event: event, Data: data, Label: label, Time: p.cfg.clock.Now(),
		Params: bytes.Clone(params), Salt: salt, Proof: &proof,
	}, nil
}

// sourceName is the name a source gives itself, if it does (a Name() string
// method), for an
// attempt record made before the source answered.
func sourceName(src Source) string {
	if n, ok := src.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}

// journalAttemptError is a failed RecordAttempt: the request was not sent.
type journalAttemptError struct{ err error }

func (e *journalAttemptError) Error() string {
	return "journal refused the record of the request, which was not sent: " + e.err.Error()
}

func (e *journalAttemptError) Unwrap() error { return e.err }
