// Package draw makes draws that a third party can re-derive: an unbiased
// integer, k distinct of n, a shuffle, each from a 32-byte seed of verifiable
// entropy read from an entropy.Provider, and each with a Transcript that
// Verify replays.
//
// The algorithm, "provenrand-draw" version 1, is written down in
// docs/draw-spec.md with test vectors. It uses SHA-256 and integer arithmetic
// only, nothing that may change between Go releases (no math/rand).
//
// A draw requires verifiable entropy: from a Provider it waits for a job
// of its own as under the Defer policy, until the caller's context ends (a
// permanent failure of every source, or Close, ends it sooner), under
// Degrade too, whose fallback a draw refuses; give it a context that bounds
// the wait. With a context that never ends (context.Background()), or under
// Fail, whose callers asked for an answer at once, it does not wait: it
// fails at once with ErrNotVerifiable (Fail: the Provider's error). A draw
// from fallback entropy needs the AllowFallback option, and its transcript
// then says "verifiable": false with the warning WarningFallback. ForEvent draws the entropy of a named event
// once (contract point 8): asking again, in this process or after a restart
// with the same journal, gives the same seed and so the same result.
//
// RFC3797 is the second algorithm: the publicly verifiable selection of RFC
// 3797 from published random sources.
package draw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/strictjson"
)

// Algorithm and Version name the draw algorithm of docs/draw-spec.md.
const (
	Algorithm = "provenrand-draw"
	Version   = 1
)

// SeedSize is the number of entropy bytes every draw reads.
const SeedSize = 32

// MaxItems bounds k in Pick and n in Shuffle: the outputs go into the
// transcript.
const MaxItems = 1 << 20

// ZeroBased is the Numbering of every transcript this package makes: its
// outputs count from 0 (an int is in [0, n); pick and shuffle name the
// items 0 to n-1). A person who numbers the items 1 to n, as the entropy
// command prints them, reads each output plus one.
const ZeroBased = "0-based"

// WarningFallback is the Warning of every transcript drawn from fallback
// entropy.
const WarningFallback = "NOT VERIFIABLE: drawn from local fallback entropy; no third party can check this draw"

var (
	// ErrNotVerifiable is returned by a draw whose entropy came from the
	// fallback when AllowFallback was not given (it wraps the label's
	// Reason), and by a draw whose context ended while it waited for
	// verifiable entropy (it wraps the context's error and the last cause).
	ErrNotVerifiable = errors.New("draw: entropy is not verifiable (fallback); refusing to draw without AllowFallback")
	// ErrDerived is returned for a derived (secret) read: no one can replay it.
	ErrDerived = errors.New("draw: entropy is derived (a secret read) and cannot be replayed")
	// ErrBadInput reports invalid draw parameters.
	ErrBadInput = errors.New("draw: invalid input")
	// ErrNoEvents is returned by ForEvent draws from an Entropy without ReadFor.
	ErrNoEvents = errors.New("draw: ForEvent needs an entropy source with ReadFor (EventEntropy)")
	// ErrUnknownAlgorithm is returned by Verify for an algorithm or version it
	// does not implement.
	ErrUnknownAlgorithm = errors.New("draw: unknown algorithm or version")
	// ErrInvalid is returned by Verify for a transcript that contradicts
	// itself: a label that does not cover the entropy, a class that does not
	// match the verifiable flag or warning, outputs that the entropy does not
	// give, a digest that does not match.
	ErrInvalid = errors.New("draw: transcript does not verify")
)

// Entropy is what a draw reads its seed from; *entropy.Provider implements it.
type Entropy interface {
	ReadLabelled(ctx context.Context, b []byte) (entropy.Label, error)
}

// EventEntropy is an Entropy that draws once per named event;
// *entropy.Provider implements it. ForEvent draws use it.
type EventEntropy interface {
	ReadFor(ctx context.Context, event string, b []byte) (entropy.Label, error)
}

// Kind is the kind of a draw.
type Kind string

// The kinds of draw.
const (
	KindInt     Kind = "int"     // one integer in [0, n)
	KindPick    Kind = "pick"    // k distinct integers of [0, n), in draw order
	KindShuffle Kind = "shuffle" // a permutation of [0, n)
)

