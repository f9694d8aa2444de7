package httpsource

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
)

// fuzzAPIKey is the key of the sources under fuzzing: no error may show it.
const fuzzAPIKey = "sk_live_FUZZ0123456789abcdef"

// TestJobIDEchoingTheKeyIsRedacted is the regression test of a leak that
// FuzzFetch found: a service that answers with the API key as the job ID had
// the key printed by the "signature does not verify" error and by the error
// of a poll that the context ended.
func TestJobIDEchoingTheKeyIsRedacted(t *testing.T) {
	var jobBody atomic.Value // string
	jobBody.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jobBody := jobBody.Load().(string)
		if strings.HasPrefix(r.URL.Path, JobsPath) {
			_, _ = io.WriteString(w, jobBody)
			return
		}
		if jobBody != "" {
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"job_id":"`+fuzzAPIKey+`","status":"queued"}`)
			return
		}
		_, _ = io.WriteString(w, `{"job_id":"`+fuzzAPIKey+`","status":"completed","entropy":"AAAA","timestamp":"2026-03-01T12:00:00Z","signature":"AA=="}`)
	}))
	defer srv.Close()
	s, err := New(srv.URL, WithAPIKey(fuzzAPIKey), WithHTTPClient(srv.Client()),
		WithPublicKey(make([]byte, 32)), WithPollInterval(time.Millisecond, 2*time.Millisecond))
	require.NoError(t, err)

	_, err = s.Fetch(context.Background(), 3)
	require.ErrorIs(t, err, entropy.ErrBadProof)
	assert.NotContains(t, err.Error(), fuzzAPIKey)

	jobBody.Store(`{"job_id":"` + fuzzAPIKey + `","status":"running"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.Fetch(ctx, 3)
	var ce *entropy.ConnError
	require.True(t, errors.As(err, &ce), "got %v", err)
	assert.NotContains(t, err.Error(), fuzzAPIKey)
}

// TestPlainTextIsOneShortLine is the regression test of what FuzzParseErrorBody
// and FuzzAPIError found in plain-text error bodies and request IDs: control
// characters (NUL, ESC sequences that recolour a terminal, DEL) went through
// into errors and logs, and invalid UTF-8 was replaced after the cut, so a
// "bounded" message could reach three times its bound.
func TestPlainTextIsOneShortLine(t *testing.T) {
	_, msg := ParseErrorBody([]byte("\x00\xff\xfe\x1b[31mred\x7f alert\u0085next"))
	assert.Equal(t, "\uFFFD [31mred alert next", msg)
	_, msg = ParseErrorBody([]byte(strings.Repeat("\xff ", 600)))
	assert.LessOrEqual(t, len(msg), maxTextMessage+len("…"))
	assert.True(t, utf8.ValidString(msg))

	s, err := New("http://127.0.0.1:1", WithAPIKey(fuzzAPIKey))
	require.NoError(t, err)
	h := http.Header{}
	h.Set(RequestIDHeader, "req\x00-\x1b]0;pwned\x07")
	e := s.apiError(&http.Response{StatusCode: 500, Header: h}, []byte("boom\x1b[2J"))
	assert.Equal(t, "req - ]0;pwned", e.RequestID)
	assert.Equal(t, "boom [2J", e.Message)
}

// TestJSONErrorFieldsAreOneShortLine is the regression test of what
// FuzzParseErrorBody found in the JSON shapes: their code and message were
// taken verbatim, so a service could put newlines (forged log lines), control
// characters and megabytes of text into every error.
func TestJSONErrorFieldsAreOneShortLine(t *testing.T) {
	code, msg := ParseErrorBody([]byte(`{"error":"line one\nline two","message":"a\u0000b\r\nc","statusCode":500}`))
	assert.Equal(t, "line one line two", code)
	assert.Equal(t, "a b c", msg)
	code, msg = ParseErrorBody([]byte(`{"error":{"code":"` + strings.Repeat("C", 2000) + `","message":"` + strings.Repeat("é", 700) + `"}}`))
	assert.Equal(t, strings.Repeat("C", maxTextMessage)+"…", code)
	assert.LessOrEqual(t, len(msg), maxTextMessage+len("…"))
	assert.True(t, utf8.ValidString(msg))
	code, msg = ParseErrorBody([]byte(`{"code":" \t ","message":"\n"}`))
	assert.Equal(t, "", code)
	assert.Equal(t, `{"code":" \t ","message":"\n"}`, msg, "blank fields: the body is the message")
}
