package httpsource_test

// The error fields that go beyond a status and a code: a job that ends in
// "status": "error", the request ID on every error an answer produced,
// structured details lists (plain, and FastAPI's), Retry-After absent
// versus 0, and API keys too short to keep out of error text. Each runs
// against a handler written here and against the simulator.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simSource starts a simulator with a test key and returns it with a source.
func simSource(t *testing.T, opts ...httpsource.Option) (*sim.Server, *httpsource.Source) {
	t.Helper()
	s := sim.New(sim.WithSeed(19), sim.WithKey(testKey, 1<<30))
	t.Cleanup(func() { _ = s.Close() })
	all := append([]httpsource.Option{httpsource.WithAPIKey(testKey), httpsource.WithPollInterval(time.Millisecond, 2*time.Millisecond)}, opts...)
	src, err := s.Source(all...)
	require.NoError(t, err)
	return s, src
}

// lastRequestID is the request ID of the simulator's last answer.
func lastRequestID(t *testing.T, s *sim.Server) string {
	t.Helper()
	reqs := s.Requests()
	require.NotEmpty(t, reqs)
	return reqs[len(reqs)-1].RequestID
}

func TestJobStatusErrorIsAJobError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		code, msg string
		details   []entropy.ErrorItem
		permanent bool
	}{
		{"error object", `{"job_id":"job-e","status":"error","error":{"code":"QuotaExhaustedError","message":"no credit left"}}`,
			"QuotaExhaustedError", "no credit left", nil, true},
		{"code and message beside the status", `{"job_id":"job-e","status":"error","code":"QuantumComputerError","message":"qpu fault"}`,
			"QuantumComputerError", "qpu fault", nil, false},
		{"error string", `{"job_id":"job-e","status":"error","error":"TooManyShots"}`,
			"TooManyShots", "", nil, true},
		{"no job_id, a message only", `{"status":"error","message":"went wrong"}`,
			"JobFailed", "went wrong", nil, false},
		{"nothing but the status", `{"job_id":"job-e","status":"error"}`,
			"JobFailed", "", nil, false},
		{"details list", `{"job_id":"job-e","status":"error","code":"PreflightError","details":[{"field":"size","message":"too large","type":"range"}]}`,
			"PreflightError", "size: too large (range)", []entropy.ErrorItem{{Field: "size", Message: "too large", Type: "range"}}, true},
		{"failed with a details list", `{"job_id":"job-e","status":"failed","error":{"code":"Timeout","message":"slow"},"details":["qpu 3 timed out"]}`,
			"Timeout", "slow", []entropy.ErrorItem{{Message: "qpu 3 timed out"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			polls := 0
			_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/entropy" {
					w.Header().Set("X-Request-Id", "rid-create")
					w.WriteHeader(http.StatusAccepted)
					fmt.Fprint(w, `{"job_id":"job-e","status":"queued"}`)
					return
				}
				polls++
				w.Header().Set("X-Request-Id", fmt.Sprintf("rid-poll-%d", polls))
				fmt.Fprint(w, tc.body)
			})
			s := newSource(t, srv, httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
			b, err := s.Fetch(context.Background(), 8)
			require.Error(t, err)
			assert.Nil(t, b.Data)
			assert.NotErrorIs(t, err, httpsource.ErrMalformed, "a failed job is not a malformed answer")
			var je *entropy.JobError
			require.ErrorAs(t, err, &je)
			assert.Equal(t, "job-e", je.JobID)
			assert.Equal(t, tc.code, je.Code)
			assert.Equal(t, tc.msg, je.Message)
			assert.Equal(t, tc.details, je.Details)
			assert.Equal(t, "rid-poll-1", je.RequestID, "the answer that told of the failure")
			assert.Equal(t, "rid-poll-1", httpsource.RequestID(err))
			assert.Contains(t, err.Error(), "request id rid-poll-1")
			assert.ErrorAs(t, err, new(*entropy.JobError))
			want := entropy.Transient
			if tc.permanent {
				want = entropy.Permanent
			}
			assert.Equal(t, want, entropy.Classify(err))

			// An auditor's look-up reads the same failure.
			j, err := s.Job(context.Background(), "job-e")
			require.NoError(t, err)
			assert.Equal(t, httpsource.StatusFailed, j.Status)
			require.NotNil(t, j.Err)
			assert.Equal(t, tc.code, j.Err.Code)
			assert.Equal(t, "rid-poll-2", j.Err.RequestID)
		})
	}
}

