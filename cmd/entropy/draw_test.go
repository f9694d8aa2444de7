package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/internal/drandtest"
	"github.com/provenrand/entropy/internal/fsizelimit"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/journal"
)

// writeEntrants writes a list of entrants (one a line) to a file of its own
// and returns the file's path.
func writeEntrants(t *testing.T, list string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "entrants.txt")
	require.NoError(t, os.WriteFile(path, []byte(list), 0o600))
	return path
}

// readTranscript parses and verifies a transcript file.
func readTranscript(t *testing.T, path string) *draw.Transcript {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	tr, err := draw.ParseTranscript(b)
	require.NoError(t, err)
	require.NoError(t, draw.Verify(tr))
	return tr
}

// drawnFile makes a draw with args into a new transcript file, from the
// embedded simulator unless args say otherwise, and returns the file's path
// and contents.
func drawnFile(t *testing.T, args ...string) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, append(append([]string{"draw"}, args...), "--transcript", path)...)
	require.Equal(t, exitOK, code, errOut)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, b
}

func TestDrawPickFromEmbeddedSimulator(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "t.json")
	code, out, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--transcript", path)
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, errOut)
	assert.Contains(t, out, "pick 6 of 1..49: ")
	assert.Contains(t, out, "verifiable simulator job-")
	assert.Contains(t, out, "entropy verify "+path)

	tr := readTranscript(t, path)
	assert.True(t, tr.Verifiable)
	assert.Equal(t, draw.KindPick, tr.Kind)
	assert.Equal(t, "simulator", tr.Label.Spans[0].Source)
	// The printed numbers are the outputs plus one.
	want := make([]string, len(tr.Outputs))
	for i, v := range tr.Outputs {
		want[i] = strconv.FormatUint(v+1, 10)
	}
	assert.Contains(t, out, "pick 6 of 1..49: "+strings.Join(want, " ")+" (in draw order)")

	code, out, errOut = runCLI(t, "verify", path)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "replay OK: pick k=6 n=49")

	// The transcript file is never overwritten.
	code, _, errOut = runCLI(t, "draw", "--pick", "6", "--of", "49", "--transcript", path)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "exists")
	assert.Equal(t, 1, strings.Count(errOut, "\n"))
}

func TestDrawShuffleAndIntToStdout(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "draw", "--shuffle", "5")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "shuffle of 5: ", "the lines for a person go to stderr")
	assert.Contains(t, out, `"kind": "shuffle"`)

	code, out, errOut = runCLI(t, "draw", "--int", "1000")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "integer in [0, 1000): ")
	// stdout is the transcript alone: what "entropy verify -" reads.
	tr, err := draw.ParseTranscript([]byte(out))
	require.NoError(t, err)
	require.NoError(t, draw.Verify(tr))
}

// TestDrawEventWithJournal: an event drawn twice, in two runs of the
// command with one journal, gives the same numbers; its job was requested
// for the event and the draw (the transcript's binding); a third run with
// other parameters is refused; audit sees one event and its one request.
func TestDrawEventWithJournal(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	j := filepath.Join(dir, "audit.jsonl")
	t1, t2 := filepath.Join(dir, "1.json"), filepath.Join(dir, "2.json")
	code, out1, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", "lotto-7", "--journal", j, "--transcript", t1)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out1, "event: lotto-7")
	code, _, errOut = runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", "lotto-7", "--journal", j, "--transcript", t2)
	require.Equal(t, 0, code, errOut)
	a, b := readTranscript(t, t1), readTranscript(t, t2)
	assert.Equal(t, a.Outputs, b.Outputs)
	assert.Equal(t, a.Entropy, b.Entropy)
	assert.Equal(t, "lotto-7", b.Event)
	require.NotNil(t, a.Binding)
	assert.Equal(t, "provenrand-draw/1;kind=pick;n=49;k=6", a.Binding.Params)
	assert.Equal(t, a.Binding, b.Binding)
	code, _, errOut = runCLI(t, "draw", "--pick", "5", "--of", "49", "--event", "lotto-7", "--journal", j)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "other parameters")

	code, out, errOut := runCLI(t, "audit", j)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "journal OK")
	assert.Contains(t, out, `events: 1 ("lotto-7")`)
	assert.Contains(t, out, `event requests: 1 ("lotto-7": 1)`)
	head := strings.TrimSpace(out[strings.Index(out, "head: ")+len("head: "):])
	code, _, errOut = runCLI(t, "audit", "--head", head, j)
	assert.Equal(t, 0, code, errOut)
	code, _, errOut = runCLI(t, "audit", j, "--head", strings.Repeat("0", 64))
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "cut off the end")

	// The head published after the first event still checks once the
	// journal has grown: the records up to it are as they were.
	published := head
	code, _, errOut = runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", "lotto-8", "--journal", j)
	require.Equal(t, 0, code, errOut)
	code, out, errOut = runCLI(t, "audit", "--head", published, j)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `published head: record \d+, as it was when published; [1-9]\d* records added since`, out)
	// Cut back to before the published head: refused.
	raw, err := os.ReadFile(j)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(raw), "\n")
	require.NoError(t, os.WriteFile(j, []byte(strings.Join(lines[:3], "")), 0o600))
	code, _, errOut = runCLI(t, "audit", "--head", published, j)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "cut off the end or rewritten")
}

