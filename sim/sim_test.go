package sim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const key = "sk-sim-test-0123456789abcdef"

// start starts a server with a test key and returns it with a client source.
func start(t *testing.T, opts ...sim.Option) (*sim.Server, *httpsource.Source) {
	t.Helper()
	s := sim.New(append([]sim.Option{sim.WithSeed(1), sim.WithKey(key, 1<<30)}, opts...)...)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	src, err := s.Source(httpsource.WithAPIKey(key), httpsource.WithPollInterval(time.Millisecond, 5*time.Millisecond))
	require.NoError(t, err)
	return s, src
}

func TestHealthyJobIsVerifiableAndKept(t *testing.T) {
	s, src := start(t)
	b, err := src.Fetch(context.Background(), 32)
	require.NoError(t, err)
	assert.Len(t, b.Data, 32)
	assert.True(t, b.Verifiable)
	assert.Equal(t, sim.SourceName, b.Source)
	require.NotNil(t, b.Evidence)
	e := b.Evidence
	assert.True(t, httpsource.VerifySignatureV2(s.PublicKey(), b.JobID, e.Nonce, 32, e.Timestamp, b.Data, b.Proof), "signed in protocol v2")
	assert.False(t, httpsource.VerifySignature(s.PublicKey(), b.JobID, b.Data, b.Proof), "not in v1")

	j, err := src.Job(context.Background(), b.JobID)
	require.NoError(t, err)
	assert.True(t, j.Verified)
	assert.Equal(t, b.Data, j.Data)
	assert.Equal(t, e.Nonce, j.Nonce, "the auditor's lookup gives the request's nonce")
	assert.Equal(t, e.Timestamp, j.Timestamp)

	final, ok := s.Job(b.JobID)
	require.True(t, ok)
	assert.Equal(t, httpsource.StatusCompleted, final.Status)

	reqs := s.EntropyRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, 32, reqs[0].Size)
	assert.True(t, reqs[0].Authorized)
	assert.Equal(t, http.StatusOK, reqs[0].Status)
	assert.Equal(t, "req-000001", reqs[0].RequestID)
	bal, _ := s.Balance(key)
	assert.Equal(t, int64(1<<30-32), bal)
}

func TestSeedMakesServerDeterministic(t *testing.T) {
	run := func() ([]byte, string, []byte) {
		s := sim.New(sim.WithSeed(42), sim.WithKey(key, 1000))
		defer s.Close()
		src, err := s.Source(httpsource.WithAPIKey(key))
		require.NoError(t, err)
		b, err := src.Fetch(context.Background(), 16)
		require.NoError(t, err)
		return s.PublicKey(), b.JobID, b.Data
	}
	k1, id1, d1 := run()
	k2, id2, d2 := run()
	assert.Equal(t, k1, k2)
	assert.Equal(t, id1, id2)
	assert.Equal(t, d1, d2)

	other := sim.New(sim.WithSeed(43))
	assert.NotEqual(t, k1, other.PublicKey())
}

