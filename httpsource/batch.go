package httpsource

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/provenrand/entropy"
)

// FetchBatch asks the service for one job of each size in one request
// (POST /v1/entropy/batch, docs/protocol.md) and returns the blocks of the
// items that passed every check Fetch makes (each item is a job of its own,
// with its own nonce, signed as an answer of GET /v1/entropy), in the order
// of sizes: a Provider refills from it with batches (see entropy.WithBatch).
//
// If some items failed (the service answered them with an error, or a check
// refused them), the error is a *BatchError listing them with their
// index, code and message, returned together with the good blocks. Any other
// error is a failure of the whole request, as Fetch would return it, with no
// blocks. Queued items are polled one after the other.
//
// A service without the batch request (it answers the batch path with 404,
// 405 or 501) gets an error that matches ErrBatchUnsupported as well
// as the answer's *entropy.APIError: a Provider then sends it single
// requests.
func (s *Source) FetchBatch(ctx context.Context, sizes []int) ([]entropy.Block, error) {
	if s.client == nil {
		return nil, errNotMade
	}
	if len(sizes) == 0 || len(sizes) > MaxBatchItems {
		return nil, fmt.Errorf("httpsource: batch of %d items: want 1..%d: %w", len(sizes), MaxBatchItems, entropy.ErrPermanent)
	}
	total := 0
	for _, n := range sizes {
		if n < MinSize || n > MaxSize {
			return nil, fmt.Errorf("httpsource: batch item size %d outside %d..%d: %w", n, MinSize, MaxSize, entropy.ErrPermanent)
		}
		total += n
	}
	if total > MaxBatchBytes {
		return nil, fmt.Errorf("httpsource: batch of %d bytes, more than %d: %w", total, MaxBatchBytes, entropy.ErrPermanent)
	}
	nonces := make([][]byte, len(sizes))
	req := BatchRequest{Items: make([]BatchRequestItem, len(sizes))}
	for i, n := range sizes {
		nonce, err := s.newNonce()
		if err != nil {
			return nil, err
		}
		nonces[i] = nonce
		req.Items[i] = BatchRequestItem{Size: n, Nonce: EncodeNonce(nonce)}
	}
	pub, err := s.FetchPublicKey(ctx)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("httpsource: batch request: %w", err)
	}
	sent := s.now()
	buf, body, hdr, err := s.send(ctx, http.MethodPost, BatchPath, "", payload)
	if err != nil {
		var ae *entropy.APIError
		if errors.As(err, &ae) && noBatchStatus(ae.StatusCode) {
			return nil, fmt.Errorf("httpsource: %w: %w", ErrBatchUnsupported, err)
		}
		return nil, err
	}
	defer releaseBuffer(buf)
	var resp struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, s.malformed(BatchPath, hdr, "batch JSON: %v", err)
	}
	if len(resp.Items) != len(sizes) {
		return nil, s.malformed(BatchPath, hdr, "batch answer has %d items, asked for %d", len(resp.Items), len(sizes))
	}
	s.noteQuota(http.StatusOK, hdr, body)
	// Each item is read with only the answer's request ID for headers: the
	// answer's Content-Type and the binary form's headers are not the item's.
	itemHdr := http.Header{}
	if v := hdr[RequestIDHeader]; len(v) > 0 {
		itemHdr[RequestIDHeader] = v
	}
	var blocks []entropy.Block
	var failed []BatchItemError
	for i, raw := range resp.Items {
		blk, err := s.batchItem(ctx, itemHdr, raw, pub, sizes[i], &binding{nonce: nonces[i], sent: sent})
		if err != nil {
			failed = append(failed, batchItemError(i, err))
			continue
		}
		blocks = append(blocks, blk)
	}
	if len(failed) > 0 {
		return blocks, &BatchError{Total: len(sizes), Items: failed, RequestID: s.requestID(hdr)}
	}
	return blocks, nil
}

// BatchLimits returns MaxBatchItems and MaxBatchBytes: a Provider keeps
// its batches within them.
func (s *Source) BatchLimits() (items, bytes int) { return MaxBatchItems, MaxBatchBytes }

// noBatchStatus reports whether an answer of status to a batch request says
// the service has no such request: the path is unknown (404), the method is
// not allowed on it (405), or the server does not implement it (501).
func noBatchStatus(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}

// batchItem reads and checks one item of a batch answer.
func (s *Source) batchItem(ctx context.Context, hdr http.Header, raw []byte, pub ed25519.PublicKey, n int, want *binding) (entropy.Block, error) {
	if j, err := parseJob(raw); err == nil && j.Status == StatusFailed && j.JobID == "" {
		// An item that never became a job has no ID to give.
		return entropy.Block{}, s.jobError(j, hdr)
	}
	resp, err := s.decodeJob(BatchPath, hdr, raw, "")
	if err != nil {
		return entropy.Block{}, err
	}
	var job Job
	switch resp.Status {
	case StatusFailed:
		return entropy.Block{}, s.jobError(resp, hdr)
	case StatusQueued, StatusRunning:
		job, err = s.poll(ctx, resp.JobID, 0, pub, n, want)
	default:
		job, err = s.completed(BatchPath, hdr, resp, pub, n, want)
	}
	if err != nil {
		return entropy.Block{}, err
	}
	return s.block(job), nil
}

// batchItemError describes failed item i of a batch.
func batchItemError(i int, err error) BatchItemError {
	it := BatchItemError{Index: i, Err: err, Message: err.Error()}
	var je *entropy.JobError
	if errors.As(err, &je) {
		it.Code, it.Message = je.Code, je.Message
	}
	return it
}
