package httpsource_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/straybytes"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAPIKeyIsRedactedFromErrors(t *testing.T) {
	echo := func(shape string) func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		return func(f *fakeService, w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			key := strings.TrimPrefix(auth, "Bearer ")
			w.Header().Set("X-Request-Id", "id-"+key)
			switch shape {
			case "status":
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"error":"bad key %s","message":"key %s is unknown","statusCode":401}`, key, key)
			case "details":
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `{"details":{"header":%q}}`, auth)
			case "plain":
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, "panic: %s", auth)
			case "malformed":
				fmt.Fprintf(w, `{"job_id":"j","status":"%s"}`, key)
			case "job":
				if r.URL.Path == "/v1/entropy" {
					w.WriteHeader(http.StatusAccepted)
					fmt.Fprint(w, `{"job_id":"j","status":"queued"}`)
					return
				}
				fmt.Fprintf(w, `{"job_id":"j","status":"failed","error":{"code":"JobFailed","message":"key %s"}}`, key)
			}
		}
	}
	for _, shape := range []string{"status", "details", "plain", "malformed", "job"} {
		t.Run(shape, func(t *testing.T) {
			_, srv := newFake(t, echo(shape))
			s := newSource(t, srv, httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
			_, err := s.Fetch(context.Background(), 8)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), testKey)
			assert.Contains(t, err.Error(), "[REDACTED]")
			var ae *entropy.APIError
			if errors.As(err, &ae) {
				assert.NotContains(t, string(ae.Body), testKey)
				assert.NotContains(t, ae.Code+ae.Message+ae.RequestID, testKey)
				assert.NotContains(t, fmt.Sprintf("%+v %#v", ae, ae), testKey)
			}
		})
	}
}

// A job ID travels into labels, journals and transcripts, so one that holds
// the API key, a control character or an unbounded length is refused whole.
func TestJobIDThatWouldLeakIsRefused(t *testing.T) {
	const key = "sk_test_jobid_7c1d"
	for _, id := range []string{"job-" + key, "job\nforged log line", strings.Repeat("j", 300)} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"job_id":%q,"status":"completed","entropy":"AAECAw==","timestamp":"2026-01-01T00:00:00Z","signature":"AA=="}`, id)
		}))
		src, err := httpsource.New(srv.URL, httpsource.WithAPIKey(key))
		require.NoError(t, err)
		blk, err := src.Fetch(context.Background(), 4)
		srv.Close()
		require.Error(t, err, id)
		assert.ErrorIs(t, err, httpsource.ErrMalformed)
		assert.Empty(t, blk.JobID)
		assert.NotContains(t, err.Error(), key)
	}
}

// A service that echoes the key everywhere it can: header, body, code,
// message, request ID, job fields. No error text holds it.
func TestEchoedKeyNeverInErrors(t *testing.T) {
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("X-Request-Id", "req-"+testKey)
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"error":%q,"message":"bad key %s","statusCode":401}`, testKey, testKey)
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(500)
			fmt.Fprintf(w, "key was %s\n", testKey)
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(422)
			fmt.Fprintf(w, `{"details":{"key":%q}}`, testKey)
		},
		func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":%q}`, testKey)
		},
		func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"completed","entropy":"AAAA","timestamp":%q,"signature":"AA=="}`, testKey)
		},
		func(w http.ResponseWriter) {
			w.WriteHeader(202)
			fmt.Fprintf(w, `{"job_id":"j-%s","status":"queued"}`, testKey)
		},
		func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"j","status":"failed","error":{"code":%q,"message":%q}}`, testKey, testKey)
		},
	}
	for i, answer := range answers {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) { answer(w) })
			s := newOldSource(t, srv, httpsource.WithPollInterval(time.Millisecond, time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := s.Fetch(ctx, 8)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), testKey)
			assert.NotContains(t, fmt.Sprintf("%+v %#v", err, err), testKey)
			var ae *entropy.APIError
			if errors.As(err, &ae) {
				assert.NotContains(t, string(ae.Body), testKey)
				assert.NotContains(t, ae.Code+ae.Message+ae.RequestID, testKey)
			}
			var je *entropy.JobError
			if errors.As(err, &je) {
				assert.NotContains(t, je.JobID+je.Code+je.Message, testKey)
			}
		})
	}
}