func TestJobStatusErrorOnTheFirstAnswer(t *testing.T) {
	_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "rid-1")
		fmt.Fprint(w, `{"job_id":"job-x","status":"error","error":{"code":"ContractExpiredError","message":"expired"}}`)
	})
	_, err := newSource(t, srv).Fetch(context.Background(), 8)
	var je *entropy.JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, "ContractExpiredError", je.Code)
	assert.Equal(t, "rid-1", je.RequestID)
	assert.ErrorIs(t, err, httpsource.ErrQuotaExhausted)
	assert.Equal(t, entropy.Permanent, entropy.Classify(err))
}

func TestJobStatusErrorFromTheSimulator(t *testing.T) {
	for _, tc := range []struct {
		code      string
		permanent bool
	}{{"QuantumComputerError", false}, {"QuotaExhaustedError", true}, {"", false}} {
		t.Run(tc.code, func(t *testing.T) {
			s, src := simSource(t)
			item := httpsource.ErrorItemBody{Field: "qpu", Message: "calibration lost", Type: "hardware"}
			s.Script(sim.JobErrorStatus(tc.code, item))
			_, err := src.Fetch(context.Background(), 16)
			var je *entropy.JobError
			require.ErrorAs(t, err, &je)
			want := tc.code
			if want == "" {
				want = "QuantumComputerError" // the simulator's default
			}
			assert.Equal(t, want, je.Code)
			assert.NotEmpty(t, je.Message)
			assert.Equal(t, []entropy.ErrorItem{{Field: "qpu", Message: "calibration lost", Type: "hardware"}}, je.Details)
			assert.Equal(t, lastRequestID(t, s), je.RequestID)
			assert.Equal(t, tc.permanent, entropy.Classify(err) == entropy.Permanent)
			assert.ErrorAs(t, err, new(*entropy.JobError))
		})
	}
}

// RequestID finds the ID through wrapping and joins, in every error type
// that carries one, and a typed nil error gives "" without a panic.
func TestRequestIDIsFoundThroughWrapping(t *testing.T) {
	je := &entropy.JobError{JobID: "j", Code: "Timeout", RequestID: "rid-7"}
	assert.Equal(t, "job j failed: Timeout (request id rid-7)", je.Error())
	assert.Equal(t, "rid-7", httpsource.RequestID(fmt.Errorf("refill: %w", je)))
	assert.Equal(t, "rid-9", httpsource.RequestID(errors.Join(&httpsource.ConnError{Op: "GET"}, &entropy.APIError{StatusCode: 503, RequestID: "rid-9"})))
	assert.Equal(t, "rid-b", httpsource.RequestID(fmt.Errorf("refill: %w", &httpsource.BatchError{Total: 2, RequestID: "rid-b"})))
	assert.Equal(t, "", httpsource.RequestID(&httpsource.ConnError{Op: "GET", Err: errors.New("refused")}))
	assert.Equal(t, "", httpsource.RequestID(nil))
	for _, err := range []error{(*entropy.APIError)(nil), (*entropy.JobError)(nil), (*httpsource.ConnError)(nil), (*httpsource.BatchError)(nil)} {
		require.NotPanics(t, func() { assert.Empty(t, httpsource.RequestID(fmt.Errorf("fetch: %w", err))) }, "%T", err)
	}
}