func TestUnknownOrMissingKeyIs401(t *testing.T) {
	s, _ := start(t)
	for _, opts := range [][]httpsource.Option{
		{httpsource.WithAPIKey("sk-wrong-key")},
		{},
	} {
		src, err := httpsource.New(s.URL(), opts...)
		require.NoError(t, err)
		_, err = src.Fetch(context.Background(), 8)
		assert.ErrorIs(t, err, httpsource.ErrUnauthorized)
	}
	for _, r := range s.Requests() {
		assert.False(t, r.Authorized)
		assert.Equal(t, http.StatusUnauthorized, r.Status)
		assert.NotContains(t, fmt.Sprintf("%#v", r), "sk-wrong-key", "requests never keep the key text")
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func TestXAPIKeyHeaderIsAccepted(t *testing.T) {
	s, _ := start(t)
	req, err := http.NewRequest(http.MethodGet, s.URL()+"/v1/entropy?size=4", nil)
	require.NoError(t, err)
	req.Header.Set("X-API-Key", key)
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	res, err := c.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
}

func TestBalanceIsSpentThen402(t *testing.T) {
	s, src := start(t)
	s.AddKey(key, 64)
	for i := 0; i < 2; i++ {
		_, err := src.Fetch(context.Background(), 32)
		require.NoError(t, err)
	}
	_, err := src.Fetch(context.Background(), 1)
	assert.ErrorIs(t, err, httpsource.ErrPaymentRequired)
	assert.ErrorIs(t, err, httpsource.ErrQuotaExhausted)
	assert.Equal(t, entropy.Permanent, entropy.Classify(err))
	bal, ok := s.Balance(key)
	assert.True(t, ok)
	assert.Zero(t, bal)
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	s, src := start(t, sim.WithRateLimit(0.5, 1))
	_, err := src.Fetch(context.Background(), 8)
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), 8)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusTooManyRequests, ae.StatusCode)
	assert.GreaterOrEqual(t, ae.RetryAfter, time.Second)
	assert.LessOrEqual(t, ae.RetryAfter, 2*time.Second)
	reqs := s.EntropyRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, sim.FaultNone, reqs[1].Fault, "a refused request consumes no fault")
}

// TestHugeRetryAfterRecordedAsLongestHold: a scripted Retry-After too big
// for a duration (400 digits, 1e400) is recorded as the longest hold, as the
// client reads it, not as no hold.
func TestHugeRetryAfterRecordedAsLongestHold(t *testing.T) {
	s, src := start(t)
	for _, v := range []string{strings.Repeat("9", 400), "1e400"} {
		s.Script(sim.Status(http.StatusServiceUnavailable, sim.ShapeNested, v))
		_, err := src.Fetch(context.Background(), 32)
		var ae *entropy.APIError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, time.Duration(math.MaxInt64), ae.RetryAfter, "client, Retry-After %q", v)
		reqs := s.EntropyRequests()
		assert.Equal(t, time.Duration(math.MaxInt64), reqs[len(reqs)-1].RetryAfter, "simulator, Retry-After %q", v)
	}
}

func TestQueuedJobIsPolledToCompletion(t *testing.T) {
	s, src := start(t)
	s.Script(sim.Fault{Kind: sim.FaultQueued, Polls: 3})
	b, err := src.Fetch(context.Background(), 16)
	require.NoError(t, err)
	assert.True(t, b.Verifiable)
	var polls int
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.Path, "/v1/jobs/") {
			polls++
		}
	}
	assert.Equal(t, 4, polls, "three running answers, then completed")
	require.Len(t, s.EntropyRequests(), 1)
	assert.Equal(t, http.StatusAccepted, s.EntropyRequests()[0].Status)
}

func TestRandomQueueing(t *testing.T) {
	s, src := start(t, sim.WithQueuedJobs(1, 1))
	_, err := src.Fetch(context.Background(), 16)
	require.NoError(t, err)
	assert.Equal(t, http.StatusAccepted, s.EntropyRequests()[0].Status)
}

