package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/health"
	"github.com/provenrand/entropy/internal/straybytes"
	"github.com/provenrand/entropy/sim"
)

// clearEnv makes sure the tests see no service configured by the environment.
func clearEnv(t *testing.T) {
	t.Setenv("ENTROPY_URL", "")
	t.Setenv("ENTROPY_API_KEY", "")
	t.Setenv("ENTROPY_PUBLIC_KEY", "")
	t.Setenv("ENTROPY_SOURCE_NAME", "")
}

func TestReadFromEmbeddedSimulatorIsVerifiable(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "read", "-n", "32", "--label")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	b, err := hex.DecodeString(lines[0])
	require.NoError(t, err)
	assert.Len(t, b, 32)

	var lbl entropy.Label
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &lbl))
	assert.True(t, lbl.Verifiable, "the first run prints verifiable bytes")
	assert.Equal(t, 32, lbl.Len())
	for _, s := range lbl.Spans {
		assert.Equal(t, sim.SourceName, s.Source, "labels name the simulator")
		assert.NotEmpty(t, s.JobID)
	}
	assert.Contains(t, lines[1], `"class":"verifiable"`)
	assert.Empty(t, errOut)
}

func TestReadFormats(t *testing.T) {
	clearEnv(t)
	code, out, _ := runCLI(t, "read", "-n", "20", "--format", "base64")
	require.Equal(t, 0, code)
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	require.NoError(t, err)
	assert.Len(t, b, 20)

	var stdout, stderr bytes.Buffer
	code = run([]string{"read", "-n", "17", "--format", "raw", "--label"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Equal(t, 17, stdout.Len(), "raw writes only the bytes to stdout")
	assert.Contains(t, stderr.String(), `"verifiable":true`, "and the label to stderr")
}

// With --format raw the label goes to stderr: a label that could not be
// written there is lost output, and the command fails as it does when stdout
// fails.
func TestReadRawLabelLostOnStderrFails(t *testing.T) {
	clearEnv(t)
	var out bytes.Buffer
	code := run([]string{"read", "-n", "8", "--format", "raw", "--label"}, &out, failWriter{})
	assert.Equal(t, exitError, code)
	assert.Equal(t, 8, out.Len(), "the bytes were written")
}

func TestReadLargerThanOneJob(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "read", "-n", "100000", "--label", "--policy", "defer")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	assert.Len(t, lines[0], 200000)
	var lbl entropy.Label
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &lbl))
	assert.True(t, lbl.Verifiable)
	assert.Equal(t, 100000, lbl.Len())
	assert.Greater(t, len(lbl.Spans), 1)
}

// startSim starts a simulator with a key for the tests that pass --url.
func startSim(t *testing.T, key string) (*sim.Server, string, string) {
	t.Helper()
	s := sim.New(sim.WithKey(key, 1<<20))
	url, err := s.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, url, base64.StdEncoding.EncodeToString(s.PublicKey())
}

func TestReadFromConfiguredService(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-test-9f8e7d6c5b4a"
	s, url, pub := startSim(t, key)

	// Flags.
	code, out, errOut := runCLI(t, "read", "-n", "8", "--label", "--url", url, "--api-key", key, "--public-key", pub)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"source":"`+strings.TrimPrefix(url, "http://")+`"`, "without --source-name, the service's host:port")
	assert.Contains(t, out, `"verifiable":true`)

	// Environment.
	t.Setenv("ENTROPY_URL", url)
	t.Setenv("ENTROPY_API_KEY", key)
	t.Setenv("ENTROPY_PUBLIC_KEY", pub)
	code, out, errOut = runCLI(t, "read", "-n", "8", "--label")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"verifiable":true`)

	// Trust on first use.
	t.Setenv("ENTROPY_PUBLIC_KEY", "")
	code, out, errOut = runCLI(t, "read", "-n", "8", "--label", "--fetch-public-key")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"verifiable":true`)

	for _, r := range s.EntropyRequests() {
		assert.True(t, r.Authorized)
	}
}

