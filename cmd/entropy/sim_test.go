package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSimServesUntilCancelled(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"sim", "--addr", "127.0.0.1:0", "--seed", "9", "--faults", "queued=0.5"}, &out, &errOut)
	}()
	var env map[string]string
	require.Eventually(t, func() bool {
		env = exports(out.String())
		return len(env) == 4
	}, 5*time.Second, 5*time.Millisecond)
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

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(5 * time.Second):
		t.Fatal("entropy sim did not stop when its context ended")
	}
	assert.Contains(t, out.String(), "simulator stopped after")
	assert.Empty(t, errOut.String())
}

func TestSimRefusesNonLoopback(t *testing.T) {
	code, _, errOut := runCLI(t, "sim", "--addr", "0.0.0.0:0")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not loopback")
	assert.Equal(t, 1, strings.Count(errOut, "\n"))
}

func TestSimHidesAGivenKey(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"sim", "--addr", "127.0.0.1:0", "--api-key", "sk-my-own-secret"}, &out, &out)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "ENTROPY_PUBLIC_KEY") }, 5*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	assert.NotContains(t, out.String(), "sk-my-own-secret")
}

// exports reads the "export K=V" lines the sim command prints.
func exports(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if kv, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
			if k, v, ok := strings.Cut(kv, "="); ok && !strings.HasPrefix(v, "<") {
				m[k] = v
			}
		}
	}
	return m
}

// entropy sim with a fault that hits every request: entropy read under Fail
// exits non-zero with one line; under Degrade the label says fallback and
// never names the simulator's jobs.
func TestSimFaultsReachRead(t *testing.T) {
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
