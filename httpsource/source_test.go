package httpsource_test

// These tests run the client against handlers written here by hand, from the
// protocol text in docs/protocol.md and not from the package's wire types, so that a
// mistake shared by the client and the simulator cannot hide.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testKey = "sk-test-4f1d2c3b5a69788796a5b4c3d2e1f0"

// fakeService is an independently written server of the reference protocol.
type fakeService struct {
	t    *testing.T
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey

	// stamp is the timestamp of the jobs it signs: fakeStamp unless a test
	// sets it before its first request (and runs its source on a clock at
	// that time).
	stamp string

	mu       sync.Mutex
	requests []*http.Request
	at       []time.Time // when each request arrived
	nonce    string      // the nonce of the last GET /v1/entropy, as sent
	handle   func(w http.ResponseWriter, r *http.Request)
}

// fakeStamp is the timestamp of every job of a fakeService: the time the
// tests started, well within the window of the sources under test.
var fakeStamp = time.Now().UTC().Format(time.RFC3339)

func newFake(t *testing.T, handle func(f *fakeService, w http.ResponseWriter, r *http.Request)) (*fakeService, *httptest.Server) {
	t.Helper()
	seed := sha256.Sum256([]byte(t.Name()))
	priv := ed25519.NewKeyFromSeed(seed[:])
	f := &fakeService{t: t, priv: priv, pub: priv.Public().(ed25519.PublicKey), stamp: fakeStamp}
	f.handle = func(w http.ResponseWriter, r *http.Request) { handle(f, w, r) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Clone(context.Background()))
		f.at = append(f.at, time.Now())
		if r.URL.Path == "/v1/entropy" {
			f.nonce = r.URL.Query().Get("nonce")
		}
		f.mu.Unlock()
		f.handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeService) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if path == "" || r.URL.Path == path {
			n++
		}
	}
	return n
}

// arrivals returns when the requests for path arrived.
func (f *fakeService) arrivals(path string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ts []time.Time
	for i, r := range f.requests {
		if r.URL.Path == path {
			ts = append(ts, f.at[i])
		}
	}
	return ts
}

// auths returns the Authorization header of every request.
func (f *fakeService) auths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hs []string
	for _, r := range f.requests {
		hs = append(hs, r.Header.Get("Authorization"))
	}
	return hs
}

// lastNonce returns the nonce of the last entropy request, as sent (hex).
func (f *fakeService) lastNonce() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nonce
}

// sign signs data as the entropy of job id made for the last entropy
// request, at f.stamp, in protocol v2, building the message by hand from
// docs/protocol.md.
func (f *fakeService) sign(id string, data []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(f.priv, signedV2(f.t, id, f.lastNonce(), len(data), f.stamp, data)))
}

// signedV2 builds the v2 signed message by hand: the domain, 0x00, then
// u32be-length-prefixed job ID and nonce, u32be size, u32be-length-prefixed
// timestamp, and SHA-256 of the data.
func signedV2(t *testing.T, id, nonceHex string, size int, stamp string, data []byte) []byte {
	nonce, err := hex.DecodeString(nonceHex)
	require.NoError(t, err)
	u32 := func(n int) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }
	sum := sha256.Sum256(data)
	msg := []byte("provenrand/entropy/v2\x00")
	msg = append(append(msg, u32(len(id))...), id...)
	msg = append(append(msg, u32(len(nonce))...), nonce...)
	msg = append(msg, u32(size)...)
	msg = append(append(msg, u32(len(stamp))...), stamp...)
	return append(msg, sum[:]...)
}

// completedJSON is the body of a completed job made for the last entropy
// request; with none (a job looked up by ID alone), a v1 job.
func (f *fakeService) completedJSON(id string, data []byte) string {
	if f.lastNonce() == "" {
		sum := sha256.Sum256(data)
		msg := append([]byte("provenrand/entropy/v1\x00"+id+"\x00"), sum[:]...)
		return fmt.Sprintf(`{"job_id":%q,"status":"completed","entropy":%q,"timestamp":%q,"signature":%q}`,
			id, base64.StdEncoding.EncodeToString(data), f.stamp, base64.StdEncoding.EncodeToString(ed25519.Sign(f.priv, msg)))
	}
	return fmt.Sprintf(`{"job_id":%q,"status":"completed","entropy":%q,"nonce":%q,"timestamp":%q,"signature":%q}`,
		id, base64.StdEncoding.EncodeToString(data), f.lastNonce(), f.stamp, f.sign(id, data))
}

// pattern returns n bytes that are easy to recognise.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// newSource returns a source for srv with its own transport, closed at the end.
func newSource(t *testing.T, srv *httptest.Server, opts ...httpsource.Option) *httpsource.Source {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	all := append([]httpsource.Option{httpsource.WithAPIKey(testKey), httpsource.WithHTTPClient(&http.Client{Transport: tr})}, opts...)
	s, err := httpsource.New(srv.URL, all...)
	require.NoError(t, err)
	return s
}

