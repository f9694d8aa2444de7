package httpsource_test

// Review tests: the client probed from the issue text and docs/protocol.md
// against hand-written handlers, as an independent acceptance suite would.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
)

const reviewKey = "sk-review-9a8b7c6d5e4f30211203f4e5d6c7b8a9"

// reviewService is a minimal server of the protocol, written from the text.
type reviewService struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey

	mu    sync.Mutex
	times map[string][]time.Time // path → arrival times
	auth  []string
	nonce string // the nonce of the last GET /v1/entropy, as sent
}

func newReviewService(t *testing.T, handle func(rs *reviewService, w http.ResponseWriter, r *http.Request)) (*reviewService, *httptest.Server) {
	t.Helper()
	seed := sha256.Sum256([]byte("review/" + t.Name()))
	priv := ed25519.NewKeyFromSeed(seed[:])
	rs := &reviewService{priv: priv, pub: priv.Public().(ed25519.PublicKey), times: map[string][]time.Time{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.times[r.URL.Path] = append(rs.times[r.URL.Path], time.Now())
		rs.auth = append(rs.auth, r.Header.Get("Authorization"))
		if r.URL.Path == "/v1/entropy" {
			rs.nonce = r.URL.Query().Get("nonce")
		}
		rs.mu.Unlock()
		handle(rs, w, r)
	}))
	t.Cleanup(srv.Close)
	return rs, srv
}

func (rs *reviewService) arrivals(path string) []time.Time {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]time.Time(nil), rs.times[path]...)
}

func (rs *reviewService) lastNonce() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.nonce
}

// signB64 signs data as job id made for the last entropy request, at
// reviewStamp (protocol v2).
func (rs *reviewService) signB64(id string, data []byte) string {
	nonce, _ := hex.DecodeString(rs.lastNonce())
	return base64.StdEncoding.EncodeToString(ed25519.Sign(rs.priv, httpsource.SignedMessageV2(id, nonce, len(data), reviewStamp, data)))
}

// reviewStamp is the timestamp of every job of a reviewService; the sources
// under test run on a clock at that time.
const reviewStamp = "2024-05-01T12:00:00Z"

func (rs *reviewService) completed(id string, data []byte) string {
	return fmt.Sprintf(`{"job_id":%q,"status":"completed","entropy":%q,"nonce":%q,"timestamp":%q,"signature":%q}`,
		id, base64.StdEncoding.EncodeToString(data), rs.lastNonce(), reviewStamp, rs.signB64(id, data))
}

func reviewSource(t *testing.T, srv *httptest.Server, opts ...httpsource.Option) *httpsource.Source {
	t.Helper()
	all := append([]httpsource.Option{
		httpsource.WithAPIKey(reviewKey),
		httpsource.WithHTTPClient(srv.Client()),
		httpsource.WithClock(func() time.Time { return time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC) }),
	}, opts...)
	s, err := httpsource.New(srv.URL, all...)
	require.NoError(t, err)
	return s
}