func TestReadConfigurationErrors(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-test-9f8e7d6c5b4a"
	_, url, pub := startSim(t, key)
	for name, args := range map[string][]string{
		"no public key":        {"read", "--url", url, "--api-key", key},
		"bad public key":       {"read", "--url", url, "--api-key", key, "--public-key", "AAAA"},
		"key without url":      {"read", "--api-key", key},
		"bad policy":           {"read", "--policy", "sometimes"},
		"insecure url":         {"read", "--url", "http://example.com", "--api-key", key, "--public-key", pub},
		"non-positive timeout": {"read", "--timeout", "0s"},
	} {
		code, out, errOut := runCLI(t, args...)
		assert.Equal(t, 2, code, "a bad command line: %s", name)
		assert.Empty(t, out, name)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%s: %q", name, errOut)
		assert.True(t, strings.HasPrefix(errOut, "entropy read: "), name)
		assert.NotContains(t, errOut, key, name)
	}
}

// TestSourceNameWithoutURLIsUsageError: --source-name (or
// ENTROPY_SOURCE_NAME) without --url would name nothing (the embedded
// simulator is always "simulator"): read and draw refuse it as a bad
// command line that names both flags, and take it with a URL.
func TestSourceNameWithoutURLIsUsageError(t *testing.T) {
	clearEnv(t)
	for _, cmd := range [][]string{{"read", "-n", "8"}, {"draw", "--int", "10"}} {
		assertUsageError(t, append(cmd, "--source-name", "acme"), "--source-name", "--url")
	}
	t.Setenv("ENTROPY_SOURCE_NAME", "acme")
	assertUsageError(t, []string{"read", "-n", "8"}, "ENTROPY_SOURCE_NAME", "--url")

	const key = "sk-cli-source-name-7a6b5c4d"
	_, url, pub := startSim(t, key)
	t.Setenv("ENTROPY_API_KEY", key)
	code, out, errOut := runCLI(t, "read", "-n", "8", "--label", "--url", url, "--public-key", pub)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"source":"acme"`)
}

// TestSourceFlagsWithoutEffectAreUsageErrors: a flag of read and draw that
// the other flags leave without effect is a bad command line naming both,
// never silently dropped: --fetch-public-key without --url or beside
// --public-key, a service's flags when --source has no service, --relays
// without a drand chain, --allow-http with neither a URL nor a chain.
func TestSourceFlagsWithoutEffectAreUsageErrors(t *testing.T) {
	clearEnv(t)
	pub := base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	for _, cmd := range [][]string{{"read", "-n", "8"}, {"draw", "--int", "10"}} {
		for _, tc := range []struct {
			args     []string
			mentions []string
		}{
			{[]string{"--fetch-public-key"}, []string{"--fetch-public-key", "--url"}},
			{[]string{"--url", "http://127.0.0.1:1", "--public-key", pub, "--fetch-public-key"}, []string{"--fetch-public-key", "--public-key"}},
			{[]string{"--source", "drand", "--url", "http://127.0.0.1:1"}, []string{"--url", "--source"}},
			{[]string{"--source", "drand", "--api-key", "sk-cli-unused-0123"}, []string{"--api-key", "--source"}},
			{[]string{"--source", "drand", "--public-key", pub}, []string{"--public-key", "--source"}},
			{[]string{"--source", "drand", "--fetch-public-key"}, []string{"--fetch-public-key", "--source"}},
			{[]string{"--source", "drand", "--source-name", "acme"}, []string{"--source-name", "--source"}},
			{[]string{"--relays", "http://127.0.0.1:1"}, []string{"--relays", "--source"}},
			{[]string{"--allow-http"}, []string{"--allow-http", "--url"}},
		} {
			assertUsageError(t, append(append([]string{}, cmd...), tc.args...), tc.mentions...)
		}
	}
}

func TestReadPolicies(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-test-9f8e7d6c5b4a"
	_, url, pub := startSim(t, key)
	wrong := "sk-wrong-0123456789abcdef"

	// Fail: one line, non-zero, no key.
	code, out, errOut := runCLI(t, "read", "-n", "8", "--url", url, "--api-key", wrong, "--public-key", pub, "--policy", "fail", "--timeout", "2s")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	assert.Contains(t, errOut, "401")
	assert.NotContains(t, errOut, wrong)

	// Degrade: a key the service refuses is a misconfiguration, not an
	// outage: no fallback bytes, the service's message, a non-zero exit.
	for _, extra := range [][]string{{"--label"}, nil, {"--policy", "defer"}} {
		args := append([]string{"read", "-n", "8", "--url", url, "--api-key", wrong, "--public-key", pub, "--timeout", "2s"}, extra...)
		code, out, errOut = runCLI(t, args...)
		assert.Equal(t, 1, code, "%q: %s", args, errOut)
		assert.Empty(t, out)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
		assert.Contains(t, errOut, "401")
		assert.Contains(t, errOut, "Invalid or missing API key", "the service's own message")
		assert.NotContains(t, out+errOut, wrong)
	}

	// Degrade over an outage (nothing listens at the URL): bytes labelled
	// fallback, with the reason, exit 0.
	down := "http://127.0.0.1:1"
	code, out, errOut = runCLI(t, "read", "-n", "8", "--label", "--url", down, "--api-key", key, "--public-key", pub, "--timeout", "2s")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"class":"fallback"`)
	assert.Contains(t, out, `"source":"crypto/rand"`)
	assert.Contains(t, out, "connection")

	// Degrade without --label warns on stderr.
	code, _, errOut = runCLI(t, "read", "-n", "8", "--url", down, "--api-key", key, "--public-key", pub, "--timeout", "2s")
	assert.Equal(t, 0, code)
	assert.Contains(t, errOut, "not verifiable")

	// Defer: waits until the timeout, then fails.
	code, _, errOut = runCLI(t, "read", "-n", "8", "--url", url, "--api-key", wrong, "--public-key", pub, "--policy", "defer", "--timeout", "200ms")
	assert.Equal(t, 1, code)
	assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	assert.NotContains(t, errOut, wrong)
}