func TestFetchCompleted(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/entropy" || r.URL.Query().Get("size") != "32" || r.Header.Get("Authorization") != "Bearer "+testKey {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		w.Header().Set("X-Request-Id", "req-1")
		fmt.Fprint(w, f.completedJSON("job-abc", pattern(32)))
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithName("qrng"))

	b, err := s.Fetch(context.Background(), 32)
	require.NoError(t, err)
	assert.Equal(t, pattern(32), b.Data)
	assert.Equal(t, "qrng", b.Source)
	assert.Equal(t, "job-abc", b.JobID)
	assert.True(t, b.Verifiable)
	assert.True(t, ed25519.Verify(f.pub, signedV2(t, "job-abc", f.lastNonce(), 32, fakeStamp, b.Data), b.Proof))
	require.NotNil(t, b.Evidence)
	assert.Equal(t, f.lastNonce(), hex.EncodeToString(b.Evidence.Nonce), "the block carries the nonce the request sent")
	assert.Len(t, b.Evidence.Nonce, httpsource.MinNonceSize)
	assert.Equal(t, 32, b.Evidence.Size)
	assert.Equal(t, fakeStamp, b.Evidence.Timestamp)
	assert.Equal(t, fakeStamp, b.Time.UTC().Format(time.RFC3339))
	assert.Equal(t, 1, f.count(""))
}

func TestFetchWithoutKeyIsNotVerifiable(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, f.completedJSON("job-1", pattern(16)))
	})
	_ = f
	s := newSource(t, srv)
	b, err := s.Fetch(context.Background(), 16)
	require.NoError(t, err)
	assert.False(t, b.Verifiable, "a block whose signature nobody checked must not be verifiable")
	assert.Equal(t, httpsource.DefaultName, b.Source)
	assert.Nil(t, s.PublicKey())
}

func TestFetchQueuedJobIsPolled(t *testing.T) {
	var polls atomic.Int32
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/entropy":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-q","status":"queued"}`)
		case "/v1/jobs/job-q":
			switch polls.Add(1) {
			case 1:
				fmt.Fprint(w, `{"job_id":"job-q","status":"queued"}`)
			case 2:
				fmt.Fprint(w, `{"job_id":"job-q","status":"running"}`)
			default:
				fmt.Fprint(w, f.completedJSON("job-q", pattern(64)))
			}
		default:
			http.NotFound(w, r)
		}
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithPollInterval(time.Millisecond, 4*time.Millisecond))
	b, err := s.Fetch(context.Background(), 64)
	require.NoError(t, err)
	assert.Equal(t, pattern(64), b.Data)
	assert.True(t, b.Verifiable)
	assert.Equal(t, int32(3), polls.Load())
	assert.Equal(t, 1, f.count("/v1/entropy"), "polling must not create new jobs")
}

func TestFetchQueuedJobHonoursContext(t *testing.T) {
	_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			w.WriteHeader(http.StatusAccepted)
		}
		fmt.Fprint(w, `{"job_id":"job-stuck","status":"queued"}`)
	})
	s := newSource(t, srv, httpsource.WithPollInterval(time.Millisecond, 2*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Fetch(ctx, 8)
	require.Error(t, err)
	var ce *httpsource.ConnError
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, httpsource.ErrTimeout)
}

func TestFetchFailedJob(t *testing.T) {
	for _, tc := range []struct {
		code      string
		permanent bool
	}{
		{"QuantumComputerError", false},
		{"HardwareUnavailable", false},
		{"Timeout", false},
		{"JobFailed", false},
		{"QuotaExhaustedError", true},
		{"ContractExpiredError", true},
		{"TooManyShots", true},
	} {
		t.Run(tc.code, func(t *testing.T) {
			_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/entropy" {
					w.WriteHeader(http.StatusAccepted)
					fmt.Fprint(w, `{"job_id":"job-f","status":"queued"}`)
					return
				}
				fmt.Fprintf(w, `{"job_id":"job-f","status":"failed","error":{"code":%q,"message":"qpu said no"}}`, tc.code)
			})
			s := newSource(t, srv, httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
			b, err := s.Fetch(context.Background(), 8)
			require.Error(t, err)
			assert.Nil(t, b.Data)
			var je *entropy.JobError
			require.ErrorAs(t, err, &je)
			assert.Equal(t, "job-f", je.JobID)
			assert.Equal(t, tc.code, je.Code)
			assert.Equal(t, "qpu said no", je.Message)
			assert.ErrorAs(t, err, new(*entropy.JobError))
			want := entropy.Transient
			if tc.permanent {
				want = entropy.Permanent
			}
			assert.Equal(t, want, entropy.Classify(err))
		})
	}
}

func TestFetchFailedJobWithoutErrorObject(t *testing.T) {
	_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"job_id":"job-x","status":"queued"}`)
			return
		}
		fmt.Fprint(w, `{"job_id":"job-x","status":"failed"}`)
	})
	s := newSource(t, srv, httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
	_, err := s.Fetch(context.Background(), 8)
	var je *entropy.JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, "JobFailed", je.Code)
}