func TestEveryFault(t *testing.T) {
	for _, tc := range []struct {
		fault sim.Fault
		check func(t *testing.T, s *sim.Server, b entropy.Block, err error)
	}{
		{sim.Latency(20 * time.Millisecond), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			require.NoError(t, err)
			assert.True(t, b.Verifiable)
		}},
		{sim.Status(503, sim.ShapeStatus, "2"), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrServiceUnavailable)
			assert.Equal(t, 2*time.Second, entropy.RetryAfter(err))
		}},
		{sim.JobFailure("QuotaExhaustedError"), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			var je *entropy.JobError
			require.ErrorAs(t, err, &je)
			assert.Equal(t, "QuotaExhaustedError", je.Code)
			assert.Equal(t, entropy.Permanent, entropy.Classify(err))
			final, ok := s.Job(je.JobID)
			require.True(t, ok)
			assert.Equal(t, httpsource.StatusFailed, final.Status)
		}},
		{sim.Kind(sim.FaultJobFailed), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			var je *entropy.JobError
			require.ErrorAs(t, err, &je)
			assert.Equal(t, "QuantumComputerError", je.Code)
			assert.Equal(t, entropy.Transient, entropy.Classify(err))
		}},
		{sim.Kind(sim.FaultDrop), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			assert.ErrorAs(t, err, new(*httpsource.ConnError))
		}},
		{sim.Kind(sim.FaultTruncate), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrMalformed)
		}},
		{sim.Kind(sim.FaultMalformedJSON), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrMalformed)
		}},
		{sim.Kind(sim.FaultWrongLength), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrMalformed)
			assert.Contains(t, err.Error(), "asked for 4096")
		}},
		{sim.Kind(sim.FaultBadSignature), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrBadProof)
		}},
		{sim.Kind(sim.FaultStuck), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			require.NoError(t, err, "stuck bytes are signed: only a health test can catch them")
			for _, v := range b.Data {
				require.Equal(t, b.Data[0], v)
			}
		}},
		{sim.Kind(sim.FaultBiased), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			require.NoError(t, err)
			zeros := 0
			for _, v := range b.Data {
				if v == 0 {
					zeros++
				}
			}
			// Expected 4096*(1/2 + 1/512) = 2056, standard deviation 32.
			assert.InDelta(t, 2056, zeros, 300)
		}},
		{sim.Kind(sim.FaultExhausted), func(t *testing.T, s *sim.Server, b entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrPaymentRequired)
			bal, _ := s.Balance(key)
			assert.Zero(t, bal)
		}},
	} {
		// Each fault in both answer forms: binary (the client's default)
		// and JSON.
		for _, form := range []string{"binary", "json"} {
			t.Run(tc.fault.String()+"/"+form, func(t *testing.T) {
				s, src := start(t)
				if form == "json" {
					var err error
					src, err = s.Source(httpsource.WithAPIKey(key), httpsource.WithJSONOnly(),
						httpsource.WithPollInterval(time.Millisecond, 5*time.Millisecond))
					require.NoError(t, err)
				}
				s.Script(tc.fault)
				b, err := src.Fetch(context.Background(), 4096)
				if err != nil {
					assert.Nil(t, b.Data)
				}
				tc.check(t, s, b, err)
				reqs := s.EntropyRequests()
				require.Len(t, reqs, 1)
				assert.Equal(t, tc.fault.Kind, reqs[0].Fault)

				// The script is used up: the next request is healthy, unless
				// the fault spent the balance.
				if tc.fault.Kind != sim.FaultExhausted {
					b, err = src.Fetch(context.Background(), 32)
					require.NoError(t, err)
					assert.True(t, b.Verifiable)
				}
			})
		}
	}
}

