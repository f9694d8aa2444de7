package httpsource

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// referenceJob is what the client made of a job body before scanJob: the
// body through encoding/json, then the strict base64 decoding of the
// entropy. ok is false where that refuses the body.
func referenceJob(b []byte) (r JobResponse, data []byte, ok bool) {
	if json.Unmarshal(b, &r) != nil {
		return JobResponse{}, nil, false
	}
	data, err := base64.StdEncoding.Strict().DecodeString(r.Entropy)
	if err != nil {
		return JobResponse{}, nil, false
	}
	return r, data, true
}

// checkScanAgrees checks scanJob's promise on one body: where it takes the
// body, encoding/json reads the same fields, or the strict base64 decoding
// refuses the entropy (and with it the body) in both readings.
func checkScanAgrees(t *testing.T, b []byte) {
	t.Helper()
	j, ok := scanJob(b)
	if !ok {
		return
	}
	data, err := base64.StdEncoding.Strict().DecodeString(string(j.Entropy))
	r, want, refOK := referenceJob(b)
	if err != nil {
		if refOK {
			t.Fatalf("scanJob refuses entropy that encoding/json reads as %q: %q", r.Entropy, b)
		}
		return
	}
	if !refOK {
		t.Fatalf("scanJob takes a body that encoding/json or base64 refuses: %q", b)
	}
	got := JobResponse{JobID: j.JobID, Status: j.Status, Entropy: string(j.Entropy), Nonce: string(j.Nonce), Timestamp: string(j.Timestamp), Signature: string(j.Signature)}
	if got != r || !bytes.Equal(data, want) {
		t.Fatalf("scanJob reads %+v, encoding/json %+v, from %q", got, r, b)
	}
}

func TestScanJobCommonShapes(t *testing.T) {
	healthy := `{"job_id":"job-1","status":"completed","entropy":"AAEC","timestamp":"2026-03-01T12:00:00Z","signature":"c2ln"}`
	for _, b := range []string{
		healthy,
		" \t\r\n" + healthy + "\n",
		`{ "job_id" : "job-1" , "status" : "queued" }`,
		`{"status":"running","job_id":"a b c"}`,
		`{}`,
		`{"job_id":"","entropy":""}`,
		`{"signature":"x","timestamp":"y","entropy":"AA==","status":"completed","job_id":"j"}`,
	} {
		_, ok := scanJob([]byte(b))
		assert.True(t, ok, "common shape left to encoding/json: %s", b)
		checkScanAgrees(t, []byte(b))
	}
	j, ok := scanJob([]byte(healthy))
	require.True(t, ok)
	assert.Equal(t, "job-1", j.JobID)
	assert.Equal(t, StatusCompleted, j.Status)
	assert.Equal(t, "AAEC", string(j.Entropy))
	assert.Equal(t, "2026-03-01T12:00:00Z", string(j.Timestamp))
	assert.Equal(t, "c2ln", string(j.Signature))
}

func TestScanJobLeavesEverythingElseToJSON(t *testing.T) {
	for _, b := range []string{
		``, ` `, `[]`, `null`, `"x"`, `{`, `{"job_id":"a"`, `{"job_id":"a",}`, `{,}`,
		`{"job_id":"a"}x`, `{"job_id":"a"}{}`, `{"job_id" "a"}`, `{"job_id":"a" "status":"b"}`,
		`{"job_id":"a","job_id":"b"}`,      // duplicate: encoding/json keeps the last
		`{"JOB_ID":"a"}`, `{"Job_Id":"a"}`, // encoding/json folds case
		`{"job_id":"a","extra":"b"}`,          // other members
		`{"job_id":"a","error":{"code":"X"}}`, // failed jobs
		`{"job_id":null}`, `{"job_id":1}`,     // other value types
		`{"job_id":"a\u0062"}`, `{"job_id":"a\\b"}`, // escapes
		`{"job_id":"a\"}`, "{\"job_id\":\"a\x01\"}", "{\"job_id\":\"\xff\"}", "{\"job_id\":\"\u00e9\"}",
		`{"entropy":"AA\u003d\u003d"}`, "{\"entropy\":\"AA\n==\"}", "{\"entropy\":\"AA\r==\"}", `{"entropy":"AA==\"}`,
		`{"entropy":"AA==`, `{"entropy":AA==}`,
		`{"job_id":"a"}` + "\x00", "\ufeff{}",
	} {
		_, ok := scanJob([]byte(b))
		assert.False(t, ok, "scanJob took %q", b)
	}
}

