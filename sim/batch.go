package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/provenrand/entropy/httpsource"
)

// maxBatchBody bounds the body of a batch request.
const maxBatchBody = 64 << 10

// itemKinds are the fault kinds that apply to one item of a batch; random
// faults of other kinds leave items healthy.
var itemKinds = map[FaultKind]bool{
	FaultJobFailed: true, FaultJobError: true, FaultWrongLength: true, FaultBadSignature: true,
	FaultStuck: true, FaultBiased: true, FaultQueued: true, FaultMalformedJSON: true, FaultExhausted: true,
}

// ScriptItems queues faults for the items of the next batch requests, one
// per item, in order, after any still queued. An item without one is
// healthy (or draws a random fault of an item kind, if random faults are
// set). Item faults: FaultJobFailed and FaultJobError (the item is a
// failed job), FaultWrongLength, FaultBadSignature, FaultStuck, FaultBiased
// (a signed job with that flaw), FaultMalformedJSON (its entropy is not
// base64), FaultQueued (the item is queued, to poll) and FaultExhausted (the
// key's balance drops to zero: this item and the rest fail with
// QuotaExhaustedError). Whole-request faults of a batch come from Script as
// for GET /v1/entropy: FaultStatus, FaultDrop, FaultTruncate and FaultLatency
// apply to the whole answer; an item kind from Script applies to item 0.
// A fault of another kind (it cannot apply to one item) is an error, and
// then none of faults is queued.
func (s *Server) ScriptItems(faults ...Fault) error {
	for i, f := range faults {
		if f.Kind != FaultNone && !itemKinds[f.Kind] {
			return fmt.Errorf("sim: ScriptItems: fault %d: %s applies to a whole answer, not to one item of a batch (use Script)", i, f.Kind)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.itemScript = append(s.itemScript, faults...)
	return nil
}

// nextItemFault pops the item script or draws a random item fault. s.mu
// must be held.
func (s *Server) nextItemFault() Fault {
	var f Fault
	switch {
	case len(s.itemScript) > 0:
		f = s.itemScript[0]
		s.itemScript = s.itemScript[1:]
	case s.draw != nil:
		if f = s.draw.next(); !itemKinds[f.Kind] {
			f = Fault{}
		}
	}
	return f.withDefaults()
}

// serveBatch answers POST /v1/entropy/batch.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, idx int, key string, authorized bool) {
	raw, readErr := io.ReadAll(io.LimitReader(r.Body, maxBatchBody+1))
	var req httpsource.BatchRequest
	var reqErr error
	switch {
	case readErr != nil:
		reqErr = readErr
	case len(raw) > maxBatchBody:
		reqErr = fmt.Errorf("body over %d bytes", maxBatchBody)
	default:
		reqErr = json.Unmarshal(raw, &req)
	}
	nonces := make([][]byte, len(req.Items))
	total := 0
	var itemErr error
	for i, it := range req.Items {
		total += it.Size
		if it.Size < httpsource.MinSize || it.Size > httpsource.MaxSize {
			itemErr = fmt.Errorf("item %d: size must be in %d..%d", i, httpsource.MinSize, httpsource.MaxSize)
		}
		n, err := httpsource.DecodeNonce(it.Nonce)
		if err != nil && itemErr == nil {
			itemErr = fmt.Errorf("item %d: %v", i, err)
		}
		nonces[i] = n
	}
	s.mu.Lock()
	s.requests[idx].Size = total
	if !s.admitLocked(w, idx, authorized) {
		return
	}
	switch {
	case reqErr != nil:
		s.mu.Unlock()
		s.writeError(w, idx, http.StatusBadRequest, s.shape, "BadRequest", "the body must be a batch request")
		return
	case len(req.Items) == 0 || len(req.Items) > httpsource.MaxBatchItems || total > httpsource.MaxBatchBytes:
		s.mu.Unlock()
		s.writeError(w, idx, http.StatusUnprocessableEntity, s.shape, "Validation",
			fmt.Sprintf("a batch has 1..%d items of %d bytes in all at most", httpsource.MaxBatchItems, httpsource.MaxBatchBytes))
		return
	case itemErr != nil:
		s.mu.Unlock()
		s.writeError(w, idx, http.StatusUnprocessableEntity, s.shape, "Validation", itemErr.Error())
		return
	}
	f, ok := s.startFault(w, r, idx)
	if !ok {
		return
	}

	smallest := req.Items[0].Size
	for _, it := range req.Items {
		smallest = min(smallest, it.Size)
	}
	s.mu.Lock()
	if bal := s.keys[key]; bal < int64(smallest) && !itemKinds[f.Kind] {
		// Not enough left for any item: the whole request is refused.
		s.mu.Unlock()
		s.writePaymentRequired(w, idx, bal)
		return
	}
	resp := httpsource.BatchResponse{Items: make([]httpsource.JobResponse, len(req.Items))}
	items := make([]BatchItem, len(req.Items))
	for i, it := range req.Items {
		fi := s.nextItemFault()
		if i == 0 && itemKinds[f.Kind] {
			fi = f
		}
		items[i] = BatchItem{Size: it.Size, Fault: fi.Kind}
		if fi.Kind == FaultExhausted {
			s.keys[key] = 0
		}
		if s.keys[key] < int64(it.Size) {
			items[i].Failed = true
			resp.Items[i] = httpsource.JobResponse{Status: httpsource.StatusFailed, Error: &httpsource.ErrorDetail{
				Code: "QuotaExhaustedError", Message: jobMessages["QuotaExhaustedError"],
			}}
			continue
		}
		j, id := s.newJob(it.Size, nonces[i], fi)
		items[i].JobID = id
		failing := fi.Kind == FaultJobFailed || fi.Kind == FaultJobError
		if failing {
			items[i].Failed = true
			resp.Items[i] = j.response()
			if fi.Kind == FaultJobError {
				resp.Items[i].Status = httpsource.StatusError
			}
			continue
		}
		s.keys[key] -= int64(it.Size)
		if fi.Kind == FaultQueued {
			resp.Items[i] = httpsource.JobResponse{JobID: id, Status: httpsource.StatusQueued}
			continue
		}
		resp.Items[i] = j.response()
		if fi.Kind == FaultMalformedJSON {
			resp.Items[i].Entropy = "%%" + resp.Items[i].Entropy
		}
	}
	s.requests[idx].Items = items
	s.mu.Unlock()
	whole := FaultNone
	if f.Kind == FaultTruncate {
		whole = f.Kind
	}
	s.writeJSON(w, idx, http.StatusOK, resp, whole)
}