// errorShape writes an error body in one of the error body shapes.
type errorShape struct {
	name        string
	contentType string
	body        func(status int) string
	wantCode    string // "" when the shape carries none
	wantMessage string
}

var errorShapes = []errorShape{
	{"status-object", "application/json", func(s int) string {
		return fmt.Sprintf(`{"error":"%s","message":"the message","statusCode":%d}`, http.StatusText(s), s)
	}, "<statustext>", "the message"},
	{"details", "application/json", func(s int) string {
		return `{"details":"the message","field":"size"}`
	}, "", "the message"},
	{"code-message", "application/json", func(s int) string {
		return `{"code":"E_THING","message":"the message"}`
	}, "E_THING", "the message"},
	{"nested", "application/json", func(s int) string {
		return `{"error":{"code":"E_THING","message":"the message"}}`
	}, "E_THING", "the message"},
	{"plain-text", "text/plain", func(s int) string {
		return "the   message\n"
	}, "", "the message"},
}

func TestErrorStatusesAndBodyShapes(t *testing.T) {
	type class struct {
		sentinel  error
		permanent bool
	}
	statuses := map[int]class{
		400: {httpsource.ErrBadRequest, true},
		401: {httpsource.ErrUnauthorized, true},
		402: {httpsource.ErrPaymentRequired, true},
		403: {httpsource.ErrForbidden, true},
		404: {httpsource.ErrNotFound, true},
		409: {httpsource.ErrConflict, false},
		422: {httpsource.ErrValidation, true},
		429: {httpsource.ErrRateLimited, false},
		500: {httpsource.ErrServer, false},
		502: {httpsource.ErrServer, false},
		503: {httpsource.ErrServiceUnavailable, false},
		504: {httpsource.ErrServer, false},
	}
	for status, cl := range statuses {
		for _, shape := range errorShapes {
			for _, ra := range []string{"", "seconds", "date"} {
				name := fmt.Sprintf("%d/%s/retry-after=%s", status, shape.name, ra)
				t.Run(name, func(t *testing.T) {
					// The source reads the HTTP-date on a clock standing on
					// a whole second, the one the date was written from.
					at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
					_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Content-Type", shape.contentType)
						w.Header().Set("X-Request-Id", "req-"+shape.name)
						switch ra {
						case "seconds":
							w.Header().Set("Retry-After", "7")
						case "date":
							w.Header().Set("Retry-After", at.Add(90*time.Second).Format(http.TimeFormat))
						}
						w.WriteHeader(status)
						fmt.Fprint(w, shape.body(status))
					})
					s := newSource(t, srv, httpsource.WithClock(entropy.NowFunc(func() time.Time { return at })))
					b, err := s.Fetch(context.Background(), 32)
					require.Error(t, err)
					assert.Nil(t, b.Data)

					var ae *entropy.APIError
					require.ErrorAs(t, err, &ae)
					assert.Equal(t, status, ae.StatusCode)
					assert.ErrorIs(t, err, cl.sentinel)
					wantCode := shape.wantCode
					if wantCode == "<statustext>" {
						wantCode = http.StatusText(status)
					}
					assert.Equal(t, wantCode, ae.Code)
					assert.Equal(t, shape.wantMessage, ae.Message)
					assert.Equal(t, "req-"+shape.name, ae.RequestID)
					assert.Equal(t, strings.TrimSpace(shape.body(status)), strings.TrimSpace(string(ae.Body)))
					assert.False(t, ae.Quota, "the default reading of a 429 is the reference protocol's: not a quota")
					switch ra {
					case "":
						assert.Zero(t, ae.RetryAfter)
					case "seconds":
						assert.Equal(t, 7*time.Second, ae.RetryAfter)
						assert.Equal(t, 7*time.Second, entropy.RetryAfter(err))
					case "date":
						assert.Equal(t, 90*time.Second, ae.RetryAfter)
					}
					want := entropy.Transient
					if cl.permanent {
						want = entropy.Permanent
					}
					assert.Equal(t, want, entropy.Classify(err))
					assert.Equal(t, status == 402, errors.Is(err, httpsource.ErrQuotaExhausted))
				})
			}
		}
	}
}

func TestErrorEmptyBodyAndOtherStatuses(t *testing.T) {
	for _, status := range []int{418, 504, 599} {
		_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
		s := newSource(t, srv)
		_, err := s.Fetch(context.Background(), 1)
		var ae *entropy.APIError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, status, ae.StatusCode)
		assert.Empty(t, ae.Code)
		assert.Empty(t, ae.Message)
		assert.Equal(t, status >= 500, errors.Is(err, httpsource.ErrServer), "status %d", status)
	}
}

