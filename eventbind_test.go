package entropy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy/health"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/sourceerr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nonceSource is an in-memory nonceFetcher: each job carries the nonce it
// was asked with (a v2 proof without a real signature). It notes, for each
// request, whether the journal held the request's attempt when it was sent,
// and fails the first failFirst requests.
type nonceSource struct {
	j *memJournal

	mu          sync.Mutex
	jobs        int
	failFirst   int
	nonces      [][]byte
	journalled  []bool
	plainCalled int
	refuse      error // every request fails with it
}

func (s *nonceSource) Fetch(ctx context.Context, n int) (Block, error) {
	s.mu.Lock()
	s.plainCalled++
	s.mu.Unlock()
	return s.block(n, nil), nil
}

func (s *nonceSource) FetchNonce(ctx context.Context, n int, nonce []byte) (Block, error) {
	s.mu.Lock()
	s.nonces = append(s.nonces, bytes.Clone(nonce))
	s.journalled = append(s.journalled, s.j == nil || s.j.hasAttempt(nonce))
	fail := s.failFirst > 0
	if fail {
		s.failFirst--
	}
	refused := s.refuse
	s.mu.Unlock()
	if refused != nil {
		return Block{}, refused
	}
	if fail {
		return Block{}, errors.New("service busy: HTTP 503")
	}
	return s.block(n, nonce), nil
}

func (s *nonceSource) block(n int, nonce []byte) Block {
	s.mu.Lock()
	s.jobs++
	id := fmt.Sprintf("job-%d", s.jobs)
	s.mu.Unlock()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	b := Block{Data: data, Source: "quantropy", JobID: id, Verifiable: true}
	if nonce != nil {
		b.Evidence = &Proof{Scheme: evidence.SchemeReferenceV2, Nonce: bytes.Clone(nonce), Size: n,
			Timestamp: time.Now().UTC().Format(time.RFC3339Nano), Signature: make([]byte, 64)}
	}
	return b
}

func (s *nonceSource) requests() ([][]byte, []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nonces, s.journalled
}

