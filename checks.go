package entropy

import (
	"fmt"
	"strconv"
)

// maxName is the longest source name or job ID a block may carry.
const maxName = 512

// check refuses a block that is empty, longer than asked for, not verified,
// anonymous, named with a source or job ID that is not short UTF-8 text, a
// replay of a job already taken, or that fails a health test.
func (f *feeder) check(b Block, n int) error {
	switch {
	case len(b.Data) == 0:
		return fmt.Errorf("%w: empty data", errInvalidBlock)
	case len(b.Data) > n:
		return fmt.Errorf("%w: %d bytes where at most %d were asked for", errInvalidBlock, len(b.Data), n)
	case len(b.Data) < f.shortest():
		// Too short for the repetition count test to judge: a stuck
		// source would pass in blocks like this one.
		return fmt.Errorf("%w: %d bytes, fewer than the %d the health tests need to judge a block", errInvalidBlock, len(b.Data), f.shortest())
	case !b.Verifiable:
		return fmt.Errorf("%w: not verifiable (no proof checked)", errInvalidBlock)
	case b.Source == "":
		return fmt.Errorf("%w: no source name", errInvalidBlock)
	case b.JobID == "":
		return fmt.Errorf("%w: no job ID", errInvalidBlock)
	case b.Source == FallbackSource:
		// Its spans would pass for fallback bytes (contract point 1).
		return fmt.Errorf("%w: source name %q is the fallback's", errInvalidBlock, FallbackSource)
	case len(b.Source) > maxName || len(b.JobID) > maxName:
		return fmt.Errorf("%w: source name or job ID longer than %d bytes", errInvalidBlock, maxName)
	case checkName(b.Source) != nil || checkName(b.JobID) != nil:
		// Labels, journals and transcripts carry these names as text
		// that people read: none may forge it (checkName).
		return fmt.Errorf("%w: source name %s or job ID %s outside the accepted character set (docs/protocol.md, \"Names\")", errInvalidBlock, strconv.QuoteToASCII(b.Source), strconv.QuoteToASCII(b.JobID))
	}
	if err := f.checker.Check(b.Data); err != nil {
		return fmt.Errorf("%w: %w", errInvalidBlock, err)
	}
	if !f.seen.add(b.Source, b.JobID) {
		return fmt.Errorf("%w: job %s of %s was already taken", errInvalidBlock, b.JobID, b.Source)
	}
	f.mu.Lock()
	f.name = b.Source
	f.mu.Unlock()
	return nil
}

// shortest is the shortest block check accepts: the repetition count test's
// cutoff, for a block of fewer bytes can never fail it, and a source stuck
// at one value would pass in such blocks. The Provider asks for blocks that
// the adaptive proportion test can judge too (health.Config.MinBlock, 28
// bytes by default), but a block shorter than asked for is fine down to this
// length (7 bytes by default): the proportion test cannot fail a block
// shorter than its cutoff, and judges the blocks of such a source no more
// than it does a beacon's 32-byte rounds, which it fails only when one value
// fills 28 of their 32 bytes.
func (f *feeder) shortest() int {
	rct, _ := f.health.Cutoffs()
	return max(rct, 1)
}
