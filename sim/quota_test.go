package sim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/sim"
)

func TestQuotaHeadersThen429(t *testing.T) {
	s := sim.New(sim.WithSeed(2), sim.WithKey(key, 1<<30), sim.WithQuota(2, time.Hour))
	get := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/v1/entropy?size=8", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	for want := 1; want >= 0; want-- {
		w := get()
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, "2", w.Header().Get("X-RateLimit-Limit"))
		assert.Equal(t, strconv.Itoa(want), w.Header().Get("X-RateLimit-Remaining"))
		reset, err := strconv.Atoi(w.Header().Get("X-RateLimit-Reset"))
		require.NoError(t, err)
		assert.InDelta(t, 3600, reset, 5)
	}
	w := get()
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "0", w.Header().Get("X-RateLimit-Remaining"))
	assert.Equal(t, w.Header().Get("X-RateLimit-Reset"), w.Header().Get("Retry-After"))
	reqs := s.Requests()
	assert.Equal(t, http.StatusTooManyRequests, reqs[len(reqs)-1].Status)
}

// A 402 says what is left of the key's balance ("Insufficient
// balance"): a top-level "balance" member, in bytes, beside the error of
// every JSON shape, and a sentence of the plain-text one; for a single
// request, a batch no item of which the balance pays for, and an
// exhausted balance.
func TestPaymentRequiredCarriesTheBalance(t *testing.T) {
	nonce := httpsource.EncodeNonce(make([]byte, httpsource.MinNonceSize))
	batch := `{"items":[{"size":256,"nonce":"` + nonce + `"},{"size":256,"nonce":"` + nonce + `"}]}`
	for _, shape := range append(append([]sim.BodyShape{}, sim.Shapes...), sim.ListShapes...) {
		s := sim.New(sim.WithSeed(3), sim.WithKey(key, 100), sim.WithErrorShape(shape))
		do := func(method, target, body string) *httptest.ResponseRecorder {
			r := httptest.NewRequest(method, target, strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+key)
			if body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			return w
		}
		check := func(w *httptest.ResponseRecorder, want int64, what string) {
			t.Helper()
			require.Equal(t, http.StatusPaymentRequired, w.Code, "%v %s: %s", shape, what, w.Body)
			if shape == sim.ShapeText {
				assert.Contains(t, w.Body.String(), "Balance: "+strconv.FormatInt(want, 10)+" bytes.", "%v %s", shape, what)
				return
			}
			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m), "%v %s: %s", shape, what, w.Body)
			assert.JSONEq(t, strconv.FormatInt(want, 10), string(m["balance"]), "%v %s: %s", shape, what, w.Body)
			assert.Greater(t, len(m), 1, "%v %s: the error is there too: %s", shape, what, w.Body)
		}
		check(do(http.MethodGet, "/v1/entropy?size=256&nonce="+nonce, ""), 100, "single")
		check(do(http.MethodPost, "/v1/entropy/batch", batch), 100, "batch")
		w := do(http.MethodGet, "/v1/entropy?size=64&nonce="+nonce, "")
		require.Equal(t, http.StatusOK, w.Code, "%v: the balance pays for 64 bytes", shape)
		check(do(http.MethodGet, "/v1/entropy?size=64&nonce="+nonce, ""), 36, "single, after 64 bytes")
		s.Script(sim.Kind(sim.FaultExhausted))
		check(do(http.MethodGet, "/v1/entropy?size=8&nonce="+nonce, ""), 0, "exhausted")
	}
}