// Every status of the seeds, in every body shape, maps to the right class,
// code, message, request ID and Retry-After.
func TestReviewStatusMatrix(t *testing.T) {
	type class struct {
		sentinel  error
		permanent bool
	}
	statuses := map[int]class{
		400: {entropy.ErrBadRequest, true},
		401: {entropy.ErrUnauthorized, true},
		402: {entropy.ErrPaymentRequired, true},
		403: {entropy.ErrForbidden, true},
		404: {entropy.ErrNotFound, true},
		409: {entropy.ErrConflict, false},
		422: {entropy.ErrValidation, true},
		429: {entropy.ErrRateLimited, false},
		500: {entropy.ErrServer, false},
		502: {entropy.ErrServer, false},
		503: {entropy.ErrServiceUnavailable, false},
		504: {entropy.ErrServer, false},
	}
	shapes := map[string]struct {
		body      string
		code, msg string
	}{
		"status":  {`{"error":"TheCode","message":"the message","statusCode":%d}`, "TheCode", "the message"},
		"details": {`{"details":"the message","extra":%d}`, "", "the message"},
		"code":    {`{"code":"TheCode","message":"the message","n":%d}`, "TheCode", "the message"},
		"nested":  {`{"error":{"code":"TheCode","message":"the message"},"n":%d}`, "TheCode", "the message"},
		"text":    {"the message %d\n", "", "the message"},
	}
	for status, cl := range statuses {
		for name, sh := range shapes {
			t.Run(fmt.Sprintf("%d/%s", status, name), func(t *testing.T) {
				_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Request-Id", "req-42")
					w.Header().Set("Retry-After", "7")
					w.WriteHeader(status)
					fmt.Fprintf(w, sh.body, status)
				})
				s := reviewSource(t, srv)
				_, err := s.Fetch(context.Background(), 8)
				var ae *entropy.APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, status, ae.StatusCode)
				assert.ErrorIs(t, err, cl.sentinel)
				assert.Equal(t, cl.permanent, errors.Is(err, entropy.ErrPermanent))
				assert.Equal(t, sh.code, ae.Code)
				if name == "text" {
					assert.Equal(t, fmt.Sprintf("the message %d", status), ae.Message)
				} else {
					assert.Equal(t, sh.msg, ae.Message)
				}
				assert.Equal(t, "req-42", ae.RequestID)
				assert.Equal(t, 7*time.Second, ae.RetryAfter)
				assert.Equal(t, 7*time.Second, entropy.RetryAfter(err))
			})
		}
	}
}