// A journal that fails the head published earlier (records cut off the
// end, or rewritten) is not OK: audit prints no "journal OK" report for a
// script to grep, only the error, and exits 1.
func TestAuditFailingThePublishedHeadPrintsNoOK(t *testing.T) {
	clearEnv(t)
	j := filepath.Join(t.TempDir(), "j.jsonl")
	code, _, errOut := runCLI(t, "draw", "--int", "10", "--journal", j)
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut := runCLI(t, "audit", "--head", strings.Repeat("0", 64), j)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "cut off the end or rewritten")
	assert.Empty(t, out)
}

func TestVerifyRejectsTamperedTranscript(t *testing.T) {
	clearEnv(t)
	path, b := drawnFile(t, "--pick", "6", "--of", "49")
	tampered := strings.Replace(string(b), `"n": 49`, `"n": 48`, 1)
	require.NotEqual(t, string(b), tampered)
	require.NoError(t, os.WriteFile(path, []byte(tampered), 0o600))
	code, _, errOut := runCLI(t, "verify", path)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "entropy verify: transcript does not verify")
	assert.Equal(t, 1, strings.Count(errOut, "\n"))

	code, _, errOut = runCLI(t, "verify", filepath.Join(t.TempDir(), "missing.json"))
	assert.Equal(t, exitError, code)
	assert.NotEmpty(t, errOut)
}

// TestVerifyChecksJobsAtTheService draws from a configured service, then
// checks the transcript's entropy against the service's signed jobs.
func TestVerifyChecksJobsAtTheService(t *testing.T) {
	clearEnv(t)
	const key = "sk-draw-test-0a1b2c3d"
	_, url, pub := startSim(t, key)
	t.Setenv("ENTROPY_API_KEY", key)
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, "draw", "--pick", "3", "--of", "10", "--url", url, "--public-key", pub, "--transcript", path)
	require.Equal(t, 0, code, errOut)
	code, out, errOut := runCLI(t, "verify", "--url", url, "--public-key", pub, path)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "entropy OK: matches the signed jobs of "+strings.TrimPrefix(url, "http://"), "named after the service's address")

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), key, "no API key in a transcript")
}

