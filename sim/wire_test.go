package sim_test

// The simulator probed over raw HTTP, as docs/protocol.md describes it,
// without the client package's help: what a server of the protocol must answer.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const rawKey = "sk-raw-sim-00112233445566778899"

type rawAnswer struct {
	status int
	header http.Header
	body   []byte
	obj    map[string]any
}

// rawGet sends GET base+path with rawKey and decodes a JSON body.
func rawGet(t *testing.T, base, path string) rawAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+rawKey)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	require.NoError(t, err)
	a := rawAnswer{status: res.StatusCode, header: res.Header, body: body}
	_ = json.Unmarshal(body, &a.obj)
	return a
}

func startRaw(t *testing.T, opts ...sim.Option) (*sim.Server, string) {
	t.Helper()
	s := sim.New(opts...)
	base, err := s.Start()
	require.NoError(t, err)
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		require.NoError(t, s.Close())
	})
	return s, base
}

// checkSigned checks a completed job body with a message built by hand.
func checkSigned(t *testing.T, pub ed25519.PublicKey, obj map[string]any, size int) {
	t.Helper()
	id, _ := obj["job_id"].(string)
	require.NotEmpty(t, id)
	assert.Equal(t, "completed", obj["status"])
	data, err := base64.StdEncoding.Strict().DecodeString(obj["entropy"].(string))
	require.NoError(t, err)
	assert.Len(t, data, size)
	sig, err := base64.StdEncoding.Strict().DecodeString(obj["signature"].(string))
	require.NoError(t, err)
	_, err = time.Parse(time.RFC3339, obj["timestamp"].(string))
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	msg := append([]byte("provenrand/entropy/v1\x00"+id+"\x00"), sum[:]...)
	assert.True(t, ed25519.Verify(pub, msg, sig), "signature of %s", id)
}

// The wire: X-Request-Id on every answer; the public key; a signed job; the
// job kept and answered the same every time after the fact.
func TestWireAndJobsKept(t *testing.T) {
	s, base := startRaw(t, sim.WithKey(rawKey, 1<<20))
	pk := rawGet(t, base, "/v1/public-key")
	require.Equal(t, 200, pk.status)
	assert.Equal(t, "ed25519", pk.obj["algorithm"])
	raw, err := base64.StdEncoding.DecodeString(pk.obj["public_key"].(string))
	require.NoError(t, err)
	assert.Equal(t, []byte(s.PublicKey()), raw)

	a := rawGet(t, base, "/v1/entropy?size=48")
	require.Equal(t, 200, a.status)
	checkSigned(t, s.PublicKey(), a.obj, 48)
	id := a.obj["job_id"].(string)
	for range 3 {
		j := rawGet(t, base, "/v1/jobs/"+id)
		require.Equal(t, 200, j.status)
		assert.JSONEq(t, string(a.body), string(j.body))
	}
	for _, p := range []string{"/v1/entropy?size=48", "/v1/jobs/" + id, "/v1/public-key", "/v1/jobs/nope", "/nope", "/v1/entropy?size=0", "/v1/entropy?size=x"} {
		assert.NotEmpty(t, rawGet(t, base, p).header.Get("X-Request-Id"), p)
	}
	assert.Equal(t, 404, rawGet(t, base, "/v1/jobs/nope").status)
	assert.Equal(t, 422, rawGet(t, base, "/v1/entropy?size=65537").status)
	assert.Equal(t, 200, rawGet(t, base, "/v1/entropy?size=65536").status)
	assert.Equal(t, 200, rawGet(t, base, "/v1/entropy?size=1").status)
}

// Balance in bytes: exactly what was asked is charged, 402 once the balance
// cannot cover a request, and a top-up serves again. Concurrent requests
// spend the balance exactly.
func TestBalanceIsExactUnderConcurrency(t *testing.T) {
	const n, size = 40, 16
	s, base := startRaw(t, sim.WithKey(rawKey, n*size))
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = rawGet(t, base, "/v1/entropy?size="+strconv.Itoa(size)).status
		}()
	}
	wg.Wait()
	for _, st := range statuses {
		assert.Equal(t, 200, st)
	}
	bal, ok := s.Balance(rawKey)
	require.True(t, ok)
	assert.Zero(t, bal)
	a := rawGet(t, base, "/v1/entropy?size=1")
	assert.Equal(t, 402, a.status)
	assert.NotEmpty(t, a.body)
	s.AddKey(rawKey, 1)
	assert.Equal(t, 200, rawGet(t, base, "/v1/entropy?size=1").status)
	assert.Equal(t, 402, rawGet(t, base, "/v1/entropy?size=1").status)
	assert.Len(t, s.EntropyRequests(), n+3)
}