func TestEveryAnswerErrorCarriesItsRequestID(t *testing.T) {
	for name, answer := range map[string]func(f *fakeService, w http.ResponseWriter, r *http.Request){
		"status 503": func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(503)
			fmt.Fprint(w, `{"code":"Busy","message":"later"}`)
		},
		"failed job": func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"job_id":"job-1","status":"failed","error":{"code":"JobFailed","message":"no"}}`)
		},
		"malformed JSON": func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"job_id":"job-1","status":`)
		},
		"wrong length": func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, f.completedJSON("job-1", pattern(9)))
		},
		"bad signature": func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, strings.Replace(f.completedJSON("job-1", pattern(8)), `"signature":"`, `"signature":"AA`, 1))
		},
		"unknown status": func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"job_id":"job-1","status":"exploded"}`)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "rid-42")
				answer(f, w, r)
			})
			_, err := newSource(t, srv, httpsource.WithJSONOnly(), httpsource.WithPublicKey(f.pub)).Fetch(context.Background(), 8)
			require.Error(t, err)
			assert.Equal(t, "rid-42", httpsource.RequestID(err), "%v", err)
			assert.Contains(t, err.Error(), "rid-42")
		})
	}
	t.Run("lost job", func(t *testing.T) {
		_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/entropy" {
				w.Header().Set("X-Request-Id", "rid-create")
				w.WriteHeader(http.StatusAccepted)
				fmt.Fprint(w, `{"job_id":"job-l","status":"queued"}`)
				return
			}
			w.Header().Set("X-Request-Id", "rid-404")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"NotFound"}`)
		})
		_, err := newSource(t, srv, httpsource.WithPollInterval(time.Millisecond, time.Millisecond)).Fetch(context.Background(), 8)
		var je *entropy.JobError
		require.ErrorAs(t, err, &je)
		assert.Equal(t, "JobLost", je.Code)
		assert.Equal(t, "rid-404", je.RequestID)
		assert.Equal(t, entropy.Transient, entropy.Classify(err))
	})
	t.Run("no answer has no request ID", func(t *testing.T) {
		_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
		})
		_, err := newSource(t, srv).Fetch(context.Background(), 8)
		require.ErrorAs(t, err, new(*httpsource.ConnError))
		assert.Equal(t, "", httpsource.RequestID(err))
	})
}

func TestEveryAnswerErrorCarriesItsRequestIDFromTheSimulator(t *testing.T) {
	for _, f := range []sim.Fault{
		sim.Status(429, sim.ShapeNested, "1"), sim.Status(401, sim.ShapeText, ""),
		sim.JobFailure("SimulationTimeout"), sim.Kind(sim.FaultMalformedJSON), sim.Kind(sim.FaultTruncate),
		sim.Kind(sim.FaultWrongLength), sim.Kind(sim.FaultBadSignature), sim.Kind(sim.FaultExhausted),
	} {
		t.Run(f.String(), func(t *testing.T) {
			s, src := simSource(t)
			s.Script(f)
			_, err := src.Fetch(context.Background(), 16)
			require.Error(t, err)
			id := lastRequestID(t, s)
			assert.Equal(t, id, httpsource.RequestID(err), "%v", err)
			assert.Contains(t, err.Error(), id)
		})
	}
}

