package draw

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
)

// BoundEventEntropy is an EventEntropy that binds an event's job to the
// event and the draw's parameters (the event nonce of docs/protocol.md,
// "Event nonces"); *entropy.Provider
// implements it. A ForEvent draw from one carries the binding and the job's
// proof in its transcript (Transcript.Binding, Transcript.Proofs).
type BoundEventEntropy interface {
	ReadEvent(ctx context.Context, event string, params, b []byte) (entropy.EventRecord, error)
}

// Binding is what an event draw's job was requested for
// (docs/draw-spec.md §7): the draw's parameters (Params) and the random salt
// of the request. The job's nonce is EventNonce(event, params, salt), the
// hash of docs/protocol.md ("Event nonces"), and its proof (signed over the nonce) shows that the service made
// it for that request: a job made for another event or other parameters
// cannot be passed off as this draw's.
type Binding struct {
	Params string `json:"params"` // Params(kind, inputs, entrants), as hashed into the nonce
	Salt   string `json:"salt"`   // the request's salt, lower-case hex
}

// Params returns the canonical parameters of a draw, the bytes an event
// draw hashes into its job's nonce: the algorithm and version, the kind, the
// inputs and, when the draw commits to a list of entrants, its SHA-256 and
// count, as
//
//	provenrand-draw/1;kind=pick;n=49;k=6;entrants=<sha256>:<count>
//
// (k only for pick, entrants only when given).
func Params(kind Kind, in Inputs, entrants *Entrants) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d;kind=%s;n=%d", Algorithm, Version, kind, in.N)
	if kind == KindPick {
		b.WriteString(";k=" + strconv.FormatUint(in.K, 10))
	}
	if entrants != nil {
		fmt.Fprintf(&b, ";entrants=%s:%d", entrants.SHA256, entrants.Count)
	}
	return []byte(b.String())
}

// checkBinding checks an event draw's binding against the rest of the
// transcript: an event, the parameters of this draw, a salt of
// evidence.SaltSize bytes, and one proof, of protocol v2, whose nonce is
// the event's. It does not check the proof's signature (checkProofs does).
func checkBinding(t *Transcript) error {
	b := t.Binding
	if b == nil {
		return nil
	}
	if t.Event == "" {
		return fmt.Errorf("%w: a binding without an event", ErrInvalid)
	}
	if want := string(Params(t.Kind, t.Inputs, t.Entrants)); b.Params != want {
		return fmt.Errorf("%w: binding params %q, but the draw's parameters are %q", ErrInvalid, b.Params, want)
	}
	salt, err := hex.DecodeString(b.Salt)
	if err != nil || len(salt) != evidence.SaltSize || hex.EncodeToString(salt) != b.Salt {
		return fmt.Errorf("%w: binding salt must be %d bytes in lower-case hex", ErrInvalid, evidence.SaltSize)
	}
	if len(t.Proofs) != 1 || t.Proofs[0].Scheme != evidence.SchemeReferenceV2 {
		return proofError(0, "scheme", "an event draw's binding needs one proof of %q", evidence.SchemeReferenceV2)
	}
	if !bytes.Equal(t.Proofs[0].Nonce, evidence.EventNonce(t.Event, []byte(b.Params), salt)) {
		return proofError(0, "nonce", "not the nonce of event %q with the draw's parameters and salt: the job was not requested for this draw", t.Event)
	}
	return nil
}