// A 429 without Retry-After: transient by default, quota (permanent) with the
// option; a 429 with Retry-After stays transient under the option.
func TestReview429WithoutRetryAfterReadings(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ra        string
		quotaOpt  bool
		permanent bool
	}{
		{"default no RA", "", false, false},
		{"default with RA", "3", false, false},
		{"quota no RA", "", true, true},
		{"quota with RA", "3", true, false},
		{"quota with HTTP-date RA", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
				if tc.ra != "" {
					w.Header().Set("Retry-After", tc.ra)
				}
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"details":"Too many requests"}`)
			})
			var opts []httpsource.Option
			if tc.quotaOpt {
				opts = append(opts, httpsource.WithQuotaOn429WithoutRetryAfter())
			}
			s := reviewSource(t, srv, opts...)
			_, err := s.Fetch(context.Background(), 8)
			require.ErrorIs(t, err, entropy.ErrRateLimited)
			assert.Equal(t, tc.permanent, errors.Is(err, entropy.ErrPermanent))
			assert.Equal(t, tc.permanent, errors.Is(err, entropy.ErrQuotaExhausted))
			if tc.permanent {
				assert.Equal(t, entropy.Permanent, entropy.Classify(err))
			} else {
				assert.Equal(t, entropy.Transient, entropy.Classify(err))
			}
			if tc.ra != "" {
				assert.Greater(t, entropy.RetryAfter(err), time.Duration(0))
			}
		})
	}
}

// Bad answers of every kind on the 200 path and on the polled path: an error,
// no bytes, and never a Verifiable block.
func TestReviewBadAnswersReturnNoBytes(t *testing.T) {
	good := make([]byte, 16)
	for i := range good {
		good[i] = byte(i + 1)
	}
	signer, _ := newReviewService(t, func(*reviewService, http.ResponseWriter, *http.Request) {})
	goodB64 := base64.StdEncoding.EncodeToString(good)
	sig := signer.signB64("job-x", good)
	otherSig := signer.signB64("job-y", good)
	short := base64.StdEncoding.EncodeToString(good[:15])
	shortSig := signer.signB64("job-x", good[:15])
	bodies := map[string]struct {
		body string
		want error
	}{
		"bad signature":        {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, goodB64, otherSig), entropy.ErrBadProof},
		"missing signature":    {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z"}`, goodB64), nil},
		"short, well signed":   {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, short, shortSig), entropy.ErrMalformed},
		"entropy not base64":   {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":"!!notb64!!","timestamp":"2024-05-01T12:00:00Z","signature":%q}`, sig), entropy.ErrMalformed},
		"unpadded base64":      {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, strings.TrimRight(goodB64, "="), sig), entropy.ErrMalformed},
		"url base64 signature": {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":"%s"}`, goodB64, strings.NewReplacer("+", "-", "/", "_").Replace(sig)+"-_"), nil},
		"truncated json":       {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q`, goodB64, sig), entropy.ErrMalformed},
		"trailing garbage":     {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}}`, goodB64, sig), entropy.ErrMalformed},
		"json array":           {`[1,2,3]`, entropy.ErrMalformed},
		"empty body":           {``, entropy.ErrMalformed},
		"bad timestamp":        {fmt.Sprintf(`{"job_id":"job-x","status":"completed","entropy":%q,"timestamp":"yesterday","signature":%q}`, goodB64, sig), entropy.ErrMalformed},
		"unknown status":       {`{"job_id":"job-x","status":"done"}`, entropy.ErrMalformed},
		"no job id":            {fmt.Sprintf(`{"status":"completed","entropy":%q,"timestamp":"2024-05-01T12:00:00Z","signature":%q}`, goodB64, sig), entropy.ErrMalformed},
	}
	for name, tc := range bodies {
		for _, via := range []string{"direct", "polled"} {
			t.Run(name+"/"+via, func(t *testing.T) {
				_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
					if via == "polled" && r.URL.Path == "/v1/entropy" {
						w.WriteHeader(http.StatusAccepted)
						fmt.Fprint(w, `{"job_id":"job-x","status":"queued"}`)
						return
					}
					fmt.Fprint(w, tc.body)
				})
				s := reviewSource(t, srv, httpsource.WithPublicKey(signer.pub),
					httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				blk, err := s.Fetch(ctx, 16)
				require.Error(t, err)
				assert.Nil(t, blk.Data)
				assert.False(t, blk.Verifiable)
				if tc.want != nil {
					assert.ErrorIs(t, err, tc.want)
				}
				assert.NotEqual(t, entropy.Permanent, entropy.Classify(err), "a bad answer produced nothing: transient")
			})
		}
	}
}

// Verifiable only with a checked signature: no key → not verifiable; a
// fetched key → verifiable; the fetched key is asked for once.
func TestReviewVerifiableOnlyWithCheckedSignature(t *testing.T) {
	data := []byte("0123456789abcdef")
	rs, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/public-key":
			fmt.Fprintf(w, `{"algorithm":"ed25519","public_key":%q}`, base64.StdEncoding.EncodeToString(rs.pub))
		default:
			fmt.Fprint(w, rs.completed("job-v", data))
		}
	})
	plain := reviewSource(t, srv)
	blk, err := plain.Fetch(context.Background(), 16)
	require.NoError(t, err)
	assert.False(t, blk.Verifiable, "no key, no check, not verifiable")

	fetched := reviewSource(t, srv, httpsource.WithFetchPublicKey())
	for range 3 {
		blk, err = fetched.Fetch(context.Background(), 16)
		require.NoError(t, err)
		assert.True(t, blk.Verifiable)
		assert.Equal(t, data, blk.Data)
		assert.Equal(t, "job-v", blk.JobID)
	}
	assert.Len(t, rs.arrivals("/v1/public-key"), 1)
	for _, a := range rs.auth {
		assert.Equal(t, "Bearer "+reviewKey, a)
	}

	other, _, _ := ed25519.GenerateKey(nil)
	wrong := reviewSource(t, srv, httpsource.WithPublicKey(other))
	blk, err = wrong.Fetch(context.Background(), 16)
	require.ErrorIs(t, err, entropy.ErrBadProof)
	assert.Nil(t, blk.Data)
}