func TestScanJobEntropyOutsideBase64IsRefusedBothWays(t *testing.T) {
	// Bytes JSON refuses or rewrites, which the scan leaves to the strict
	// base64 decoding: the body is malformed either way.
	for _, bad := range []string{"\x01", "\x1f", "\x7f", "\xc3\xa9", "\xff", "\t", " "} {
		b := []byte(`{"job_id":"j","status":"completed","entropy":"AA` + bad + `==","timestamp":"t","signature":"s"}`)
		j, ok := scanJob(b)
		if ok {
			_, err := base64.StdEncoding.Strict().DecodeString(string(j.Entropy))
			assert.Error(t, err, "entropy with %q decoded", bad)
		}
		_, _, refOK := referenceJob(b)
		assert.False(t, refOK, "reference reading took %q", bad)
		checkScanAgrees(t, b)
	}
}

func TestParseJobFallsBackToJSON(t *testing.T) {
	j, err := parseJob([]byte(`{"job_id":"j\u002d1","status":"failed","error":{"code":"Timeout","message":"m"}}`))
	require.NoError(t, err)
	assert.Equal(t, "j-1", j.JobID)
	assert.Equal(t, StatusFailed, j.Status)
	require.NotNil(t, j.Error)
	assert.Equal(t, "Timeout", j.Error.Code)

	j, err = parseJob([]byte(`{"JOB_ID":"x","status":"completed","entropy":"AA\u003d\u003d"}`))
	require.NoError(t, err)
	assert.Equal(t, "x", j.JobID, "encoding/json folds the case of names")
	assert.Equal(t, "AA==", string(j.Entropy))

	_, err = parseJob([]byte(`{"job_id":"a",}`))
	assert.Error(t, err)
}

// FuzzScanJob checks scanJob against encoding/json on any body.
func FuzzScanJob(f *testing.F) {
	for _, r := range allResponses() {
		f.Add([]byte(r.body))
		f.Add([]byte(r.jobBody))
	}
	f.Add([]byte(`{"job_id":"a","entropy":"AA\u003d\u003d"}`))
	f.Add([]byte("{\"entropy\":\"AA\x7f=\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkScanAgrees(t, b)
		if _, err := parseJob(b); err != nil {
			var r JobResponse
			if json.Unmarshal(b, &r) == nil {
				t.Fatalf("parseJob refuses a body encoding/json reads: %q", b)
			}
		}
	})
}

func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 10000)
	for _, cl := range []int64{-1, 0, 10, 9999, 10000, 10001, 1 << 40} {
		buf, got, tooLong, err := readBody(iotest.HalfReader(strings.NewReader(body)), cl, 20000)
		require.NoError(t, err)
		assert.False(t, tooLong)
		assert.Equal(t, body, string(got), "Content-Length %d", cl)
		releaseBuffer(buf)
	}
	buf, got, tooLong, err := readBody(strings.NewReader(body), -1, 9999)
	require.NoError(t, err)
	assert.True(t, tooLong, "one byte over the limit")
	assert.Len(t, got, 9999)
	releaseBuffer(buf)

	buf, got, tooLong, err = readBody(strings.NewReader(body), 10000, 10000)
	require.NoError(t, err)
	assert.False(t, tooLong, "exactly the limit")
	assert.Len(t, got, 10000)
	releaseBuffer(buf)

	// The read stops at the limit: no more than limit+1 bytes are taken.
	r := strings.NewReader(strings.Repeat("y", 1<<20))
	buf, got, tooLong, err = readBody(r, -1, 100)
	require.NoError(t, err)
	assert.True(t, tooLong)
	assert.Len(t, got, 100)
	assert.Equal(t, int64(1<<20-101), int64(r.Len()), "read past limit+1")
	releaseBuffer(buf)

	boom := errors.New("boom")
	buf, got, _, err = readBody(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), -1, 100)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, "abc", string(got))
	releaseBuffer(buf)
}

