package entropy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/sourceerr"
)

// ErrEventParams is returned by [Provider.ReadFor] and [Provider.ReadEvent]
// when an event is asked for with another size than it was drawn with, or
// with other parameters than the non-empty ones it was drawn with.
var ErrEventParams = errors.New("entropy: event was drawn with other parameters")

// nonceFetcher is a [Source] that can fetch a job bound to a nonce the caller
// chose, as the reference protocol (v2) binds every job to its request
// (package httpsource's Source is one). [Provider.ReadFor] and
// [Provider.ReadEvent] use it: the nonce of an event's job is derived from
// the event (evidence.EventNonce); the block it returns carries the nonce
// in its Evidence.
type nonceFetcher interface {
	Source
	// FetchNonce is Fetch with the request's nonce given: the block's
	// Evidence.Nonce must equal nonce, or the block is refused.
	FetchNonce(ctx context.Context, n int, nonce []byte) (Block, error)
}

// EventAttempt is one request made for the job of a named event, recorded
// in the journal before it is sent (a [Journal]'s RecordAttempt), so that an audit
// lists every attempt an event had, including any whose bytes were never
// used.
type EventAttempt struct {
	Event  string
	Source string // the source the request goes to (its name as far as known)
	Params []byte // the draw's parameters, as hashed into the nonce
	Salt   []byte // the request's random salt
	Nonce  []byte // what the request carries: derived from Event, Params and Salt (docs/protocol.md, "Event nonces")
	Time   time.Time
}

// attemptRecorder is a [Journal] that records the requests made for
// events before they are sent (RecordAttempt, described at Journal).
type attemptRecorder interface {
	RecordAttempt(ctx context.Context, a EventAttempt) error
}

// nonceFeeders reports whether a source of p can bind a job to a nonce.
func (p *Provider) nonceFeeders() bool {
	for _, f := range p.feeders {
		if _, ok := f.src.(nonceFetcher); ok {
			return true
		}
	}
	return false
}

// drawBound fetches the job of an event, bound to it: every request carries
// evidence.EventNonce(event, params, salt) with a fresh salt, and is journalled
// before it is sent. Only the sources that can bind a job are asked; the
// draw waits, retrying, until ctx ends.
func (p *Provider) drawBound(ctx context.Context, event string, params []byte, data []byte) (EventRecord, error) {
	// A journal that refuses an attempt ends the draw: no request is sent
	// that the journal does not list.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var salt []byte // the salt of the last request made
	call := func(ctx context.Context, src Source, n int) (Block, error) {
		ns, ok := src.(nonceFetcher)
		if !ok {
			return Block{}, fmt.Errorf("%w: the source cannot bind a job to an event", errInvalidBlock)
		}
		s := make([]byte, evidence.SaltSize)
		if _, err := rand.Read(s); err != nil {
			return Block{}, fmt.Errorf("entropy: event salt: %w", err)
		}
		nonce := evidence.EventNonce(event, params, s)
		if ar, ok := p.cfg.journal.(attemptRecorder); ok {
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
		_, ok := f.src.(nonceFetcher)
		return ok
	})
	if err != nil {
		if cause := context.Cause(ctx); errors.As(cause, new(*journalAttemptError)) {
			return EventRecord{}, cause
		}
		return EventRecord{}, err
	}
	if proof.Scheme == "" || !bytes.Equal(proof.Nonce, evidence.EventNonce(event, params, salt)) {
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