// Polling stops when the context ends: the Fetch returns promptly with a
// timeout, and no poll arrives after the deadline.
func TestReviewPollingStopsAtTheDeadline(t *testing.T) {
	rs, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-slow","status":"queued"}`)
			return
		}
		fmt.Fprint(w, `{"job_id":"job-slow","status":"running"}`)
	})
	s := reviewSource(t, srv, httpsource.WithPollInterval(2*time.Millisecond, 10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := s.Fetch(ctx, 8)
	deadline, _ := ctx.Deadline()
	require.ErrorIs(t, err, entropy.ErrTimeout)
	assert.Equal(t, entropy.Transient, entropy.Classify(err))
	time.Sleep(50 * time.Millisecond)
	polls := rs.arrivals("/v1/jobs/job-slow")
	require.NotEmpty(t, polls, "a queued job is polled")
	for _, p := range polls {
		assert.False(t, p.After(deadline.Add(5*time.Millisecond)), "poll at %v after the deadline %v", p, deadline)
	}
}

// Plain http:// is refused to every host that is not loopback, whatever the
// spelling; loopback and the explicit option are accepted.
func TestReviewPlainHTTPRefused(t *testing.T) {
	for _, u := range []string{
		"http://example.com", "HTTP://example.com", "http://localhost.example.com",
		"http://127.0.0.1.nip.io", "http://0.0.0.0:8080", "http://[::]:8080",
		"http://localhost@example.com", "http://10.0.0.1", "http://192.168.1.1:80/v",
	} {
		_, err := httpsource.New(u, httpsource.WithAPIKey(reviewKey))
		assert.Error(t, err, u)
		if err != nil {
			assert.NotContains(t, err.Error(), reviewKey)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", "http://127.0.0.2", "https://example.com"} {
		_, err := httpsource.New(u, httpsource.WithAPIKey(reviewKey))
		assert.NoError(t, err, u)
	}
	_, err := httpsource.New("http://example.com", httpsource.WithAllowInsecureHTTP())
	assert.NoError(t, err)
	for _, u := range []string{"ftp://example.com", "example.com", "//example.com", "file:///etc/passwd"} {
		_, err := httpsource.New(u)
		assert.Error(t, err, u)
	}
}

// A service that echoes the key everywhere it can: header, body, code,
// message, request ID, job fields. No error text holds it.
func TestReviewEchoedKeyNeverInErrors(t *testing.T) {
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("X-Request-Id", "req-"+reviewKey)
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"error":%q,"message":"bad key %s","statusCode":401}`, reviewKey, reviewKey)
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(500)
			fmt.Fprintf(w, "key was %s\n", reviewKey)
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(422)
			fmt.Fprintf(w, `{"details":{"key":%q}}`, reviewKey)
		},
		func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":%q}`, reviewKey)
		},
		func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":"AAAA","timestamp":%q,"signature":"AA=="}`, reviewKey)
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(202)
			fmt.Fprintf(w, `{"job_id":"j-%s","status":"queued"}`, reviewKey)
		},
		func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"failed","error":{"code":%q,"message":%q}}`, reviewKey, reviewKey)
		},
	}
	for i, answer := range answers {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) { answer(w) })
			s := reviewSource(t, srv, httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := s.Fetch(ctx, 8)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), reviewKey)
			assert.NotContains(t, fmt.Sprintf("%+v %#v", err, err), reviewKey)
			var ae *entropy.APIError
			if errors.As(err, &ae) {
				assert.NotContains(t, string(ae.Body), reviewKey)
				assert.NotContains(t, ae.Code+ae.Message+ae.RequestID, reviewKey)
			}
			var je *entropy.JobError
			if errors.As(err, &je) {
				assert.NotContains(t, je.JobID+je.Code+je.Message, reviewKey)
			}
		})
	}
}

// Error bodies are read through a bounded reader: a huge error body is cut,
// and a huge success body is malformed, whatever its length.
func TestReviewBodiesAreBounded(t *testing.T) {
	big := strings.Repeat("x", 4<<20)
	_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("size") == "8" {
			w.WriteHeader(500)
		}
		fmt.Fprint(w, big)
	})
	s := reviewSource(t, srv, httpsource.WithMaxBodyBytes(1024))
	_, err := s.Fetch(context.Background(), 8)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	assert.LessOrEqual(t, len(ae.Body), 4096)
	assert.LessOrEqual(t, len(err.Error()), 1024)
	_, err = s.Fetch(context.Background(), 9)
	require.ErrorIs(t, err, entropy.ErrMalformed)
	assert.LessOrEqual(t, len(err.Error()), 1024)
}

// A job that the service no longer knows while it is being polled (404 on
// GET /v1/jobs/{id}) is a lost job: DESIGN point 6 and README name "failed or
// lost jobs" transient, so the breaker must not open on it.
func TestReviewLostJobWhilePollingIsTransient(t *testing.T) {
	_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-lost")
		if r.URL.Path == "/v1/entropy" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-lost","status":"queued"}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"NotFound","message":"no such job"}}`)
	})
	s := reviewSource(t, srv, httpsource.WithPublicKey(make([]byte, ed25519.PublicKeySize)),
		httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
	blk, err := s.Fetch(context.Background(), 16)
	require.Error(t, err)
	assert.Empty(t, blk.Data)
	assert.Equal(t, entropy.Transient, entropy.Classify(err),
		"a job lost while polling produced nothing and a new job may succeed: %v", err)
}

