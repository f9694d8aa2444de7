package entropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/names"
)

// ErrEventName is returned by [Provider.ReadFor] and [Provider.ReadEvent]
// for an event name it cannot record and ask for again, or that could forge
// a report that prints it: empty, longer than 1024 bytes, or refused by the
// names rule of docs/protocol.md ("Names": not valid UTF-8, a character
// that is not printable or that prints nothing, such as a format character
// or a variation selector, "." or ".."). Nothing is drawn.
var ErrEventName = errors.New("entropy: invalid event name")

// maxEventName is the longest event name [Provider.ReadFor] takes, in bytes.
const maxEventName = names.MaxEvent

// eventTable holds the events drawn by this Provider, and the draws in
// progress, so that concurrent callers for one event share one draw.
type eventTable struct {
	mu sync.Mutex
	m  map[string]*eventEntry
}

type eventEntry struct {
	done chan struct{} // closed when the draw ended (rec or err set)
	rec  EventRecord
	err  error
}

// ReadFor returns the entropy of a named event, drawing it only once
// (contract point 8). The first call for an event takes len(b) verifiable
// bytes — waiting for them until ctx ends, whatever the [Provider]'s policy,
// since an event draw must be verifiable, unless every source fails
// permanently ([Stats].Permanent: that error at once) — records them (in the journal,
// when one is configured, durably before returning) and returns them with
// their label. Every later call for the event, concurrent or after a
// restart of the process with the same journal, or on another replica
// sharing the journal (package pgjournal), returns the same bytes and the
// same label: a re-roll is impossible through this API. When another
// replica records the event first, its bytes and label are returned and the
// bytes this Provider took are zeroed (Stats.EventBytesDiscarded). A call
// with another size returns [ErrEventParams].
//
// When a source can bind a job to a request (one with a method
// FetchNonce(ctx context.Context, n int, nonce []byte) (Block, error) whose
// block's Evidence.Nonce is nonce, or the block is refused: the reference
// protocol, package httpsource), the event's bytes are a job
// of their own, fetched for the event with a nonce derived from the event's
// name and a fresh salt per request (docs/protocol.md, "Event nonces"),
// each request recorded in the journal before it is sent (a [Journal]'s
// RecordAttempt); [Provider.ReadEvent] returns the record with the salt and
// the job's proof. Only the sources that can bind a job are then asked: a
// [WithFailover] source that cannot (drand) is not used for events. When no
// source can (drand, an in-memory source), the bytes come from the pool.
//
// Event entropy is stored, in memory and in the journal, so that it can be
// returned again and audited: it is for public draws (lotteries, raffles),
// never for secrets.
//
// Event names are compared byte for byte: two forms of one text (Unicode
// NFC and NFD) are two events. Normalise names taken from people first
// (docs/protocol.md, "Names").
//
// If the first draw fails (ctx ended before the bytes came, or the journal
// refused the record), nothing was handed out and a later call draws anew.
// Close ends a first draw wherever it waits, in a call to the journal too:
// it then fails with an error wrapping [ErrClosed].
func (p *Provider) ReadFor(ctx context.Context, event string, b []byte) (Label, error) {
	rec, err := p.readEvent(ctx, event, nil, false, b)
	return rec.Label, err
}

// ReadEvent is [Provider.ReadFor] for a draw with parameters: params (the draw's
// parameters in a canonical encoding, package draw's Params; at most
// 4096 bytes) are hashed into the nonce of the event's job with
// the event name and a random salt (docs/protocol.md, "Event nonces"), so that a verifier sees
// that the job was requested for this event and these parameters. It
// returns the whole record: the bytes (also copied into b), their label,
// and, when the job was bound, the params, the salt and the job's proof. An
// event drawn before with other, non-empty parameters returns
// [ErrEventParams]; one drawn with none (by ReadFor, or by ReadEvent with
// empty params) is returned whatever params are given.
func (p *Provider) ReadEvent(ctx context.Context, event string, params, b []byte) (EventRecord, error) {
	if len(params) > maxEventParams {
		return EventRecord{}, fmt.Errorf("%w: %d bytes of parameters, more than %d", ErrEventParams, len(params), maxEventParams)
	}
	if params == nil {
		params = []byte{}
	}
	return p.readEvent(ctx, event, params, true, b)
}

