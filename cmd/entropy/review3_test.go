package main

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/sim"
)

// failWriter fails every write, as stdout does on a full disk or a closed
// pipe whose reader ignored SIGPIPE.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestReview3DrawFailsWhenResultCannotBeWritten: entropy draw > /dev/full
// draws, loses the result and the transcript, and exits 0. Drawing again is
// a new draw: the result that was lost can never be shown.
func TestReview3DrawFailsWhenResultCannotBeWritten(t *testing.T) {
	clearEnv(t)
	var errOut syncBuffer
	code := run([]string{"draw", "--pick", "6", "--of", "49"}, failWriter{}, &errOut)
	assert.NotEqual(t, exitOK, code, "the draw's result and transcript went nowhere, yet exit 0; stderr: %q", errOut.String())
}

// TestReview3VerifyURLWithSimulatorExports: entropy sim prints the settings
// to export, ENTROPY_SOURCE_NAME among them; a draw made with them cannot
// then be checked with entropy verify --url, which knows only the default
// service name.
func TestReview3VerifyURLWithSimulatorExports(t *testing.T) {
	clearEnv(t)
	t.Setenv("ENTROPY_SOURCE_NAME", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"sim", "--addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("entropy sim did not stop")
		}
	}()
	var env map[string]string
	require.Eventually(t, func() bool {
		env = exports(out.String())
		return len(env) == 4
	}, 5*time.Second, 5*time.Millisecond)
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, derr := runCLI(t, "draw", "--pick", "6", "--of", "49", "--transcript", path)
	require.Equal(t, exitOK, code, derr)
	require.True(t, readTranscript(t, path).Verifiable)

	code, vout, verr := runCLI(t, "verify", "--url", env["ENTROPY_URL"], path)
	assert.Equal(t, exitOK, code, "stdout: %s\nstderr: %s", vout, verr)
	assert.Contains(t, vout, "entropy OK")
}

// TestReview3DrawReportsWhyEntropyIsUnavailable: a draw (policy defer, the
// default) against a service that refuses the API key waits out the whole
// --timeout and then says only "context deadline exceeded"; the 401 the
// service answered, which read --policy fail reports, is never shown.
func TestReview3DrawReportsWhyEntropyIsUnavailable(t *testing.T) {
	clearEnv(t)
	_, url, pub := startSim(t, "sk-review3-right-key")
	t.Setenv("ENTROPY_API_KEY", "sk-review3-wrong-key")
	code, out, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--url", url, "--public-key", pub, "--timeout", "3s")
	require.NotEqual(t, exitOK, code, out)
	assert.Regexp(t, `401|(?i)unauthori`, errOut, "the cause is not reported")
	assert.NotContains(t, errOut, "sk-review3")
}

// TestReview3SmallReadAsksForWhatItNeeds: entropy read -n 32 (and a draw,
// which needs 32 bytes) asks a configured service for 16 KiB and more per
// run and throws the rest away on exit. A key with 1000 bytes of balance
// left gets 402 and the read fails (under degrade: falls back) although the
// balance covers it many times over; a key with a large balance is charged
// for the whole pool.
func TestReview3SmallReadAsksForWhatItNeeds(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		name    string
		balance int64
	}{{"balance 1000", 1000}, {"balance 1 MiB", 1 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			const key = "sk-review3-balance"
			s := sim.New(sim.WithKey(key, tc.balance))
			url, err := s.Start()
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			pub := base64.StdEncoding.EncodeToString(s.PublicKey())
			t.Setenv("ENTROPY_API_KEY", key)

			code, out, errOut := runCLI(t, "read", "-n", "32", "--policy", "fail", "--url", url, "--public-key", pub, "--timeout", "3s")
			var sizes []int
			for _, r := range s.EntropyRequests() {
				sizes = append(sizes, r.Size)
			}
			left, _ := s.Balance(key)
			assert.Equal(t, exitOK, code, "read -n 32 with a balance of %d: %s", tc.balance, errOut)
			assert.Len(t, strings.TrimSpace(out), 64)
			assert.LessOrEqual(t, tc.balance-left, int64(1000), "a 32-byte read was charged %d bytes (sizes asked: %v)", tc.balance-left, sizes)
		})
	}
}
