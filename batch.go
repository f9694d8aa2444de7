package entropy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBatchUnsupported is matched by the error of a FetchBatch whose service
// has no batch request (package httpsource: the batch path answered 404,
// 405 or 501). A [Provider] that meets it refills from that source with
// single requests from then on, and does not count it as a failure.
var ErrBatchUnsupported = errors.New("entropy: the service offers no batch request")

// BatchSource is a [Source] that can also fetch several blocks in one request
// (package httpsource's POST /v1/entropy/batch). A [Provider] refills from
// such a source with batches unless WithBatch(1) turns them off.
type BatchSource interface {
	Source
	// FetchBatch asks for one block of each size in one request. It returns
	// the blocks that passed every check of the source, in the order of
	// sizes, and, if any item failed, a *BatchError listing the failed
	// ones (by their index in sizes). An error that is not a *BatchError
	// is a failure of the whole request: no blocks. An error matching
	// [ErrBatchUnsupported] says the service has no batch request at all.
	FetchBatch(ctx context.Context, sizes []int) ([]Block, error)
	// BatchLimits says how much one batch may ask for: at most items
	// blocks, of at most bytes bytes in all (package httpsource's protocol
	// limits); 0 or less for no limit of that kind. A [Provider] keeps its
	// batches within them; a batch that would hold fewer than two blocks is
	// sent as a single request.
	BatchLimits() (items, bytes int)
}

// BatchError is a batch answer whose items did not all pass: it names the
// failed items. Find it with [errors.As]. It unwraps to the items' errors,
// so errors.As finds a failed item's [*JobError] too, and [errors.Is] its
// [ErrBadProof] or [ErrMalformed].
type BatchError struct {
	Total     int              // items asked for
	Items     []BatchItemError // the failed items, by index
	RequestID string           // the request ID of the batch answer
}

// BatchItemError is one failed item of a batch.
type BatchItemError struct {
	Index   int    // its place in the request, from 0
	Code    string // the service's code (a job error code), "" for a check that failed here
	Message string // the service's message, or what the check found
	Err     error  // the item's error: a *JobError, or one wrapping ErrMalformed or ErrBadProof
}

// Error returns "batch: 2 of 5 items failed: item 1: Code: message; item 3: …".
func (e *BatchError) Error() string {
	if e == nil {
		return "batch failed (nil *BatchError)"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "batch: %d of %d items failed", len(e.Items), e.Total)
	for i, it := range e.Items {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		sb.WriteString("item ")
		sb.WriteString(strconv.Itoa(it.Index))
		if it.Code != "" {
			sb.WriteString(": ")
			sb.WriteString(it.Code)
		}
		if it.Message != "" {
			sb.WriteString(": ")
			sb.WriteString(it.Message)
		}
	}
	if e.RequestID != "" {
		sb.WriteString(" (request id ")
		sb.WriteString(e.RequestID)
		sb.WriteByte(')')
	}
	return sb.String()
}

// Unwrap returns the items' errors.
func (e *BatchError) Unwrap() []error {
	if e == nil {
		return nil
	}
	errs := make([]error, 0, len(e.Items))
	for _, it := range e.Items {
		if it.Err != nil {
			errs = append(errs, it.Err)
		}
	}
	return errs
}
