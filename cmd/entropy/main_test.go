package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy/internal/fsizelimit"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainArgsEnv); ok {
		// A child of runMain: be the command, through main.
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			panic(err)
		}
		if _, err := fsizelimit.FromEnv(); err != nil {
			panic(err)
		}
		os.Args = append([]string{"entropy"}, a...)
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// mainArgsEnv carries the command line of a child process of runMain.
const mainArgsEnv = "ENTROPY_TEST_MAIN_ARGS"

// runMain runs the command line in a child process through main, as a user
// runs the binary: with the process's own stdout, stderr and standard log.
// env is added to the environment. It returns the exit status and outputs.
func runMain(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	js, err := json.Marshal(args)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), env...), mainArgsEnv+"="+string(js))
	code, out, errOut, err := runProcess(cmd)
	require.NoError(t, err)
	return code, out, errOut
}

// runCLI runs the command line in-process and returns exit status and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTopLevelHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		code, out, errOut := runCLI(t, arg)
		assert.Equal(t, 0, code, arg)
		assert.Contains(t, out, "Usage: entropy <command>")
		assert.Contains(t, out, "read")
		assert.Contains(t, out, "sim")
		assert.Empty(t, errOut)
	}
	code, out, _ := runCLI(t, "help", "read")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "Usage: entropy read")
}

func TestEveryCommandHasHelp(t *testing.T) {
	for name := range commands {
		code, out, errOut := runCLI(t, name, "--help")
		assert.Equal(t, 0, code, name)
		assert.Contains(t, out, "Usage: entropy "+name, name)
		assert.Contains(t, out, "Flags:", name)
		assert.Empty(t, errOut, name)
	}
}

func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"help", "nope"},
		{"read", "--nope"},
		{"read", "extra"},
		{"read", "-n", "0"},
		{"read", "-n", "x"},
		{"read", "--format", "bin"},
		{"sim", "--faults", "nope=1"},
		{"sim", "--queue", "2"},
	} {
		code, out, errOut := runCLI(t, args...)
		assert.NotEqual(t, 0, code, "%q", args)
		if len(args) > 0 {
			assert.Empty(t, out, "%q", args)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr for %q: %q", args, errOut)
		}
	}
}

// TestNumberFlagsAreDecimalOnly: every whole-number flag reads its value
// by one rule, decimal digits: 0x10, 0o20, 0b10000, 1_6, +16 and 016 are a
// bad command line naming the flag, under every command alike. Once -n,
// --of and --shuffle took 0x10 (and read 010 as octal 8) while --int
// refused it. The decimal values the same commands take still work.
func TestNumberFlagsAreDecimalOnly(t *testing.T) {
	clearEnv(t)
	lines := map[string][]string{ // flag: a command line, the value last
		"-n":          {"read", "-n"},
		"-pick":       {"draw", "--of", "20", "--pick"},
		"-of":         {"draw", "--pick", "2", "--of"},
		"-shuffle":    {"draw", "--shuffle"},
		"-int":        {"draw", "--int"},
		"-burst":      {"read", "--burst"},
		"-fleet-size": {"read", "--fleet", "redis://127.0.0.1:1/0", "--fleet-size"},
		"-pool":       {"rfc3797", "--count", "2", "1 2", "--pool"},
		"-count":      {"rfc3797", "--pool", "20", "1 2", "--count"},
		"-seed":       {"sim", "--seed"},
		"-balance":    {"sim", "--balance"},
	}
	for flagName, line := range lines {
		for _, v := range []string{"0x10", "0X10", "0o20", "0b10000", "1_6", "+16", "016", " 16", "16 ", "1e1", ""} {
			args := append(append([]string{}, line...), v)
			assertUsageError(t, args, `invalid value "`+v+`" for flag `+flagName+":", "decimal")
		}
	}
	assertUsageError(t, []string{"draw", "--int", "18446744073709551616"}, "-int", "out of range")
	assertUsageError(t, []string{"draw", "--int", "-1"}, "-int", "negative")
	assertUsageError(t, []string{"draw", "--shuffle", "9223372036854775808"}, "-shuffle", "out of range")

	code, out, errOut := runCLI(t, "read", "-n", "16")
	require.Equal(t, exitOK, code, errOut)
	assert.Len(t, strings.TrimSpace(out), 32, "16 bytes as hex")
	for _, args := range [][]string{{"draw", "--pick", "2", "--of", "16"}, {"draw", "--shuffle", "16"}, {"draw", "--int", "16"}, {"draw", "--int", "18446744073709551615"}} {
		code, _, errOut := runCLI(t, args...)
		require.Equal(t, exitOK, code, "%q: %s", args, errOut)
	}
	code, out, errOut = runCLI(t, "rfc3797", "--pool", "16", "--count", "2", "1 2")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "pool positions 1..16")
}