// TestReadFailPolicyFailsAtOnceDuringOutage: under --policy fail, a service
// that is down ends the read with the source's error once the refill round
// has failed, as the fail policy says; only defer waits out --timeout. The
// deadline is an hour, so a read that waited for it would fail the test's
// own timeout. Degrade likewise falls back without waiting for it.
func TestReadFailPolicyFailsAtOnceDuringOutage(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-outage-5e4d3c2b"
	_, _, pub := startSim(t, key)
	down := "http://127.0.0.1:1" // nothing listens here
	code, out, errOut := runCLI(t, "read", "-n", "8", "--url", down, "--api-key", key, "--public-key", pub, "--policy", "fail", "--timeout", "1h")
	assert.Equal(t, exitError, code, out)
	assert.Empty(t, out)
	assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	assert.Contains(t, errOut, "unavailable")
	assert.Contains(t, errOut, "connection", "the source's own error")
	assert.NotContains(t, errOut, "deadline")

	code, out, errOut = runCLI(t, "read", "-n", "8", "--label", "--url", down, "--api-key", key, "--public-key", pub, "--timeout", "1h")
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"class":"fallback"`)
	assert.NotContains(t, out, "deadline")
}

func TestReadSourceFlag(t *testing.T) {
	clearEnv(t)
	// The simulator first, drand (here an unreachable relay) as failover.
	code, out, errOut := runCLI(t, "read", "-n", "16", "--label", "--source", "service,drand", "--relays", "http://127.0.0.1:1")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"source":"simulator"`)

	// drand alone, its relay unreachable, under fail: one clear line, non-zero exit.
	code, _, errOut = runCLI(t, "read", "-n", "16", "--source", "drand:quicknet", "--relays", "http://127.0.0.1:1", "--policy", "fail", "--timeout", "300ms")
	assert.NotEqual(t, 0, code)
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, errOut)
	assert.Contains(t, errOut, "unavailable")

	for _, bad := range []string{"drand:mainnet", "service,service", "quantum"} {
		code, _, errOut = runCLI(t, "read", "-n", "16", "--source", bad)
		assert.NotEqual(t, 0, code, bad)
		assert.Contains(t, errOut, "--source", bad)
	}
}