// Inputs are the parameters of a draw.
type Inputs struct {
	N uint64 `json:"n"`           // the range [0, n), or the number of items shuffled
	K uint64 `json:"k,omitempty"` // pick: how many
}

// Transcript is the record of one draw, everything a third party needs to
// re-derive it: Verify replays the outputs from the entropy. Its JSON form is
// specified in docs/draw-spec.md §6.
//
// What the transcript proves is that Outputs follow from Entropy by the named
// algorithm. That Entropy is what the service produced is checked against the
// service's jobs named in Label (VerifyEntropy). Time and Event are the
// drawer's statements: Digest shows that they were not edited without
// recomputing it, and a journal records them independently.
type Transcript struct {
	Algorithm  string `json:"algorithm"`
	Version    int    `json:"version"`
	Verifiable bool   `json:"verifiable"`        // false: drawn from fallback entropy
	Warning    string `json:"warning,omitempty"` // WarningFallback when not verifiable
	Kind       Kind   `json:"kind"`
	Inputs     Inputs `json:"inputs"`
	// Entrants is the commitment to the list drawn from (WithEntrants),
	// absent when the draw names no list.
	Entrants *Entrants `json:"entrants,omitempty"`
	Event    string    `json:"event,omitempty"` // the event, for ForEvent draws
	// Binding is what the event's job was requested for (ForEvent draws
	// from a BoundEventEntropy whose source binds jobs; docs/draw-spec.md §7).
	Binding *Binding `json:"binding,omitempty"`
	// Commitment is the drand round the draw committed to before it
	// existed (WithCommitment).
	Commitment *Commitment   `json:"commitment,omitempty"`
	Outputs    []uint64      `json:"outputs"`
	Numbering  string        `json:"numbering,omitempty"` // ZeroBased; empty in transcripts made before the member existed
	Entropy    string        `json:"entropy"`             // the seed, hex
	Label      entropy.Label `json:"label"`               // where the seed came from
	// Proofs are the proofs of the jobs the label names, in the order the
	// spans first name them (docs/draw-spec.md §6): what lets Check verify
	// the seed's origin offline. Absent from old transcripts and from draws
	// whose entropy has no proof.
	Proofs []entropy.Proof `json:"proofs,omitempty"`
	Time   time.Time       `json:"time"`   // when the draw was made
	Digest string          `json:"digest"` // hex SHA-256 of the transcript's JSON without digest
}

// Option configures a draw.
type Option func(*config)

// config is the result of a draw's options.
type config struct {
	allowFallback bool
	event         string
	eventSet      bool // ForEvent was given, even with an empty name
	now           func() time.Time
	entrants      *Entrants   // WithEntrants
	commitment    *Commitment // WithCommitment
	entrantsErr   error
}

// AllowFallback lets a draw use fallback entropy. The transcript then says
// "verifiable": false and carries WarningFallback. Without it a draw from
// fallback entropy fails with ErrNotVerifiable.
func AllowFallback() Option { return func(c *config) { c.allowFallback = true } }

// ForEvent reads the seed for the event name, so that the event is drawn
// once: every later draw for it uses the same seed. From a
// BoundEventEntropy (a Provider) the seed is read with ReadEvent and the
// draw's Params: the event's job is requested for this event and these
// parameters, the transcript carries the Binding and the job's proof, and a
// later draw of the event with other parameters fails
// (entropy.ErrEventParams), as does a draw of an event whose bound job
// ReadFor took, bound to no parameters. From an EventEntropy it is read with ReadFor. An
// empty name is an error (ErrBadInput), never an ordinary draw: an unset
// name must not turn "once, ever" into a re-roll.
func ForEvent(name string) Option {
	return func(c *config) { c.event, c.eventSet = name, true }
}

// WithClock sets the clock that stamps transcripts (default: the system
// clock). It takes the entropy.Clock that every WithClock of the module
// takes; entropy.NowFunc adapts a plain time function.
func WithClock(clk entropy.Clock) Option {
	return func(c *config) {
		if clk != nil {
			c.now = clk.Now
		}
	}
}

// Int draws one integer in [0, n), n ≥ 1.
func Int(ctx context.Context, src Entropy, n uint64, opts ...Option) (uint64, *Transcript, error) {
	in := Inputs{N: n}
	t, err := run(ctx, src, KindInt, in, opts)
	if err != nil {
		return 0, nil, err
	}
	return t.Outputs[0], t, nil
}

