package draw

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/internal/evidence"
)

// Commitment is a draw's commitment, made and published before its entropy
// existed, to the drand round it draws from: the first round of a chain
// after a time (docs/draw-spec.md §6, "commitment"), and to the draw itself.
// Fix the entrants, then commit to the first round after now and to the
// draw's parameters, and publish the commitment: nobody, the operator
// included, could know the result when the list was fixed, and nobody can
// pick another round, another list or another draw afterwards.
//
// Params fixes the draw: without it, whoever draws could, once the round is
// known, reorder the list of entrants or change k or n until the result
// suits them, and the transcript would still verify ([Check] then says the
// draw's parameters were not committed to).
type Commitment struct {
	Chain string    `json:"chain"` // the drand chain's hash, lower-case hex
	After time.Time `json:"after"` // the round is the chain's first after this time
	Round uint64    `json:"round"` // that round: ChainInfo.FirstRoundAfter(After)
	// Params are the draw's parameters, as [Params](kind, inputs,
	// entrants) gives them, entrants' SHA-256 and count included; set by
	// [Commitment.For]. A draw whose parameters are other fails.
	Params string `json:"params,omitempty"`
}

// CommitAfter returns the commitment to the first round of chain after t.
// Commit to the draw too with [Commitment.For] before publishing it.
func CommitAfter(chain drandsource.ChainInfo, t time.Time) Commitment {
	return Commitment{Chain: chain.HashString(), After: t.UTC(), Round: chain.FirstRoundAfter(t)}
}

// For returns c committed also to a draw of kind with inputs in and, if
// entrants is not nil, to that list of entrants (its SHA-256 and count):
// c with Params set.
func (c Commitment) For(kind Kind, in Inputs, entrants *Entrants) Commitment {
	c.Params = string(Params(kind, in, entrants))
	return c
}

// WithCommitment makes a draw from the round c names (read it from
// drandsource's RoundEntropy for c.Round): the transcript carries c, and the
// draw fails unless its seed is that round's, with its proof, and, when c
// names the draw's parameters, unless they are this draw's.
func WithCommitment(c Commitment) Option {
	return func(cf *config) { cf.commitment = &c }
}

// checkCommitment checks a transcript's commitment against its proof: one
// drand proof, of the chain and round committed to. Whether the round is the
// first after the time needs the chain's info (checkCommitmentTime).
func checkCommitment(t *Transcript) error {
	c := t.Commitment
	if c == nil {
		return nil
	}
	if c.After.IsZero() {
		return fmt.Errorf("%w: a commitment without a time", ErrInvalid)
	}
	if raw, err := hex.DecodeString(c.Chain); err != nil || len(raw) != 32 || hex.EncodeToString(raw) != c.Chain {
		return fmt.Errorf("%w: the commitment's chain must be 32 bytes in lower-case hex", ErrInvalid)
	}
	if want := string(Params(t.Kind, t.Inputs, t.Entrants)); c.Params != "" && c.Params != want {
		return fmt.Errorf("%w: the commitment is to the draw %q, but this draw is %q", ErrInvalid, c.Params, want)
	}
	if len(t.Proofs) != 1 || t.Proofs[0].Scheme != evidence.SchemeDrand {
		return proofError(0, "scheme", "a committed draw needs one proof of %q", evidence.SchemeDrand)
	}
	p := t.Proofs[0]
	if hex.EncodeToString(p.Chain) != c.Chain {
		return proofError(0, "chain", "not the chain the draw committed to (%s)", c.Chain)
	}
	if p.Round != c.Round {
		return proofError(0, "round", "%d, but the draw committed to round %d", p.Round, c.Round)
	}
	return nil
}

// checkCommitmentTime checks, with the chain's info from the trust roots,
// that the round committed to is the chain's first after the time, and
// notes in rep what ran, and whether the commitment fixed the draw's
// parameters (checkCommitment checked them against the draw's).
func checkCommitmentTime(t *Transcript, roots TrustRoots, rep *Report) error {
	c := t.Commitment
	if c == nil {
		return nil
	}
	if c.Params != "" {
		rep.Checks = append(rep.Checks, fmt.Sprintf("commitment: to this draw, %s, before its round existed", c.Params))
	} else {
		rep.Unchecked = append(rep.Unchecked, "commitment: names the round but not the draw's parameters, so the entrants, k and n could have been chosen once the round was known")
	}
	for _, ch := range roots.Chains {
		if ch.HashString() != c.Chain {
			continue
		}
		if want := ch.FirstRoundAfter(c.After); want != c.Round {
			return fmt.Errorf("%w: the commitment names round %d, but the first round of the chain after %s is %d", ErrInvalid, c.Round, c.After.Format(time.RFC3339), want)
		}
		rep.Checks = append(rep.Checks, fmt.Sprintf("commitment: round %d is the first of chain %s after %s (due %s): its randomness did not exist when the draw was committed",
			c.Round, c.Chain, c.After.Format(time.RFC3339), ch.RoundTime(c.Round).UTC().Format(time.RFC3339)))
		return nil
	}
	rep.Unchecked = append(rep.Unchecked, fmt.Sprintf("commitment: no trust root for chain %s, so the round was not shown to be the first after %s", c.Chain, c.After.Format(time.RFC3339)))
	return nil
}
