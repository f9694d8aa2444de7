package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

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