// Pick draws k distinct integers of [0, n), 1 ≤ k ≤ n, k ≤ MaxItems, in draw
// order. For a lottery of balls numbered 1 to n, add one to each.
func Pick(ctx context.Context, src Entropy, k, n int, opts ...Option) ([]int, *Transcript, error) {
	if k < 1 || n < 1 {
		return nil, nil, fmt.Errorf("%w: pick %d of %d: both must be at least 1", ErrBadInput, k, n)
	}
	t, err := run(ctx, src, KindPick, Inputs{N: uint64(n), K: uint64(k)}, opts)
	if err != nil {
		return nil, nil, err
	}
	return ints(t.Outputs), t, nil
}

// Shuffle draws a permutation of [0, n), 1 ≤ n ≤ MaxItems: item i of the
// result is the index of the item that goes to position i.
func Shuffle(ctx context.Context, src Entropy, n int, opts ...Option) ([]int, *Transcript, error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("%w: shuffle of %d items", ErrBadInput, n)
	}
	t, err := run(ctx, src, KindShuffle, Inputs{N: uint64(n)}, opts)
	if err != nil {
		return nil, nil, err
	}
	return ints(t.Outputs), t, nil
}

// ints converts outputs that checkInputs bounded to int.
func ints(v []uint64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// isNilPointer reports whether v holds a nil pointer: a typed-nil source,
// such as a *entropy.Provider never made.
func isNilPointer(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// run checks the inputs, reads the seed, checks its label and makes the
// transcript.
func run(ctx context.Context, src Entropy, kind Kind, in Inputs, opts []Option) (*Transcript, error) {
	c := config{now: time.Now}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrBadInput, i)
		}
		o(&c)
	}
	if err := checkInputs(kind, in); err != nil {
		return nil, err
	}
	if c.entrantsErr != nil {
		return nil, c.entrantsErr
	}
	if c.entrants != nil && c.entrants.Count != in.N {
		return nil, fmt.Errorf("%w: %d entrants, but the draw's n is %d", ErrBadInput, c.entrants.Count, in.N)
	}
	if src == nil || isNilPointer(src) {
		return nil, fmt.Errorf("%w: no entropy source", ErrBadInput)
	}
	if c.eventSet && c.event == "" {
		return nil, fmt.Errorf("%w: empty event name", ErrBadInput)
	}
	seed := make([]byte, SeedSize)
	var label entropy.Label
	var proofs []entropy.Proof
	var binding *Binding
	var err error
	if be, ok := src.(BoundEventEntropy); ok && c.event != "" {
		// The event's job is requested for this event and these
		// parameters: its nonce is derived from them and a salt.
		params := Params(kind, in, c.entrants)
		var rec entropy.EventRecord
		rec, err = be.ReadEvent(ctx, c.event, params, seed)
		label = rec.Label
		switch {
		case err != nil || rec.Proof == nil:
		case !bytes.Equal(rec.Params, params):
			// Drawn by ReadFor, without parameters: its job is bound to
			// none, and a transcript of it would not verify.
			err = fmt.Errorf("%w: event %q was drawn without this draw's parameters (by ReadFor), so its job is not bound to them", entropy.ErrEventParams, c.event)
		default:
			proofs = []entropy.Proof{*rec.Proof}
			binding = &Binding{Params: string(params), Salt: hex.EncodeToString(rec.Salt)}
		}
	} else if c.event != "" {
		ev, ok := src.(EventEntropy)
		if !ok {
			return nil, ErrNoEvents
		}
		label, err = ev.ReadFor(ctx, c.event, seed)
	} else if pe, ok := src.(ProvenEntropy); ok {
		// A job of the draw's own, sized to the seed: its proof is small
		// enough to travel in the transcript.
		var pr entropy.Proof
		wait := !c.allowFallback && ctx.Done() != nil && !failsAtOnce(src)
		label, pr, err = readProven(ctx, pe, seed, wait)
		switch {
		case err != nil && errors.Is(err, entropy.ErrUnavailable) && !errors.Is(err, ErrNotVerifiable):
			// No job of its own, and no wait for one (or a failure no wait
			// can end): the Provider's policy decides, as for any read
			// (Degrade: fallback, refused below unless allowed).
			label, err = src.ReadLabelled(ctx, seed)
		case err == nil && pr.Scheme != "":
			proofs = []entropy.Proof{pr}
		}
	} else {
		label, err = src.ReadLabelled(ctx, seed)
	}
	if err != nil {
		return nil, fmt.Errorf("draw: read entropy: %w", err)
	}
	switch label.Provenance() {
	case entropy.ProvenanceDerived:
		return nil, ErrDerived
	case entropy.ProvenanceFallback:
		if !c.allowFallback {
			if label.Reason != nil {
				return nil, fmt.Errorf("%w: %w", ErrNotVerifiable, label.Reason)
			}
			return nil, ErrNotVerifiable
		}
	}
	if label.Len() != SeedSize {
		return nil, fmt.Errorf("draw: entropy label covers %d bytes, the seed is %d", label.Len(), SeedSize)
	}
	t := &Transcript{
		Algorithm: Algorithm, Version: Version, Kind: kind, Inputs: in, Event: c.event, Binding: binding, Commitment: c.commitment,
		Outputs: replay(kind, in, seed), Numbering: ZeroBased, Entropy: hex.EncodeToString(seed), Label: label,
		Proofs: proofs, Time: c.now().UTC(), Entrants: c.entrants,
	}
	t.Verifiable = label.Provenance() == entropy.ProvenanceVerifiable
	if !t.Verifiable {
		t.Warning = WarningFallback
	}
	if err := checkCommitment(t); err != nil {
		return nil, fmt.Errorf("draw: the entropy read is not the round committed to: %w", err)
	}
	if t.Digest, err = digest(t); err != nil {
		return nil, err
	}
	return t, nil
}

