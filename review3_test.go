package entropy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// review3ChildEnv names the environment variable that makes a test run its
// body in a child process: faults below crash the whole program (a panic
// on a goroutine of the Provider) or spin for ever, which a test in the
// same process could neither recover from nor stop.
const review3ChildEnv = "ENTROPY_REVIEW3_CHILD"

// review3InChild reports whether this process is the child of test t.
func review3InChild(t *testing.T) bool {
	return os.Getenv(review3ChildEnv) == t.Name()
}

// review3RunChild runs test t again in a child process, with a bounded
// wait, and returns its output and error.
func review3RunChild(t *testing.T) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), review3ChildEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// review3NilJournal is a Journal whose methods use their receiver, as
// journal.Journal's do (they lock its mutex).
type review3NilJournal struct{ n int }

func (j *review3NilJournal) RecordBlock(context.Context, BlockRecord) error        { j.n++; return nil }
func (j *review3NilJournal) RecordFallback(context.Context, FallbackEpisode) error { j.n++; return nil }
func (j *review3NilJournal) RecordEvent(_ context.Context, r EventRecord) (EventRecord, error) {
	j.n++
	return r, nil
}
func (j *review3NilJournal) LookupEvent(context.Context, string) (EventRecord, bool, error) {
	j.n++
	return EventRecord{}, false, nil
}

// A typed-nil Journal (var j *journal.Journal left nil when journalling is
// off, then WithJournal(j)) must be refused by New or treated as no
// journal; it must not crash the program from the Provider's notifier
// goroutine when the first block arrives.
func TestReview3TypedNilJournalDoesNotCrash(t *testing.T) {
	if review3InChild(t) {
		var j *review3NilJournal
		p, err := New(newScriptSource("a"), fast(WithJournal(j))...)
		if err != nil {
			return // refused at New: fine
		}
		ready(t, p)
		_, err = p.Read(make([]byte, 32))
		require.NoError(t, err)
		require.NoError(t, p.Close())
		return
	}
	out, err := review3RunChild(t)
	require.NoError(t, err, "a typed-nil Journal crashed the program:\n%s", out)
	require.NotContains(t, out, "panic:")
}

// WithRetry accepts base == max == the longest Duration (0 < base <= max
// holds), and a retry or a failed refill round must then wait, not crash
// the program: backoff must not overflow into rand.N(0 or less).
func TestReview3HugeRetryDelayDoesNotCrash(t *testing.T) {
	if review3InChild(t) {
		down := SourceFunc(func(ctx context.Context, n int) (Block, error) {
			return Block{}, &APIError{StatusCode: 503}
		})
		huge := time.Duration(math.MaxInt64)
		p, err := New(down, WithRateLimit(rate.Inf, 1), WithRetry(2, huge, huge))
		require.NoError(t, err)
		// Wait (bounded) until the first request failed, so that the
		// retry's backoff has been computed.
		require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures > 0 }, 10*time.Second, time.Millisecond)
		require.Eventually(t, func() bool { return p.Stats().Sources[0].Retries > 0 }, 10*time.Second, time.Millisecond)
		require.NoError(t, p.Close())
		return
	}
	out, err := review3RunChild(t)
	require.NoError(t, err, "WithRetry with the longest delays crashed the program:\n%s", out)
	require.NotContains(t, out, "panic:")
}

// ConnError's Error must not panic when Err is nil: the Provider calls it
// on its refill goroutine (logger, Stats, fallback reasons), where a panic
// ends the program.
func TestReview3ConnErrorWithoutCauseDoesNotPanic(t *testing.T) {
	for _, e := range []*ConnError{{}, {Op: "GET /v1/entropy"}} {
		require.NotPanics(t, func() { _ = e.Error() }, "%#v", e)
		require.NotPanics(t, func() { _ = newUnavailable(&sourceError{name: "s", err: e}).Error() })
		require.True(t, errors.Is(e, ErrConnection))
	}
}

// Reads on a zero Provider (not made by New) must end: a panic or an
// error, never a goroutine spinning for ever.
func TestReview3ZeroProviderReadEnds(t *testing.T) {
	if review3InChild(t) {
		for _, name := range []string{"Read", "ReadLabelled"} {
			var p Provider
			done := make(chan string, 1)
			go func() {
				defer func() {
					if r := recover(); r != nil {
						done <- fmt.Sprint("panic recovered: ", r)
					}
				}()
				var err error
				if name == "Read" {
					_, err = p.Read(make([]byte, 8))
				} else {
					_, err = p.ReadLabelled(context.Background(), make([]byte, 8))
				}
				done <- fmt.Sprint("error: ", err)
			}()
			select {
			case s := <-done:
				fmt.Println(name, "ended:", s)
			case <-time.After(5 * time.Second):
				fmt.Println(name, "on a zero Provider: STILL RUNNING after 5s")
				os.Exit(3) // the spinning goroutine cannot be stopped
			}
		}
		return
	}
	out, err := review3RunChild(t)
	require.NoError(t, err, "a read on a zero Provider never returned:\n%s", out)
	require.False(t, strings.Contains(out, "STILL RUNNING"), out)
}