// TestReadTinyFromStuckServiceNotVerifiable: read -n 1 to -n 6 from a
// service stuck at one byte value never prints those bytes labelled
// verifiable: the CLI asks the service for a block the health tests can
// judge, however few bytes it prints.
func TestReadTinyFromStuckServiceNotVerifiable(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-stuck-1a2b3c"
	s, url, pub := startSim(t, key)
	require.NoError(t, s.SetRandomFaults(1, map[sim.FaultKind]float64{sim.FaultStuck: 1}))
	t.Setenv("ENTROPY_API_KEY", key)
	for n := 1; n <= 6; n++ {
		code, out, errOut := runCLI(t, "read", "-n", fmt.Sprint(n), "--label", "--url", url, "--public-key", pub, "--timeout", "300ms")
		require.Equal(t, exitOK, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2, out)
		var lbl entropy.Label
		require.NoError(t, json.Unmarshal([]byte(lines[1]), &lbl))
		assert.False(t, lbl.Verifiable, "-n %d: stuck bytes %s labelled verifiable", n, lines[0])
	}
	for _, r := range s.EntropyRequests() {
		rct, apt := health.DefaultConfig().Cutoffs()
		assert.GreaterOrEqual(t, r.Size, max(rct, apt), "the service was asked for a block too small to judge")
	}
}

// TestReadNeverPrintsKeyEchoedInStrayBytes: entropy read, run as a user runs
// it, against a service that sends bytes echoing the Authorization header
// after each valid answer, prints the key neither on stdout nor on stderr
// (net/http would log those bytes as an unsolicited response on an idle
// connection).
func TestReadNeverPrintsKeyEchoedInStrayBytes(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-stray-9a8b7c6d"
	s := sim.New(sim.WithKey(key, 1<<20))
	t.Cleanup(func() { _ = s.Close() })
	srv := straybytes.Start(t, s)
	pub := base64.StdEncoding.EncodeToString(s.PublicKey())
	for _, args := range [][]string{
		{"read", "-n", "32", "--label"},
		{"read", "-n", "100000", "--label", "--policy", "defer"},
		{"draw", "--pick", "3", "--of", "10"},
	} {
		code, out, errOut := runMain(t, []string{"ENTROPY_URL=" + srv.URL, "ENTROPY_API_KEY=" + key, "ENTROPY_PUBLIC_KEY=" + pub}, args...)
		require.Equal(t, exitOK, code, errOut)
		assert.NotContains(t, out, key, args)
		assert.NotContains(t, errOut, key, args)
	}
}

const echoedKey = "sk-echo-cli-a1b2c3d4e5f60718293a"

// A service that echoes the key from the environment in every place of an
// error answer: no output of any policy shows it, and errors are one line.
func TestEchoedEnvKeyNeverPrinted(t *testing.T) {
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
	t.Setenv("ENTROPY_API_KEY", echoedKey)
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
		assert.NotContains(t, out+errOut, echoedKey, "%q", tc.args)
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

// TestSmallReadAsksForWhatItNeeds: entropy read -n 32 (and a draw,
// which needs 32 bytes) asks a configured service for 16 KiB and more per
// run and throws the rest away on exit. A key with 1000 bytes of balance
// left gets 402 and the read fails (under degrade: falls back) although the
// balance covers it many times over; a key with a large balance is charged
// for the whole pool.
func TestSmallReadAsksForWhatItNeeds(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		name    string
		balance int64
	}{{"balance 1000", 1000}, {"balance 1 MiB", 1 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			const key = "sk-cli-balance"
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

// read --follow prints no bytes, so --label and --format, which say how to
// print them, would have no effect: a script asking for labels must not get
// a status loop that silently never prints one.
func TestReadFollowRefusesOutputFlags(t *testing.T) {
	clearEnv(t)
	assertUsageError(t, []string{"read", "--follow", "--label"}, "--label", "--follow")
	assertUsageError(t, []string{"read", "--follow", "--format", "raw"}, "--format", "--follow")
}

// A command ended by SIGINT or SIGTERM while it waited says it was
// interrupted, and fails: the bytes or the draw it was asked for never came.
func TestInterruptedCommandSaysSo(t *testing.T) {
	clearEnv(t)
	service := []string{"--url", "http://127.0.0.1:1", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
	for _, args := range [][]string{
		append([]string{"read", "-n", "4", "--policy", "defer"}, service...),
		append([]string{"draw", "--int", "6"}, service...),
	} {
		code, out, errOut := runInterrupted(args...)
		assert.Equal(t, exitError, code, "%q: %s", args, errOut.String())
		assert.Empty(t, out.String(), "%q", args)
		assert.True(t, strings.HasPrefix(errOut.String(), "entropy "+args[0]+": interrupted before it finished: "), "%q: %q", args, errOut.String())
	}
}