func TestReleaseBufferKeepsOnlyBoundedBuffers(t *testing.T) {
	big := make([]byte, 0, maxPooledBuffer+1)
	releaseBuffer(&big) // not pooled; must not panic
	releaseBuffer(nil)
	buf, got, _, err := readBody(strings.NewReader("abc"), 3, 10)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got))
	assert.LessOrEqual(t, cap(*buf), maxPooledBuffer)
	releaseBuffer(buf)
}

func TestIsBinaryAndAcceptsBinary(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/octet-stream": true, "Application/Octet-Stream; x=y": true, " application/octet-stream ": true,
		"": false, "application/json": false, "text/plain": false, "application/octet-streamx": false,
	} {
		assert.Equal(t, want, IsBinary(ct), "Content-Type %q", ct)
	}
	for accept, want := range map[string]bool{
		AcceptBinary: true, MediaTypeBinary: true, "text/html, APPLICATION/OCTET-STREAM;q=0.1": true,
		"application/octet-stream; q=1": true,
		"":                              false, "*/*": false, "application/*": false, MediaTypeJSON: false,
		"application/octet-stream;q=0": false, "application/octet-stream;q=0.0": false,
		"application/octet-stream;q=x": false, "application/octet-stream;q=2": false,
	} {
		assert.Equal(t, want, AcceptsBinary(accept), "Accept %q", accept)
	}
}

// binaryAnswer is a healthy binary answer for 16 bytes of job "job-b" made
// for a request with fuzzNonce at fuzzNow, its v2 signature made with a
// fixed key.
func binaryAnswer(t *testing.T) (pub ed25519.PublicKey, hdr map[string]string, body []byte) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	body = bytes.Repeat([]byte{0xab}, 16)
	sig := ed25519.Sign(priv, SignedMessageV2("job-b", fuzzNonce(), len(body), "2026-03-01T12:00:00Z", body))
	return priv.Public().(ed25519.PublicKey), map[string]string{
		"Content-Type":  MediaTypeBinary,
		JobIDHeader:     "job-b",
		JobStatusHeader: StatusCompleted,
		NonceHeader:     EncodeNonce(fuzzNonce()),
		TimestampHeader: "2026-03-01T12:00:00Z",
		SignatureHeader: base64.StdEncoding.EncodeToString(sig),
	}, body
}

// binarySource is a source whose requests carry fuzzNonce and whose clock
// reads fuzzNow, the request binaryAnswer answers.
func binarySource(t *testing.T, url string, opts ...Option) *Source {
	t.Helper()
	s, err := New(url, append([]Option{WithAPIKey(fuzzAPIKey)}, opts...)...)
	require.NoError(t, err)
	s.now = func() time.Time { return fuzzNow }
	s.newNonce = func() ([]byte, error) { return fuzzNonce(), nil }
	return s
}

func TestFetchBinaryAnswer(t *testing.T) {
	pub, hdr, body := binaryAnswer(t)
	var gotAccept atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAccept.Store(r.Header.Get("Accept"))
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	s := binarySource(t, srv.URL, WithPublicKey(pub))
	blk, err := s.Fetch(context.Background(), 16)
	require.NoError(t, err)
	assert.Equal(t, AcceptBinary, gotAccept.Load())
	require.NotNil(t, blk.Evidence)
	assert.Equal(t, fuzzNonce(), blk.Evidence.Nonce, "the nonce travels in the binary form too")
	assert.True(t, blk.Verifiable)
	assert.Equal(t, body, blk.Data)
	assert.Equal(t, "job-b", blk.JobID)
	assert.Equal(t, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), blk.Time)

	j, err := s.Job(context.Background(), "job-b")
	require.NoError(t, err)
	assert.True(t, j.Verified)
	assert.Equal(t, body, j.Data)

	s = binarySource(t, srv.URL, WithPublicKey(pub), WithJSONOnly())
	_, _ = s.Fetch(context.Background(), 16)
	assert.Equal(t, MediaTypeJSON, gotAccept.Load(), "WithJSONOnly asks for JSON only")
	srv.Client().CloseIdleConnections()
}