// TestDrawAllowFallbackMeansDegrade: --allow-fallback alone makes the draw
// degrade, so that a service that is down gives a fallback draw, labelled,
// at once; with --policy defer or fail, under which no fallback entropy is
// ever served, it would do nothing, and is a bad command line.
func TestDrawAllowFallbackMeansDegrade(t *testing.T) {
	clearEnv(t)
	assertUsageError(t, []string{"draw", "--int", "10", "--allow-fallback", "--policy", "defer"}, "--allow-fallback", "--policy defer")
	assertUsageError(t, []string{"draw", "--int", "10", "--allow-fallback", "--policy", "fail"}, "--allow-fallback", "--policy fail")

	path := filepath.Join(t.TempDir(), "t.json")
	code, out, errOut := runCLI(t, "draw", "--int", "10", "--url", "http://127.0.0.1:1", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"--timeout", "1h", "--allow-fallback", "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "WARNING: NOT VERIFIABLE")
	assert.False(t, readTranscript(t, path).Verifiable)

	// With the simulator up, --allow-fallback alone draws verifiably.
	path = filepath.Join(t.TempDir(), "v.json")
	code, _, errOut = runCLI(t, "draw", "--pick", "6", "--of", "49", "--allow-fallback", "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	assert.True(t, readTranscript(t, path).Verifiable)
}

func TestDrawFallbackNeedsOptIn(t *testing.T) {
	clearEnv(t)
	// A service that is not there: nothing listens on this loopback URL.
	args := []string{"draw", "--int", "10", "--url", "http://127.0.0.1:1", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--policy", "degrade", "--timeout", "300ms"}
	code, _, errOut := runCLI(t, args...)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "not verifiable")

	path := filepath.Join(t.TempDir(), "t.json")
	code, out, errOut := runCLI(t, append(args, "--allow-fallback", "--transcript", path)...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "WARNING: NOT VERIFIABLE")
	assert.Contains(t, errOut, "NOT VERIFIABLE")
	tr := readTranscript(t, path)
	assert.False(t, tr.Verifiable)

	code, out, errOut = runCLI(t, "verify", path)
	assert.Equal(t, exitError, code)
	assert.Contains(t, out, "WARNING: NOT VERIFIABLE")
	assert.Contains(t, errOut, "NOT VERIFIABLE")
	code, _, _ = runCLI(t, "verify", "--allow-fallback", path)
	assert.Equal(t, 0, code)
}

// A fallback draw accepted with --allow-fallback still has its list of
// entrants checked: another list fails, the list it committed to passes
// and names the winners.
func TestVerifyFallbackDrawChecksItsEntrants(t *testing.T) {
	clearEnv(t)
	list := writeEntrants(t, "ada\nbob\ncy\n")
	other := writeEntrants(t, "cy\nbob\nada\n")
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, "draw", "--int", "3", "--entrants", list, "--url", "http://127.0.0.1:1", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"--policy", "degrade", "--timeout", "300ms", "--allow-fallback", "--transcript", path)
	require.Equal(t, 0, code, errOut)
	require.False(t, readTranscript(t, path).Verifiable)

	code, _, errOut = runCLI(t, "verify", "--allow-fallback", "--entrants", other, path)
	assert.Equal(t, exitError, code, "another list of entrants is refused")
	assert.Contains(t, errOut, "entrants")
	code, out, errOut := runCLI(t, "verify", "--allow-fallback", "--entrants", list, path)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "entrants OK")
}

// TestDrawFailPolicyFailsAtOnceDuringOutage: draw --policy fail against a
// service that is down fails with the source's error once the refill round
// has failed; it does not wait out --timeout, which is defer's (an hour
// here, so a draw that waited for it would fail the test's own timeout).
func TestDrawFailPolicyFailsAtOnceDuringOutage(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "draw", "--int", "10", "--url", "http://127.0.0.1:1", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--policy", "fail", "--timeout", "1h")
	assert.Equal(t, exitError, code, out)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "unavailable")
	assert.Contains(t, errOut, "connection", "the source's own error")
	assert.NotContains(t, errOut, "deadline")
}

func TestRFC3797Command(t *testing.T) {
	code, out, errOut := runCLI(t, "rfc3797", "--pool", "25", "--count", "10", "9319", "2 5 12 8 10", "9 18 26 34 41 45")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "key: 9319./2.5.8.10.12./9.18.26.34.41.45./")
	assert.Contains(t, out, "17 7 2 16 25 23 8 24 19 13")

	// Flags after the sources work too.
	code, out, _ = runCLI(t, "rfc3797", "9319", "2 5 12 8 10", "9 18 26 34 41 45", "--pool", "25", "--count", "3")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, ": 17 7 2\n")
}

func TestAuditReportsTamperAndTorn(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	j := filepath.Join(dir, "audit.jsonl")
	code, _, errOut := runCLI(t, "draw", "--int", "6", "--event", "e1", "--journal", j)
	require.Equal(t, 0, code, errOut)
	b, err := os.ReadFile(j)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	require.GreaterOrEqual(t, len(lines), 3)

	// Change a digit in line 2.
	changed := strings.Replace(string(b), lines[1], strings.Replace(lines[1], `"seq":2`, `"seq":3`, 1), 1)
	require.NoError(t, os.WriteFile(j, []byte(changed), 0o600))
	code, _, errOut = runCLI(t, "audit", j)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "line 2")
	assert.Equal(t, 1, strings.Count(errOut, "\n"))

	// A torn last line.
	require.NoError(t, os.WriteFile(j, b[:len(b)-5], 0o600))
	code, _, errOut = runCLI(t, "audit", j)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "torn")
	// And draw refuses to append to it.
	code, _, errOut = runCLI(t, "draw", "--int", "6", "--journal", j)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "torn")
}

