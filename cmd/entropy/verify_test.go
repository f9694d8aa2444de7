package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVerifyOfflineFromTheProof: a draw against a service carries the proof
// of its job; with the service stopped, `entropy verify --public-key`
// checks the transcript offline and says which checks ran; without a key it
// still replays and says the origin was not checked; with another key it
// fails.
func TestVerifyOfflineFromTheProof(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-verify-offline-1"
	s, url, pub := startSim(t, key)
	t.Setenv("ENTROPY_API_KEY", key)
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--url", url, "--public-key", pub, "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	tr := readTranscript(t, path)
	require.Len(t, tr.Proofs, 1, "the transcript carries the proof of its job")
	require.NoError(t, s.Close())

	code, out, errOut := runCLI(t, "verify", "--public-key", pub, path)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "replay OK")
	assert.Contains(t, out, "checked: binding")
	assert.Contains(t, out, "checked: signature: proof 0")
	assert.Contains(t, out, "protocol v2")
	assert.Contains(t, out, "origin OK")
	assert.NotContains(t, out, "not checked")

	code, out, errOut = runCLI(t, "verify", path)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "replay OK")
	assert.Contains(t, out, "not checked: signature of proof 0: no public key")
	assert.Contains(t, out, "origin NOT checked")

	code, _, errOut = runCLI(t, "verify", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", path)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `"signature"`)

	code, _, errOut = runCLI(t, "verify", "--public-key", pub, "--chain", "nosuchchain", path)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--chain")
}