// checkInputs validates the parameters of a draw of kind.
func checkInputs(kind Kind, in Inputs) error {
	switch kind {
	case KindInt:
		if in.N < 1 || in.K != 0 {
			return fmt.Errorf("%w: int needs n ≥ 1 and no k (n=%d, k=%d)", ErrBadInput, in.N, in.K)
		}
	case KindPick:
		if in.N < 1 || in.K < 1 || in.K > in.N || in.K > MaxItems {
			return fmt.Errorf("%w: pick needs 1 ≤ k ≤ n and k ≤ %d (k=%d, n=%d)", ErrBadInput, MaxItems, in.K, in.N)
		}
	case KindShuffle:
		if in.N < 1 || in.N > MaxItems || in.K != 0 {
			return fmt.Errorf("%w: shuffle needs 1 ≤ n ≤ %d and no k (n=%d, k=%d)", ErrBadInput, MaxItems, in.N, in.K)
		}
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrBadInput, kind)
	}
	return nil
}

// replay computes the outputs of a draw of kind with inputs in from seed.
// checkInputs must have accepted kind and in.
func replay(kind Kind, in Inputs, seed []byte) []uint64 {
	s := newStream(seed)
	switch kind {
	case KindInt:
		return []uint64{uniform(s, in.N)}
	case KindPick:
		return pick(s, in.K, in.N)
	default:
		return shuffle(s, in.N)
	}
}