func TestQuotaReadingOf429(t *testing.T) {
	for _, tc := range []struct {
		name      string
		option    bool
		retry     string
		wantQuota bool
	}{
		{"seed000-no-retry-after", false, "", false},
		{"seed000-retry-after", false, "3", false},
		{"seed003-no-retry-after", true, "", true},
		{"seed003-retry-after", true, "3", false},
		{"seed003-http-date-retry-after", true, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				if tc.retry != "" {
					w.Header().Set("Retry-After", tc.retry)
				}
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"details":"Too many requests"}`)
			})
			var opts []httpsource.Option
			if tc.option {
				opts = append(opts, httpsource.WithQuotaOn429WithoutRetryAfter())
			}
			s := newSource(t, srv, opts...)
			_, err := s.Fetch(context.Background(), 4)
			var ae *entropy.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.wantQuota, ae.Quota)
			assert.Equal(t, tc.wantQuota, errors.Is(err, httpsource.ErrQuotaExhausted))
			assert.Equal(t, tc.wantQuota, entropy.Classify(err) == entropy.Permanent)
			assert.ErrorIs(t, err, httpsource.ErrRateLimited)
			assert.Equal(t, tc.wantQuota, errors.Is(err, entropy.ErrPermanent))
			if tc.retry != "" {
				assert.Positive(t, entropy.RetryAfter(err), "a Retry-After in any form holds")
			}
		})
	}
}

func TestRetryAfterEdgeValues(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"0", 0},
		{"-5", 0},
		{"1.5", 1500 * time.Millisecond},
		{"soon", 0},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
		// Too big for a time.Duration: the longest one, which the Provider
		// caps (entropy.WithMaxRetryAfter), never no hold at all.
		{strings.Repeat("9", 30), math.MaxInt64},
		{strings.Repeat("9", 400), math.MaxInt64},
		{"1e400", math.MaxInt64},
		{"1" + strings.Repeat("0", 400) + ".5", math.MaxInt64},
		{"-1e400", 0},
		{"1e-400", 0},
	} {
		_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", tc.header)
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		s := newSource(t, srv)
		_, err := s.Fetch(context.Background(), 4)
		var ae *entropy.APIError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, tc.want, ae.RetryAfter, "Retry-After %q", tc.header)
	}
}

// TestJobIDOutsideNameCharacterSetRefused: a completed, correctly signed
// job whose ID could forge printed output (a line break of any kind, a bidi
// override, an invisible character, "." or "..") is refused as malformed: a
// job ID goes into labels, journals, transcripts and reports.
func TestJobIDOutsideNameCharacterSetRefused(t *testing.T) {
	for _, id := range []string{
		"job\nentropy OK: matches the signed jobs of quantropy", "job\u2028x", "job\u2029x", "job\u0085x",
		"job\u202ex", "job\u2067x", "job\u200bx", "job\x1b[31mx", ".", "..",
	} {
		_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, f.completedJSON(id, pattern(32)))
		})
		s := newSource(t, srv)
		_, err := s.Fetch(context.Background(), 32)
		require.ErrorIs(t, err, httpsource.ErrMalformed, "%q", id)
		assert.NotContains(t, err.Error(), "\n")
	}
	_, err := httpsource.New("http://127.0.0.1:1", httpsource.WithName("quantropy\nentropy OK"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n")
}

func TestMalformedAnswersAreRefused(t *testing.T) {
	other := ed25519.NewKeyFromSeed(make([]byte, 32))
	for _, tc := range []struct {
		name  string
		write func(f *fakeService, w http.ResponseWriter)
		want  error
	}{
		{"bad-json", func(f *fakeService, w http.ResponseWriter) { fmt.Fprint(w, `{"job_id":"j","status":`) }, httpsource.ErrMalformed},
		{"not-json", func(f *fakeService, w http.ResponseWriter) { fmt.Fprint(w, `hello`) }, httpsource.ErrMalformed},
		{"truncated", func(f *fakeService, w http.ResponseWriter) {
			body := f.completedJSON("j", pattern(32))
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			fmt.Fprint(w, body[:len(body)/2])
		}, httpsource.ErrMalformed},
		{"bad-base64", func(f *fakeService, w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":"!!!not base64!!!","timestamp":"2026-03-01T12:00:00Z","signature":%q}`, f.sign("j", pattern(32)))
		}, httpsource.ErrMalformed},
		{"unpadded-base64", func(f *fakeService, w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":%q,"timestamp":"2026-03-01T12:00:00Z","signature":%q}`,
				base64.RawStdEncoding.EncodeToString(pattern(32)), f.sign("j", pattern(32)))
		}, httpsource.ErrMalformed},
		{"bad-signature-base64", func(f *fakeService, w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":%q,"timestamp":"2026-03-01T12:00:00Z","signature":"%%%%"}`,
				base64.StdEncoding.EncodeToString(pattern(32)))
		}, httpsource.ErrMalformed},
		{"short", func(f *fakeService, w http.ResponseWriter) { fmt.Fprint(w, f.completedJSON("j", pattern(31))) }, httpsource.ErrMalformed},
		{"long", func(f *fakeService, w http.ResponseWriter) { fmt.Fprint(w, f.completedJSON("j", pattern(33))) }, httpsource.ErrMalformed},
		{"no-job-id", func(f *fakeService, w http.ResponseWriter) { fmt.Fprint(w, f.completedJSON("", pattern(32))) }, httpsource.ErrMalformed},
		{"unknown-status", func(f *fakeService, w http.ResponseWriter) { fmt.Fprint(w, `{"job_id":"j","status":"sleeping"}`) }, httpsource.ErrMalformed},
		{"bad-timestamp", func(f *fakeService, w http.ResponseWriter) {
			fmt.Fprint(w, strings.Replace(f.completedJSON("j", pattern(32)), fakeStamp, "yesterday", 1))
		}, httpsource.ErrMalformed},
		{"no-content", func(f *fakeService, w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }, nil},
		{"bad-signature", func(f *fakeService, w http.ResponseWriter) {
			data := pattern(32)
			sig := ed25519.Sign(other, signedV2(f.t, "j", f.lastNonce(), len(data), fakeStamp, data))
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":%q,"nonce":%q,"timestamp":"`+fakeStamp+`","signature":%q}`,
				base64.StdEncoding.EncodeToString(data), f.lastNonce(), base64.StdEncoding.EncodeToString(sig))
		}, httpsource.ErrBadProof},
		{"signature-of-other-job", func(f *fakeService, w http.ResponseWriter) {
			data := pattern(32)
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":%q,"nonce":%q,"timestamp":"`+fakeStamp+`","signature":%q}`,
				base64.StdEncoding.EncodeToString(data), f.lastNonce(), f.sign("k", data))
		}, httpsource.ErrBadProof},
		{"unsigned", func(f *fakeService, w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":%q,"nonce":%q,"timestamp":"`+fakeStamp+`"}`,
				base64.StdEncoding.EncodeToString(pattern(32)), f.lastNonce())
		}, httpsource.ErrBadProof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "req-"+tc.name)
				tc.write(f, w)
			})
			s := newSource(t, srv, httpsource.WithPublicKey(f.pub))
			b, err := s.Fetch(context.Background(), 32)
			require.Error(t, err)
			assert.Nil(t, b.Data, "no bytes with an error")
			assert.False(t, b.Verifiable)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				assert.Contains(t, err.Error(), "req-"+tc.name, "the request ID helps support")
			}
			assert.Equal(t, entropy.Transient, entropy.Classify(err))
		})
	}
}

