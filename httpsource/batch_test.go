package httpsource_test

// Batches with partial failures: POST /v1/entropy/batch
// answers one item per size, each a job of its own or an error; the source
// returns the items that passed every check and a *httpsource.BatchError
// naming the others. Against the simulator and a handler written here.

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// batchFailures indexes the failed items of a batch error.
func batchFailures(t *testing.T, err error) map[int]httpsource.BatchItemError {
	t.Helper()
	var be *httpsource.BatchError
	require.ErrorAs(t, err, &be)
	assert.ErrorAs(t, err, new(*httpsource.BatchError))
	out := map[int]httpsource.BatchItemError{}
	for _, it := range be.Items {
		out[it.Index] = it
	}
	return out
}

func TestBatchFromTheSimulatorReturnsTheGoodItems(t *testing.T) {
	s, src := simSource(t)
	s.ScriptItems(
		sim.Kind(sim.FaultNone),
		sim.JobFailure("QuantumComputerError"),
		sim.Kind(sim.FaultBadSignature),
		sim.Kind(sim.FaultNone),
		sim.JobErrorStatus("QuotaExhaustedError"),
		sim.Kind(sim.FaultWrongLength),
		sim.Kind(sim.FaultMalformedJSON),
		sim.Kind(sim.FaultQueued),
	)
	sizes := []int{64, 64, 64, 32, 64, 64, 64, 48}
	blocks, err := src.FetchBatch(context.Background(), sizes)
	failed := batchFailures(t, err)

	require.Len(t, blocks, 3, "items 0, 3 and 7 (queued, then polled)")
	assert.Len(t, blocks[0].Data, 64)
	assert.Len(t, blocks[1].Data, 32)
	assert.Len(t, blocks[2].Data, 48)
	seen := map[string]bool{}
	for _, b := range blocks {
		assert.True(t, b.Verifiable)
		require.NotNil(t, b.Evidence)
		assert.True(t, httpsource.VerifySignatureV2(s.PublicKey(), b.JobID, b.Evidence.Nonce, len(b.Data), b.Evidence.Timestamp, b.Data, b.Proof),
			"every item is signed as a job of its own")
		assert.False(t, seen[string(b.Evidence.Nonce)], "every item has its own nonce")
		seen[string(b.Evidence.Nonce)] = true
	}

	require.Len(t, failed, 5)
	assert.Equal(t, "QuantumComputerError", failed[1].Code)
	assert.Equal(t, entropy.Transient, entropy.Classify(failed[1].Err))
	assert.ErrorIs(t, failed[2].Err, httpsource.ErrBadProof)
	assert.Equal(t, "QuotaExhaustedError", failed[4].Code)
	assert.Equal(t, entropy.Permanent, entropy.Classify(failed[4].Err))
	assert.ErrorIs(t, failed[5].Err, httpsource.ErrMalformed)
	assert.ErrorIs(t, failed[6].Err, httpsource.ErrMalformed)
	var je *entropy.JobError
	assert.ErrorAs(t, err, &je, "the batch error unwraps to its items")
	reqs := s.Requests()
	var batch sim.Request
	for _, r := range reqs {
		if r.Path == httpsource.BatchPath {
			batch = r
		}
	}
	assert.Equal(t, batch.RequestID, httpsource.RequestID(err))
	assert.Len(t, batch.Items, 8)
	assert.Contains(t, err.Error(), "5 of 8 items failed")
}

func TestBatchBalanceSpentMidway(t *testing.T) {
	s := sim.New(sim.WithSeed(19), sim.WithKey(testKey, 200))
	t.Cleanup(func() { _ = s.Close() })
	src, err := s.Source(httpsource.WithAPIKey(testKey))
	require.NoError(t, err)
	blocks, err := src.FetchBatch(context.Background(), []int{64, 64, 64, 64, 64})
	failed := batchFailures(t, err)
	assert.Len(t, blocks, 3, "200 bytes pay for three items of 64")
	require.Len(t, failed, 2)
	for _, i := range []int{3, 4} {
		assert.Equal(t, "QuotaExhaustedError", failed[i].Code)
		assert.ErrorIs(t, failed[i].Err, httpsource.ErrQuotaExhausted)
	}
	// Nothing left: the next batch is refused whole.
	blocks, err = src.FetchBatch(context.Background(), []int{64, 64})
	assert.Nil(t, blocks)
	assert.ErrorIs(t, err, httpsource.ErrPaymentRequired)
	assert.False(t, errors.As(err, new(*httpsource.BatchError)))
}

