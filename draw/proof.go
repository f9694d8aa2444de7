package draw

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/names"
)

// ProvenEntropy is an Entropy that reads a job of its own with its proof;
// *entropy.Provider and *drandsource.RoundEntropy implement it. A draw from
// one puts the proof into its transcript (Transcript.Proofs), so that anyone
// can check where the seed came from offline, years later, with only a
// trust root (Check, Verify with TrustRoots).
type ProvenEntropy interface {
	ReadProven(ctx context.Context, b []byte) (entropy.Label, entropy.Proof, error)
}

var (
	// ErrProof is returned by Check and Verify for a proof that does not
	// verify: a signature that does not check under the trust root, a proof
	// whose data is not the seed, a field that contradicts another. The
	// error names the proof and the field, e.g. `proof 0 "nonce": …`.
	ErrProof = errors.New("draw: proof does not verify")
	// ErrUnproven is returned by Verify with trust roots for a transcript
	// whose origin it could not check: no proofs (an old transcript, or a
	// source without them), or a proof of a source or chain the roots do
	// not name.
	ErrUnproven = errors.New("draw: the origin of the entropy was not checked")
)

// ProofTimeTolerance is how much later than the transcript's time a proof's
// timestamp (or a drand round's due time) may be: the job was made before
// the draw, give or take clocks that disagree.
const ProofTimeTolerance = 5 * time.Minute

// TrustRoots are what a verifier trusts, given out of band: the public key
// of each service of the reference protocol, by the source name its spans
// carry ("quantropy", "simulator"), and the info of each drand chain (its
// hash, scheme and public key: drandsource.Quicknet(), drandsource.Default()
// or a chain's published info).
type TrustRoots struct {
	PublicKeys map[string]ed25519.PublicKey
	Chains     []drandsource.ChainInfo
}

// Report says which checks Check ran on a transcript, in order, and what it
// could not check.
type Report struct {
	Checks        []string // each check that ran and passed, one line each
	Unchecked     []string // what could not be checked, and why
	OriginChecked bool     // every span's bytes were checked against a signed proof under a trust root
	// EventBound: the event's job was requested for this event and these
	// parameters, shown by its signed nonce (Transcript.Binding).
	EventBound bool
}

// Check verifies a transcript and reports which checks ran: always the
// replay of the outputs from the seed and the digest (as Verify(t) does);
// then, for a verifiable transcript with proofs, every proof offline: that
// the spans' bytes are the proofs' data, each job's from its first byte on,
// in order (docs/draw-spec.md §6), that each proof's fields agree
// (size, nonce, timestamp, round), and, for each proof whose source or chain
// roots name, its signature. A failed check is an error (ErrInvalid,
// ErrProof, …); a check it could not run (no proofs, no trust root for a
// source) is listed in Report.Unchecked, and OriginChecked is then false.
// It never uses the network.
func Check(t *Transcript, roots TrustRoots) (Report, error) {
	var rep Report
	if err := verifyReplay(t); err != nil {
		return rep, err
	}
	rep.Checks = append(rep.Checks,
		fmt.Sprintf("replay: %d outputs re-derived from the seed by %s version %d", len(t.Outputs), t.Algorithm, t.Version),
		"digest: the transcript's digest matches its content")
	if !t.Verifiable {
		rep.Unchecked = append(rep.Unchecked, "origin: drawn from local fallback entropy, which no third party can check")
		return rep, nil
	}
	if len(t.Proofs) == 0 {
		rep.Unchecked = append(rep.Unchecked, "origin: the transcript carries no proofs (an old transcript, or a source without them); check its jobs against the service")
		return rep, nil
	}
	seed, _ := hex.DecodeString(t.Entropy) // verifyReplay checked it
	if err := checkProofs(t, seed, roots, &rep); err != nil {
		return rep, err
	}
	rep.OriginChecked = len(rep.Unchecked) == 0
	if err := checkCommitmentTime(t, roots, &rep); err != nil {
		return rep, err
	}
	switch {
	case t.Binding != nil && rep.OriginChecked:
		// verifyReplay checked the nonce; the signature checked above covers it.
		rep.Checks = append(rep.Checks, fmt.Sprintf("event binding: the job's signed nonce is EventNonce(event %q, params %q, salt): it was requested for this event and these parameters", t.Event, t.Binding.Params))
		rep.EventBound = true
	case t.Binding != nil:
		rep.Unchecked = append(rep.Unchecked, "event binding: the nonce matches the event and parameters, but the signature over it was not checked")
	case t.Event != "" && rep.OriginChecked && bindsJobs(t.Proofs):
		// An event draw from such a source always carries its binding: without
		// one, the job may have been made for anything else.
		return rep, proofError(0, "nonce", "the job of event %q is of the reference protocol (%q), whose services bind every job to its request, but the transcript shows no binding: a job made for anything else cannot be passed off as this event's", t.Event, t.Proofs[0].Scheme)
	case t.Event != "":
		rep.Unchecked = append(rep.Unchecked, "event binding: the job was not bound to the event (a source that cannot bind jobs, or an older transcript): a job made for anything else could be passed off as this event's")
	}
	return rep, nil
}