// get sends GET path with an Accept header and the test key, and returns
// the answer with its body read.
func get(t *testing.T, s *sim.Server, path, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

func TestBinaryFormOnlyWhenAsked(t *testing.T) {
	s, _ := start(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	res, body := get(t, s, httpsource.EntropyPath+"?size=100", httpsource.AcceptBinary)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.True(t, httpsource.IsBinary(res.Header.Get("Content-Type")))
	assert.Len(t, body, 100, "the body is the entropy itself")
	id := res.Header.Get(httpsource.JobIDHeader)
	assert.Equal(t, httpsource.StatusCompleted, res.Header.Get(httpsource.JobStatusHeader))
	_, err := time.Parse(time.RFC3339Nano, res.Header.Get(httpsource.TimestampHeader))
	assert.NoError(t, err)
	sig, err := base64.StdEncoding.Strict().DecodeString(res.Header.Get(httpsource.SignatureHeader))
	require.NoError(t, err)
	assert.True(t, httpsource.VerifySignature(s.PublicKey(), id, body, sig), "the same signature as in JSON")

	// The auditor's lookup gives the same job in either form.
	res, again := get(t, s, httpsource.JobsPath+id, httpsource.MediaTypeBinary)
	assert.True(t, httpsource.IsBinary(res.Header.Get("Content-Type")))
	assert.Equal(t, body, again)
	res, js := get(t, s, httpsource.JobsPath+id, "")
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var jr httpsource.JobResponse
	require.NoError(t, json.Unmarshal(js, &jr))
	assert.Equal(t, base64.StdEncoding.EncodeToString(body), jr.Entropy)
	final, ok := s.Job(id)
	require.True(t, ok)
	assert.Equal(t, jr, final)

	// Without octet-stream at a quality above 0, JSON.
	for _, accept := range []string{"", "*/*", "application/*", httpsource.MediaTypeJSON, "application/octet-stream;q=0, application/json"} {
		res, body := get(t, s, httpsource.EntropyPath+"?size=10", accept)
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"), "Accept %q", accept)
		assert.Empty(t, res.Header.Get(httpsource.JobIDHeader), "Accept %q", accept)
		require.NoError(t, json.Unmarshal(body, &jr), "Accept %q", accept)
		assert.Equal(t, httpsource.StatusCompleted, jr.Status)
	}

	// Queued and failed jobs and errors stay JSON whatever the client accepts.
	s.Script(sim.Kind(sim.FaultQueued), sim.Status(503, sim.ShapeCode, "1"))
	res, body = get(t, s, httpsource.EntropyPath+"?size=10", httpsource.AcceptBinary)
	assert.Equal(t, http.StatusAccepted, res.StatusCode)
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(body, &jr))
	assert.Equal(t, httpsource.StatusQueued, jr.Status)
	res, _ = get(t, s, httpsource.EntropyPath+"?size=10", httpsource.AcceptBinary)
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.False(t, httpsource.IsBinary(res.Header.Get("Content-Type")))
}

func TestEveryStatusInEveryShape(t *testing.T) {
	s, src := start(t)
	for _, status := range []int{400, 401, 402, 403, 404, 409, 422, 429, 500, 502, 503} {
		for _, shape := range sim.Shapes {
			s.Script(sim.Fault{Kind: sim.FaultStatus, Status: status, Shape: shape, Code: "C", Message: "m " + shape.String()})
			_, err := src.Fetch(context.Background(), 8)
			var ae *entropy.APIError
			require.ErrorAs(t, err, &ae, "%d %s", status, shape)
			assert.Equal(t, status, ae.StatusCode)
			assert.Equal(t, "m "+shape.String(), ae.Message)
			if shape == sim.ShapeDetails || shape == sim.ShapeText {
				assert.Empty(t, ae.Code)
			} else {
				assert.Equal(t, "C", ae.Code, "%d %s", status, shape)
			}
			assert.NotEmpty(t, ae.RequestID)
		}
	}
}

func TestScriptIsConsumedInOrder(t *testing.T) {
	s, src := start(t)
	s.Script(sim.Status(500, sim.ShapeCode, ""), sim.Kind(sim.FaultDrop), sim.Status(502, sim.ShapeText, ""))
	var kinds []sim.FaultKind
	for i := 0; i < 5; i++ {
		_, _ = src.Fetch(context.Background(), 8)
	}
	for _, r := range s.EntropyRequests() {
		kinds = append(kinds, r.Fault)
	}
	assert.Equal(t, []sim.FaultKind{sim.FaultStatus, sim.FaultDrop, sim.FaultStatus, sim.FaultNone, sim.FaultNone}, kinds)
}

// A status no HTTP answer can have (net/http panics on one outside
// 100..999, and a 1xx is no final answer) is refused by Script, which then
// queues none of its faults; 0 takes the documented default, 503.
func TestScriptRefusesImpossibleStatus(t *testing.T) {
	s, src := start(t)
	for _, status := range []int{-1, 1, 99, 100, 199, 600, 999, 1000} {
		err := s.Script(sim.Kind(sim.FaultDrop), sim.Status(status, sim.ShapeNested, ""))
		require.Error(t, err, "status %d", status)
		assert.Contains(t, err.Error(), fmt.Sprintf("status %d", status))
		assert.Contains(t, err.Error(), "200..599")
		err = s.Script(sim.Fault{Kind: sim.FaultStatus, Status: status})
		assert.Error(t, err, "status %d in a Fault", status)
	}
	_, err := src.Fetch(context.Background(), 8)
	require.NoError(t, err, "a refused script queues nothing")

	require.NoError(t, s.Script(sim.Status(0, sim.ShapeNested, ""), sim.Status(200, sim.ShapeNested, ""), sim.Status(599, sim.ShapeNested, "")))
	for _, want := range []int{503, 200, 599} {
		_, _ = src.Fetch(context.Background(), 8)
		reqs := s.EntropyRequests()
		assert.Equal(t, want, reqs[len(reqs)-1].Status)
	}
}

// ScriptItems refuses a fault that cannot apply to one item of a batch (a
// status, a drop, a truncated body, latency), queuing none of those given
// with it, rather than leave the item healthy while the test believes it
// faulty.
func TestScriptItemsRefusesWholeAnswerFaults(t *testing.T) {
	s, src := start(t)
	for _, k := range []sim.FaultKind{sim.FaultStatus, sim.FaultDrop, sim.FaultTruncate, sim.FaultLatency} {
		err := s.ScriptItems(sim.JobFailure("QuantumComputerError"), sim.Kind(k))
		require.Error(t, err, "%s", k)
		assert.Contains(t, err.Error(), "fault 1: "+k.String())
	}
	blocks, err := src.FetchBatch(context.Background(), []int{64, 64})
	require.NoError(t, err, "a refused item script queues nothing")
	assert.Len(t, blocks, 2)
	require.NoError(t, s.ScriptItems(sim.Kind(sim.FaultNone), sim.JobFailure("QuantumComputerError")))
	blocks, err = src.FetchBatch(context.Background(), []int{64, 64})
	assert.Error(t, err, "the failed item is reported")
	assert.Len(t, blocks, 1, "and only the healthy one served")
}

func TestRandomFaultsAreSeeded(t *testing.T) {
	probs := map[sim.FaultKind]float64{sim.FaultDrop: 0.2, sim.FaultStatus: 0.2, sim.FaultBadSignature: 0.2}
	run := func() []sim.FaultKind {
		s := sim.New(sim.WithSeed(3), sim.WithKey(key, 1<<20))
		defer s.Close()
		require.NoError(t, s.SetRandomFaults(7, probs))
		src, err := s.Source(httpsource.WithAPIKey(key))
		require.NoError(t, err)
		for i := 0; i < 40; i++ {
			_, _ = src.Fetch(context.Background(), 8)
		}
		var kinds []sim.FaultKind
		for _, r := range s.EntropyRequests() {
			kinds = append(kinds, r.Fault)
		}
		return kinds
	}
	a, b := run(), run()
	assert.Equal(t, a, b)
	seen := map[sim.FaultKind]int{}
	for _, k := range a {
		seen[k]++
	}
	assert.Len(t, seen, 4, "40 draws at 20%% each show every kind: %v", seen)

	s := sim.New()
	assert.Error(t, s.SetRandomFaults(1, map[sim.FaultKind]float64{sim.FaultDrop: 0.7, sim.FaultStatus: 0.7}))
	assert.Error(t, s.SetRandomFaults(1, map[sim.FaultKind]float64{sim.FaultDrop: -0.1}))
	assert.Error(t, s.SetRandomFaults(1, map[sim.FaultKind]float64{sim.FaultKind(99): 0.1}))
	assert.NoError(t, s.SetRandomFaults(1, nil))
}

func TestParseFaults(t *testing.T) {
	got, err := sim.ParseFaults("drop=0.1, badsig=0.05,STATUS=0.2")
	require.NoError(t, err)
	assert.Equal(t, map[sim.FaultKind]float64{sim.FaultDrop: 0.1, sim.FaultBadSignature: 0.05, sim.FaultStatus: 0.2}, got)
	got, err = sim.ParseFaults("")
	require.NoError(t, err)
	assert.Empty(t, got)
	for _, bad := range []string{"drop", "nope=0.1", "drop=x", "drop=2", "drop=0.6,stuck=0.6", "none=0.1"} {
		_, err := sim.ParseFaults(bad)
		assert.Error(t, err, bad)
	}
	for _, k := range sim.FaultKinds() {
		got, err := sim.ParseFaults(k.String() + "=0.5")
		require.NoError(t, err)
		assert.Equal(t, 0.5, got[k])
	}
}

func TestPublicKeyEndpoint(t *testing.T) {
	s, _ := start(t)
	src, err := httpsource.New(s.URL(), httpsource.WithAPIKey(key), httpsource.WithFetchPublicKey())
	require.NoError(t, err)
	b, err := src.Fetch(context.Background(), 8)
	require.NoError(t, err)
	assert.True(t, b.Verifiable)
	assert.Equal(t, s.PublicKey(), src.PublicKey())
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func TestProtocolEdges(t *testing.T) {
	s := sim.New(sim.WithKey(key, 100))
	srv := httptest.NewServer(s) // the server is an ordinary http.Handler
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	get := func(method, path string) (int, string, http.Header) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body), res.Header
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/entropy?size=abc", 400},
		{"GET", "/v1/entropy", 400},
		{"GET", "/v1/entropy?size=0", 422},
		{"GET", "/v1/entropy?size=65537", 422},
		{"GET", "/v1/entropy?size=101", 402},
		{"GET", "/v1/jobs/nope", 404},
		{"GET", "/nope", 404},
		{"POST", "/v1/entropy?size=1", 405},
		{"GET", "/v1/public-key", 200},
		{"GET", "/v1/entropy?size=100", 200},
	} {
		status, body, hdr := get(tc.method, tc.path)
		assert.Equal(t, tc.status, status, "%s %s: %s", tc.method, tc.path, body)
		assert.NotEmpty(t, hdr.Get("X-Request-Id"), "every answer has a request ID")
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	s := sim.New()
	_, err := s.Listen("0.0.0.0:0")
	assert.Error(t, err)
	_, err = s.Listen("example.com:80")
	assert.Error(t, err)
	_, err = s.Listen("nonsense")
	assert.Error(t, err)
	u, err := s.Start()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(u, "http://127.0.0.1:"))
	_, err = s.Start()
	assert.Error(t, err, "started once")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice is fine")
	assert.NoError(t, sim.New().Close(), "Close of a server never started")
}