func TestBatchWholeRequestFailures(t *testing.T) {
	for _, tc := range []struct {
		fault sim.Fault
		is    error
	}{
		{sim.Status(503, sim.ShapeNested, "1"), httpsource.ErrServiceUnavailable},
		{sim.Status(401, sim.ShapeText, ""), httpsource.ErrUnauthorized},
		{sim.Kind(sim.FaultTruncate), httpsource.ErrMalformed},
		{sim.Kind(sim.FaultDrop), nil}, // a *httpsource.ConnError
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			s, src := simSource(t)
			s.Script(tc.fault)
			blocks, err := src.FetchBatch(context.Background(), []int{32, 32})
			assert.Nil(t, blocks)
			if tc.is == nil {
				assert.ErrorAs(t, err, new(*httpsource.ConnError))
			} else {
				assert.ErrorIs(t, err, tc.is)
			}
			assert.False(t, errors.As(err, new(*httpsource.BatchError)), "a whole-request failure is no partial batch")
		})
	}
}

func TestBatchRefusesBadRequestsBeforeSending(t *testing.T) {
	s, src := simSource(t)
	for _, sizes := range [][]int{nil, make([]int, httpsource.MaxBatchItems+1), {0}, {httpsource.MaxSize + 1}, {65536, 65536, 65536, 65536, 1}} {
		for i := range sizes {
			if sizes[i] == 0 && len(sizes) > 1 {
				sizes[i] = 1
			}
		}
		_, err := src.FetchBatch(context.Background(), sizes)
		require.Error(t, err, "%v", len(sizes))
		assert.Equal(t, entropy.Permanent, entropy.Classify(err))
	}
	assert.Empty(t, s.Requests())
}

// handBatch is a batch service written here from docs/protocol.md: each
// item signed in protocol v2 with its own nonce, answer items scripted.
type handBatch struct {
	t    *testing.T
	priv ed25519.PrivateKey
	// item answers item i of a request for size with nonce (hex); nil
	// answers a signed job.
	item func(i, size int, nonce string) any
	// count, if set, changes the number of items answered.
	count func(n int) int
	// single, if set, is told of every job of GET /v1/entropy.
	single func(id string, data []byte)
	// noBatch, if set, is the status every batch request gets: a service
	// without the batch request.
	noBatch int

	mu      sync.Mutex
	singles int
	posts   int
}

func (h *handBatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/v1/entropy" {
		// A single job, for a refill with room for one block only.
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		data := make([]byte, size)
		_, _ = crand.Read(data)
		h.mu.Lock()
		h.singles++
		id := fmt.Sprintf("single-%d", h.singles)
		h.mu.Unlock()
		if h.single != nil {
			h.single(id, data)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.signed(id, r.URL.Query().Get("nonce"), data))
		return
	}
	if r.URL.Path == "/v1/entropy/batch" {
		h.mu.Lock()
		h.posts++
		h.mu.Unlock()
		if h.noBatch != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(h.noBatch)
			fmt.Fprint(w, `{"error":{"code":"NotFound","message":"no such route"}}`)
			return
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/entropy/batch" || r.Header.Get("Authorization") != "Bearer "+testKey ||
		r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Items []struct {
			Size  int    `json:"size"`
			Nonce string `json:"nonce"`
		} `json:"items"`
	}
	if json.Unmarshal(body, &req) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var items []any
	for i, it := range req.Items {
		if h.item != nil {
			if v := h.item(i, it.Size, it.Nonce); v != nil {
				items = append(items, v)
				continue
			}
		}
		items = append(items, h.signed(fmt.Sprintf("hb-%d", i), it.Nonce, pattern(it.Size)))
	}
	if h.count != nil {
		n := h.count(len(items))
		for len(items) < n {
			items = append(items, items[0])
		}
		items = items[:n]
	}
	w.Header().Set("X-Request-Id", "rid-batch")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
}

// signed is a completed job of data for nonce, signed by hand.
func (h *handBatch) signed(id, nonce string, data []byte) map[string]string {
	return map[string]string{
		"job_id": id, "status": "completed", "entropy": base64.StdEncoding.EncodeToString(data), "nonce": nonce,
		"timestamp": fakeStamp, "signature": base64.StdEncoding.EncodeToString(ed25519.Sign(h.priv, signedV2(h.t, id, nonce, len(data), fakeStamp, data))),
	}
}

func newHandBatch(t *testing.T, item func(i, size int, nonce string) any) (*handBatch, *httpsource.Source) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	h := &handBatch{t: t, priv: priv, item: item}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, newSource(t, srv, httpsource.WithPublicKey(priv.Public().(ed25519.PublicKey)))
}