func TestDrawCommandLineErrors(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"draw"},
		{"draw", "--pick", "6"},
		{"draw", "--pick", "0", "--of", "49"},
		{"draw", "--pick", "0", "--of", "0"},
		{"draw", "--pick", "50", "--of", "49"},
		{"draw", "--pick", "6", "--of", "49", "--shuffle", "3"},
		{"draw", "--shuffle", "-1"},
		{"draw", "--nope"},
		{"draw", "--pick", "6", "--of", "49", "extra"},
		{"verify"},
		{"verify", "a", "b"},
		{"rfc3797", "--pool", "25", "--count", "10"},
		{"rfc3797", "--pool", "25", "--count", "30", "1 2"},
		{"rfc3797", "--pool", "25", "--count", "3", "1.5"},
		{"audit"},
		{"audit", "--bad"},
	} {
		code, out, errOut := runCLI(t, args...)
		assert.Equal(t, exitUsage, code, "%q", args)
		assert.Empty(t, out, "%q", args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%q: one line: %q", args, errOut)
		assert.True(t, strings.HasPrefix(errOut, "entropy "+args[0]+": "), "%q", errOut)
		for _, doubled := range []string{": draw: ", ": " + args[0] + ": " + args[0] + ": ", ": draw: " + args[0] + ": "} {
			assert.NotContains(t, errOut, doubled, "%q: the prefix said once", args)
		}
	}
	// A half of --pick K --of N is named as missing, not read as 0.
	_, _, errOut := runCLI(t, "draw", "--pick", "6")
	assert.Contains(t, errOut, "--pick 6 needs --of N")
	_, _, errOut = runCLI(t, "draw", "--of", "49")
	assert.Contains(t, errOut, "--of 49 needs --pick K")
}

// A transcript cut short or empty is said to be so, not "EOF".
func TestVerifySaysATranscriptIsCutShort(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.json")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	cut := filepath.Join(dir, "cut.json")
	require.NoError(t, os.WriteFile(cut, []byte(`{"algorithm":"provenrand-draw"`), 0o644))
	code, _, errOut := runCLI(t, "verify", empty)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "the transcript is empty")
	code, _, errOut = runCLI(t, "verify", cut)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "the transcript ends before its JSON does")
}

// TestDrawAfterRefusesFlagsWithoutEffect: a committed draw (--after) takes
// its round straight from the relays, through no Provider: --policy,
// --rate, --burst, the fleet's flags, --allow-fallback and the service's
// flags would do nothing there, and each is a bad command line naming it
// and --after (or --source).
func TestDrawAfterRefusesFlagsWithoutEffect(t *testing.T) {
	clearEnv(t)
	after := []string{"draw", "--int", "10", "--source", "drand", "--relays", "http://127.0.0.1:1", "--after", "now"}
	for _, tc := range []struct {
		args     []string
		mentions []string
	}{
		{[]string{"--policy", "fail"}, []string{"--policy", "--after"}},
		{[]string{"--rate", "2"}, []string{"--rate", "--after"}},
		{[]string{"--burst", "3"}, []string{"--burst", "--after"}},
		{[]string{"--fleet", "redis://127.0.0.1:1/0"}, []string{"--fleet", "--after"}},
		{[]string{"--fleet-size", "2"}, []string{"--fleet-size", "--after"}},
		{[]string{"--allow-fallback"}, []string{"--allow-fallback", "--after"}},
		{[]string{"--url", "http://127.0.0.1:1"}, []string{"--url", "--source"}},
	} {
		assertUsageError(t, append(append([]string{}, after...), tc.args...), tc.mentions...)
	}
}

// An empty event name is refused, never turned into an ordinary (re-rollable) draw.
// TestDrawEventWithoutJournalRefused: every run of the command is a new
// process, so an event drawn without a journal would be drawn anew by the
// next run, silently: a re-roll. --event without --journal is a bad command
// line, and nothing is drawn.
func TestDrawEventWithoutJournalRefused(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", "lotto-2026-12-06")
	assert.Equal(t, exitUsage, code, out)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "--event needs --journal")
	assert.NotContains(t, errOut, "pick 6 of")
}

func TestDrawEmptyEventRefused(t *testing.T) {
	clearEnv(t)
	code, out, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", "")
	assert.NotEqual(t, 0, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "--event is empty")
}

