package main

// Review tests: the CLI probed from the issue text.

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/sim"
)

const reviewCLIKey = "sk-review-cli-a1b2c3d4e5f60718293a"

// A service that echoes the key from the environment in every place of an
// error answer: no output of any policy shows it, and errors are one line.
func TestReviewEchoedEnvKeyNeverPrinted(t *testing.T) {
	clearEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("X-Request-Id", "rq-"+tok)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":%q,"message":"key %s is\nnot valid","statusCode":401}`, tok, tok)
	}))
	defer srv.Close()
	pub := base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	t.Setenv("ENTROPY_URL", srv.URL)
	t.Setenv("ENTROPY_API_KEY", reviewCLIKey)
	t.Setenv("ENTROPY_PUBLIC_KEY", pub)
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"read", "-n", "8", "--policy", "fail", "--timeout", "2s"}, false},
		{[]string{"read", "-n", "8", "--policy", "defer", "--timeout", "200ms"}, false},
		// A 401 is a misconfiguration: an error under every policy.
		{[]string{"read", "-n", "8", "--policy", "degrade", "--timeout", "2s"}, false},
		{[]string{"read", "-n", "8", "--policy", "degrade", "--label", "--timeout", "2s"}, false},
		{[]string{"read", "-n", "8", "--format", "raw", "--label", "--timeout", "2s"}, false},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		assert.NotContains(t, out+errOut, reviewCLIKey, "%q", tc.args)
		if tc.ok {
			assert.Equal(t, 0, code, "%q: %s", tc.args, errOut)
			continue
		}
		assert.NotEqual(t, 0, code, "%q", tc.args)
		assert.Empty(t, out, "%q", tc.args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%q: %q", tc.args, errOut)
		assert.True(t, strings.HasPrefix(errOut, "entropy read: "), errOut)
	}
}

// The issue's flags are accepted and shown in --help.
func TestReviewIssueFlagsInHelp(t *testing.T) {
	clearEnv(t)
	code, out, _ := runCLI(t, "read", "--help")
	require.Equal(t, 0, code)
	for _, f := range []string{"-n", "-format", "-label", "-policy", "-url", "-public-key", "ENTROPY_URL", "ENTROPY_API_KEY", "ENTROPY_PUBLIC_KEY"} {
		assert.Contains(t, out, f)
	}
	code, out, _ = runCLI(t, "sim", "-h")
	require.Equal(t, 0, code)
	for _, f := range []string{"-addr", "-faults", "127.0.0.1:8080"} {
		assert.Contains(t, out, f)
	}
	for _, pol := range []string{"degrade", "defer", "fail"} {
		code, out, errOut := runCLI(t, "read", "-n", "4", "--policy", pol, "--format", "base64")
		assert.Equal(t, 0, code, "%s: %s", pol, errOut)
		assert.NotEmpty(t, strings.TrimSpace(out))
	}
	code, _, errOut := runCLI(t, "read", "--policy", "sometimes")
	assert.NotEqual(t, 0, code)
	assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
}

// entropy sim with a fault that hits every request: entropy read under Fail
// exits non-zero with one line; under Degrade the label says fallback and
// never names the simulator's jobs.
func TestReviewSimFaultsReachRead(t *testing.T) {
	clearEnv(t)
	for _, fault := range []string{"badsig", "wronglength", "truncate", "drop", "exhausted"} {
		t.Run(fault, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- runContext(ctx, []string{"sim", "--addr", "127.0.0.1:0", "--faults", fault + "=1"}, &out, &errOut)
			}()
			var env map[string]string
			require.Eventually(t, func() bool {
				env = exports(out.String())
				return len(env) == 4
			}, 5*time.Second, 5*time.Millisecond)
			timeout := "500ms"
			if fault == "badsig" {
				timeout = "10s" // time for a whole round of retries, all refused
			}
			args := []string{"--url", env["ENTROPY_URL"], "--public-key", env["ENTROPY_PUBLIC_KEY"], "--timeout", timeout}
			t.Setenv("ENTROPY_API_KEY", env["ENTROPY_API_KEY"])

			code, rout, rerr := runCLI(t, append([]string{"read", "-n", "8", "--policy", "fail"}, args...)...)
			assert.NotEqual(t, 0, code)
			assert.Empty(t, rout)
			assert.Equal(t, 1, strings.Count(rerr, "\n"), rerr)

			code, rout, rerr = runCLI(t, append([]string{"read", "-n", "8", "--label"}, args...)...)
			if fault == "badsig" || fault == "exhausted" {
				// Every answer refused (402) or signed with another key:
				// a misconfiguration, an error under every policy.
				assert.Equal(t, 1, code, rerr)
				assert.Empty(t, rout)
				assert.Equal(t, 1, strings.Count(rerr, "\n"), rerr)
				cancel()
				<-done
				return
			}
			assert.Equal(t, 0, code, rerr)
			assert.Contains(t, rout, `"verifiable":false`)
			assert.Contains(t, rout, `"class":"fallback"`)
			assert.NotContains(t, rout, `"job_id"`)

			cancel()
			select {
			case c := <-done:
				assert.Equal(t, 0, c)
			case <-time.After(5 * time.Second):
				t.Fatal("entropy sim did not stop")
			}
		})
	}
}

// With nothing configured, the label names the simulator and its jobs are
// the ones a simulator keeps.
func TestReviewEmbeddedLabelNamesSimulator(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "read", "-n", "64", "--label", "--format", "hex")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	assert.Len(t, lines[0], 128)
	assert.Contains(t, lines[1], `"source":"`+sim.SourceName+`"`)
	assert.NotContains(t, lines[1], `"source":"quantropy"`)
}