func TestBodyLargerThanCapIsMalformed(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, f.completedJSON("j", pattern(1024)))
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub), httpsource.WithMaxBodyBytes(512))
	_, err := s.Fetch(context.Background(), 1024)
	assert.ErrorIs(t, err, httpsource.ErrMalformed)
	assert.Contains(t, err.Error(), "exceeds 512 bytes")

	// An error body is cut, not refused.
	_, srv2 := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, strings.Repeat("x", 10000))
	})
	s2 := newSource(t, srv2, httpsource.WithMaxBodyBytes(1000))
	_, err = s2.Fetch(context.Background(), 1)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	assert.Len(t, ae.Body, 1000)
}

func TestSizeOutOfRangeSendsNoRequest(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, f.completedJSON("j", pattern(1)))
	})
	s := newSource(t, srv)
	for _, n := range []int{0, -1, 65537, 1 << 30} {
		_, err := s.Fetch(context.Background(), n)
		require.Error(t, err, "size %d", n)
		assert.Contains(t, err.Error(), "outside 1..65536")
		assert.Equal(t, entropy.Permanent, entropy.Classify(err))
	}
	assert.Zero(t, f.count(""))
}

func TestNewRefusesInsecureURLs(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts []httpsource.Option
		ok   bool
	}{
		{"https://api.example.com", nil, true},
		{"https://api.example.com/prefix/", nil, true},
		{"http://127.0.0.1:8080", nil, true},
		{"http://[::1]:8080", nil, true},
		{"http://localhost:8080", nil, true},
		{"http://api.example.com", nil, false},
		{"http://10.0.0.1", nil, false},
		// Plain http:// to a host that is not loopback, whatever the spelling.
		{"HTTP://example.com", nil, false},
		{"http://localhost.example.com", nil, false},
		{"http://127.0.0.1.nip.io", nil, false},
		{"http://0.0.0.0:8080", nil, false},
		{"http://[::]:8080", nil, false},
		{"http://localhost@example.com", nil, false},
		{"http://192.168.1.1:80/v", nil, false},
		{"http://127.0.0.2", nil, true},
		{"//example.com", nil, false},
		{"file:///etc/passwd", nil, false},
		{"http://api.example.com", []httpsource.Option{httpsource.WithAllowInsecureHTTP()}, true},
		{"ftp://api.example.com", nil, false},
		{"api.example.com", nil, false},
		{"https://api.example.com?x=1", nil, false},
		{"://bad", nil, false},
	} {
		_, err := httpsource.New(tc.url, append([]httpsource.Option{httpsource.WithAPIKey(testKey)}, tc.opts...)...)
		if tc.ok {
			assert.NoError(t, err, tc.url)
		} else {
			if assert.Error(t, err, tc.url) {
				assert.NotContains(t, err.Error(), testKey)
			}
		}
	}
}

