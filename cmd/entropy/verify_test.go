package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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

// TestVerifySourceNameWithoutURLOrKeyIsUsageError: verify's --source-name
// names the service whose jobs (--url) or key (--public-key) check the
// transcript; without either it would do nothing, and is a bad command
// line naming the flags.
func TestVerifySourceNameWithoutURLOrKeyIsUsageError(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, "draw", "--int", "10", "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	assertUsageError(t, []string{"verify", "--source-name", "simulator", path}, "--source-name", "--url", "--public-key")
}

// TestDrawFromEntrants: draw --entrants FILE commits the transcript to the
// list and prints the winners by name; verify --entrants checks the list and
// refuses a changed one.
func TestDrawFromEntrants(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "entrants.txt")
	require.NoError(t, os.WriteFile(list, []byte("Ada\nBo\nCy\nDee\nEve\n"), 0o600))
	path := filepath.Join(dir, "t.json")
	code, out, errOut := runCLI(t, "draw", "--pick", "2", "--entrants", list, "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	tr := readTranscript(t, path)
	require.NotNil(t, tr.Entrants)
	assert.Equal(t, uint64(5), tr.Entrants.Count)
	assert.Equal(t, "eb4e44a5ce2f5fa9aaf3c41bf2b5489c0c45ee405a15005dcbd6dd15558e7aad", tr.Entrants.SHA256)
	names := []string{"Ada", "Bo", "Cy", "Dee", "Eve"}
	winners := strconv.Quote(names[tr.Outputs[0]]) + ", " + strconv.Quote(names[tr.Outputs[1]])
	assert.Contains(t, out+errOut, "winners: "+winners)

	code, out, errOut = runCLI(t, "verify", "--entrants", list, path)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "entrants OK")
	assert.Contains(t, out, "winners: "+winners)

	changed := filepath.Join(dir, "changed.txt")
	require.NoError(t, os.WriteFile(changed, []byte("Ada\nBo\nCy\nDee\nEvil\n"), 0o600))
	code, _, errOut = runCLI(t, "verify", "--entrants", changed, path)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "not the one the draw committed to")

	code, out, _ = runCLI(t, "verify", path)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "entrants not checked")

	code, _, errOut = runCLI(t, "draw", "--pick", "2", "--of", "4", "--entrants", list)
	assert.Equal(t, exitUsage, code, "N must be the number of entrants")
	assert.Contains(t, errOut, "5 entrants")
}

// TestVerifyThatFailsPrintsNoOKLine: every check is made before the
// report is printed, so a verify that fails (a changed list of entrants, a
// proof signed by another key, a job the service no longer has) prints no
// "OK" line on stdout before its error: "replay OK" was printed before the
// entrants were found not to match, and "origin OK" before the jobs at
// --url were checked.
func TestVerifyThatFailsPrintsNoOKLine(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-verify-no-ok-1"
	s, url, pub := startSim(t, key)
	t.Setenv("ENTROPY_API_KEY", key)
	dir := t.TempDir()
	list := filepath.Join(dir, "entrants.txt")
	require.NoError(t, os.WriteFile(list, []byte("Ada\nBo\nCy\n"), 0o600))
	changed := filepath.Join(dir, "changed.txt")
	require.NoError(t, os.WriteFile(changed, []byte("Ada\nBo\nCz\n"), 0o600))
	path := filepath.Join(dir, "t.json")
	code, _, errOut := runCLI(t, "draw", "--pick", "1", "--entrants", list, "--url", url, "--public-key", pub, "--transcript", path)
	require.Equal(t, exitOK, code, errOut)

	code, out, errOut := runCLI(t, "verify", "--url", url, "--public-key", pub, "--entrants", list, path)
	require.Equal(t, exitOK, code, errOut)
	for _, ok := range []string{"replay OK", "entrants OK", "origin OK", "entropy OK"} {
		assert.Contains(t, out, ok)
	}

	for _, args := range [][]string{
		{"verify", "--entrants", changed, path},
		{"verify", "--allow-fallback", "--entrants", changed, path},
		{"verify", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--entrants", list, path},
		{"verify", "--url", url, "--public-key", pub, "--source-name", "another", "--entrants", list, path},
	} {
		code, out, errOut := runCLI(t, args...)
		assert.Equal(t, exitError, code, "%q: %s", args, errOut)
		assert.NotContains(t, out, "OK", "%q: an OK line before the failure: %s", args, errOut)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%q: %q", args, errOut)
	}

	// The service gone, its jobs cannot be checked: nothing is OK at --url.
	require.NoError(t, s.Close())
	code, out, errOut = runCLI(t, "verify", "--url", url, "--public-key", pub, "--entrants", list, path)
	assert.Equal(t, exitError, code, errOut)
	assert.NotContains(t, out, "OK")
}

// verify --chain FILE reads a chain's info, a few hundred bytes: a file that
// never ends (a FIFO, a device such as /dev/zero) is refused after a bound,
// not read into memory until the process is killed.
func TestVerifyChainFileIsReadWithABound(t *testing.T) {
	clearEnv(t)
	path, _ := drawnFile(t, "--int", "6")
	fifo := filepath.Join(t.TempDir(), "chain")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO: %v", err)
	}
	const limit = 64 << 20 // the writer's own end, were the reading unbounded
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for written.Load() < limit {
			n, err := f.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	code, _, errOut := runCLI(t, "verify", "--chain", fifo, path)
	<-done
	assert.Equal(t, exitUsage, code, "as for any --chain that is no chain: %s", errOut)
	assert.Contains(t, errOut, "--chain")
	assert.Less(t, written.Load(), int64(1<<20), "the chain file was read past any chain's info")
}