// servedJobs keeps the data of every job a hand-written service made, to
// check what a Provider hands out against. It is safe for concurrent use.
type servedJobs struct {
	mu   sync.Mutex
	jobs map[string][]byte
}

// add keeps the data of job id.
func (s *servedJobs) add(id string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs = map[string][]byte{}
	}
	s.jobs[id] = data
}

// check requires that the spans of lbl, in order, name jobs served and
// that buf holds each job's bytes at its span.
func (s *servedJobs) check(t *testing.T, lbl entropy.Label, buf []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	off := 0
	for _, sp := range lbl.Spans {
		data, ok := s.jobs[sp.JobID]
		require.True(t, ok, "span of job %s that the service never made", sp.JobID)
		assert.Equal(t, data[sp.Offset:sp.Offset+sp.Length], buf[off:off+sp.Length])
		off += sp.Length
	}
}

func TestBatchFromAHandWrittenService(t *testing.T) {
	var other string
	h, src := newHandBatch(t, nil)
	h.item = func(i, size int, nonce string) any {
		switch i {
		case 1:
			return map[string]any{"status": "failed", "error": map[string]string{"code": "TooManyShots", "message": "too many"}}
		case 2:
			return map[string]any{"job_id": "hb-2", "status": "error", "code": "QuantumComputerError", "message": "qpu", "details": []any{map[string]string{"field": "qpu", "message": "lost"}}}
		case 3:
			other = nonce
			return nil
		case 4:
			// Signed for item 3's nonce: a replay of another request's job.
			return h.signed("hb-4", other, pattern(size))
		}
		return nil
	}
	blocks, err := src.FetchBatch(context.Background(), []int{16, 16, 16, 16, 16, 24})
	failed := batchFailures(t, err)
	require.Len(t, blocks, 3)
	assert.Equal(t, []string{"hb-0", "hb-3", "hb-5"}, []string{blocks[0].JobID, blocks[1].JobID, blocks[2].JobID})
	assert.Len(t, blocks[2].Data, 24)
	require.Len(t, failed, 3)
	assert.Equal(t, "TooManyShots", failed[1].Code)
	assert.Equal(t, "too many", failed[1].Message)
	assert.Equal(t, entropy.Permanent, entropy.Classify(failed[1].Err))
	assert.Equal(t, "QuantumComputerError", failed[2].Code)
	var je *entropy.JobError
	require.ErrorAs(t, failed[2].Err, &je)
	assert.Equal(t, []entropy.ErrorItem{{Field: "qpu", Message: "lost"}}, je.Details)
	assert.Equal(t, "rid-batch", je.RequestID)
	assert.ErrorIs(t, failed[4].Err, httpsource.ErrBadProof, "a job signed for another item's nonce")
	assert.Equal(t, "rid-batch", httpsource.RequestID(err))
}

func TestBatchWithTheWrongNumberOfItemsIsMalformed(t *testing.T) {
	for _, delta := range []int{-1, +1} {
		h, src := newHandBatch(t, nil)
		h.count = func(n int) int { return n + delta }
		if delta > 0 {
			h.item = func(i, size int, nonce string) any { return nil }
		}
		blocks, err := src.FetchBatch(context.Background(), []int{8, 8, 8})
		assert.Nil(t, blocks, "%+d items", delta)
		assert.ErrorIs(t, err, httpsource.ErrMalformed, "%+d items", delta)
		assert.False(t, errors.As(err, new(*httpsource.BatchError)))
	}
}