// TestNewRefusesCredentialsInURL: a base URL that carries credentials (a
// key as user or password, or anywhere New would otherwise repeat) is
// refused, and the error never repeats them: url.Redacted hides a password,
// not a key given as the user name.
func TestNewRefusesCredentialsInURL(t *testing.T) {
	const key = "sk-url-secret-7e6d5c4b"
	for _, raw := range []string{
		"http://" + key + "@127.0.0.1:8080",
		"https://" + key + "@api.example.com/v",
		"https://user:" + key + "@api.example.com",
		"https://" + key + ":@api.example.com",
		"http://" + key + "@api.example.com",
		"ftp://" + key + "@api.example.com",
		"http://" + key + "@127.0.0.1:port",
		key + "@api.example.com",
		"//" + key + "@api.example.com",
		"https://api.example.com/?api_key=" + key,
		"https://api.example.com/#" + key,
		key + ":x",
		key,
		"http://" + key + "@127.0.0.1:8080/\x7f",
		"http://" + key + "@127.0.0.1:8080/%zz",
	} {
		_, err := httpsource.New(raw, httpsource.WithPublicKey(make([]byte, 32)))
		require.Error(t, err, raw)
		assert.NotContains(t, err.Error(), key, raw)
		assert.NotContains(t, err.Error(), "sk-url", raw)
	}
	_, err := httpsource.New("https://user@api.example.com")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "credentials")
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, opt := range map[string]httpsource.Option{
		"key with space":   httpsource.WithAPIKey("a b"),
		"key with newline": httpsource.WithAPIKey("a\nb"),
		"short public key": httpsource.WithPublicKey(make([]byte, 31)),
		"nil client":       httpsource.WithHTTPClient(nil),
		"empty name":       httpsource.WithName(""),
		"zero body cap":    httpsource.WithMaxBodyBytes(0),
		"poll max < base":  httpsource.WithPollInterval(time.Second, time.Millisecond),
		"zero poll base":   httpsource.WithPollInterval(0, time.Second),
	} {
		_, err := httpsource.New("https://api.example.com", opt)
		assert.Error(t, err, name)
		if err != nil {
			assert.NotContains(t, err.Error(), "a\nb", name)
		}
	}
}

// A Source that New did not make has no service to ask: each request
// method says so, a permanent failure, instead of panicking.
func TestZeroSourceErrorsClearly(t *testing.T) {
	var s httpsource.Source
	ctx := context.Background()
	_, err := s.Fetch(ctx, 32)
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	_, err = s.FetchNonce(ctx, 32, make([]byte, httpsource.MinNonceSize))
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	_, err = s.FetchBatch(ctx, []int{32})
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	_, err = s.Job(ctx, "job-1")
	assert.ErrorIs(t, err, entropy.ErrPermanent)
	assert.ErrorContains(t, err, "made by New")
}

func TestConnectionErrors(t *testing.T) {
	// A port that nobody listens on: bind, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	s, err := httpsource.New("http://"+addr, httpsource.WithAPIKey(testKey))
	require.NoError(t, err)
	_, err = s.Fetch(context.Background(), 8)
	var ce *httpsource.ConnError
	require.ErrorAs(t, err, &ce)
	assert.ErrorAs(t, err, new(*httpsource.ConnError))
	assert.Equal(t, "GET /v1/entropy", ce.Op)
	var ne *net.OpError
	assert.ErrorAs(t, err, &ne, "the net cause is wrapped")
	assert.Equal(t, entropy.Transient, entropy.Classify(err))
	assert.NotContains(t, err.Error(), testKey)

	// A server that hangs until the context ends.
	release := make(chan struct{})
	_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	s2 := newSource(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = s2.Fetch(ctx, 8)
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, httpsource.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// A cancelled context is not a source failure.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	_, err = s2.Fetch(ctx2, 8)
	assert.Equal(t, entropy.Canceled, entropy.Classify(err))
}

func TestDroppedConnection(t *testing.T) {
	_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	s := newSource(t, srv)
	_, err := s.Fetch(context.Background(), 8)
	assert.ErrorAs(t, err, new(*httpsource.ConnError))
	assert.Equal(t, entropy.Transient, entropy.Classify(err))
}

// net/http quotes a malformed header line whole in its error, up to its
// 10 MB limit on headers: a service could make every error, label and log
// line that carry the failure megabytes long. The cause's text is cut.
func TestMalformedHugeHeaderGivesABoundedError(t *testing.T) {
	_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nX-Echo: %s %s\x01\r\n\r\n", r.Header.Get("Authorization"), strings.Repeat("C", 2<<20))
		_ = buf.Flush()
	})
	s := newSource(t, srv)
	_, err := s.Fetch(context.Background(), 8)
	var ce *httpsource.ConnError
	require.ErrorAs(t, err, &ce)
	assert.Less(t, len(err.Error()), 2048, "error of %d bytes", len(err.Error()))
	assert.NotContains(t, err.Error(), testKey)
	assert.True(t, utf8.ValidString(err.Error()))
	assert.Equal(t, entropy.Transient, entropy.Classify(err))
}