// The server-side rate limit answers 429 with a Retry-After; a request made
// once that Retry-After has passed is served.
func TestRateLimitRetryAfterIsEnough(t *testing.T) {
	s, base := startRaw(t, sim.WithKey(rawKey, 1<<20), sim.WithRateLimit(2, 1))
	require.Equal(t, 200, rawGet(t, base, "/v1/entropy?size=8").status)
	a := rawGet(t, base, "/v1/entropy?size=8")
	require.Equal(t, 429, a.status)
	secs, err := strconv.Atoi(a.header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, secs, 1)
	reqs := s.EntropyRequests()
	assert.Equal(t, time.Duration(secs)*time.Second, reqs[1].RetryAfter)
	assert.Equal(t, 429, reqs[1].Status)
	time.Sleep(time.Duration(secs) * time.Second)
	assert.Equal(t, 200, rawGet(t, base, "/v1/entropy?size=8").status)
}

// Queued jobs: 202 queued, then "running" polls, then completed, signed; a
// failed job carries the seed's code, kept for later lookups.
func TestQueuedAndFailedJobsOverTheWire(t *testing.T) {
	s, base := startRaw(t, sim.WithKey(rawKey, 1<<20))
	s.Script(sim.Fault{Kind: sim.FaultQueued, Polls: 2}, sim.JobFailure("QuotaExhaustedError"))

	a := rawGet(t, base, "/v1/entropy?size=24")
	require.Equal(t, 202, a.status)
	assert.Equal(t, "queued", a.obj["status"])
	id := a.obj["job_id"].(string)
	for range 2 {
		p := rawGet(t, base, "/v1/jobs/"+id)
		require.Equal(t, 200, p.status)
		assert.Contains(t, []any{"queued", "running"}, p.obj["status"])
	}
	done := rawGet(t, base, "/v1/jobs/"+id)
	checkSigned(t, s.PublicKey(), done.obj, 24)

	f := rawGet(t, base, "/v1/entropy?size=24")
	require.Equal(t, 202, f.status)
	fid := f.obj["job_id"].(string)
	for range 2 {
		p := rawGet(t, base, "/v1/jobs/"+fid)
		assert.Equal(t, "failed", p.obj["status"])
		e, _ := p.obj["error"].(map[string]any)
		assert.Equal(t, "QuotaExhaustedError", e["code"])
		assert.NotEmpty(t, e["message"])
	}
	final, ok := s.Job(fid)
	require.True(t, ok)
	assert.Equal(t, "failed", final.Status)
}

