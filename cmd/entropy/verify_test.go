package main

import (
	"fmt"
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
	list := writeEntrants(t, "Ada\nBo\nCy\nDee\nEve\n")
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

// TestDrawRefusesAnEntrantListedTwice: a list that names one entrant twice
// is a bad command line for draw (its winners would be printed as "Ada,
// Ada"), naming both places; nothing is drawn.
func TestDrawRefusesAnEntrantListedTwice(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct{ list, refusal string }{
		{"Ada\nBo\n\nCy\r\nBo\n", `entrant 4 ("Bo") is entrant 2 again`},
		{"Ada\nBo\nbo\nBo \n", ""}, // entrants that differ by case or a space are others
	} {
		path := filepath.Join(t.TempDir(), "t.json")
		code, _, errOut := runCLI(t, "draw", "--pick", "2", "--entrants", writeEntrants(t, tc.list), "--transcript", path)
		if tc.refusal == "" {
			assert.Equal(t, exitOK, code, "%q: %s", tc.list, errOut)
			continue
		}
		assert.Equal(t, exitUsage, code, "%q", tc.list)
		assert.Contains(t, errOut, tc.refusal)
		assert.NoFileExists(t, path, "nothing is drawn")
	}
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
	list := writeEntrants(t, "Ada\nBo\nCy\n")
	changed := writeEntrants(t, "Ada\nBo\nCz\n")
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

// TestEntrantsFileIsReadWithABound: draw --entrants and verify --entrants
// read at most 1048576 lines (draw.MaxItems), 1024 bytes a line (its line
// break not counted) and 64 MiB: a longer list, a longer line or a file
// that never ends (a FIFO) is refused at the bound, with an error that
// names the flag and the bound (a bad command line for draw, a failure
// for verify), not read into memory until the process is killed. A list
// at the bounds is drawn from and verified.
func TestEntrantsFileIsReadWithABound(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	var lines strings.Builder
	for i := range maxEntrants {
		fmt.Fprintf(&lines, "e%d\n", i)
	}
	atBound := write("max.txt", lines.String())
	tooMany := write("many.txt", lines.String()+"one more\n")
	longest := write("long.txt", "Ada\r\n"+strings.Repeat("x", maxEntrantBytes)+"\r\nBo\n")
	tooLong := write("longer.txt", "Ada\n"+strings.Repeat("x", maxEntrantBytes+1)+"\nBo\n")

	path := filepath.Join(dir, "t.json")
	code, _, errOut := runCLI(t, "draw", "--int", strconv.Itoa(maxEntrants), "--entrants", atBound, "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut := runCLI(t, "verify", "--entrants", atBound, path)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "entrants OK")
	path3 := filepath.Join(dir, "t3.json")
	code, _, errOut = runCLI(t, "draw", "--int", "3", "--entrants", longest, "--transcript", path3)
	require.Equal(t, exitOK, code, errOut)

	for _, tc := range []struct{ file, says string }{
		{tooMany, "more than 1048576 lines"},
		{tooLong, "line 2 is longer than 1024 bytes"},
	} {
		assertUsageError(t, []string{"draw", "--int", "3", "--entrants", tc.file}, "--entrants", tc.says)
		code, out, errOut := runCLI(t, "verify", "--entrants", tc.file, path)
		assert.Equal(t, exitError, code, errOut)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "--entrants")
		assert.Contains(t, errOut, tc.says)
	}

	// A file that never ends, of lines of 1000 bytes: refused at 64 MiB.
	fifo, written, done := endlessFIFO(t, []byte(strings.Repeat(strings.Repeat("y", 999)+"\n", 64)), 256<<20)
	code, _, errOut = runCLI(t, "draw", "--int", "3", "--entrants", fifo)
	<-done
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, "larger than 67108864 bytes")
	assert.Less(t, written.Load(), int64(maxEntrantsFile+(1<<20)), "the entrants file was read past its bound")
}

// verify --chain FILE reads a chain's info, a few hundred bytes: a file that
// never ends (a FIFO, a device such as /dev/zero) is refused after a bound,
// not read into memory until the process is killed.
func TestVerifyChainFileIsReadWithABound(t *testing.T) {
	clearEnv(t)
	path, _ := drawnFile(t, "--int", "6")
	fifo, written, done := endlessFIFO(t, make([]byte, 64<<10), 64<<20)
	code, _, errOut := runCLI(t, "verify", "--chain", fifo, path)
	<-done
	assert.Equal(t, exitUsage, code, "as for any --chain that is no chain: %s", errOut)
	assert.Contains(t, errOut, "--chain")
	assert.Less(t, written.Load(), int64(1<<20), "the chain file was read past any chain's info")
}

// endlessFIFO returns a named pipe that a goroutine writes chunk into again
// and again until the reader closes it or limit bytes have gone (the
// writer's own end, were the reading unbounded), the count of bytes written,
// and a channel closed when the writer has stopped. It skips the test where
// named pipes cannot be made.
func endlessFIFO(t *testing.T, chunk []byte, limit int64) (string, *atomic.Int64, <-chan struct{}) {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO: %v", err)
	}
	written := new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for written.Load() < limit {
			n, err := f.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return fifo, written, done
}