func TestFetchPublicKeyOnce(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/public-key" {
			fmt.Fprintf(w, `{"algorithm":"ed25519","public_key":%q}`, base64.StdEncoding.EncodeToString(f.pub))
			return
		}
		fmt.Fprint(w, f.completedJSON("job-1", pattern(8)))
	})
	s := newSource(t, srv, httpsource.WithFetchPublicKey())
	assert.Nil(t, s.PublicKey())
	for i := 0; i < 3; i++ {
		b, err := s.Fetch(context.Background(), 8)
		require.NoError(t, err)
		assert.True(t, b.Verifiable)
	}
	assert.Equal(t, f.pub, s.PublicKey())
	assert.Equal(t, 1, f.count("/v1/public-key"), "trust on first use: fetched once")
	assert.Equal(t, 3, f.count("/v1/entropy"))
}

// TestFetchHonoursDeadlineWhileKeyIsFetched: while one Fetch waits for a
// slow GET /v1/public-key, another Fetch with a short deadline returns its
// context's error when that deadline passes, not when the key arrives; and
// once the key arrives, it is fetched once for all callers.
func TestFetchHonoursDeadlineWhileKeyIsFetched(t *testing.T) {
	f, srv, entered, release := slowKeyService(t)
	s := newSource(t, srv, httpsource.WithFetchPublicKey())
	first := make(chan error, 1)
	go func() {
		_, err := s.Fetch(context.Background(), 8)
		first <- err
	}()
	<-entered // the first Fetch is in GET /v1/public-key, and stays there

	for _, call := range map[string]func(context.Context) error{
		"Fetch":          func(ctx context.Context) error { _, err := s.Fetch(ctx, 8); return err },
		"FetchPublicKey": func(ctx context.Context) error { _, err := s.FetchPublicKey(ctx); return err },
		"Job":            func(ctx context.Context) error { _, err := s.Job(ctx, "job-0"); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		second := make(chan error, 1)
		go func() { second <- call(ctx) }()
		select {
		case err := <-second:
			require.ErrorIs(t, err, context.DeadlineExceeded)
		case <-time.After(10 * time.Second):
			close(release)
			cancel()
			t.Fatal("a caller waited for another caller's key fetch past its own deadline")
		}
		cancel()
	}
	close(release)
	require.NoError(t, <-first)
	_, err := s.Fetch(context.Background(), 8)
	require.NoError(t, err)
	assert.Equal(t, 1, f.count("/v1/public-key"), "the key is fetched once")
}

// A nil context is an error from FetchPublicKey, never a panic: neither
// when it would fetch the key itself nor when another caller's fetch of the
// key is in flight (the wait selects on the context); and so from every
// method that asks the service, which all ask for the key first.
func TestFetchPublicKeyRefusesNilContext(t *testing.T) {
	f, srv, entered, release := slowKeyService(t)
	s := newSource(t, srv, httpsource.WithFetchPublicKey())
	let := sync.OnceFunc(func() { close(release) })
	t.Cleanup(let) // before the server closes, even if a call panics
	var nilCtx context.Context
	_, err := s.FetchPublicKey(nilCtx)
	assert.ErrorContains(t, err, "httpsource: nil context", "no fetch in flight")

	first := make(chan error, 1)
	go func() {
		_, err := s.FetchPublicKey(context.Background())
		first <- err
	}()
	<-entered // the first caller is in GET /v1/public-key, and stays there
	second := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				second <- fmt.Errorf("panic: %v", v)
			}
		}()
		_, err := s.FetchPublicKey(nilCtx)
		second <- err
	}()
	select {
	case err := <-second:
		assert.ErrorContains(t, err, "httpsource: nil context", "a fetch in flight")
	case <-time.After(10 * time.Second):
		t.Error("a caller with a nil context waited for another caller's key fetch")
	}
	for name, call := range map[string]func() error{
		"Fetch":      func() error { _, err := s.Fetch(nilCtx, 8); return err },
		"FetchBatch": func() error { _, err := s.FetchBatch(nilCtx, []int{8}); return err },
		"Job":        func() error { _, err := s.Job(nilCtx, "job-1"); return err },
	} {
		assert.ErrorContains(t, call(), "httpsource: nil context", name)
	}
	let()
	require.NoError(t, <-first)
	assert.Equal(t, 1, f.count("/v1/public-key"))
}

func TestFetchPublicKeyBadAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      `nope`,
		"wrong algo":    `{"algorithm":"rsa","public_key":"AAAA"}`,
		"short key":     `{"algorithm":"ed25519","public_key":"AAAA"}`,
		"not base64":    `{"algorithm":"ed25519","public_key":"!!"}`,
		"missing field": `{}`,
	} {
		_, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
		s := newSource(t, srv, httpsource.WithFetchPublicKey())
		_, err := s.Fetch(context.Background(), 8)
		assert.ErrorIs(t, err, httpsource.ErrMalformed, name)
		assert.Nil(t, s.PublicKey(), name)
	}
}

func TestJobLookup(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		switch r.URL.EscapedPath() {
		case "/v1/jobs/done":
			fmt.Fprint(w, f.completedJSON("done", pattern(12)))
		case "/v1/jobs/failed":
			fmt.Fprint(w, `{"job_id":"failed","status":"failed","error":{"code":"QuantumComputerError","message":"m"}}`)
		case "/v1/jobs/waiting":
			fmt.Fprint(w, `{"job_id":"waiting","status":"running"}`)
		case "/v1/jobs/a%2Fb":
			fmt.Fprint(w, `{"job_id":"a/b","status":"running"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"code":"NotFound","message":"no such job"}`)
		}
	})
	s := newSource(t, srv, httpsource.WithPublicKey(f.pub))
	ctx := context.Background()

	j, err := s.Job(ctx, "done")
	require.NoError(t, err)
	assert.Equal(t, httpsource.StatusCompleted, j.Status)
	assert.Equal(t, pattern(12), j.Data)
	assert.True(t, j.Verified)

	j, err = s.Job(ctx, "failed")
	require.NoError(t, err)
	require.NotNil(t, j.Err)
	assert.Equal(t, "QuantumComputerError", j.Err.Code)

	j, err = s.Job(ctx, "waiting")
	require.NoError(t, err)
	assert.Equal(t, httpsource.StatusRunning, j.Status)
	assert.Nil(t, j.Data)

	_, err = s.Job(ctx, "missing")
	assert.ErrorIs(t, err, httpsource.ErrNotFound)

	// A job ID is one path segment, never a path.
	j, err = s.Job(ctx, "a/b")
	require.NoError(t, err)
	assert.Equal(t, "a/b", j.ID)

	_, err = s.Job(ctx, "")
	assert.Error(t, err)
}

// oldStamp is a fixed job timestamp, long past: a service that signs its
// jobs at it (newOldFake) is checked by a source on a clock at that time
// (newOldSource).
const oldStamp = "2024-05-01T12:00:00Z"

// newOldFake is newFake with jobs signed at oldStamp.
func newOldFake(t *testing.T, handle func(f *fakeService, w http.ResponseWriter, r *http.Request)) (*fakeService, *httptest.Server) {
	t.Helper()
	f, srv := newFake(t, handle)
	f.stamp = oldStamp
	return f, srv
}

// newOldSource is newSource on a clock at oldStamp.
func newOldSource(t *testing.T, srv *httptest.Server, opts ...httpsource.Option) *httpsource.Source {
	t.Helper()
	at := func() time.Time { return time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC) }
	return newSource(t, srv, append([]httpsource.Option{httpsource.WithClock(entropy.NowFunc(at))}, opts...)...)
}

// Error bodies are read through a bounded reader: a huge error body is cut,
// and a huge success body is malformed, whatever its length.
func TestErrorAndSuccessBodiesAreBounded(t *testing.T) {
	big := strings.Repeat("x", 4<<20)
	_, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("size") == "8" {
			w.WriteHeader(500)
		}
		fmt.Fprint(w, big)
	})
	s := newOldSource(t, srv, httpsource.WithMaxBodyBytes(1024))
	_, err := s.Fetch(context.Background(), 8)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	assert.LessOrEqual(t, len(ae.Body), 4096)
	assert.LessOrEqual(t, len(err.Error()), 1024)
	_, err = s.Fetch(context.Background(), 9)
	require.ErrorIs(t, err, httpsource.ErrMalformed)
	assert.LessOrEqual(t, len(err.Error()), 1024)
}

// slowKeyService is a fake service whose GET /v1/public-key signals entered
// and then waits for release to be closed before it answers; its entropy
// requests get completed jobs of 8 bytes, job-0, job-1, ….
func slowKeyService(t *testing.T) (*fakeService, *httptest.Server, chan struct{}, chan struct{}) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/public-key" {
			entered <- struct{}{}
			<-release
			fmt.Fprintf(w, `{"algorithm":"ed25519","public_key":%q}`, base64.StdEncoding.EncodeToString(f.pub))
			return
		}
		fmt.Fprint(w, f.completedJSON(fmt.Sprintf("job-%d", f.count("/v1/entropy")), pattern(8)))
	})
	return f, srv, entered, release
}