func TestRegisterAddsCommands(t *testing.T) {
	n := len(commands)
	register(&command{name: "zz-test", usage: "zz-test", summary: "a test command", run: func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		_, _ = stdout.Write([]byte(strings.Join(args, ",")))
		return 7
	}})
	defer delete(commands, "zz-test")
	assert.Len(t, commands, n+1)
	code, out, _ := runCLI(t, "zz-test", "a", "b")
	assert.Equal(t, 7, code)
	assert.Equal(t, "a,b", out)
	_, out, _ = runCLI(t, "--help")
	assert.Contains(t, out, "a test command")
}

// TestURLWithCredentialsRefused: --url with a key in it (http://KEY@host,
// http://user:KEY@host), with no ENTROPY_API_KEY, is refused by every
// command that takes --url before any request is sent, and the key is in
// no output.
func TestURLWithCredentialsRefused(t *testing.T) {
	clearEnv(t)
	const key = "sk-cli-url-key-4d3c2b1a"
	s, url, pub := startSim(t, key)
	transcript := filepath.Join(t.TempDir(), "t.json")
	code, _, errOut := runCLI(t, "draw", "--int", "10", "--transcript", transcript)
	require.Equal(t, exitOK, code, errOut)
	for _, withKey := range []string{
		strings.Replace(url, "://", "://"+key+"@", 1),
		strings.Replace(url, "://", "://user:"+key+"@", 1),
	} {
		for _, args := range [][]string{
			{"read", "-n", "8", "--url", withKey, "--public-key", pub},
			{"read", "-n", "8", "--url", withKey, "--fetch-public-key"},
			{"draw", "--int", "10", "--url", withKey, "--public-key", pub},
			{"verify", "--url", withKey, "--public-key", pub, transcript},
		} {
			code, out, errOut := runCLI(t, args...)
			assert.NotEqual(t, exitOK, code, "%v", args[0])
			assert.Contains(t, errOut, "credentials", "%v", args[0])
			assert.NotContains(t, out+errOut, key, "%v", args[0])
		}
	}
	assert.Empty(t, s.Requests(), "a request was sent with the key from the URL")
}

// Every flag README.md documents is accepted and shown in --help.
func TestFlagsShownInHelp(t *testing.T) {
	clearEnv(t)
	code, out, _ := runCLI(t, "read", "--help")
	require.Equal(t, 0, code)
	for _, f := range []string{"-n", "-format", "-label", "-policy", "-url", "-public-key", "ENTROPY_URL", "ENTROPY_API_KEY", "ENTROPY_PUBLIC_KEY"} {
		assert.Contains(t, out, f)
	}
	code, out, _ = runCLI(t, "sim", "-h")
	require.Equal(t, 0, code)
	for _, f := range []string{"-addr", "-faults", "127.0.0.1:8080"} {
		assert.Contains(t, out, f)
	}
	for _, pol := range []string{"degrade", "defer", "fail", "DEFER", " Fail"} {
		code, out, errOut := runCLI(t, "read", "-n", "4", "--policy", pol, "--format", "base64")
		assert.Equal(t, 0, code, "%s: %s", pol, errOut)
		assert.NotEmpty(t, strings.TrimSpace(out))
	}
	code, _, errOut := runCLI(t, "read", "--policy", "sometimes")
	assert.NotEqual(t, 0, code)
	assert.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
}