// TestDrawReportsJournalRecordsNotKept: a draw (and a read) with --journal
// (and no --event) whose journal cannot be written (the file size limit: EFBIG, as a
// full disk) reports the records it did not keep and how many writes failed,
// and exits non-zero; the journal file is left as it was, and opens again.
func TestDrawReportsJournalRecordsNotKept(t *testing.T) {
	if !fsizelimit.Supported() {
		t.Skip("no file size limit on this system")
	}
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := journal.Open(path)
	require.NoError(t, err)
	require.NoError(t, j.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	limit := fmt.Sprintf("%s=%d", fsizelimit.Env, len(before)+10)
	code, out, errOut := runMain(t, []string{limit}, "draw", "--int", "10", "--journal", path)
	assert.NotEqual(t, exitOK, code, "records were lost and the draw exited 0")
	assert.Contains(t, out, `"kind"`, "the draw itself is still printed")
	assert.Regexp(t, `journal "[^"]+" did not keep [1-9][0-9]* of the records`, errOut)
	assert.Regexp(t, `[1-9][0-9]* failed writes`, errOut)

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the failed writes left bytes in the journal")
	code, _, errOut = runCLI(t, "draw", "--int", "10", "--journal", path)
	require.Equal(t, exitOK, code, "a later run opens the journal: %s", errOut)

	// entropy read --journal alike: the bytes are printed, the lost block
	// records reported, and the exit is non-zero.
	before, err = os.ReadFile(path)
	require.NoError(t, err)
	limit = fmt.Sprintf("%s=%d", fsizelimit.Env, len(before)+10)
	code, out, errOut = runMain(t, []string{limit}, "read", "-n", "16", "--journal", path)
	assert.NotEqual(t, exitOK, code, "read: records were lost and it exited 0")
	assert.NotEmpty(t, out, "the bytes are still printed")
	assert.Regexp(t, `journal "[^"]+" did not keep [1-9][0-9]* of the records`, errOut)
	after, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after))
}

// A transcript that cannot be written (the file size limit: EFBIG, as a full
// disk) does not lose the draw, which was made: the result and the whole
// transcript go to stderr, no partial file is left, and the exit is non-zero.
func TestDrawTranscriptWriteFailureKeepsTheResult(t *testing.T) {
	if !fsizelimit.Supported() {
		t.Skip("no file size limit on this system")
	}
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runMain(t, []string{fsizelimit.Env + "=100"}, "draw", "--pick", "6", "--of", "49", "--transcript", path)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "the draw was made: pick 6 of 1..49: ")
	start := strings.Index(errOut, "{")
	require.GreaterOrEqual(t, start, 0, errOut)
	tr, err := draw.ParseTranscript([]byte(errOut[start:]))
	require.NoError(t, err, "the transcript is on stderr, whole")
	require.NoError(t, draw.Verify(tr))
	_, err = os.Stat(path)
	assert.True(t, errors.Is(err, os.ErrNotExist), "a partial transcript was left: %v", err)
	assert.Empty(t, dirNames(t, filepath.Dir(path)), "a temporary file was left")
}

