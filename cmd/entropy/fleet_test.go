package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/redisfleet"
	"github.com/provenrand/entropy/sim"
)

// followFor runs entropy with args for d, then interrupts it.
func followFor(d time.Duration, args ...string) (code int, stdout, stderr string) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errOut testkit.SyncBuffer
	code = runContext(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// read --follow keeps reading until interrupted and prints a status line
// per --status-every to stderr, and nothing to stdout.
func TestReadFollowPrintsStatusLines(t *testing.T) {
	code, out, errOut := followFor(1500*time.Millisecond, "read", "--follow", "-n", "32", "--rate", "20", "--every", "5ms", "--status-every", "300ms")
	assert.Equal(t, exitOK, code, errOut)
	assert.Empty(t, out)
	lines := 0
	for _, l := range strings.Split(errOut, "\n") {
		if strings.Contains(l, "requests=") {
			lines++
			assert.Contains(t, l, "breaker=")
		}
	}
	assert.GreaterOrEqual(t, lines, 3, errOut)
}

// --rate, --burst, --fleet and --fleet-size refuse values that make no
// sense, with a usage error.
func TestFleetFlagsRefuseBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"read", "--rate", "0"},
		{"read", "--rate", "-3"},
		{"read", "--burst", "0"},
		{"read", "--fleet", "http://127.0.0.1:6379"},
		{"read", "--fleet", "redis://127.0.0.1:6379/0", "--fleet-size", "0"},
		{"read", "--fleet", "redis://127.0.0.1:6379/0", "--fleet-name", "a b"},
		{"draw", "--int", "6", "--rate", "0"},
	} {
		var out, errOut testkit.SyncBuffer
		assert.Equal(t, exitUsage, runContext(context.Background(), args, &out, &errOut), "%v: %s", args, errOut.String())
	}
}

// Flags of --fleet and --follow given without them would have no effect:
// each is a bad command line naming both flags, as is --timeout with
// --follow (whose reads wait at most --status-every).
func TestFleetAndFollowFlagsWithoutEffectAreUsageErrors(t *testing.T) {
	t.Setenv("ENTROPY_FLEET", "")
	clearEnv(t)
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"read", "--fleet-name", "lotto"}, []string{"--fleet-name", "--fleet"}},
		{[]string{"read", "--fleet-size", "3"}, []string{"--fleet-size", "--fleet"}},
		{[]string{"draw", "--int", "6", "--fleet-size", "3"}, []string{"--fleet-size", "--fleet"}},
		{[]string{"read", "--every", "5ms"}, []string{"--every", "--follow"}},
		{[]string{"read", "--status-every", "1s"}, []string{"--status-every", "--follow"}},
		{[]string{"read", "--follow", "--timeout", "5s"}, []string{"--timeout", "--follow"}},
	} {
		assertUsageError(t, tc.args, tc.mentions...)
	}
}

// Two `entropy read --follow --fleet` processes' worth of commands share one
// --rate: the service sees the rate of one, not of two.
func TestReadFollowFleetSharesTheRate(t *testing.T) {
	url := os.Getenv("ENTROPY_TEST_REDIS")
	if url == "" {
		t.Skip("ENTROPY_TEST_REDIS is not set (e.g. redis://127.0.0.1:6379/0): skipping the Redis integration test")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "entropy-test-cli-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c, err := redisfleet.NewClient(url)
		require.NoError(t, err)
		defer c.Close()
		keys, _ := c.Keys(context.Background(), name+":*").Result()
		keys2, _ := c.Keys(context.Background(), "rate:"+name+":*").Result()
		if all := append(keys, keys2...); len(all) > 0 {
			c.Del(context.Background(), all...)
		}
	})
	svc := sim.New()
	t.Cleanup(func() { _ = svc.Close() })
	base, err := svc.Start()
	require.NoError(t, err)
	key := "cli-fleet-test-key-0123456789"
	svc.AddKey(key, math.MaxInt64)

	const d = 2 * time.Second
	var wg sync.WaitGroup
	errs := make([]string, 2)
	codes := make([]int, 2)
	start := time.Now()
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, errOut := followFor(d, "read", "--follow", "-n", "32", "--every", "5ms", "--status-every", "500ms",
				"--url", base, "--api-key", key, "--public-key", base64.StdEncoding.EncodeToString(svc.PublicKey()),
				"--rate", "10", "--burst", "1", "--fleet", url, "--fleet-name", name, "--fleet-size", "2")
			codes[i], errs[i] = code, errOut
		}()
	}
	wg.Wait()
	n := 0
	for _, r := range svc.EntropyRequests() {
		if r.Time.After(start) {
			n++
		}
	}
	assert.LessOrEqual(t, n, 10*3+1, "two commands sharing --rate 10 over %v", d)
	assert.GreaterOrEqual(t, n, 10, "the commands kept the shared rate busy")
	for i, e := range errs {
		assert.Equal(t, exitOK, codes[i], e)
		assert.Contains(t, e, "fleet "+name+"=shared", e)
	}
}

// failingStatus is a stderr that cannot be written to (a closed pipe). It
// counts the status lines --follow tried to print, and interrupts the
// command at the second: one that went on printing to nowhere.
type failingStatus struct {
	mu     sync.Mutex
	lines  int
	cancel context.CancelFunc
}

func (f *failingStatus) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(string(p), " reads verifiable=") {
		if f.lines++; f.lines == 2 {
			f.cancel()
		}
	}
	return 0, errors.New("broken pipe")
}

// The status lines are all read --follow prints: when they cannot be
// written it stops with an error rather than run on unseen and exit 0.
func TestReadFollowStopsWhenItsStatusCannotBeWritten(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &failingStatus{cancel: cancel}
	var out strings.Builder
	code := runContext(ctx, []string{"read", "--follow", "--status-every", "5ms"}, &out, stderr)
	assert.Equal(t, exitError, code)
	stderr.mu.Lock()
	defer stderr.mu.Unlock()
	assert.Equal(t, 1, stderr.lines, "status lines tried after the first failed")
}