func TestDetailsListsAreKeptAsItems(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		items      []entropy.ErrorItem
		message    string
	}{
		{"details objects", `{"details":[{"field":"size","message":"must be at most 65536","type":"range"},{"field":"fmt","message":"unknown"}]}`,
			[]entropy.ErrorItem{{Field: "size", Message: "must be at most 65536", Type: "range"}, {Field: "fmt", Message: "unknown"}},
			"size: must be at most 65536 (range); fmt: unknown"},
		{"FastAPI detail", `{"detail":[{"loc":["query","size"],"msg":"ensure this value is less than or equal to 65536","type":"value_error.number.not_le"}]}`,
			[]entropy.ErrorItem{{Field: "query.size", Message: "ensure this value is less than or equal to 65536", Type: "value_error.number.not_le"}},
			"query.size: ensure this value is less than or equal to 65536 (value_error.number.not_le)"},
		{"FastAPI loc with an index", `{"detail":[{"loc":["body",0,"n"],"msg":"field required","type":"missing"}]}`,
			[]entropy.ErrorItem{{Field: "body.0.n", Message: "field required", Type: "missing"}},
			"body.0.n: field required (missing)"},
		{"details of strings", `{"details":["first","second"]}`,
			[]entropy.ErrorItem{{Message: "first"}, {Message: "second"}}, "first; second"},
		{"a message wins as the text", `{"code":"Validation","message":"bad input","details":[{"field":"size","message":"too big"}]}`,
			[]entropy.ErrorItem{{Field: "size", Message: "too big"}}, "bad input"},
		{"details string: no items", `{"details":"Wrong value"}`, nil, "Wrong value"},
		{"FastAPI detail string: no items", `{"detail":"Not authenticated"}`, nil, "Not authenticated"},
		{"the key echoed in an item", `{"details":[{"field":"authorization","message":"Bearer ` + testKey + ` refused"}]}`,
			[]entropy.ErrorItem{{Field: "authorization", Message: "Bearer [REDACTED] refused"}}, "authorization: Bearer [REDACTED] refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnprocessableEntity)
				fmt.Fprint(w, tc.body)
			})
			_, err := newSource(t, srv).Fetch(context.Background(), 8)
			var ae *entropy.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.items, ae.Details)
			assert.Equal(t, tc.message, ae.Message)
			assert.ErrorIs(t, err, httpsource.ErrValidation)
			assert.NotContains(t, err.Error(), testKey)
			assert.Equal(t, tc.items, httpsource.ParseErrorItems([]byte(strings.ReplaceAll(tc.body, testKey, "[REDACTED]"))))
		})
	}
}

func TestDetailsListsFromTheSimulator(t *testing.T) {
	items := []httpsource.ErrorItemBody{{Field: "size", Message: "too large", Type: "range"}, {Field: "accept", Message: "unsupported"}}
	want := []entropy.ErrorItem{{Field: "size", Message: "too large", Type: "range"}, {Field: "accept", Message: "unsupported"}}
	for _, shape := range sim.ListShapes {
		t.Run(shape.String(), func(t *testing.T) {
			s, src := simSource(t)
			f := sim.Status(422, shape, "")
			f.Details = items
			s.Script(f, sim.Status(400, shape, ""))
			_, err := src.Fetch(context.Background(), 16)
			var ae *entropy.APIError
			require.ErrorAs(t, err, &ae)
			got := append([]entropy.ErrorItem(nil), ae.Details...)
			if shape == sim.ShapeFastAPI {
				for i := range want {
					assert.Equal(t, "query."+want[i].Field, got[i].Field)
					got[i].Field = want[i].Field
				}
			}
			assert.Equal(t, want, got)
			assert.Equal(t, lastRequestID(t, s), ae.RequestID)
			assert.Equal(t, entropy.Permanent, entropy.Classify(err))

			// Without items of its own the simulator sends one item of
			// the status's code and message.
			_, err = src.Fetch(context.Background(), 16)
			require.ErrorAs(t, err, &ae)
			require.Len(t, ae.Details, 1)
			assert.Equal(t, "BadRequest", ae.Details[0].Type)
			assert.NotEmpty(t, ae.Details[0].Message)
		})
	}
}

