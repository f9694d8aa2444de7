package entropy

import (
	"context"
)

// batcher is a [Source] that can also fetch several blocks in one
// request (package httpsource's POST /v1/entropy/batch). A [Provider]
// refills from such a source with batches unless WithBatch(1) turns them
// off. A Source of another package takes part by having the two methods.
type batcher interface {
	Source
	// FetchBatch asks for one block of each size in one request. It returns
	// the blocks that passed every check of the source, in the order of
	// sizes, and, if any item failed, a *httpsource.BatchError listing the
	// failed ones (by their index in sizes). An error that is not one is a
	// failure of the whole request: no blocks. An error matching
	// httpsource.ErrBatchUnsupported says the service has no batch request
	// at all.
	FetchBatch(ctx context.Context, sizes []int) ([]Block, error)
	// BatchLimits says how much one batch may ask for: at most items
	// blocks, of at most bytes bytes in all (package httpsource's protocol
	// limits); 0 or less for no limit of that kind. A [Provider] keeps its
	// batches within them; a batch that would hold fewer than two blocks is
	// sent as a single request.
	BatchLimits() (items, bytes int)
}