// dirNames lists the names in directory dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestDrawTranscriptIsWholeOrAbsent: draw --transcript FILE writes the
// transcript beside FILE and gives it FILE's name only once it is whole,
// so that FILE never exists empty or partial: not while the draw waits
// for entropy, not after the process is killed then (SIGKILL, which no
// cleanup survives; it used to leave an empty FILE), and not after a draw
// that fails or is interrupted, which leave no temporary file either. A
// draw that succeeds leaves exactly FILE.
func TestDrawTranscriptIsWholeOrAbsent(t *testing.T) {
	clearEnv(t)
	// A service that is not there: under defer the draw waits for it.
	down := []string{"draw", "--int", "10", "--url", "http://127.0.0.1:1", "--public-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
	waiting := append(append([]string{}, down...), "--policy", "defer", "--timeout", "1h")

	// Killed while it waits.
	dir := t.TempDir()
	path := filepath.Join(dir, "t.json")
	js, err := json.Marshal(append(waiting, "--transcript", path))
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ENTROPY_URL=", "ENTROPY_API_KEY=", "ENTROPY_PUBLIC_KEY=", "ENTROPY_SOURCE_NAME=", mainArgsEnv+"="+string(js))
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	require.Eventually(t, func() bool { return len(dirNames(t, dir)) > 0 }, 10*time.Second, 5*time.Millisecond, "the draw claimed no file")
	assert.NoFileExists(t, path, "FILE exists while the draw waits for entropy")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed = true
	assert.NoFileExists(t, path, "a killed draw left FILE")
	for _, name := range dirNames(t, dir) {
		assert.True(t, strings.HasPrefix(name, ".entropy-transcript-") && strings.HasSuffix(name, ".tmp"), "a killed draw left %q", name)
	}

	// Interrupted while it waits.
	dir = t.TempDir()
	path = filepath.Join(dir, "t.json")
	b := start(t, append(waiting, "--transcript", path)...)
	require.Eventually(t, func() bool { return len(dirNames(t, dir)) > 0 }, 10*time.Second, 5*time.Millisecond, "the draw claimed no file")
	assert.NoFileExists(t, path, "FILE exists while the draw waits for entropy")
	assert.Equal(t, exitError, b.stop(t), b.errOut.String())
	assert.Empty(t, dirNames(t, dir), "an interrupted draw left files")

	// Failed: no entropy, and no fallback.
	code, _, errOut := runCLI(t, append(append([]string{}, down...), "--policy", "fail", "--transcript", path)...)
	assert.Equal(t, exitError, code, errOut)
	assert.Empty(t, dirNames(t, dir), "a failed draw left files")

	// Made.
	code, _, errOut = runCLI(t, "draw", "--int", "10", "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, []string{"t.json"}, dirNames(t, dir))
	readTranscript(t, path)
}

// A transcript piped to a reader that has gone (a closed pipe) is lost as
// one written to a full disk is: the process is not killed by SIGPIPE with
// the draw made and lost, but keeps the result and the whole transcript on
// stderr and exits 1.
func TestDrawToAClosedPipeKeepsTheResult(t *testing.T) {
	clearEnv(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, r.Close())
	defer w.Close()
	js, err := json.Marshal([]string{"draw", "--pick", "6", "--of", "49"})
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainArgsEnv+"="+string(js))
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "the draw exited 0 with its transcript lost: %v", err)
	assert.Equal(t, exitError, ee.ExitCode(), "%v: %s", err, errOut.String())
	assert.Contains(t, errOut.String(), "the draw was made: pick 6 of 1..49: ")
	start := strings.Index(errOut.String(), "{")
	require.GreaterOrEqual(t, start, 0, errOut.String())
	tr, err := draw.ParseTranscript(errOut.Bytes()[start:])
	require.NoError(t, err, "the transcript is on stderr, whole")
	require.NoError(t, draw.Verify(tr))
}

