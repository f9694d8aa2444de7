package entropy

import (
	"context"
	"errors"
	"fmt"
)

// jobClaimer is a [Journal] with the replay guard that outlives a process
// (ClaimJob, described at Journal).
type jobClaimer interface {
	ClaimJob(ctx context.Context, source, jobID string) (fresh bool, err error)
}

// claim asks the Provider's journal, if it is a jobClaimer, whether block b
// is a job it has never seen: a replay is refused with errInvalidBlock, and
// a journal that cannot answer refuses the block too (its freshness is then
// unknown), with a *claimError, as does a public round another replica took.
// The journal has the fetch timeout to answer, so that a journal that
// stalls (a database that no longer answers) does not hold the refill, or a
// caller of ReadProven, for as long as it stalls.
func (f *feeder) claim(ctx context.Context, b Block) error {
	if _, ok := f.cfg.journal.(jobClaimer); !ok {
		return nil
	}
	cctx := f.requestCtx(ctx)
	err := f.claimIn(cctx, b)
	cctx.end()
	return err
}

// claimIn is claim under cctx, a context bounded by the fetch timeout that
// the claims of a batch's blocks share (onceBatch), so that a journal that
// stalls holds a batch for one fetch timeout, not one per block.
func (f *feeder) claimIn(cctx context.Context, b Block) error {
	c, ok := f.cfg.journal.(jobClaimer)
	if !ok {
		return nil
	}
	fresh, err := c.ClaimJob(cctx, b.Source, b.JobID)
	if err != nil {
		return &claimError{fmt.Errorf("entropy: journal could not tell whether job %s of %s is new: %w", b.JobID, b.Source, err)}
	}
	if !fresh {
		err := fmt.Errorf("%w: job %s of %s is already in the journal (a replay)", errInvalidBlock, b.JobID, b.Source)
		if b.Public {
			// A public beacon's round is the same for every replica that
			// asks while it is the latest: another replica sharing the
			// journal took it first. The source is working; the next
			// round will do.
			return &claimError{err}
		}
		return err
	}
	return nil
}

// claimError is a block refused by the journal's replay guard through no
// fault of the source: the journal could not answer, or the block is a
// public beacon round that another replica sharing the journal took first.
// The refill sends no other request now (it would meet the same journal,
// or the same round), and the breaker does not count it, so that one
// replica cut off from its journal, or replicas that lose the race for a
// round, do not open the breaker that a fleet's replicas share (nor a
// Provider's own, which would refuse refills after the journal is back).
type claimError struct{ err error }

// isClaimError reports whether err is, or wraps, a *claimError. A nil err
// costs nothing (the breaker asks after every request).
func isClaimError(err error) bool {
	if err == nil {
		return false
	}
	var ce *claimError
	return errors.As(err, &ce)
}

func (e *claimError) Error() string { return e.err.Error() }
func (e *claimError) Unwrap() error { return e.err }
