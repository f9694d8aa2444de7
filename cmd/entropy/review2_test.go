package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/draw"
)

// TestReview2VerifyRefusesTranscriptShowingAnotherResult: a transcript file
// whose "outputs" member is replaced by other numbers, digest untouched, with
// the true outputs restated at the end under "OUTPUTS" (a member the
// transcript format does not have: JSON names are case-sensitive), shows a
// result that was never drawn. entropy verify must not report it as OK.
func TestReview2VerifyRefusesTranscriptShowingAnotherResult(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--transcript", path)
	require.Equal(t, 0, code, errOut)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	tr, err := draw.ParseTranscript(b)
	require.NoError(t, err)
	compact, err := json.Marshal(tr)
	require.NoError(t, err)
	real, err := json.Marshal(tr.Outputs)
	require.NoError(t, err)
	shown := `[0,1,2,3,4,5]`
	require.NotEqual(t, string(real), shown)
	forged := strings.Replace(string(compact), `"outputs":`+string(real), `"outputs":`+shown, 1)
	require.NotEqual(t, string(compact), forged)
	forged = strings.TrimSuffix(forged, "}") + `,"OUTPUTS":` + string(real) + "}"
	require.NoError(t, os.WriteFile(path, []byte(forged), 0o600))

	code, out, _ := runCLI(t, "verify", path)
	assert.NotEqual(t, exitOK, code, "a transcript showing outputs %s (drawn: %s) verifies:\n%s", shown, real, out)
	assert.NotContains(t, out, "replay OK")
}

// TestReview2EventNameNotUTF8DrawAgainAfterRestart: an event name from the
// command line is bytes (here "März" in Latin-1, as a shell in a Latin-1
// locale passes it). The first draw succeeds and journals the event; the
// second run with the same journal must give the same result, and audit must
// accept the journal.
func TestReview2EventNameNotUTF8DrawAgainAfterRestart(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	j := filepath.Join(dir, "audit.jsonl")
	t1, t2 := filepath.Join(dir, "1.json"), filepath.Join(dir, "2.json")
	const event = "Verlosung-M\xe4rz"
	code, _, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", event, "--journal", j, "--transcript", t1)
	if code != exitOK {
		return // refused: nothing was drawn, nothing to draw again
	}
	require.Empty(t, errOut)
	code, _, errOut = runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", event, "--journal", j, "--transcript", t2)
	require.Equal(t, exitOK, code, "the event was drawn once; the next run cannot even open the journal: %s", errOut)
	a, b := readTranscript(t, t1), readTranscript(t, t2)
	assert.Equal(t, a.Entropy, b.Entropy)
	assert.Equal(t, a.Outputs, b.Outputs)

	code, _, errOut = runCLI(t, "audit", j)
	assert.Equal(t, exitOK, code, errOut)
}

// An event name that holds a newline cannot fake a line of audit's report:
// names are printed quoted.
func TestAuditQuotesEventNames(t *testing.T) {
	clearEnv(t)
	j := filepath.Join(t.TempDir(), "audit.jsonl")
	const event = "r1\nhead: 0000"
	code, _, errOut := runCLI(t, "draw", "--pick", "1", "--of", "2", "--event", event, "--journal", j)
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut := runCLI(t, "audit", j)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `("r1\nhead: 0000")`)
	heads := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "head: ") {
			heads++
		}
	}
	assert.Equal(t, 1, heads, "one head line:\n%s", out)
}