// A key that a service echoes across the body cap is redacted whole: no
// start of it survives the cut.
func TestKeyCutByBodyCapIsRedacted(t *testing.T) {
	const key = "sk-cut-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4"
	_, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, strings.Repeat("x", 50)+key+strings.Repeat("y", 50))
	})
	s := newOldSource(t, srv, httpsource.WithAPIKey(key), httpsource.WithMaxBodyBytes(64))
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
func TestEscapedKeyIsRedacted(t *testing.T) {
	const key = `sk-quo"te\secret-123456`
	_, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]string{"job_id": "j", "status": "x" + key})
		_, _ = w.Write(body)
	})
	s := newOldSource(t, srv, httpsource.WithAPIKey(key))
	_, err := s.Fetch(context.Background(), 16)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret-123456")
}

// slashKey is an API key with a '/' in it, as base64-style keys have. Some
// JSON encoders write '/' as "\/", so a service that echoes the key in a JSON
// body sends it in that form.
const slashKey = "sk-live/5f0c9a1e7b3d48a2c6e1f09b7d3a5c8e4b2f6a1d"

// slashSecret is a part of slashKey that must appear in no error.
const slashSecret = "5f0c9a1e7b3d48a2"

// jsonSlashKey is slashKey as an encoder that escapes '/' writes it.
var jsonSlashKey = strings.ReplaceAll(slashKey, "/", `\/`)

// Security rule: no API key in any error string or field, also when the
// service echoes it in a form that a redaction of the key text misses, or
// where the error cuts a long text (a request ID, a message) in the middle of
// the key.
func TestKeyInEscapedOrCutFormsNeverInErrors(t *testing.T) {
	// pad puts the key at the end of a 512-byte text so that a cut at 512
	// bytes keeps all of it but its last byte.
	pad := strings.Repeat("p", 512-len(slashKey)+1)
	answers := map[string]func(w http.ResponseWriter){
		"request id of an error answer": func(w http.ResponseWriter) {
			w.Header().Set("X-Request-Id", pad+slashKey)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"code":"Unavailable","message":"try later"}`)
		},
		"request id of a malformed answer": func(w http.ResponseWriter) {
			w.Header().Set("X-Request-Id", pad+slashKey)
			fmt.Fprint(w, `{"job_id":`)
		},
		"escaped key in a long message": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"code":"Unauthorized","message":"%s%s"}`, pad, jsonSlashKey)
		},
		"escaped key in a details object": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"details":{"authorization":"Bearer %s"}}`, jsonSlashKey)
		},
		"escaped key in a failed job's long message": func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"job_id":"job-1","status":"failed","error":{"code":"JobFailed","message":"%s%s"}}`, pad, jsonSlashKey)
		},
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			_, srv := newOldFake(t, func(rs *fakeService, w http.ResponseWriter, r *http.Request) { answer(w) })
			s := newOldSource(t, srv, httpsource.WithAPIKey(slashKey))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := s.Fetch(ctx, 8)
			require.Error(t, err)
			texts := []string{err.Error(), fmt.Sprintf("%+v %#v", err, err)}
			var ae *entropy.APIError
			if errors.As(err, &ae) {
				texts = append(texts, ae.Code, ae.Message, ae.RequestID, string(ae.Body))
			}
			var je *entropy.JobError
			if errors.As(err, &je) {
				texts = append(texts, je.JobID, je.Code, je.Message)
			}
			for _, text := range texts {
				assert.NotContains(t, text, slashSecret, "the API key leaked")
			}
		})
	}
}