// A Retry-After on the 202 answer sets the first poll: no request before it
// has passed (contract point 7, "no request before a Retry-After has passed").
func TestReviewRetryAfterOn202HoldsFirstPoll(t *testing.T) {
	rs, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-ra","status":"queued"}`)
			return
		}
		fmt.Fprint(w, rs.completed("job-ra", make([]byte, 16)))
	})
	s := reviewSource(t, srv, httpsource.WithPublicKey(rs.pub),
		httpsource.WithPollInterval(10*time.Millisecond, 5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Fetch(ctx, 16)
	require.NoError(t, err)
	first := rs.arrivals("/v1/entropy")
	polls := rs.arrivals("/v1/jobs/job-ra")
	require.Len(t, first, 1)
	require.NotEmpty(t, polls)
	assert.GreaterOrEqual(t, polls[0].Sub(first[0]), time.Second,
		"first poll %v after a 202 with Retry-After: 1", polls[0].Sub(first[0]))
}

// A key that a service echoes across the body cap is redacted whole: no
// start of it survives the cut.
func TestReviewKeyCutByBodyCapIsRedacted(t *testing.T) {
	const key = "sk-review-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4"
	_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, strings.Repeat("x", 50)+key+strings.Repeat("y", 50))
	})
	s := reviewSource(t, srv, httpsource.WithAPIKey(key), httpsource.WithMaxBodyBytes(64))
	_, err := s.Fetch(context.Background(), 16)
	require.Error(t, err)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	for _, text := range []string{err.Error(), ae.Message, string(ae.Body)} {
		assert.NotContains(t, text, key[:8], "a start of the key survived the cut")
	}
	assert.LessOrEqual(t, len(ae.Body), 64)
}

// A key with a quote or a backslash is redacted also where an error quotes
// server text with %q (which escapes the key).
func TestReviewEscapedKeyIsRedacted(t *testing.T) {
	const key = `sk-quo"te\secret-123456`
	_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]string{"job_id": "j", "status": "x" + key})
		_, _ = w.Write(body)
	})
	s := reviewSource(t, srv, httpsource.WithAPIKey(key))
	_, err := s.Fetch(context.Background(), 16)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret-123456")
}
