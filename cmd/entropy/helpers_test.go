package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/internal/testkit"
)

// runProcess runs cmd, a process, and returns its exit status, stdout and
// stderr. err says why the process could not run (its status is then -1);
// a process that ran and failed is no error.
func runProcess(cmd *exec.Cmd) (code int, stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String(), nil
	case err != nil:
		return -1, out.String(), errOut.String(), err
	}
	return 0, out.String(), errOut.String(), nil
}

// background is a command line running in-process until it is
// interrupted, as entropy sim and entropy read --metrics run.
type background struct {
	args   []string
	cancel context.CancelFunc
	done   chan struct{}      // closed when the command has returned
	code   int                // its exit status, once done is closed
	out    testkit.SyncBuffer // its stdout
	errOut testkit.SyncBuffer // its stderr
}

// start runs the command line in the background. The test's cleanup
// interrupts it, if stop did not, and waits for it to return.
func start(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{args: args, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.code = runContext(ctx, args, &b.out, &b.errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Errorf("entropy %s did not stop when interrupted", strings.Join(b.args, " "))
		}
	})
	return b
}

// stop interrupts the command and returns its exit status. The command must
// return within 5 seconds.
func (b *background) stop(t *testing.T) int {
	t.Helper()
	b.cancel()
	select {
	case <-b.done:
		return b.code
	case <-time.After(5 * time.Second):
		t.Fatalf("entropy %s did not stop when interrupted", strings.Join(b.args, " "))
		return 0
	}
}

// simEnv waits for the four settings an entropy sim command prints to
// export, and returns them.
func (b *background) simEnv(t *testing.T) map[string]string {
	t.Helper()
	var env map[string]string
	require.Eventually(t, func() bool {
		env = exports(b.out.String())
		return len(env) == 4
	}, 5*time.Second, 5*time.Millisecond)
	return env
}

// assertUsageError checks that the command line args is a bad command
// line: exit status 2, nothing on stdout, and one line on stderr for the
// command that names every one of mentions (the flags at fault). The
// command runs interrupted from the start, so that one that wrongly started
// a simulator or a --follow loop stops at once.
func assertUsageError(t *testing.T, args []string, mentions ...string) {
	t.Helper()
	code, out, errOut := runInterrupted(args...)
	assert.Equal(t, exitUsage, code, "%q: %s", args, errOut.String())
	assert.Empty(t, out.String(), "%q", args)
	assert.Equal(t, 1, strings.Count(errOut.String(), "\n"), "%q: one line: %q", args, errOut.String())
	assert.True(t, strings.HasPrefix(errOut.String(), "entropy "+args[0]+": "), "%q: %q", args, errOut.String())
	for _, m := range mentions {
		assert.Contains(t, errOut.String(), m, "%q", args)
	}
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

// runInterrupted runs the command with a context cancelled from the start,
// as if interrupted before it began.
func runInterrupted(args ...string) (code int, out, errOut *bytes.Buffer) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, errOut = new(bytes.Buffer), new(bytes.Buffer)
	return runContext(ctx, args, out, errOut), out, errOut
}