// A Server that New did not make (a zero Server) panics in no method:
// those that need its key pair fail with an error that says so (a 500 with
// that text from ServeHTTP), the others work.
func TestZeroServerFailsClearly(t *testing.T) {
	for name, s := range map[string]*sim.Server{"sim.Server{}": {}, "new(sim.Server)": new(sim.Server)} {
		t.Run(name, func(t *testing.T) {
			assert.Nil(t, s.PublicKey())
			assert.Empty(t, s.URL())
			_, err := s.Start()
			assert.ErrorContains(t, err, "sim: a Server must be made by New")
			_, err = s.Listen("127.0.0.1:0")
			assert.ErrorContains(t, err, "sim: a Server must be made by New")
			_, err = s.Source()
			assert.ErrorContains(t, err, "sim: a Server must be made by New")
			assert.Empty(t, s.URL(), "nothing was started")

			for _, path := range []string{httpsource.EntropyPath + "?size=8", httpsource.PublicKeyPath, httpsource.JobsPath + "j"} {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Header.Set("Authorization", "Bearer "+key)
				s.ServeHTTP(rec, req)
				assert.Equal(t, http.StatusInternalServerError, rec.Code, path)
				assert.Contains(t, rec.Body.String(), "sim: a Server must be made by New", path)
			}

			s.AddKey(key, 10)
			b, ok := s.Balance(key)
			assert.True(t, ok)
			assert.Equal(t, int64(10), b)
			s.SetRateLimit(1, 1)
			s.SetRateLimit(0, 0)
			s.SetLatency(time.Millisecond)
			require.NoError(t, s.Script(sim.Kind(sim.FaultDrop)))
			require.NoError(t, s.ScriptItems(sim.Kind(sim.FaultStuck)))
			require.NoError(t, s.SetRandomFaults(1, map[sim.FaultKind]float64{sim.FaultDrop: 0.5}))
			s.ClearFaults()
			assert.Empty(t, s.Requests())
			assert.Empty(t, s.EntropyRequests())
			_, ok = s.Job("j")
			assert.False(t, ok)
			assert.NoError(t, s.Close())
		})
	}
}