// TestVerifyRefusesTranscriptShowingAnotherResult: a transcript file
// whose "outputs" member is replaced by other numbers, digest untouched, with
// the true outputs restated at the end under "OUTPUTS" (a member the
// transcript format does not have: JSON names are case-sensitive), shows a
// result that was never drawn. entropy verify must not report it as OK.
func TestVerifyRefusesTranscriptShowingAnotherResult(t *testing.T) {
	clearEnv(t)
	path, b := drawnFile(t, "--pick", "6", "--of", "49")
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

// TestEventNameNotUTF8DrawAgainAfterRestart: an event name from the
// command line is bytes (here "März" in Latin-1, as a shell in a Latin-1
// locale passes it). The first draw succeeds and journals the event; the
// second run with the same journal must give the same result, and audit must
// accept the journal.
func TestEventNameNotUTF8DrawAgainAfterRestart(t *testing.T) {
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

// failWriter fails every write, as stdout does on a full disk or a closed
// pipe whose reader ignored SIGPIPE.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestDrawFailsWhenResultCannotBeWritten: entropy draw > /dev/full
// draws, loses the result and the transcript, and exits 0. Drawing again is
// a new draw: the result that was lost can never be shown.
func TestDrawFailsWhenResultCannotBeWritten(t *testing.T) {
	clearEnv(t)
	var errOut testkit.SyncBuffer
	code := run([]string{"draw", "--pick", "6", "--of", "49"}, failWriter{}, &errOut)
	assert.NotEqual(t, exitOK, code, "the draw's result and transcript went nowhere, yet exit 0; stderr: %q", errOut.String())
}

// TestDrawReportsWhyEntropyIsUnavailable: a draw (policy defer, the
// default) against a service that refuses the API key waits out the whole
// --timeout and then says only "context deadline exceeded"; the 401 the
// service answered, which read --policy fail reports, is never shown.
func TestDrawReportsWhyEntropyIsUnavailable(t *testing.T) {
	clearEnv(t)
	_, url, pub := startSim(t, "sk-cli-right-key")
	t.Setenv("ENTROPY_API_KEY", "sk-cli-wrong-key")
	code, out, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--url", url, "--public-key", pub, "--timeout", "3s")
	require.NotEqual(t, exitOK, code, out)
	assert.Regexp(t, `401|(?i)unauthori`, errOut, "the cause is not reported")
	assert.NotContains(t, errOut, "sk-cli-")

	// An event draw too: a refused key ends it with the 401 (an event
	// waits out outages, not a misconfiguration); the deadline is an hour,
	// so a draw that waited for it would fail the test's own timeout.
	code, out, errOut = runCLI(t, "draw", "--pick", "6", "--of", "49", "--event", "lotto", "--journal", filepath.Join(t.TempDir(), "j.jsonl"), "--url", url, "--public-key", pub, "--timeout", "1h")
	require.Equal(t, exitError, code, out)
	assert.Regexp(t, `401|(?i)unauthori`, errOut)
	assert.NotContains(t, errOut, "deadline")
	assert.NotContains(t, errOut, "sk-cli-")
}

// forgedLine is what a forged name tries to print as a line of its own.
const forgedLine = "entropy OK: matches the signed jobs of quantropy"

// linesOf returns the lines of out, for checking that no line starts with
// text a name tried to smuggle in.
func linesOf(out string) []string { return strings.Split(out, "\n") }

// TestVerifyOutputCannotBeForgedByJobID: a transcript whose span job_id
// holds a newline (or another line break, or a bidi override) cannot make
// entropy verify print a line of the file's choosing: it is refused, or its
// names are printed quoted, and it never exits 0 with the forged line.
func TestVerifyOutputCannotBeForgedByJobID(t *testing.T) {
	clearEnv(t)
	_, raw := drawnFile(t, "--pick", "3", "--of", "10")
	for _, bad := range []string{"\n" + forgedLine + "\n", "\u2028" + forgedLine, "\r" + forgedLine, "\u202e" + forgedLine} {
		tr, err := draw.ParseTranscript(raw)
		require.NoError(t, err)
		tr.Label.Spans[0].JobID += bad
		fp := forgedFile(t, tr)
		code, out, errOut := runCLI(t, "verify", fp)
		for _, l := range linesOf(out + errOut) {
			assert.False(t, strings.HasPrefix(l, forgedLine), "a forged line was printed: %q", out+errOut)
		}
		assert.NotContains(t, out+errOut, "\u202e")
		assert.NotContains(t, out+errOut, "\u2028")
		assert.NotContains(t, out+errOut, "\r")
		_ = code
	}
}

// TestVerifyOutputCannotBeForgedBySourceName: a transcript whose proof and
// span name their source with a line break (or a bidi override) in it
// cannot make entropy verify --public-key print a line of the file's
// choosing. The source name is not signed, and the key given is trusted for
// every source the proofs name, so the signature still checks and the
// verify succeeds, with the name printed quoted.
func TestVerifyOutputCannotBeForgedBySourceName(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-verify-source-name-1"
	s, url, pub := startSim(t, key)
	t.Setenv("ENTROPY_API_KEY", key)
	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--url", url, "--public-key", pub, "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, s.Close())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, bad := range []string{"\n" + forgedLine + "\n", "\u2028" + forgedLine, "\r" + forgedLine, "\u202e" + forgedLine} {
		tr, err := draw.ParseTranscript(raw)
		require.NoError(t, err)
		tr.Label.Spans[0].Source += bad
		tr.Proofs[0].Source += bad
		fp := forgedFile(t, tr)
		code, out, errOut := runCLI(t, "verify", "--public-key", pub, fp)
		assert.Equal(t, exitOK, code, errOut)
		assert.Contains(t, out, "origin OK")
		for _, l := range linesOf(out + errOut) {
			assert.False(t, strings.HasPrefix(l, forgedLine), "a forged line was printed: %q", out+errOut)
		}
		assert.NotContains(t, out+errOut, "\u202e")
		assert.NotContains(t, out+errOut, "\u2028")
		assert.NotContains(t, out+errOut, "\r")
	}
}

// TestDrawEventNameCannotForgeOutput: draw --event with a newline (or
// another line break, a bidi override, "..") is refused before anything is
// drawn, with a one-line error, and nothing it holds is printed as a line of
// its own.
func TestDrawEventNameCannotForgeOutput(t *testing.T) {
	clearEnv(t)
	for _, name := range []string{"x\n" + forgedLine, "x\u2028" + forgedLine, "x\u202ey", "..", "x\x1b[2J"} {
		code, out, errOut := runCLI(t, "draw", "--int", "10", "--event", name)
		assert.NotEqual(t, exitOK, code, "%q", name)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
		for _, l := range linesOf(out + errOut) {
			assert.False(t, strings.HasPrefix(l, forgedLine), "a forged line was printed: %q", out+errOut)
		}
		assert.NotContains(t, out+errOut, "\u2028")
		assert.NotContains(t, out+errOut, "\u202e")
		assert.NotContains(t, out+errOut, "\x1b")
	}
}

// TestAuditHeadErrorIsOneLine: audit --head with a newline (or a bidi
// override) prints a one-line error that quotes it.
func TestAuditHeadErrorIsOneLine(t *testing.T) {
	clearEnv(t)
	j := filepath.Join(t.TempDir(), "j.jsonl")
	code, _, errOut := runCLI(t, "draw", "--int", "10", "--journal", j)
	require.Equal(t, exitOK, code, errOut)
	for _, head := range []string{"abc\n" + forgedLine, strings.Repeat("0", 64) + "\u2028x", "\u202e" + strings.Repeat("0", 64)} {
		code, out, errOut := runCLI(t, "audit", "--head", head, j)
		assert.NotEqual(t, exitOK, code)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
		assert.NotContains(t, out+errOut, "\u2028")
		assert.NotContains(t, out+errOut, "\u202e")
		for _, l := range linesOf(out + errOut) {
			assert.False(t, strings.HasPrefix(l, forgedLine), "a forged line was printed: %q", out+errOut)
		}
	}
}

// draw --source drand --after TIME commits to the chain's first round after
// TIME, says so before the draw, draws from that round, and verify checks
// the commitment offline with the chain's info; --after with another source,
// with --event or with a bad time is a usage error.
func TestDrawAfterCommitsToAFutureRound(t *testing.T) {
	clearEnv(t)
	chain := drandsource.Quicknet()
	relay := drandtest.Relay(t, chain)
	after := chain.RoundTime(122).Add(time.Second).UTC().Format(time.RFC3339)
	path := filepath.Join(t.TempDir(), "t.json")
	code, out, errOut := runCLI(t, "draw", "--pick", "3", "--of", "10", "--source", "drand", "--relays", relay, "--after", after, "--transcript", path)
	require.Equal(t, exitOK, code, errOut)
	// Printed before the round exists, with the draw it fixes.
	assert.Contains(t, errOut, "commitment: round 123 of drand chain "+chain.HashString()+", the first after "+after)
	assert.Contains(t, errOut, ", for the draw provenrand-draw/1;kind=pick;n=10;k=3\n")
	assert.Contains(t, out, "commitment: round 123")
	tr := readTranscript(t, path)
	require.NotNil(t, tr.Commitment)
	assert.Equal(t, uint64(123), tr.Commitment.Round)
	assert.Equal(t, "provenrand-draw/1;kind=pick;n=10;k=3", tr.Commitment.Params)

	code, out, errOut = runCLI(t, "verify", path, "--chain", "quicknet")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "commitment: round 123 is the first of chain "+chain.HashString())
	assert.Contains(t, out, "commitment: to this draw, provenrand-draw/1;kind=pick;n=10;k=3, before its round existed")

	for _, args := range [][]string{
		{"--after", after}, // the service: no rounds to commit to
		{"--after", after, "--source", "service,drand"}, // not drand alone
		{"--after", "tomorrow", "--source", "drand"},
		{"--after", after, "--source", "drand", "--event", "lotto"},
	} {
		code, _, errOut := runCLI(t, append([]string{"draw", "--int", "10", "--relays", relay}, args...)...)
		assert.Equal(t, exitUsage, code, "%q: %s", args, errOut)
	}
}

// forgedFile writes tr, edited, to a file with its digest made to match, as
// anyone can (the digest is the SHA-256 of the rest), and returns its path.
func forgedFile(t *testing.T, tr *draw.Transcript) string {
	t.Helper()
	tr.Digest = ""
	body, err := json.Marshal(tr)
	require.NoError(t, err)
	sum := sha256.Sum256(body)
	tr.Digest = hex.EncodeToString(sum[:])
	forged, err := json.MarshalIndent(tr, "", "  ")
	require.NoError(t, err)
	fp := filepath.Join(t.TempDir(), "forged.json")
	require.NoError(t, os.WriteFile(fp, forged, 0o600))
	return fp
}
