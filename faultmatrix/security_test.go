package faultmatrix_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/sim"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAPIKeyNeverLeaks runs a service that echoes the caller's API key back
// in every place an answer can carry it (error messages and codes of every
// body shape, plain-text bodies, request IDs, failed-job messages) beside
// the simulator's healthy answers, under every policy, with a logger, a
// fallback hook, a journal and draw transcripts; then it greps everything
// the library produced for the key.
func TestAPIKeyNeverLeaks(t *testing.T) {
	const key = "sk_live_9f8e7d6c5b4a39281706"
	var echoes atomic.Int64
	s := sim.New(sim.WithSeed(5), sim.WithKey(key, 1<<40))
	var n atomic.Int64
	statuses := []int{400, 401, 402, 403, 404, 409, 422, 429, 500, 502, 503}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if r.URL.Path != httpsource.EntropyPath || i%3 != 0 {
			s.ServeHTTP(w, r)
			return
		}
		echoes.Add(1)
		status := statuses[int(i/3)%len(statuses)]
		msg := "key " + key + " is not valid here"
		w.Header().Set("X-Request-Id", "req-"+key)
		var body string
		switch (i / 3) % 5 {
		case 0:
			body = fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, key, msg)
		case 1:
			body = fmt.Sprintf(`{"error":%q,"message":%q,"statusCode":%d}`, key, msg, status)
		case 2:
			body = fmt.Sprintf(`{"details":%q}`, msg)
		case 3:
			body = fmt.Sprintf(`{"code":%q,"message":%q}`, key, msg)
		default:
			w.Header().Set("Content-Type", "text/plain")
			body = msg
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	defer s.Close()
	// Failed jobs whose messages carry the key, through the simulator.
	for i := 0; i < 6; i++ {
		s.Script(sim.Fault{Kind: sim.FaultJobFailed, Code: "QuantumComputerError", Message: "job for " + key + " failed"})
	}

	var seen []string // everything the library said
	var mu sync.Mutex
	say := func(v ...any) {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range v {
			seen = append(seen, fmt.Sprintf("%+v", x))
		}
	}
	dir := t.TempDir()
	for _, pol := range []entropy.Policy{entropy.Degrade, entropy.Defer, entropy.Fail} {
		src, err := httpsource.New(srv.URL, httpsource.WithAPIKey(key), httpsource.WithPublicKey(s.PublicKey()),
			httpsource.WithName(sim.SourceName), httpsource.WithPollInterval(2*time.Millisecond, 10*time.Millisecond))
		require.NoError(t, err)
		var logs testkit.SyncBuffer
		jpath := filepath.Join(dir, pol.String()+".jsonl")
		j, err := journal.Open(jpath)
		require.NoError(t, err)
		p, err := entropy.New(src,
			entropy.WithPolicy(pol),
			entropy.WithRateLimit(500, 5),
			entropy.WithRetry(3, time.Millisecond, 5*time.Millisecond),
			entropy.WithBreaker(gobreaker.Settings{Timeout: 10 * time.Millisecond}),
			entropy.WithBufferSize(2048), entropy.WithFetchSize(512),
			entropy.WithMaxRetryAfter(50*time.Millisecond),
			entropy.WithLogger(newLogger(&logs)),
			entropy.WithJournal(j),
			entropy.WithFallbackHook(func(ep entropy.FallbackEpisode) { say(ep, ep.Reason) }),
		)
		require.NoError(t, err)
		for i := 0; i < 150; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			b := make([]byte, 64)
			lb, err := p.ReadLabelled(ctx, b)
			js, _ := json.Marshal(lb)
			say(lb, string(js), err, lb.Reason)
			_, err = p.ReadSecret(ctx, b)
			say(err)
			_, tr, err := draw.Pick(ctx, p, 3, 10, draw.AllowFallback(), draw.ForEvent(fmt.Sprint("e", i%4)))
			say(err)
			if tr != nil {
				tj, _ := json.Marshal(tr)
				say(string(tj))
			}
			st := p.Stats()
			say(st, st.Unavailable)
			for _, ss := range st.Sources {
				say(ss.LastError)
			}
			cancel()
		}
		require.NoError(t, p.Close())
		require.NoError(t, j.Close())
		raw, err := os.ReadFile(jpath)
		require.NoError(t, err)
		say(logs.String(), string(raw))
	}
	require.Positive(t, echoes.Load(), "the service echoed the key")
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(seen, "\n")
	require.Contains(t, all, "not valid here", "the echoed messages did reach errors (redacted)")
	assert.NotContains(t, all, key)
	assert.NotContains(t, all, key[8:], "not even part of the key")
}