func TestBatchWaitsOnTheContext(t *testing.T) {
	s, src := simSource(t)
	s.ScriptItems(sim.Fault{Kind: sim.FaultQueued, Polls: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := src.FetchBatch(ctx, []int{16, 16})
	failed := batchFailures(t, err)
	assert.ErrorIs(t, failed[0].Err, context.DeadlineExceeded)
	assert.True(t, errors.Is(err, httpsource.ErrTimeout))
}

func TestProviderRefillsFromBatchesOfAHandWrittenService(t *testing.T) {
	h, src := newHandBatch(t, nil)
	var served servedJobs
	var mu sync.Mutex
	batches := 0
	h.item = func(i, size int, nonce string) any {
		mu.Lock()
		defer mu.Unlock()
		if i == 0 {
			batches++
		}
		if i == 1 {
			return map[string]any{"status": "failed", "error": map[string]string{"code": "HardwareUnavailable", "message": "down"}}
		}
		id := fmt.Sprintf("hp-%d-%d", batches, i)
		data := make([]byte, size)
		_, _ = crand.Read(data)
		served.add(id, data)
		return h.signed(id, nonce, data)
	}
	h.single = served.add
	// The default configuration: batches, since the source offers them.
	p, err := entropy.New(src, entropy.WithBufferSize(4096), entropy.WithFetchSize(1024))
	require.NoError(t, err)
	defer p.Close()
	require.Eventually(t, func() bool { return p.Stats().Pooled == 4096 }, 10*time.Second, time.Millisecond)
	st := p.Stats().Sources[0]
	assert.Equal(t, uint64(2), st.Requests, "a batch of 4 (3 good), then the one block left room for, fetched alone")
	assert.Equal(t, uint64(1), st.BatchItemsFailed)
	assert.Equal(t, uint64(1), st.Failures)
	assert.Equal(t, uint64(0), st.Retries)

	buf := make([]byte, 4096)
	lbl, err := p.ReadLabelled(context.Background(), buf)
	require.NoError(t, err)
	served.check(t, lbl, buf)
}

// A service without the batch request answers the batch path 404, 405 or
// 501: the error says so (httpsource.ErrBatchUnsupported) and keeps the
// answer's *entropy.APIError; any other status is an ordinary failure.
func TestBatchUnsupportedByTheService(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusBadRequest} {
		h, src := newHandBatch(t, nil)
		h.noBatch = status
		blocks, err := src.FetchBatch(context.Background(), []int{16, 16})
		assert.Nil(t, blocks)
		var ae *entropy.APIError
		require.ErrorAs(t, err, &ae, "%d", status)
		assert.Equal(t, status, ae.StatusCode)
		assert.Equal(t, status != http.StatusBadRequest, errors.Is(err, httpsource.ErrBatchUnsupported), "%d: %v", status, err)
		assert.False(t, errors.As(err, new(*httpsource.BatchError)))
	}
}

// A Provider over a service without the batch request asks for one batch,
// then refills with single requests: verifiable bytes, no failure, the
// breaker closed.
func TestProviderRefillsWithSinglesFromAServiceWithoutBatches(t *testing.T) {
	h, src := newHandBatch(t, nil)
	h.noBatch = http.StatusNotFound
	var served servedJobs
	h.single = served.add
	p, err := entropy.New(src, entropy.WithPolicy(entropy.Fail), entropy.WithRateLimit(rate.Inf, 1), entropy.WithBufferSize(4096), entropy.WithFetchSize(1024))
	require.NoError(t, err)
	defer p.Close()
	require.Eventually(t, func() bool { return p.Stats().Pooled == 4096 }, 10*time.Second, time.Millisecond)
	buf := make([]byte, 4096)
	lbl, err := p.ReadLabelled(context.Background(), buf)
	require.NoError(t, err)
	require.True(t, lbl.Verifiable)
	require.Eventually(t, func() bool { return p.Stats().Pooled == 4096 }, 10*time.Second, time.Millisecond)
	st := p.Stats().Sources[0]
	assert.Equal(t, "closed", st.Breaker)
	assert.Zero(t, st.Failures)
	assert.NoError(t, st.LastError)
	h.mu.Lock()
	assert.Equal(t, 1, h.posts, "one batch request, never a second")
	assert.Equal(t, 8, h.singles)
	h.mu.Unlock()
	served.check(t, lbl, buf)
}

// A Provider keeps its batches within the protocol's limits
// (Source.BatchLimits): blocks of the largest size, with a batch size above
// what 256 KiB holds, go out four to a batch, and the service never
// refuses one.
func TestProviderBatchesStayWithinTheProtocolsLimits(t *testing.T) {
	s, src := simSource(t)
	p, err := entropy.New(src, entropy.WithPolicy(entropy.Fail), entropy.WithRateLimit(rate.Inf, 1),
		entropy.WithBatch(8), entropy.WithFetchSize(httpsource.MaxSize), entropy.WithBufferSize(8*httpsource.MaxSize))
	require.NoError(t, err)
	defer p.Close()
	require.Eventually(t, func() bool { return p.Stats().Pooled == 8*httpsource.MaxSize }, 20*time.Second, time.Millisecond)
	st := p.Stats().Sources[0]
	assert.Zero(t, st.Failures)
	reqs := s.EntropyRequests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		assert.Equal(t, httpsource.BatchPath, r.Path)
		assert.Equal(t, http.StatusOK, r.Status)
		assert.Len(t, r.Items, httpsource.MaxBatchBytes/httpsource.MaxSize)
	}
}