// digest returns the hex SHA-256 of t's JSON with Digest empty.
func digest(t *Transcript) (string, error) {
	c := *t
	c.Digest = ""
	b, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("draw: encode transcript: %w", err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// verifyReplay is Verify without trust roots: the replay of the outputs
// and the transcript's own consistency (see Verify).
func verifyReplay(t *Transcript) error {
	if t == nil {
		return fmt.Errorf("%w: no transcript", ErrInvalid)
	}
	if t.Algorithm != Algorithm || t.Version != Version {
		return fmt.Errorf("%w: %q version %d (this package implements %q version %d)", ErrUnknownAlgorithm, t.Algorithm, t.Version, Algorithm, Version)
	}
	if err := checkInputs(t.Kind, t.Inputs); err != nil {
		return err
	}
	if err := checkEntrants(t); err != nil {
		return err
	}
	if err := checkBinding(t); err != nil {
		return err
	}
	if err := checkCommitment(t); err != nil {
		return err
	}
	if t.Numbering != ZeroBased && t.Numbering != "" {
		return fmt.Errorf("%w: numbering %q (this package's outputs are %q)", ErrInvalid, t.Numbering, ZeroBased)
	}
	seed, err := hex.DecodeString(t.Entropy)
	if err != nil || len(seed) != SeedSize || hex.EncodeToString(seed) != t.Entropy {
		return fmt.Errorf("%w: entropy must be %d bytes in lower-case hex", ErrInvalid, SeedSize)
	}
	if t.Label.Derived {
		return fmt.Errorf("%w: %w", ErrInvalid, ErrDerived)
	}
	covered := 0 // summed span by span: Label.Len can overflow on hostile lengths
	for i, s := range t.Label.Spans {
		if s.Length <= 0 || s.Offset < 0 || s.Source == "" {
			return fmt.Errorf("%w: label span %d is malformed", ErrInvalid, i)
		}
		if s.Length > len(seed)-covered {
			return fmt.Errorf("%w: label spans cover more than the %d bytes of entropy", ErrInvalid, len(seed))
		}
		covered += s.Length
		if t.Label.Verifiable && s.JobID == "" {
			return fmt.Errorf("%w: verifiable label span %d names no job", ErrInvalid, i)
		}
		if t.Label.Verifiable && s.Source == entropy.FallbackSource {
			// No source may take the fallback's name (a Provider refuses
			// its blocks): such a span is fallback bytes passed off as a job.
			return fmt.Errorf("%w: verifiable label span %d names the fallback's source %q", ErrInvalid, i, entropy.FallbackSource)
		}
	}
	if covered != len(seed) {
		return fmt.Errorf("%w: label covers %d bytes, entropy is %d", ErrInvalid, covered, len(seed))
	}
	if t.Label.Verifiable && t.Label.Reason != nil {
		return fmt.Errorf("%w: a verifiable label has no fallback reason", ErrInvalid)
	}
	class := t.Label.Provenance() == entropy.ProvenanceVerifiable
	if t.Verifiable != class {
		return fmt.Errorf("%w: verifiable is %v but the label is %s", ErrInvalid, t.Verifiable, t.Label.Provenance())
	}
	if want := map[bool]string{true: "", false: WarningFallback}[t.Verifiable]; t.Warning != want {
		return fmt.Errorf("%w: warning %q does not match a %s label", ErrInvalid, t.Warning, t.Label.Provenance())
	}
	if t.Time.IsZero() {
		return fmt.Errorf("%w: no time", ErrInvalid)
	}
	want := replay(t.Kind, t.Inputs, seed)
	if len(want) != len(t.Outputs) {
		return fmt.Errorf("%w: %d outputs, the entropy gives %d", ErrInvalid, len(t.Outputs), len(want))
	}
	for i := range want {
		if want[i] != t.Outputs[i] {
			return fmt.Errorf("%w: output %d is %d, the entropy gives %d", ErrInvalid, i, t.Outputs[i], want[i])
		}
	}
	d, err := digest(t)
	if err != nil {
		return err
	}
	if d != t.Digest {
		return fmt.Errorf("%w: digest does not match the transcript (a field was changed)", ErrInvalid)
	}
	return nil
}

// MaxTranscriptSize bounds the JSON that ParseTranscript reads.
const MaxTranscriptSize = 64 << 20

// ParseTranscript decodes a transcript's JSON strictly: an unknown member is
// an error. It does not verify; call Verify.
func ParseTranscript(b []byte) (*Transcript, error) {
	if len(b) > MaxTranscriptSize {
		return nil, fmt.Errorf("%w: transcript larger than %d bytes", ErrInvalid, MaxTranscriptSize)
	}
	// Member names exactly as written, each once: encoding/json alone
	// would take "OUTPUTS" for "outputs", or the last of two "outputs",
	// and a transcript could show one result and verify as another.
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: the transcript is empty", ErrInvalid)
	}
	if err := strictjson.Keys(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, cutShort(err))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t Transcript
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, cutShort(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the transcript", ErrInvalid)
	}
	return &t, nil
}

// cutShort says what a JSON decoder's bare "EOF" means: the transcript
// ends before its JSON does.
func cutShort(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the transcript ends before its JSON does (cut short?): %w", err)
	}
	return err
}

// JobData returns the entropy of one job of one source, as an auditor gets
// it from the service (for the reference protocol, GET /v1/jobs/{job_id}) or
// from a beacon's round.
type JobData func(ctx context.Context, source, jobID string) ([]byte, error)

