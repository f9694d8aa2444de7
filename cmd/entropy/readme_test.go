package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/draw"
)

// moduleRoot is where the README's commands run.
const moduleRoot = "../.."

// shell runs a command line with sh in the module root, as a user types
// it, and returns its exit status, stdout and stderr.
func shell(t *testing.T, env []string, line string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), env...)
	code, out, errOut, err := runProcess(cmd)
	require.NoError(t, err, line)
	return code, out, errOut
}

// buildCLI builds the entropy command into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "entropy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/entropy")
	cmd.Dir = moduleRoot
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// cleanEnv is the environment of a user who configured nothing.
var cleanEnv = []string{"ENTROPY_URL=", "ENTROPY_API_KEY=", "ENTROPY_PUBLIC_KEY=", "ENTROPY_SOURCE_NAME="}

var pickLine = regexp.MustCompile(`pick 6 of 1\.\.49: ((?:\d+ ){5}\d+) \(in draw order\)`)

// TestREADMEFirstCommandsWork runs the README's opening commands as it
// writes them: the draw prints its result for a person on stderr (numbered
// 1 to 49) and the transcript alone on stdout, and each way the README
// gives to verify that output works, showing the same result.
func TestREADMEFirstCommandsWork(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(moduleRoot, "README.md"))
	require.NoError(t, err)
	const first = "go run ./cmd/entropy draw --pick 6 --of 49\ngo test ./...\n"
	require.True(t, strings.HasPrefix(string(readme), "# entropy\n\n```sh\n"+first+"```\n"), "the README opens with its two commands")
	const pipe = "go run ./cmd/entropy draw --pick 6 --of 49 | go run ./cmd/entropy verify -"
	require.Contains(t, string(readme), pipe)
	const viaFile = "go run ./cmd/entropy draw --pick 6 --of 49 --transcript draw.json && go run ./cmd/entropy verify draw.json"
	require.Contains(t, string(readme), viaFile)

	// The first command, with go run, exactly.
	code, out, errOut := shell(t, cleanEnv, "go run ./cmd/entropy draw --pick 6 --of 49")
	require.Equal(t, 0, code, errOut)
	tr, err := draw.ParseTranscript([]byte(out))
	require.NoError(t, err, "stdout is the transcript alone")
	require.NoError(t, draw.Verify(tr))
	assert.True(t, tr.Verifiable)
	assert.Equal(t, draw.ZeroBased, tr.Numbering)
	m := pickLine.FindStringSubmatch(errOut)
	require.NotNil(t, m, "the result for a person is on stderr: %q", errOut)
	shown := strings.Fields(m[1])
	require.Len(t, tr.Outputs, 6)
	for i, s := range shown {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		assert.Equal(t, tr.Outputs[i]+1, v, "one numbering: the person reads output+1")
		assert.True(t, v >= 1 && v <= 49)
	}

	// The pipe, with a built binary in place of go run (the same command).
	bin := buildCLI(t)
	q := strconv.Quote(bin)
	code, out, errOut = shell(t, cleanEnv, q+" draw --pick 6 --of 49 | "+q+" verify -")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "replay OK: pick k=6 n=49")
	vm := pickLine.FindStringSubmatch(out)
	require.NotNil(t, vm, "verify prints the result as draw did: %q", out)
	assert.Contains(t, errOut, "pick 6 of 1..49: "+vm[1], "the draw's own line, on stderr, shows the same numbers")

	// --transcript - is the same.
	code, out, errOut = shell(t, cleanEnv, q+" draw --pick 6 --of 49 --transcript - | "+q+" verify -")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "replay OK")

	// Through a file, as the README's second way.
	dir := t.TempDir()
	code, out, errOut = shell(t, cleanEnv, "cd "+strconv.Quote(dir)+" && "+q+" draw --pick 6 --of 49 --transcript draw.json && "+q+" verify draw.json")
	require.Equal(t, 0, code, errOut)
	fm := pickLine.FindStringSubmatch(out)
	require.NotNil(t, fm, "%q", out)
	assert.Equal(t, 2, strings.Count(out, "pick 6 of 1..49: "+fm[1]), "draw and verify print the same line: %q", out)

	// --version and the version command.
	for _, args := range []string{"--version", "version"} {
		code, out, errOut = shell(t, cleanEnv, q+" "+args)
		assert.Equal(t, 0, code, errOut)
		assert.True(t, strings.HasPrefix(out, "entropy "), "%q", out)
		assert.Contains(t, out, "go1.")
	}
}