// TestStrayBytesOnIdleConnectionNeverLogTheKey: a service that sends, after
// a valid answer, bytes that echo the request's Authorization header gets
// them nowhere: the source closes each connection after its answer, so Go's
// transport never reads them as an unsolicited response on an idle
// connection and never logs them (with the key) through the standard log.
func TestStrayBytesOnIdleConnectionNeverLogTheKey(t *testing.T) {
	const key = "sk-stray-bytes-5e4d3c2b1a"
	var logs testkit.SyncBuffer
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(&logs)
	defer func() { log.SetOutput(prev); log.SetFlags(flags) }()

	s := sim.New(sim.WithKey(key, 1<<20))
	defer s.Close()
	srv := straybytes.Start(t, s)
	src, err := httpsource.New(srv.URL, httpsource.WithAPIKey(key), httpsource.WithPublicKey(s.PublicKey()))
	require.NoError(t, err)
	const fetches = 3
	for range fetches {
		b, err := src.Fetch(context.Background(), 32)
		require.NoError(t, err)
		require.True(t, b.Verifiable)
	}
	for i := range fetches {
		select {
		case <-srv.Closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d still open: stray bytes can arrive on it while it is idle", i+1)
		}
	}
	assert.NotContains(t, logs.String(), key)
	assert.NotContains(t, logs.String(), "Unsolicited response")
}

// net/http forwards the Authorization header on a redirect to any host of
// the same name, whatever its port or scheme (and to its subdomains), so a
// service, or anyone in the middle, could send the key of a source with its
// own client to another server, or down to plain http. Such a redirect is
// refused: its answer is the 3xx itself, as with the default client.
func TestRedirectNeverCarriesTheKeyToAnotherOrigin(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer other.Close()
	for _, tls := range []bool{false, true} {
		for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.Path, code)
			})
			var srv *httptest.Server
			if tls {
				srv = httptest.NewTLSServer(redirect)
			} else {
				srv = httptest.NewServer(redirect)
			}
			client := srv.Client() // a client of the caller's, which follows redirects
			src, err := httpsource.New(srv.URL, httpsource.WithAPIKey(testKey), httpsource.WithHTTPClient(client))
			require.NoError(t, err)
			_, err = src.Fetch(context.Background(), 8)
			var ae *entropy.APIError
			require.ErrorAs(t, err, &ae, "tls %v, %d", tls, code)
			assert.Equal(t, code, ae.StatusCode)
			assert.Nil(t, client.CheckRedirect, "the caller's client is left as it was")
			srv.Close()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, seen, "the other server was asked, with the key or without it")
}

// A redirect within the service (same scheme, host and port) is followed
// with the key by a client that follows redirects.
func TestRedirectWithinTheServiceIsFollowed(t *testing.T) {
	f, srv := newFake(t, func(f *fakeService, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/entropy" {
			http.Redirect(w, r, "/moved/v1/entropy?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
			return
		}
		fmt.Fprint(w, f.completedJSON("job-moved", pattern(8)))
	})
	src := newSource(t, srv, httpsource.WithPublicKey(f.pub))
	b, err := src.Fetch(context.Background(), 8)
	require.NoError(t, err)
	assert.True(t, b.Verifiable)
	assert.Equal(t, []string{"Bearer " + testKey, "Bearer " + testKey}, f.auths())
}

// A service that echoes the request may give the key percent-encoded (as
// in a URL) or in base64 (as a dump of the Authorization header): neither
// reaches an error, its fields or its kept body.
func TestKeyEchoedPercentEncodedOrInBase64NeverInErrors(t *testing.T) {
	const key = "sk/live+key=5f0c2b9e"
	b64 := base64.StdEncoding.EncodeToString([]byte("Bearer " + key))
	forms := []string{key, url.QueryEscape(key), url.PathEscape(key), b64, base64.URLEncoding.EncodeToString([]byte(key))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("X-Request-Id", url.QueryEscape(k))
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"code":%q,"message":"key %s unknown","details":[{"reason":%q}]}`,
			base64.StdEncoding.EncodeToString([]byte(r.Header.Get("Authorization"))), url.QueryEscape(k),
			base64.URLEncoding.EncodeToString([]byte(k)))
	}))
	defer srv.Close()
	src, err := httpsource.New(srv.URL, httpsource.WithAPIKey(key))
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), 8)
	var ae *entropy.APIError
	require.ErrorAs(t, err, &ae)
	all := fmt.Sprintf("%v %+v %#v %s", err, ae, ae, ae.Body)
	for _, form := range forms {
		assert.NotContains(t, all, form)
	}
	assert.Contains(t, err.Error(), "[REDACTED]")
}