func TestRetryAfterAbsentIsToldFromZero(t *testing.T) {
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	for _, tc := range []struct {
		header string // "-" sends none
		set    bool
		d      time.Duration
	}{
		{"-", false, 0},
		{"0", true, 0},
		{"2", true, 2 * time.Second},
		{past, true, 0},
		{"soon", false, 0},
		{"", false, 0},
	} {
		t.Run(tc.header, func(t *testing.T) {
			_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				if tc.header != "-" {
					w.Header()["Retry-After"] = []string{tc.header}
				}
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"code":"TooManyRequests"}`)
			})
			_, err := newSource(t, srv).Fetch(context.Background(), 8)
			var ae *entropy.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.set, ae.RetryAfterSet)
			assert.Equal(t, tc.d, ae.RetryAfter)
			assert.Equal(t, tc.d, entropy.RetryAfter(err))
			assert.Equal(t, tc.set, strings.Contains(err.Error(), "retry after"), err.Error())
			assert.Equal(t, entropy.Transient, entropy.Classify(err))
		})
	}
}

func TestRetryAfterZeroIsNotAQuota(t *testing.T) {
	// Under the quota reading, only a 429 without any Retry-After is a
	// quota: "0" is a service asking for a retry now.
	for _, tc := range []struct {
		header string
		quota  bool
	}{{"-", true}, {"0", false}} {
		_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			if tc.header != "-" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.WriteHeader(http.StatusTooManyRequests)
		})
		_, err := newSource(t, srv, httpsource.WithQuotaOn429WithoutRetryAfter()).Fetch(context.Background(), 8)
		var ae *entropy.APIError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, tc.quota, ae.Quota, tc.header)
		assert.Equal(t, tc.quota, errors.Is(err, httpsource.ErrQuotaExhausted), tc.header)
	}
}

func TestRetryAfterAbsentIsToldFromZeroFromTheSimulator(t *testing.T) {
	for _, tc := range []struct {
		header string
		set    bool
		d      time.Duration
	}{{"", false, 0}, {"0", true, 0}, {"3", true, 3 * time.Second}} {
		t.Run("retry-after="+tc.header, func(t *testing.T) {
			s, src := simSource(t)
			s.Script(sim.Status(503, sim.ShapeStatus, tc.header))
			_, err := src.Fetch(context.Background(), 16)
			var ae *entropy.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.set, ae.RetryAfterSet)
			assert.Equal(t, tc.d, ae.RetryAfter)
		})
	}
}

func TestShortAPIKeysAreRefused(t *testing.T) {
	for n := 1; n < httpsource.MinAPIKeyLen; n++ {
		key := strings.Repeat("Q", n)
		_, err := httpsource.New("https://entropy.example", httpsource.WithAPIKey(key))
		require.Error(t, err, "a %d-byte key", n)
		assert.Contains(t, err.Error(), "too short")
		assert.NotContains(t, err.Error(), "Q", "the error must not print the key")
	}
	_, err := httpsource.New("https://entropy.example", httpsource.WithAPIKey(strings.Repeat("Q", httpsource.MinAPIKeyLen)))
	assert.NoError(t, err)
	_, err = httpsource.New("https://entropy.example", httpsource.WithAPIKey(""))
	assert.NoError(t, err, "an empty key sends none")
}

func TestShortestKeyDoesNotMangleErrorText(t *testing.T) {
	// The seed's "un[REDACTED]nown" came from a one-letter key: with the
	// shortest key allowed, ordinary words stay whole and the key does not.
	key := "k3y-8byt"
	require.Len(t, key, httpsource.MinAPIKeyLen)
	_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"code":"Unauthorized","message":"unknown key %s"}`, key)
	})
	s, err := httpsource.New(srv.URL, httpsource.WithAPIKey(key))
	require.NoError(t, err)
	_, err = s.Fetch(context.Background(), 8)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "unknown key [REDACTED]", ae.Message)
}

func TestShortAPIKeysAreRefusedBySimulatorSources(t *testing.T) {
	s := sim.New(sim.WithSeed(3))
	t.Cleanup(func() { _ = s.Close() })
	_, err := s.Source(httpsource.WithAPIKey("abc"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "abc")
}