// TestMisconfiguredServiceExitsNonZero runs entropy read the way a script
// does, against the simulator served by entropy sim: a wrong API key or a
// wrong public key is an error exit under every policy, with the service's
// message and never the key; an outage under degrade is not.
func TestMisconfiguredServiceExitsNonZero(t *testing.T) {
	clearEnv(t)
	const key = "sk-first-use-0a1b2c3d4e"
	_, url, pub := startSim(t, key)
	otherPub := "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	for _, pol := range []string{"degrade", "defer", "fail"} {
		code, out, errOut := runCLI(t, "read", "-n", "16", "--url", url, "--api-key", "sk-wrong-key-000000", "--public-key", pub, "--policy", pol)
		assert.Equal(t, 1, code, "%s: %s", pol, errOut)
		assert.Empty(t, out, pol)
		assert.Contains(t, errOut, "401", pol)
		assert.Contains(t, errOut, "Invalid or missing API key", "%s: the service's message", pol)
		assert.NotContains(t, errOut, "sk-wrong-key-000000", pol)
		assert.NotContains(t, errOut, "entropy read: entropy:", "one prefix")

		code, out, errOut = runCLI(t, "read", "-n", "16", "--url", url, "--api-key", key, "--public-key", otherPub, "--policy", pol)
		assert.Equal(t, 1, code, "%s: %s", pol, errOut)
		assert.Empty(t, out, pol)
		assert.Contains(t, errOut, "public key", "%s: says what is wrong: %s", pol, errOut)
		assert.NotContains(t, errOut, key, pol)
	}

	// read --follow too: a load run against a service that refuses the key
	// stops with the service's message instead of reading fallback bytes
	// until it is interrupted.
	for _, pol := range []string{"degrade", "defer", "fail"} {
		code, out, errOut := followFor(10*time.Second, "read", "--follow", "--every", "5ms", "--url", url,
			"--api-key", "sk-wrong-key-000000", "--public-key", pub, "--policy", pol)
		assert.Equal(t, 1, code, "%s: %s", pol, errOut)
		assert.Empty(t, out, pol)
		assert.Contains(t, errOut, "Invalid or missing API key", "%s: the service's message", pol)
		assert.NotContains(t, errOut, "sk-wrong-key-000000", pol)
	}

	// draw too, even when fallback is allowed: the transcript is not made.
	t.Setenv("ENTROPY_API_KEY", "sk-wrong-key-000000")
	path := filepath.Join(t.TempDir(), "t.json")
	code, out, errOut := runCLI(t, "draw", "--pick", "6", "--of", "49", "--url", url, "--public-key", pub,
		"--policy", "degrade", "--allow-fallback", "--transcript", path)
	assert.Equal(t, 1, code, errOut)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "Invalid or missing API key")
	assert.NotContains(t, errOut, "sk-wrong-key-000000")
	assert.NoFileExists(t, path)
}