// bindsJobs reports whether every proof is of the reference protocol, whose
// services sign every job over its request's nonce (v2): the jobs of a
// source that can bind an event's job to the event (Transcript.Binding). A
// v1 job binds no request, and a service still signs one for any request
// without a nonce; no event draw ever took one, so it cannot stand for an
// event's job either.
func bindsJobs(proofs []entropy.Proof) bool {
	for _, p := range proofs {
		if p.Scheme != evidence.SchemeReferenceV2 && p.Scheme != evidence.SchemeReferenceV1 {
			return false
		}
	}
	return len(proofs) > 0
}

// Verify replays a transcript and fails (ErrUnknownAlgorithm, ErrBadInput or
// ErrInvalid) if any field disagrees: the algorithm and version must be
// known, the inputs valid, the entropy 32 bytes of hex covered exactly by
// the label, the label's class must match Verifiable and Warning, the
// outputs must be what the entropy gives, Time must be set, and Digest must
// match the rest.
//
// Given trust roots, Verify also checks where the entropy came from, offline
// (see Check): every proof must verify (ErrProof), and the origin of every
// byte must have been checked under the roots (ErrUnproven otherwise: a
// transcript without proofs, a fallback draw, a source the roots do not
// name). Without roots it does not check the origin; VerifyEntropy checks
// the entropy against the service's jobs online.
func Verify(t *Transcript, roots ...TrustRoots) error {
	if len(roots) == 0 {
		return verifyReplay(t)
	}
	var all TrustRoots
	for _, r := range roots {
		if all.PublicKeys == nil {
			all.PublicKeys = map[string]ed25519.PublicKey{}
		}
		for k, v := range r.PublicKeys {
			all.PublicKeys[k] = v
		}
		all.Chains = append(all.Chains, r.Chains...)
	}
	rep, err := Check(t, all)
	if err != nil {
		return err
	}
	if !rep.OriginChecked {
		return fmt.Errorf("%w: %s", ErrUnproven, rep.Unchecked[0])
	}
	return nil
}

// shown is a name from a transcript as a report line gives it: bare when it
// is a plain name (docs/protocol.md, "Names"), quoted otherwise, so that no
// name can end the line or make it say something else. A proof's source
// name is not signed: a proof checks under the key trusted for whatever
// name it gives.
func shown(name string) string {
	if names.Check(name) == nil && !strings.ContainsAny(name, " \"\\") {
		return name
	}
	return strconv.QuoteToASCII(name)
}

// proofError is the error of one field of one proof.
func proofError(i int, field, format string, a ...any) error {
	return fmt.Errorf("%w: proof %d %q: %s", ErrProof, i, field, fmt.Sprintf(format, a...))
}

