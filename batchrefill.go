package entropy

import (
	"context"
	"errors"
	"fmt"

	"github.com/provenrand/entropy/internal/sourceerr"
	"github.com/sony/gobreaker/v2"
)

// batchSizes returns the sizes of the request a refill with room bytes of
// room sends to f: one block of n, or, when the source offers batches
// (batcher, and it has not answered that its service has none) and
// WithBatch did not turn them off, as many blocks of n as fit (at most the
// batch size, and within the source's BatchLimits).
func (f *feeder) batchSizes(room, n int) []int {
	if f.cfg.batch < 2 || n <= 0 || f.noBatch.Load() {
		return []int{n}
	}
	bs, ok := f.src.(batcher)
	if !ok {
		return []int{n}
	}
	k := min(room/n, f.cfg.batch)
	if items, bytes := bs.BatchLimits(); items > 0 || bytes > 0 {
		if items > 0 {
			k = min(k, items)
		}
		if bytes > 0 {
			k = min(k, bytes/n)
		}
	}
	if k < 2 {
		return []int{n}
	}
	sizes := make([]int, k)
	for i := range sizes {
		sizes[i] = n
	}
	return sizes
}

// fetchBatch runs one refill request for blocks of sizes through breaker,
// retry and checks: Fetch for one size, FetchBatch for more. It returns the
// blocks that passed every check. A service that answers it has no batch
// request (httpsource.ErrBatchUnsupported) gets a single request for sizes[0] in its
// place, and single requests from then on: that answer is not a failure.
func (f *feeder) fetchBatch(ctx context.Context, sizes []int) ([]Block, error) {
	if len(sizes) == 1 {
		b, err := f.fetch(ctx, sizes[0], nil)
		if err != nil {
			return nil, err
		}
		return []Block{b}, nil
	}
	var blocks []Block
	var partial error
	_, err := f.cb.Execute(func() (Block, error) {
		var err error
		blocks, err = f.retryingWith(ctx, func(ctx context.Context) ([]Block, error) {
			if !f.noBatch.Load() {
				var good []Block
				good, partial, err = f.onceBatch(ctx, sizes)
				if !errors.Is(err, sourceerr.ErrBatchUnsupported) {
					return good, err
				}
				f.batchUnsupported(err)
				// The single request is a request of its own: it waits
				// for the limiter and any hold like every other.
				if err := f.wait(ctx); err != nil {
					return nil, err
				}
			}
			partial = nil
			b, err := f.once(ctx, sizes[0], nil)
			if err != nil {
				return nil, err
			}
			return []Block{b}, nil
		})
		return Block{}, err
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, &breakerError{state: err, last: f.lastFailure()}
	}
	if err != nil {
		return nil, err
	}
	if partial != nil {
		// The request served blocks, but Stats shows what failed in it.
		f.setLastError(partial)
	}
	return blocks, nil
}

// batchUnsupported turns batches off for f: its service answered err
// (httpsource.ErrBatchUnsupported) to a batch request.
func (f *feeder) batchUnsupported(err error) {
	if f.noBatch.Swap(true) {
		return
	}
	if l := f.cfg.logger; l != nil {
		l.Info("entropy: the source offers no batch request; refilling with single requests", "source", f.sourceName(), "error", err.Error())
	}
}

// onceBatch sends one batch request and checks every block that came back
// (contract point 4). A batch with at least one good block is a successful
// request: its failed items (the source's, and those a check refused here)
// count as failures of their own, and the batch error stays the source's
// last error (partial). A batch with no good block is a failed request.
func (f *feeder) onceBatch(ctx context.Context, sizes []int) (good []Block, partial, err error) {
	f.requests.Add(1)
	f.quota.sent(f.cfg.clock.Now())
	defer f.quota.note(f.src)
	rctx, cancel := context.WithTimeout(ctx, f.cfg.fetchTimeout)
	defer cancel()
	var blks []Block
	func() {
		defer func() {
			if r := recover(); r != nil {
				blks, err = nil, fmt.Errorf("%w: %T", errSourcePanic, r)
			}
		}()
		blks, err = f.src.(batcher).FetchBatch(rctx, sizes)
	}()
	var be *sourceerr.BatchError
	if err != nil && !errors.As(err, &be) {
		return nil, nil, err // the whole request failed
	}
	n := 0
	for _, s := range sizes {
		n = max(n, s)
	}
	var itemFailed uint64
	var checkErrs []error
	unclaimed := false // a good item was refused by the journal through no fault of the source
	// The blocks' claims in the journal have one fetch timeout between
	// them (claimIn).
	var cctx context.Context = ctx
	if _, ok := f.cfg.journal.(jobClaimer); ok && len(blks) > 0 {
		rc := f.requestCtx(ctx)
		defer rc.end()
		cctx = rc
	}
	if be != nil {
		itemFailed = uint64(len(be.Items))
	}
	if len(blks) > len(sizes) {
		blks = blks[:0] // a source that returns more blocks than asked: none is taken
		err = fmt.Errorf("%w: a batch of %d items returned more blocks", errInvalidBlock, len(sizes))
		checkErrs = append(checkErrs, err)
	}
	for _, b := range blks {
		if cerr := f.check(b, n); cerr != nil {
			f.rejected.Add(1)
			itemFailed++
			checkErrs = append(checkErrs, cerr)
			continue
		}
		if cerr := f.claimIn(cctx, b); cerr != nil {
			f.rejected.Add(1)
			itemFailed++
			checkErrs = append(checkErrs, cerr)
			unclaimed = unclaimed || isClaimError(cerr)
			continue
		}
		good = append(good, b)
	}
	if len(good) == 0 {
		switch {
		case unclaimed:
			// Good items that the journal could not claim (claimError):
			// with them the request would have served, so it is no
			// failure of the source's, whatever its other items did.
			if be != nil {
				checkErrs = append([]error{be}, checkErrs...)
			}
			return nil, nil, errors.Join(checkErrs...)
		case be != nil:
			return nil, nil, be
		case len(checkErrs) > 0:
			return nil, nil, errors.Join(checkErrs...)
		}
		return nil, nil, fmt.Errorf("%w: a batch of %d items returned no block", errInvalidBlock, len(sizes))
	}
	if itemFailed > 0 {
		f.failures.Add(itemFailed)
		f.batchItemsFailed.Add(itemFailed)
		partial = errors.Join(checkErrs...)
		if be != nil {
			partial = errors.Join(append([]error{be}, checkErrs...)...)
		}
	}
	return good, partial, nil
}