// TestBadCommandLinesExitTwo: a bad command line exits 2 in every command,
// with one line naming the flag (and the range it wants), one prefix, and
// a pointer to --help; failures at run time exit 1.
func TestBadCommandLinesExitTwo(t *testing.T) {
	clearEnv(t)
	empty := filepath.Join(t.TempDir(), "empty.jsonl")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"read", "--policy", "sometimes"}, `unknown policy "sometimes"`},
		{[]string{"read", "--timeout", "0s"}, "--timeout"},
		{[]string{"read", "--source", "quantum"}, "--source"},
		{[]string{"read", "--url", "http://127.0.0.1:1", "--api-key", "sk-some-key-123456"}, "no public key"},
		{[]string{"draw", "--pick", "6", "--of", "49", "--policy", "sometimes"}, "unknown policy"},
		{[]string{"draw", "--int", "0"}, "from 1 to 18446744073709551615"},
		{[]string{"draw", "--int", "-3"}, "from 1 to 18446744073709551615"},
		{[]string{"draw", "--shuffle", "0"}, "1 ≤ N"},
		{[]string{"draw", "--int", "10", "--event", "x\nentropy OK: forged"}, "--event"},
		{[]string{"draw", "--nope"}, "-nope"},
		{[]string{"verify"}, "TRANSCRIPT"},
		{[]string{"verify", "--url", "http://127.0.0.1:1", "t.json"}, "--public-key is missing"},
		{[]string{"audit", "--head", "nothex", empty}, "--head"},
		{[]string{"audit"}, "JOURNAL"},
		{[]string{"sim", "--rate", "-1"}, "--rate -1"},
		{[]string{"sim", "--nope"}, "-nope"},
		{[]string{"rfc3797", "--pool", "0", "--count", "1", "1"}, ""},
		{[]string{"version", "extra"}, "extra"},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		assert.Equal(t, 2, code, "%q: %s", tc.args, errOut)
		assert.Empty(t, out, "%q", tc.args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "%q: one line: %q", tc.args, errOut)
		assert.True(t, strings.HasPrefix(errOut, "entropy "+tc.args[0]+": "), "%q: %q", tc.args, errOut)
		assert.NotContains(t, errOut, ": entropy: ", "%q: one prefix", tc.args)
		assert.Contains(t, errOut, tc.says, "%q", tc.args)
		assert.Contains(t, errOut, "--help", "%q", tc.args)
	}

	// An empty journal is not "OK": nothing was verified.
	code, out, errOut := runCLI(t, "audit", empty)
	assert.Equal(t, 1, code)
	assert.NotContains(t, out, "OK")
	assert.Contains(t, errOut, "empty: no records")

	// A drand relay that cannot be resolved: the cause is kept, not only
	// "context deadline exceeded".
	code, _, errOut = runCLI(t, "draw", "--pick", "6", "--of", "49", "--source", "drand", "--relays", "https://relay.invalid", "--timeout", "1s")
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, "relay.invalid", errOut)
	assert.Contains(t, errOut, "lookup", "the resolver's error: %s", errOut)
}

// TestServiceNameFollowsTheService: read --url without --source-name labels
// the jobs with the service's host:port (never another service's name),
// and verify --url finds them under that name without being told.
func TestServiceNameFollowsTheService(t *testing.T) {
	clearEnv(t)
	const key = "sk-first-name-5f4e3d2c1b"
	_, url, pub := startSim(t, key)
	t.Setenv("ENTROPY_API_KEY", key)
	host := strings.TrimPrefix(url, "http://")

	code, out, errOut := runCLI(t, "read", "-n", "8", "--label", "--url", url, "--public-key", pub)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"source":"`+host+`"`)
	assert.NotContains(t, out, "quantropy")

	path := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut = runCLI(t, "draw", "--pick", "3", "--of", "10", "--url", url, "--public-key", pub, "--transcript", path)
	require.Equal(t, 0, code, errOut)
	code, out, errOut = runCLI(t, "verify", "--url", url, "--public-key", pub, path)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "entropy OK: matches the signed jobs of "+host)

	// A name given at draw time and not at verify time: the message says
	// which flag settles it.
	path2 := filepath.Join(t.TempDir(), "t2.json")
	code, _, errOut = runCLI(t, "draw", "--pick", "3", "--of", "10", "--url", url, "--public-key", pub, "--source-name", "acme", "--transcript", path2)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runCLI(t, "verify", "--url", url, "--public-key", pub, path2)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `--source-name "acme"`)
}

// TestREADMENamesOnlyTestsThatExist: README.md and docs/ point readers to
// the tests that prove each claim; every test, example, benchmark and fuzz
// target they name by its function name exists.
func TestREADMENamesOnlyTestsThatExist(t *testing.T) {
	defined := map[string]bool{}
	funcRE := regexp.MustCompile(`(?m)^func ((?:Test|Example|Benchmark|Fuzz)\w*)\(`)
	err := filepath.WalkDir(moduleRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		for _, m := range funcRE.FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = true
		}
		return err
	})
	require.NoError(t, err)
	docs, err := filepath.Glob(filepath.Join(moduleRoot, "docs", "*.md"))
	require.NoError(t, err)
	nameRE := regexp.MustCompile("`((?:Test|Example|Benchmark|Fuzz)\\w+)`")
	for _, path := range append(docs, filepath.Join(moduleRoot, "README.md")) {
		text, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, m := range nameRE.FindAllStringSubmatch(string(text), -1) {
			assert.True(t, defined[m[1]], "%s names %s, which no test file defines", filepath.Base(path), m[1])
		}
	}
}