// Contract point 8 with a source that binds jobs: an event's bytes are a
// job of their own whose nonce is evidence.EventNonce(event, params, salt), every
// request was in the journal before it was sent, the record carries the
// salt, the params and the proof, and the journal holds them.
func TestEventJobIsBoundToEventAndParams(t *testing.T) {
	j := newMemJournal()
	src := &nonceSource{j: j, failFirst: 2}
	p := newTestProvider(t, src, fast(WithJournal(j), WithRetry(4, time.Millisecond, 2*time.Millisecond))...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	params := []byte("provenrand-draw/1;kind=pick;n=49;k=6")
	b := make([]byte, 32)
	rec, err := p.ReadEvent(ctx, "lotto-2026-12-05", params, b)
	require.NoError(t, err)
	require.NotNil(t, rec.Proof)
	assert.Len(t, rec.Salt, evidence.SaltSize)
	assert.Equal(t, params, rec.Params)
	assert.Equal(t, evidence.EventNonce("lotto-2026-12-05", params, rec.Salt), rec.Proof.Nonce, "the job's nonce is the event's")
	assert.Equal(t, b, rec.Data)
	require.Len(t, rec.Proof.Data, health.AptWindow, "a job the health tests can judge")
	assert.Equal(t, b, rec.Proof.Data[:32], "the event's bytes are the job's first")
	require.Len(t, rec.Label.Spans, 1)
	assert.Equal(t, Span{Source: "quantropy", JobID: rec.Proof.JobID, Length: 32}, rec.Label.Spans[0])

	nonces, journalled := src.requests()
	require.Len(t, nonces, 3, "two failed requests, then the one used")
	for i, ok := range journalled {
		assert.True(t, ok, "request %d was sent before its attempt was journalled", i)
	}
	assert.NotEqual(t, nonces[0], nonces[1], "each request has a salt of its own")
	j.mu.Lock()
	attempts := append([]EventAttempt(nil), j.attempts...)
	stored := j.events["lotto-2026-12-05"]
	j.mu.Unlock()
	require.Len(t, attempts, 3, "every attempt is listed, the unused ones too")
	for _, a := range attempts {
		assert.Equal(t, evidence.EventNonce(a.Event, a.Params, a.Salt), a.Nonce)
		assert.Equal(t, params, a.Params)
	}
	assert.Equal(t, rec.Salt, attempts[2].Salt, "the record names the attempt whose job it used")
	assert.Equal(t, rec.Salt, stored.Salt)
	require.NotNil(t, stored.Proof)
	assert.NoError(t, checkEventRecord("lotto-2026-12-05", stored))

	// The same event again: the same record, no request.
	b2 := make([]byte, 32)
	rec2, err := p.ReadEvent(ctx, "lotto-2026-12-05", params, b2)
	require.NoError(t, err)
	assert.Equal(t, b, b2)
	assert.Equal(t, rec.Salt, rec2.Salt)
	lb, err := p.ReadFor(ctx, "lotto-2026-12-05", b2)
	require.NoError(t, err)
	assert.Equal(t, rec.Label, lb)
	nonces, _ = src.requests()
	assert.Len(t, nonces, 3, "a drawn event sends no request")

	// Other parameters: refused, nothing handed out.
	_, err = p.ReadEvent(ctx, "lotto-2026-12-05", []byte("provenrand-draw/1;kind=pick;n=49;k=5"), make([]byte, 32))
	assert.ErrorIs(t, err, ErrEventParams)
	assert.Equal(t, uint64(32), p.Stats().VerifiableBytes, "the event's bytes were served once")
}

// A journal that refuses an attempt ends the event's draw: the request is
// not sent, nothing is handed out, and a later call draws anew.
func TestEventAttemptRefusedByJournalSendsNothing(t *testing.T) {
	j := newMemJournal()
	j.failAttempt = errors.New("disk full")
	src := &nonceSource{j: j}
	p := newTestProvider(t, src, fast(WithJournal(j))...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := bytes.Repeat([]byte{0xaa}, 32)
	_, err := p.ReadEvent(ctx, "raffle", nil, b)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk full")
	assert.Equal(t, make([]byte, 32), b, "nothing handed out")
	nonces, _ := src.requests()
	assert.Empty(t, nonces, "no request without its attempt in the journal")

	j.mu.Lock()
	j.failAttempt = nil
	j.mu.Unlock()
	rec, err := p.ReadEvent(ctx, "raffle", nil, b)
	require.NoError(t, err)
	require.NotNil(t, rec.Proof)
	nonces, journalled := src.requests()
	assert.Equal(t, []bool{true}, journalled)
	assert.Equal(t, rec.Proof.Nonce, nonces[0])
}

// A journal record whose proof's nonce is not its event's (a job made for
// something else, spliced in) is refused, not returned.
func TestEventRecordWithForeignJobRefused(t *testing.T) {
	salt := make([]byte, evidence.SaltSize)
	data := []byte{1, 2, 3, 4}
	rec := EventRecord{
		Event: "lotto", Data: data, Salt: salt,
		Label: Label{Verifiable: true, Spans: []Span{{Source: "quantropy", JobID: "job-1", Length: 4}}},
		Proof: &Proof{Scheme: evidence.SchemeReferenceV2, Source: "quantropy", JobID: "job-1", Data: data, Nonce: evidence.EventNonce("lotto", nil, salt)},
	}
	require.NoError(t, checkEventRecord("lotto", rec))
	other := rec.Clone()
	other.Proof.Nonce = evidence.EventNonce("another-event", nil, salt)
	assert.Error(t, checkEventRecord("lotto", other))
	other = rec.Clone()
	other.Params = []byte("other params")
	assert.Error(t, checkEventRecord("lotto", other))
	other = rec.Clone()
	other.Proof.Data = []byte{9, 9, 9, 9}
	assert.Error(t, checkEventRecord("lotto", other))
	other = rec.Clone()
	other.Proof = nil
	assert.Error(t, checkEventRecord("lotto", other), "a salt without a proof")
}

// An event draw waits out outages until ctx ends, but a source that refuses
// for good (a key the service does not know) ends it at once with the
// service's error: no draw, no bytes, and no wait for the deadline.
func TestEventDrawEndsOnAPermanentError(t *testing.T) {
	refusal := fmt.Errorf("%w: HTTP 401: unknown API key", ErrPermanent)
	src := &nonceSource{refuse: refusal}
	p := newTestProvider(t, src, fast()...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b := make([]byte, 32)
	_, err := p.ReadFor(ctx, "lotto", b)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrPermanent)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.NoError(t, ctx.Err(), "the draw ended before its deadline")
	assert.Equal(t, make([]byte, 32), b)
	_, _, err = p.ReadProven(ctx, b)
	assert.ErrorIs(t, err, ErrPermanent)
	assert.NoError(t, ctx.Err())
}

// wrongNonceSource answers every bound request with a job carrying another
// nonce than the one it was asked with.
type wrongNonceSource struct{ *nonceSource }

func (s wrongNonceSource) FetchNonce(ctx context.Context, n int, nonce []byte) (Block, error) {
	return s.nonceSource.FetchNonce(ctx, n, append(bytes.Clone(nonce), 0))
}

// An event's job that does not carry the nonce it was asked with is not
// handed out, and its bytes, accepted from the source, are all accounted
// for: the event's length in EventBytesDiscarded, the rest of the job in
// ProvenBytesDiscarded.
func TestEventJobWithAnotherNonceIsDiscarded(t *testing.T) {
	p := newTestProvider(t, wrongNonceSource{&nonceSource{}}, fast(WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096) // the refill is idle
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := bytes.Repeat([]byte{0xaa}, 32)
	_, err := p.ReadFor(ctx, "raffle", b)
	require.ErrorIs(t, err, sourceerr.ErrBadProof)
	assert.Equal(t, make([]byte, 32), b, "nothing handed out")
	st := p.Stats()
	assert.Zero(t, st.VerifiableBytes)
	assert.Equal(t, uint64(32), st.EventBytesDiscarded)
	assert.Equal(t, uint64(health.AptWindow-32), st.ProvenBytesDiscarded)
	assert.Equal(t, st.Sources[0].BytesAccepted, uint64(st.Pooled)+st.EventBytesDiscarded+st.ProvenBytesDiscarded)
}