// An event name cannot fake a line or an item of audit's report: a name
// with a newline is refused (docs/protocol.md, "Names"), and names are
// printed quoted, so one holding ", " or a quote is one item.
func TestAuditQuotesEventNames(t *testing.T) {
	clearEnv(t)
	j := filepath.Join(t.TempDir(), "audit.jsonl")
	code, _, errOut := runCLI(t, "draw", "--pick", "1", "--of", "2", "--event", "r1\nhead: 0000", "--journal", j)
	require.NotEqual(t, exitOK, code, "an event name with a newline was drawn")
	assert.Contains(t, errOut, "--event", "the refusal names the flag")
	const event = `r1", "head: 0000`
	code, _, errOut = runCLI(t, "draw", "--pick", "1", "--of", "2", "--event", event, "--journal", j)
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut := runCLI(t, "audit", j)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `("r1\", \"head: 0000")`)
	heads := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "head: ") {
			heads++
		}
	}
	assert.Equal(t, 1, heads, "one head line:\n%s", out)
}

// Two events whose names look alike (é, and e with a combining acute
// accent) are two events, and audit shows them as two different names.
func TestAuditShowsLookAlikeEventNamesApart(t *testing.T) {
	clearEnv(t)
	j := filepath.Join(t.TempDir(), "audit.jsonl")
	for _, event := range []string{"caf\u00e9", "cafe\u0301"} {
		code, _, errOut := runCLI(t, "draw", "--pick", "1", "--of", "2", "--event", event, "--journal", j)
		require.Equal(t, exitOK, code, errOut)
	}
	code, out, errOut := runCLI(t, "audit", j)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"caf\u00e9"`)
	assert.Contains(t, out, `"cafe\u0301"`)
}

// TestEveryCommandFailsWhenStdoutFails: every command whose output cannot be
// written (stdout at /dev/full, a closed pipe) exits non-zero and says so on
// stderr: a lost audit head, selection or verdict must not pass for success.
func TestEveryCommandFailsWhenStdoutFails(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	transcript := filepath.Join(dir, "t.json")
	journalPath := filepath.Join(dir, "j.jsonl")
	code, _, errOut := runCLI(t, "draw", "--int", "10", "--event", "stdout-fails", "--journal", journalPath, "--transcript", transcript)
	require.Equal(t, exitOK, code, errOut)

	for name, args := range map[string][]string{
		"read":              {"read", "-n", "8"},
		"read --label":      {"read", "-n", "8", "--format", "raw", "--label"},
		"draw":              {"draw", "--int", "10"},
		"draw --transcript": {"draw", "--int", "10", "--transcript", filepath.Join(dir, "t2.json")},
		"verify":            {"verify", "--allow-fallback", transcript},
		"rfc3797":           {"rfc3797", "--pool", "10", "--count", "3", "2 5 12 8 10"},
		"audit":             {"audit", journalPath},
		"version":           {"version"},
		"--version":         {"--version"},
		"help":              {"--help"},
		"read --help":       {"read", "--help"},
		"sim":               {"sim", "--addr", "127.0.0.1:0"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var errOut testkit.SyncBuffer
			code := runContext(ctx, args, failWriter{}, &errOut)
			assert.Equal(t, exitError, code, "stdout failed, yet exit %d; stderr: %q", code, errOut.String())
			assert.Contains(t, errOut.String(), "no space left on device")
			assert.NoError(t, ctx.Err(), "the command did not stop when its output failed")
		})
	}
}

// TestErrorLinesShowNoHiddenCharacters: an error line shows every character
// that is not printable escaped, whatever the error quotes: it stays one
// line and hides nothing.
func TestErrorLinesShowNoHiddenCharacters(t *testing.T) {
	got := oneLine(errors.New("entropy: job x\u202eKO\u2028y\x1b[2J\r\nentropy OK"))
	assert.Equal(t, `job x\u202eKO y\x1b[2J entropy OK`, got)
	assert.Equal(t, "plain message", oneLine(errors.New("entropy: plain\n message")))
}