// maxEventParams is the longest parameters [Provider.ReadEvent] takes, in bytes.
const maxEventParams = 4096

// readEvent is ReadFor and ReadEvent: with checkParams, an event drawn with
// parameters must have been drawn with these (one drawn by ReadFor, with
// none, matches any).
func (p *Provider) readEvent(ctx context.Context, event string, params []byte, checkParams bool, b []byte) (EventRecord, error) {
	switch {
	case event == "":
		return EventRecord{}, fmt.Errorf("%w: empty", ErrEventName)
	case len(event) > maxEventName:
		return EventRecord{}, fmt.Errorf("%w: %d bytes, more than %d", ErrEventName, len(event), maxEventName)
	case !utf8.ValidString(event):
		return EventRecord{}, fmt.Errorf("%w: %q is not valid UTF-8", ErrEventName, event)
	case checkName(event) != nil:
		return EventRecord{}, fmt.Errorf("%w: %v", ErrEventName, checkName(event))
	case len(b) == 0:
		return EventRecord{}, errEmptyRead
	case ctx == nil:
		return EventRecord{}, errNilContext
	}
	for {
		if p.closed.Load() {
			return EventRecord{}, ErrClosed
		}
		t := &p.events
		t.mu.Lock()
		if t.m == nil {
			t.m = make(map[string]*eventEntry)
		}
		e, ok := t.m[event]
		if !ok {
			e = &eventEntry{done: make(chan struct{})}
			t.m[event] = e
		}
		t.mu.Unlock()
		if !ok {
			// We drew (or failed to): the outcome is ready, and a draw that
			// was made and recorded is returned even if ctx ended meanwhile.
			p.drawEvent(ctx, event, params, len(b), e)
		} else {
			select {
			case <-e.done:
			case <-ctx.Done():
				return EventRecord{}, ctx.Err()
			}
		}
		if e.err != nil {
			if ok {
				continue // the draw we waited for failed: try again ourselves
			}
			clear(b)
			return EventRecord{}, e.err
		}
		if len(e.rec.Data) != len(b) {
			return EventRecord{}, fmt.Errorf("%w: event %q has %d bytes, asked for %d", ErrEventParams, event, len(e.rec.Data), len(b))
		}
		if checkParams && len(e.rec.Params) > 0 && !bytes.Equal(e.rec.Params, params) {
			return EventRecord{}, fmt.Errorf("%w: event %q was drawn with parameters %q, asked with %q", ErrEventParams, event, e.rec.Params, params)
		}
		copy(b, e.rec.Data)
		return e.rec.Clone(), nil
	}
}