func TestCloseEndsSlowAnswers(t *testing.T) {
	s := sim.New(sim.WithKey(key, 100), sim.WithLatency(time.Hour))
	src, err := s.Source(httpsource.WithAPIKey(key))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := src.Fetch(context.Background(), 8)
		done <- err
	}()
	require.Eventually(t, func() bool { return len(s.EntropyRequests()) == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, s.Close())
	err = <-done
	assert.True(t, errors.As(err, new(*httpsource.ConnError)), "got %v", err)
}

// Every job the simulator makes for a request with a nonce is signed in
// protocol v2 over that nonce, in both answer forms and in the auditor's
// lookup; a request without one (a client of v1) gets a v1 job; a malformed
// nonce is a 400.
func TestJobsAreBoundToTheRequestNonce(t *testing.T) {
	s, _ := start(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	nonce := bytes.Repeat([]byte{0x5a}, httpsource.MinNonceSize)
	q := httpsource.EntropyPath + "?size=24&" + httpsource.NonceParam + "=" + httpsource.EncodeNonce(nonce)

	res, body := get(t, s, q, httpsource.AcceptBinary)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, httpsource.EncodeNonce(nonce), res.Header.Get(httpsource.NonceHeader))
	sig, err := base64.StdEncoding.Strict().DecodeString(res.Header.Get(httpsource.SignatureHeader))
	require.NoError(t, err)
	ts := res.Header.Get(httpsource.TimestampHeader)
	id := res.Header.Get(httpsource.JobIDHeader)
	assert.True(t, httpsource.VerifySignatureV2(s.PublicKey(), id, nonce, 24, ts, body, sig))
	other := bytes.Repeat([]byte{0x5b}, httpsource.MinNonceSize)
	assert.False(t, httpsource.VerifySignatureV2(s.PublicKey(), id, other, 24, ts, body, sig), "another nonce")
	assert.False(t, httpsource.VerifySignatureV2(s.PublicKey(), id, nonce, 23, ts, body, sig), "another size")

	res, js := get(t, s, httpsource.JobsPath+id, httpsource.MediaTypeJSON)
	require.Equal(t, http.StatusOK, res.StatusCode)
	var jr httpsource.JobResponse
	require.NoError(t, json.Unmarshal(js, &jr))
	assert.Equal(t, httpsource.EncodeNonce(nonce), jr.Nonce)
	assert.Equal(t, ts, jr.Timestamp)

	res, js = get(t, s, httpsource.EntropyPath+"?size=8", httpsource.MediaTypeJSON)
	require.Equal(t, http.StatusOK, res.StatusCode)
	jr = httpsource.JobResponse{}
	require.NoError(t, json.Unmarshal(js, &jr))
	assert.Empty(t, jr.Nonce, "no nonce asked, none answered")
	data, _ := base64.StdEncoding.DecodeString(jr.Entropy)
	sig, _ = base64.StdEncoding.DecodeString(jr.Signature)
	assert.True(t, httpsource.VerifySignature(s.PublicKey(), jr.JobID, data, sig), "a v1 job for a v1 request")

	for _, bad := range []string{"zz", "00", strings.Repeat("AB", httpsource.MinNonceSize), strings.Repeat("ab", httpsource.MaxNonceSize+1)} {
		res, _ = get(t, s, httpsource.EntropyPath+"?size=8&nonce="+bad, httpsource.MediaTypeJSON)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, "nonce %q", bad)
	}
}
