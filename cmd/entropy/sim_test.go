package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSimServesUntilCancelled(t *testing.T) {
	clearEnv(t)
	cmd := start(t, "sim", "--addr", "127.0.0.1:0", "--seed", "9", "--faults", "queued=0.5")
	env := cmd.simEnv(t)
	assert.Equal(t, demoAPIKey, env["ENTROPY_API_KEY"])

	// The printed settings work for entropy read.
	t.Setenv("ENTROPY_URL", env["ENTROPY_URL"])
	t.Setenv("ENTROPY_API_KEY", env["ENTROPY_API_KEY"])
	t.Setenv("ENTROPY_PUBLIC_KEY", env["ENTROPY_PUBLIC_KEY"])
	t.Setenv("ENTROPY_SOURCE_NAME", env["ENTROPY_SOURCE_NAME"])
	code, rout, rerr := runCLI(t, "read", "-n", "16", "--label")
	require.Equal(t, 0, code, rerr)
	assert.Contains(t, rout, `"verifiable":true`)
	assert.Contains(t, rout, `"source":"simulator"`, "a standalone simulator is labelled as one too")

	assert.Equal(t, 0, cmd.stop(t))
	assert.Contains(t, cmd.out.String(), "simulator stopped after")
	assert.Empty(t, cmd.errOut.String())
}

// An --addr the simulator may not serve on is a bad command line (exit 2,
// as for its other flags), known before anything listens.
func TestSimNonLoopbackAddressIsUsageError(t *testing.T) {
	assertUsageError(t, []string{"sim", "--addr", "0.0.0.0:0"}, "--addr", "not loopback")
	assertUsageError(t, []string{"sim", "--addr", "10.0.0.1:8080"}, "--addr", "not loopback")
	assertUsageError(t, []string{"sim", "--addr", "127.0.0.1"}, "--addr", "missing port")
}

func TestSimHidesAGivenKey(t *testing.T) {
	cmd := start(t, "sim", "--addr", "127.0.0.1:0", "--api-key", "sk-my-own-secret")
	require.Eventually(t, func() bool { return strings.Contains(cmd.out.String(), "ENTROPY_PUBLIC_KEY") }, 5*time.Second, 5*time.Millisecond)
	cmd.stop(t)
	assert.NotContains(t, cmd.out.String(), "sk-my-own-secret")
	assert.NotContains(t, cmd.errOut.String(), "sk-my-own-secret")
}

// A key too short for any client to send (httpsource.MinAPIKeyLen) is a bad
// command line of sim too, refused without printing it, not a simulator
// that nobody can use.
func TestSimRefusesAShortKey(t *testing.T) {
	code, out, errOut := runCLI(t, "sim", "--addr", "127.0.0.1:0", "--api-key", "k3y")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "too short")
	assert.NotContains(t, errOut, "k3y")
}

// A --queue that is not a fraction, NaN included, is a bad command line,
// not a simulator that never queues.
func TestSimRefusesAQueueOutsideZeroToOne(t *testing.T) {
	// Interrupted from the start: a simulator that did start stops at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, q := range []string{"-0.5", "1.5", "NaN"} {
		var out, errOut bytes.Buffer
		code := runContext(ctx, []string{"sim", "--addr", "127.0.0.1:0", "--queue", q}, &out, &errOut)
		assert.Equal(t, exitUsage, code, q)
		assert.Empty(t, out.String(), q)
		assert.Contains(t, errOut.String(), "--queue", q)
	}
}

// --burst without --rate would shape no limit: a bad command line naming
// both flags, not a simulator that ignores it.
func TestSimBurstWithoutRateIsUsageError(t *testing.T) {
	assertUsageError(t, []string{"sim", "--addr", "127.0.0.1:0", "--burst", "3"}, "--burst", "--rate")
}

// entropy sim with a fault that hits every request: entropy read under Fail
// exits non-zero with one line; under Degrade the label says fallback and
// never names the simulator's jobs.
func TestSimFaultsReachRead(t *testing.T) {
	clearEnv(t)
	for _, fault := range []string{"badsig", "wronglength", "truncate", "drop", "exhausted"} {
		t.Run(fault, func(t *testing.T) {
			cmd := start(t, "sim", "--addr", "127.0.0.1:0", "--faults", fault+"=1")
			env := cmd.simEnv(t)
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
				cmd.stop(t)
				return
			}
			assert.Equal(t, 0, code, rerr)
			assert.Contains(t, rout, `"verifiable":false`)
			assert.Contains(t, rout, `"class":"fallback"`)
			assert.NotContains(t, rout, `"job_id"`)

			assert.Equal(t, 0, cmd.stop(t))
		})
	}
}

// With nothing configured, the label names the simulator and its jobs are
// the ones a simulator keeps.
func TestEmbeddedLabelNamesSimulator(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "read", "-n", "64", "--label", "--format", "hex")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	assert.Len(t, lines[0], 128)
	assert.Contains(t, lines[1], `"source":"`+sim.SourceName+`"`)
	assert.NotContains(t, lines[1], `"source":"quantropy"`)
}

// TestVerifyURLWithSimulatorExports: entropy sim prints the settings
// to export, ENTROPY_SOURCE_NAME among them; a draw made with them cannot
// then be checked with entropy verify --url, which knows only the default
// service name.
func TestVerifyURLWithSimulatorExports(t *testing.T) {
	clearEnv(t)
	t.Setenv("ENTROPY_SOURCE_NAME", "")
	env := start(t, "sim", "--addr", "127.0.0.1:0").simEnv(t)
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
