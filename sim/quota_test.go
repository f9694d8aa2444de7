package sim_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