// checkProofs checks t's proofs against its label and seed, and each under
// roots, noting in rep what ran.
func checkProofs(t *Transcript, seed []byte, roots TrustRoots, rep *Report) error {
	// One proof per job, in the order the spans first name their jobs.
	type key struct{ source, job string }
	var order []key
	index := map[key]int{}
	for _, s := range t.Label.Spans {
		k := key{s.Source, s.JobID}
		if _, ok := index[k]; !ok {
			index[k] = len(order)
			order = append(order, k)
		}
	}
	if len(t.Proofs) != len(order) {
		return fmt.Errorf("%w: %d proofs for the %d jobs of the label", ErrProof, len(t.Proofs), len(order))
	}
	signed := map[string]int{} // proof by signature: one job, one proof
	for i, p := range t.Proofs {
		switch {
		case p.Source != order[i].source:
			return proofError(i, "source", "%q, but the label's job %d is of %q", p.Source, i, order[i].source)
		case p.JobID != order[i].job:
			return proofError(i, "job_id", "%q, but the label's job %d is %q", p.JobID, i, order[i].job)
		}
		if j, ok := signed[string(p.Signature)]; ok && len(p.Signature) != 0 {
			// The same signed job under another source name: its bytes
			// would be taken twice, split where the drawer chose.
			return proofError(i, "signature", "the signature of proof %d: one job given twice, under two source names", j)
		}
		signed[string(p.Signature)] = i
	}
	// The spans of each job take its data from the first byte on, in order,
	// each byte once, as a draw reads it (docs/draw-spec.md §6): were any
	// offset accepted, the drawer could choose which bytes of the job make
	// the seed, and so the result.
	next := make([]int, len(order))
	pos := 0
	for i, s := range t.Label.Spans {
		k := index[key{s.Source, s.JobID}]
		data := t.Proofs[k].Data
		if s.Offset != next[k] {
			return proofError(k, "data", "span %d starts at byte %d of job %s, but the seed takes the job's bytes from its first, in order: byte %d is next", i, s.Offset, s.JobID, next[k])
		}
		if s.Offset > len(data)-s.Length || !bytes.Equal(data[s.Offset:s.Offset+s.Length], seed[pos:pos+s.Length]) {
			return proofError(k, "data", "span %d (bytes %d to %d of job %s) is not the seed's bytes %d to %d", i, s.Offset, s.Offset+s.Length, s.JobID, pos, pos+s.Length)
		}
		next[k] += s.Length
		pos += s.Length
	}
	of := "the proof"
	if len(t.Proofs) > 1 {
		of = fmt.Sprintf("the %d proofs", len(t.Proofs))
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("binding: the %d bytes of the seed are the first bytes of the data of %s, span by span", len(seed), of))
	for i, p := range t.Proofs {
		var err error
		switch p.Scheme {
		case evidence.SchemeReferenceV2, evidence.SchemeReferenceV1:
			err = checkReference(i, p, t.Time, roots, rep)
		case evidence.SchemeDrand:
			err = checkDrand(i, p, t.Time, roots, rep)
		default:
			err = proofError(i, "scheme", "unknown scheme %q", p.Scheme)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkReference checks proof i of the reference protocol.
func checkReference(i int, p entropy.Proof, drawn time.Time, roots TrustRoots, rep *Report) error {
	switch {
	case len(p.Chain) != 0:
		return proofError(i, "chain", "a job of the reference protocol names no drand chain")
	case p.Round != 0:
		return proofError(i, "round", "a job of the reference protocol has no round")
	case len(p.PrevSignature) != 0:
		return proofError(i, "previous_signature", "a job of the reference protocol has no previous signature")
	case len(p.Signature) != ed25519.SignatureSize:
		return proofError(i, "signature", "%d bytes, an Ed25519 signature has %d", len(p.Signature), ed25519.SignatureSize)
	}
	v2 := p.Scheme == evidence.SchemeReferenceV2
	if v2 {
		if len(p.Nonce) < httpsource.MinNonceSize || len(p.Nonce) > httpsource.MaxNonceSize {
			return proofError(i, "nonce", "%d bytes, want %d to %d", len(p.Nonce), httpsource.MinNonceSize, httpsource.MaxNonceSize)
		}
		if p.Size != len(p.Data) {
			return proofError(i, "size", "%d, but the data has %d bytes", p.Size, len(p.Data))
		}
		ts, err := time.Parse(time.RFC3339Nano, p.Timestamp)
		if err != nil {
			return proofError(i, "timestamp", "%q is not RFC 3339", p.Timestamp)
		}
		if ts.After(drawn.Add(ProofTimeTolerance)) {
			return proofError(i, "timestamp", "%s is after the draw (%s)", p.Timestamp, drawn.UTC().Format(time.RFC3339))
		}
	} else if len(p.Nonce) != 0 || p.Size != 0 {
		return proofError(i, "scheme", "%q, but the proof carries a nonce or size, which only v2 signs", p.Scheme)
	}
	pub, ok := roots.PublicKeys[p.Source]
	if !ok {
		rep.Unchecked = append(rep.Unchecked, fmt.Sprintf("signature of proof %d: no public key for source %q among the trust roots", i, p.Source))
		return nil
	}
	if v2 {
		if !httpsource.VerifySignatureV2(pub, p.JobID, p.Nonce, p.Size, p.Timestamp, p.Data, p.Signature) {
			return proofError(i, "signature", "does not verify under the key of %q over the job_id, nonce, size, timestamp and data (one of them was changed, or the key is another)", p.Source)
		}
		rep.Checks = append(rep.Checks, fmt.Sprintf("signature: proof %d, job %s of %s, signed in protocol v2 over its nonce, size %d and timestamp %s", i, shown(p.JobID), shown(p.Source), p.Size, p.Timestamp))
		return nil
	}
	if !httpsource.VerifySignature(pub, p.JobID, p.Data, p.Signature) {
		return proofError(i, "signature", "does not verify under the key of %q over the job_id and data (v1)", p.Source)
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("signature: proof %d, job %s of %s, signed in protocol v1 (it binds no request: the job could have been replayed)", i, shown(p.JobID), shown(p.Source)))
	return nil
}

// checkDrand checks proof i of a drand round.
func checkDrand(i int, p entropy.Proof, drawn time.Time, roots TrustRoots, rep *Report) error {
	switch {
	case len(p.Nonce) != 0 || p.Size != 0 || p.Timestamp != "":
		return proofError(i, "scheme", "%q, but the proof carries a nonce, size or timestamp, which a drand round has not", p.Scheme)
	case p.Round == 0 || p.JobID != strconv.FormatUint(p.Round, 10):
		return proofError(i, "round", "round %d does not match the job ID %q", p.Round, p.JobID)
	case len(p.Data) != sha256.Size:
		return proofError(i, "data", "%d bytes, a round's randomness has %d", len(p.Data), sha256.Size)
	}
	var chain *drandsource.ChainInfo
	for k := range roots.Chains {
		if bytes.Equal(roots.Chains[k].Hash, p.Chain) {
			chain = &roots.Chains[k]
			break
		}
	}
	if chain == nil {
		rep.Unchecked = append(rep.Unchecked, fmt.Sprintf("signature of proof %d: its \"chain\" %x is not among the trust roots", i, p.Chain))
		return nil
	}
	if err := chain.Validate(); err != nil {
		return fmt.Errorf("draw: trust root: %w", err)
	}
	if chain.Scheme != drandsource.SchemeChained && len(p.PrevSignature) != 0 {
		return proofError(i, "previous_signature", "chain %s is unchained: a round has no previous signature", chain.HashString())
	}
	if due := chain.RoundTime(p.Round); due.After(drawn.Add(ProofTimeTolerance)) {
		return proofError(i, "round", "round %d is due at %s, after the draw (%s)", p.Round, due.UTC().Format(time.RFC3339), drawn.UTC().Format(time.RFC3339))
	}
	randomness, err := drandsource.Verify(chain.Scheme, chain.PublicKey, p.Round, p.PrevSignature, p.Signature)
	if err != nil {
		signed := "the round"
		if chain.Scheme == drandsource.SchemeChained {
			signed = "the previous_signature and the round"
		}
		return proofError(i, "signature", "does not verify over %s (round %d of chain %s): %v", signed, p.Round, chain.HashString(), err)
	}
	if !bytes.Equal(randomness, p.Data) {
		return proofError(i, "data", "is not SHA-256 of round %d's signature", p.Round)
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("signature: proof %d, drand round %d of chain %s (%s), its randomness the data", i, p.Round, chain.HashString(), chain.Scheme))
	return nil
}