// Every fault kind through the client gives its error class (README.md's
// conformance table); the simulator records the fault on the request that met it.
func TestEveryFaultKindClass(t *testing.T) {
	for _, tc := range []struct {
		fault sim.Fault
		check func(t *testing.T, b entropy.Block, err error)
	}{
		{sim.Kind(sim.FaultDrop), func(t *testing.T, _ entropy.Block, err error) { assert.ErrorAs(t, err, new(*httpsource.ConnError)) }},
		{sim.Kind(sim.FaultTruncate), func(t *testing.T, _ entropy.Block, err error) { assert.ErrorIs(t, err, httpsource.ErrMalformed) }},
		{sim.Kind(sim.FaultMalformedJSON), func(t *testing.T, _ entropy.Block, err error) { assert.ErrorIs(t, err, httpsource.ErrMalformed) }},
		{sim.Kind(sim.FaultWrongLength), func(t *testing.T, _ entropy.Block, err error) { assert.ErrorIs(t, err, httpsource.ErrMalformed) }},
		{sim.Kind(sim.FaultBadSignature), func(t *testing.T, _ entropy.Block, err error) { assert.ErrorIs(t, err, httpsource.ErrBadProof) }},
		{sim.Kind(sim.FaultExhausted), func(t *testing.T, _ entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrPaymentRequired)
			assert.Equal(t, entropy.Permanent, entropy.Classify(err))
		}},
		{sim.JobFailure("SimulationTimeout"), func(t *testing.T, _ entropy.Block, err error) {
			var je *entropy.JobError
			require.ErrorAs(t, err, &je)
			assert.Equal(t, "SimulationTimeout", je.Code)
			assert.Equal(t, entropy.Transient, entropy.Classify(err))
		}},
		{sim.Status(503, sim.ShapeStatus, "2"), func(t *testing.T, _ entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrServiceUnavailable)
			assert.Equal(t, 2*time.Second, entropy.RetryAfter(err))
		}},
		{sim.Status(429, sim.ShapeDetails, ""), func(t *testing.T, _ entropy.Block, err error) {
			assert.ErrorIs(t, err, httpsource.ErrRateLimited)
			assert.Equal(t, entropy.Transient, entropy.Classify(err))
		}},
		{sim.Kind(sim.FaultQueued), func(t *testing.T, b entropy.Block, err error) {
			require.NoError(t, err)
			assert.True(t, b.Verifiable)
		}},
		{sim.Latency(20 * time.Millisecond), func(t *testing.T, b entropy.Block, err error) {
			require.NoError(t, err)
			assert.True(t, b.Verifiable)
		}},
		{sim.Kind(sim.FaultStuck), func(t *testing.T, b entropy.Block, err error) {
			require.NoError(t, err)
			for _, x := range b.Data {
				assert.Equal(t, b.Data[0], x)
			}
		}},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			s, src := start(t)
			s.Script(tc.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b, err := src.Fetch(ctx, 64)
			if err != nil {
				assert.Nil(t, b.Data)
			}
			tc.check(t, b, err)
			reqs := s.EntropyRequests()
			require.Len(t, reqs, 1)
			assert.Equal(t, tc.fault.Kind, reqs[0].Fault)
		})
	}
}

// Scripted faults come first, then the probabilistic ones; probability 1
// hits every request; ClearFaults makes the server healthy.
func TestScriptThenRandomThenClear(t *testing.T) {
	s, base := startRaw(t, sim.WithKey(rawKey, 1<<30))
	require.NoError(t, s.SetRandomFaults(7, map[sim.FaultKind]float64{sim.FaultStatus: 1}))
	s.Script(sim.Status(409, sim.ShapeCode, ""), sim.Kind(sim.FaultNone))
	assert.Equal(t, 409, rawGet(t, base, "/v1/entropy?size=8").status)
	assert.Equal(t, 200, rawGet(t, base, "/v1/entropy?size=8").status)
	for range 20 {
		st := rawGet(t, base, "/v1/entropy?size=8").status
		assert.Contains(t, []int{429, 500, 502, 503}, st)
	}
	s.ClearFaults()
	assert.Equal(t, 200, rawGet(t, base, "/v1/entropy?size=8").status)
	assert.Error(t, s.SetRandomFaults(1, map[sim.FaultKind]float64{sim.FaultDrop: 0.7, sim.FaultStatus: 0.7}))
	reqs := s.EntropyRequests()
	require.Len(t, reqs, 23)
	assert.Equal(t, sim.FaultStatus, reqs[0].Fault)
	assert.Equal(t, sim.FaultNone, reqs[1].Fault)
	assert.Equal(t, sim.FaultNone, reqs[22].Fault)
	for i, r := range reqs {
		assert.Equal(t, fmt.Sprintf("req-%06d", i+1), r.RequestID)
	}
}

// A 503 with an HTTP-date Retry-After is recorded as the hold it asks for.
func TestHTTPDateRetryAfterRecorded(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s, base := startRaw(t, sim.WithKey(rawKey, 1<<20), sim.WithClock(entropy.NowFunc(func() time.Time { return now })))
	s.Script(sim.Status(503, sim.ShapeText, now.Add(90*time.Second).Format(http.TimeFormat)))
	a := rawGet(t, base, "/v1/entropy?size=8")
	assert.Equal(t, 503, a.status)
	assert.NotEmpty(t, a.header.Get("Retry-After"))
	reqs := s.EntropyRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, 90*time.Second, reqs[0].RetryAfter)
	assert.Equal(t, now, reqs[0].Time)
}