// drawEvent finds the event in the journal or draws it, records it, and
// publishes the outcome in e. A failed draw is removed from the table.
//
// With a journal shared by several Providers (replicas of a fleet on one
// PostgreSQL journal), two of them can draw the same event at once: the
// journal stores the first record and hands it to both. The one whose record
// was not stored returns the stored bytes and label, and zeroes the bytes it
// took (counted in Stats' EventBytesDiscarded): they are never handed out.
func (p *Provider) drawEvent(ctx context.Context, event string, params []byte, n int, e *eventEntry) {
	defer close(e.done)
	// Close ends the draw wherever it waits, as it ends ReadProven's: for
	// bytes, and in a call to the journal, which must not outlive Close
	// (a journal that stalls would hold the draw, and an application
	// closes its journal after the Provider).
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	unhook := context.AfterFunc(p.ctx, func() { stop(ErrClosed) })
	defer unhook()
	fail := func(err error) {
		if context.Cause(ctx) == ErrClosed && !errors.Is(err, ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		e.err = err
		p.events.mu.Lock()
		delete(p.events.m, event)
		p.events.mu.Unlock()
	}
	if j := p.cfg.journal; j != nil {
		rec, found, err := j.LookupEvent(ctx, event)
		if err != nil {
			fail(fmt.Errorf("entropy: event %q: journal lookup failed, nothing was drawn: %w", event, err))
			return
		}
		if found {
			if err := checkEventRecord(event, rec); err != nil {
				fail(err)
				return
			}
			e.rec = rec.Clone()
			return
		}
	}
	data := make([]byte, n)
	var rec EventRecord
	if p.nonceFeeders() {
		r, err := p.drawBound(ctx, event, params, data)
		if err != nil {
			fail(err)
			return
		}
		rec = r
	} else {
		spans, err := p.takeForEvent(ctx, data)
		if err != nil {
			fail(err)
			return
		}
		rec = EventRecord{Event: event, Data: data, Label: Label{Verifiable: true, Spans: spans}, Time: p.cfg.clock.Now(), Params: params}
	}
	if j := p.cfg.journal; j != nil {
		// The records of the blocks these bytes came from go first: the
		// notifier writes them, and an event record must not be on disk
		// without them (a crash in between would leave an event whose
		// jobs the journal never saw).
		if err := p.notes.flush(ctx); err != nil {
			p.discardEvent(rec)
			fail(fmt.Errorf("entropy: event %q: waiting for the journal's block records, nothing was drawn: %w", event, err))
			return
		}
		stored, err := j.RecordEvent(ctx, rec)
		if err != nil {
			p.discardEvent(rec)
			fail(fmt.Errorf("entropy: event %q: journal refused the record, nothing was drawn: %w", event, err))
			return
		}
		if !sameEventRecord(stored, rec) {
			// Another Provider sharing the journal drew the event first.
			p.discardEvent(rec)
			if err := checkEventRecord(event, stored); err != nil {
				fail(err)
				return
			}
			e.rec = stored.Clone()
			return
		}
		rec.Time = stored.Time // as the journal keeps it
	}
	p.servedVerifiable(n)
	e.rec = rec
}

// discardEvent zeroes event bytes that were taken from the pool but will
// never be handed out, and counts them.
func (p *Provider) discardEvent(rec EventRecord) {
	clear(rec.Data)
	if rec.Proof != nil {
		clear(rec.Proof.Data)
	}
	data := rec.Data
	p.eventDiscarded.Add(uint64(len(data)))
}

// checkEventRecord refuses a journal's record of an event that could not
// have been drawn by a Provider: another name, no bytes, not verifiable, a
// label that does not cover its bytes, or a proof that is not of those bytes
// or not bound to the event by its salt.
func checkEventRecord(event string, rec EventRecord) error {
	bad := rec.Event != event || len(rec.Data) == 0 || !rec.Label.Verifiable || rec.Label.Len() != len(rec.Data)
	if pr := rec.Proof; pr != nil {
		bad = bad || len(pr.Data) < len(rec.Data) || !bytes.Equal(pr.Data[:len(rec.Data)], rec.Data) ||
			!bytes.Equal(pr.Nonce, evidence.EventNonce(event, rec.Params, rec.Salt))
	} else {
		bad = bad || rec.Salt != nil
	}
	if bad {
		return fmt.Errorf("entropy: event %q: journal record is inconsistent", event)
	}
	return nil
}

// sameEventRecord reports whether the journal's stored record is the one
// this Provider asked it to record (the same bytes and spans).
func sameEventRecord(stored, ours EventRecord) bool {
	return stored.Event == ours.Event && bytes.Equal(stored.Data, ours.Data) &&
		stored.Label.Verifiable == ours.Label.Verifiable && slices.Equal(stored.Label.Spans, ours.Label.Spans) &&
		bytes.Equal(stored.Params, ours.Params) && bytes.Equal(stored.Salt, ours.Salt)
}

func cloneLabel(l Label) Label {
	l.Spans = slices.Clone(l.Spans)
	return l
}