func TestFetchRefusesBadBinaryAnswers(t *testing.T) {
	pub, healthy, body := binaryAnswer(t)
	for _, tc := range []struct {
		name   string
		edit   func(h http.Header) []byte
		target error
	}{
		{"no job id", func(h http.Header) []byte { h.Del(JobIDHeader); return body }, ErrMalformed},
		{"two job ids", func(h http.Header) []byte { h.Add(JobIDHeader, "job-c"); return body }, ErrMalformed},
		{"empty job id", func(h http.Header) []byte { h.Set(JobIDHeader, ""); return body }, ErrMalformed},
		{"job id is the key", func(h http.Header) []byte { h.Set(JobIDHeader, "x"+fuzzAPIKey); return body }, ErrMalformed},
		{"no status", func(h http.Header) []byte { h.Del(JobStatusHeader); return body }, ErrMalformed},
		{"queued", func(h http.Header) []byte { h.Set(JobStatusHeader, StatusQueued); return body }, ErrMalformed},
		{"status holds the key", func(h http.Header) []byte { h.Set(JobStatusHeader, fuzzAPIKey); return body }, ErrMalformed},
		{"no timestamp", func(h http.Header) []byte { h.Del(TimestampHeader); return body }, ErrMalformed},
		{"bad timestamp", func(h http.Header) []byte { h.Set(TimestampHeader, "yesterday"); return body }, ErrMalformed},
		{"no signature", func(h http.Header) []byte { h.Del(SignatureHeader); return body }, ErrMalformed},
		{"signature not base64", func(h http.Header) []byte { h.Set(SignatureHeader, "!!"); return body }, ErrMalformed},
		{"short body", func(h http.Header) []byte { return body[:15] }, ErrMalformed},
		{"long body", func(h http.Header) []byte { return append(bytes.Clone(body), 0) }, ErrMalformed},
		{"flipped byte", func(h http.Header) []byte { b := bytes.Clone(body); b[3] ^= 1; return b }, ErrBadProof},
		{"other job", func(h http.Header) []byte { h.Set(JobIDHeader, "job-c"); return body }, ErrBadProof},
		{"no nonce", func(h http.Header) []byte { h.Del(NonceHeader); return body }, ErrBadProof},
		{"two nonces", func(h http.Header) []byte { h.Add(NonceHeader, EncodeNonce(fuzzNonce())); return body }, ErrMalformed},
		{"other nonce", func(h http.Header) []byte { h.Set(NonceHeader, strings.Repeat("ab", MinNonceSize)); return body }, ErrBadProof},
		{"nonce not hex", func(h http.Header) []byte { h.Set(NonceHeader, strings.Repeat("zz", MinNonceSize)); return body }, ErrMalformed},
		{"timestamp long before the request", func(h http.Header) []byte { h.Set(TimestampHeader, "2026-03-01T11:54:59Z"); return body }, ErrBadProof},
		{"timestamp in the future", func(h http.Header) []byte { h.Set(TimestampHeader, "2026-03-01T12:05:01Z"); return body }, ErrBadProof},
		{"timestamp edited within the window", func(h http.Header) []byte { h.Set(TimestampHeader, "2026-03-01T12:00:01Z"); return body }, ErrBadProof},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := http.Header{}
				for k, v := range healthy {
					h.Set(k, v)
				}
				b := tc.edit(h)
				for k, v := range h {
					w.Header()[k] = v
				}
				_, _ = w.Write(b)
			}))
			defer srv.Close()
			s := binarySource(t, srv.URL, WithPublicKey(pub))
			blk, err := s.Fetch(context.Background(), 16)
			require.ErrorIs(t, err, tc.target)
			assert.Nil(t, blk.Data)
			checkNoKey(t, err)
		})
	}
}

// A body buffer held entropy (raw, or base64): it is wiped before it goes
// back to the pool, whatever its size.
func TestReleaseBufferWipes(t *testing.T) {
	for _, n := range []int{16, 4096, maxPooledBuffer + 1} {
		body := strings.Repeat("e", n)
		buf, got, _, err := readBody(strings.NewReader(body), int64(n), int64(n))
		require.NoError(t, err)
		require.Equal(t, body, string(got))
		b := *buf
		releaseBuffer(buf)
		assert.Equal(t, make([]byte, len(b)), b, "%d-byte body left in its buffer", n)
	}
}