// VerifyEntropy checks a verifiable transcript's entropy against the jobs its
// label names: for each span, the next Length bytes of the entropy must equal
// bytes Offset to Offset+Length of that job's data. Call Verify first.
func VerifyEntropy(ctx context.Context, t *Transcript, jobs JobData) error {
	if t == nil || jobs == nil {
		return fmt.Errorf("%w: no transcript or job lookup", ErrBadInput)
	}
	if !t.Verifiable || t.Label.Provenance() != entropy.ProvenanceVerifiable {
		return ErrNotVerifiable
	}
	seed, err := hex.DecodeString(t.Entropy)
	if err != nil || t.Label.Len() != len(seed) {
		return fmt.Errorf("%w: entropy and label disagree", ErrInvalid)
	}
	pos := 0
	for i, s := range t.Label.Spans {
		// Checked before any lookup, and without sums that hostile lengths
		// overflow: Len above can wrap to the seed's length.
		if s.Offset < 0 || s.Length <= 0 || s.Length > len(seed)-pos {
			return fmt.Errorf("%w: span %d does not fit the %d bytes of entropy", ErrInvalid, i, len(seed))
		}
		data, err := jobs(ctx, s.Source, s.JobID)
		if err != nil {
			return fmt.Errorf("draw: span %d: job %s of %s: %w", i, s.JobID, s.Source, err)
		}
		if s.Offset > len(data)-s.Length {
			return fmt.Errorf("%w: span %d (offset %d, length %d) is outside job %s (%d bytes)", ErrInvalid, i, s.Offset, s.Length, s.JobID, len(data))
		}
		for k := 0; k < s.Length; k++ {
			if data[s.Offset+k] != seed[pos+k] {
				return fmt.Errorf("%w: span %d: entropy differs from job %s of %s", ErrInvalid, i, s.JobID, s.Source)
			}
		}
		pos += s.Length
	}
	return nil
}

// proveWait bounds the pause between two ReadProven calls of a draw
// waiting for verifiable entropy (readProven); the first pause is
// proveWaitFirst, and each is twice the one before.
const (
	proveWaitFirst = 10 * time.Millisecond
	proveWait      = 500 * time.Millisecond
)

// failsAtOnce reports whether src is a Provider under the Fail policy,
// whose caller asked for an answer at once rather than a wait.
func failsAtOnce(src Entropy) bool {
	s, ok := src.(interface{ Stats() entropy.Stats })
	return ok && s.Stats().Policy == entropy.Fail
}

// readProven reads a draw's seed with ReadProven. With wait set (a draw
// that requires verifiable entropy, from a Provider not under Fail) it
// waits as the Defer policy does: while no source can give a job now
// (entropy.ErrUnavailable), it asks again, until a job comes, ctx ends
// (an error wrapping ErrNotVerifiable, ctx's error and the last cause), or
// the failure is permanent or the Provider closed (that error, at once). A
// Provider answering for Degrade or Fail repeats its last failure without
// a request for the retry's longest delay, so the pauses cost no requests.
func readProven(ctx context.Context, pe ProvenEntropy, seed []byte, wait bool) (entropy.Label, entropy.Proof, error) {
	pause := proveWaitFirst
	for {
		l, pr, err := pe.ReadProven(ctx, seed)
		switch {
		case err == nil || !wait:
			return l, pr, err
		case ctx.Err() != nil:
			return entropy.Label{}, entropy.Proof{}, notVerifiable(ctx, err)
		case !errors.Is(err, entropy.ErrUnavailable) || errors.Is(err, entropy.ErrPermanent) || errors.Is(err, entropy.ErrClosed):
			return l, pr, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return entropy.Label{}, entropy.Proof{}, notVerifiable(ctx, err)
		case <-t.C:
		}
		pause = min(2*pause, proveWait)
	}
}

// notVerifiable is the error of a draw whose context ended while it waited
// for verifiable entropy: ErrNotVerifiable, ctx's error and the last cause.
func notVerifiable(ctx context.Context, cause error) error {
	if errors.Is(cause, ctx.Err()) {
		return fmt.Errorf("%w: waiting for a verifiable job: %w", ErrNotVerifiable, cause)
	}
	return fmt.Errorf("%w: %w while waiting for a verifiable job: %w", ErrNotVerifiable, ctx.Err(), cause)
}
