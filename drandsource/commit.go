package drandsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/provenrand/entropy"
)

// RoundEntropy is the randomness of one round committed to in advance, for
// package draw: a draw announced as "the first quicknet round after 20:00
// UTC" reads that round and nothing else, and anyone can re-derive the
// result from the round's public beacon.
//
// It implements draw.Entropy. Its bytes are public the moment the round
// exists: fit for a draw, never for a secret.
type RoundEntropy struct {
	src   *Source
	round uint64

	mu  sync.Mutex
	blk *entropy.Block // the round, once fetched and verified
}

// Committed returns the entropy of the given round for draws. Typically
// round = s.FirstRoundAfter(a published time). The round is fetched (waiting
// until it is due) and verified on the first read; every read returns the
// same bytes, since a committed round has one value whoever reads it.
// The round is taken through FetchRound, so it must be one this Source has
// not handed out to a Provider: give a committed draw a Source of its own.
func (s *Source) Committed(round uint64) *RoundEntropy {
	return &RoundEntropy{src: s, round: round}
}

// Round returns the committed round number.
func (r *RoundEntropy) Round() uint64 { return r.round }

// Due returns when the committed round is due, by the chain's clock: its
// randomness exists from then on, and not before.
// A RoundEntropy not made by Committed has no chain: its Due is the zero time.
func (r *RoundEntropy) Due() time.Time {
	if r.src == nil {
		return time.Time{}
	}
	return r.src.RoundTime(r.round)
}

// ReadLabelled fills b (at most 32 bytes) with the first len(b) bytes of
// the round's verified randomness, waiting on ctx until the round is due.
// The label is verifiable, with one public span naming the chain and round.
func (r *RoundEntropy) ReadLabelled(ctx context.Context, b []byte) (entropy.Label, error) {
	if len(b) == 0 || len(b) > randomnessLength {
		return entropy.Label{}, fmt.Errorf("drandsource: a round holds %d bytes, asked for %d", randomnessLength, len(b))
	}
	if ctx == nil {
		return entropy.Label{}, errors.New("drandsource: nil context")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blk == nil {
		blk, err := r.src.FetchRound(ctx, r.round)
		if err != nil {
			return entropy.Label{}, err
		}
		r.blk = &blk
	}
	copy(b, r.blk.Data)
	return entropy.Label{
		Verifiable: true,
		Spans:      []entropy.Span{{Source: r.blk.Source, JobID: r.blk.JobID, Length: len(b), Public: true}},
	}, nil
}

// ReadProven is ReadLabelled with the round's Proof (its data the whole
// 32 bytes of the round's randomness), so that a draw's transcript can be
// checked offline with the chain's info alone. b must be 32 bytes: a proof
// covers the whole round. It implements draw.ProvenEntropy.
func (r *RoundEntropy) ReadProven(ctx context.Context, b []byte) (entropy.Label, entropy.Proof, error) {
	if len(b) != randomnessLength {
		return entropy.Label{}, entropy.Proof{}, fmt.Errorf("drandsource: a proven read takes the whole round (%d bytes), asked for %d", randomnessLength, len(b))
	}
	lbl, err := r.ReadLabelled(ctx, b)
	if err != nil {
		return entropy.Label{}, entropy.Proof{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blk.Evidence == nil {
		return entropy.Label{}, entropy.Proof{}, fmt.Errorf("drandsource: round %d has no proof", r.round)
	}
	pr := r.blk.Evidence.Clone()
	pr.Data = bytes.Clone(r.blk.Data)
	return lbl, pr, nil
}

// Block returns a copy of the round's block once it has been read.
func (r *RoundEntropy) Block() (entropy.Block, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blk == nil {
		return entropy.Block{}, false
	}
	b := *r.blk
	b.Data, b.Proof = bytes.Clone(b.Data), bytes.Clone(b.Proof)
	return b, true
}
