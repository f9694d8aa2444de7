package httpsource_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/httpsource"
)

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
func TestReview2EchoedKeyNeverInErrors(t *testing.T) {
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
			_, srv := newReviewService(t, func(rs *reviewService, w http.ResponseWriter, r *http.Request) { answer(w) })
			s := reviewSource(t, srv, httpsource.WithAPIKey(slashKey))
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
