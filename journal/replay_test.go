package journal_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replaySource hands out one job of its own first (if fresh is set), then
// the job "job-replayed" of source "quantropy" for ever: what anyone who can
// answer for the service does when it replays a signed job. It counts its
// fetches in fetches.
func replaySource(fetches *atomic.Int64, fresh bool) entropy.Source {
	return hashIDSource("quantropy", "replay", func(k int64) string {
		fetches.Add(1)
		if fresh && k > 1 {
			return fmt.Sprintf("job-fresh-%d", k)
		}
		return "job-replayed"
	})
}

// accepted returns the bytes p accepted from its sources into its pool.
func accepted(p *entropy.Provider) uint64 {
	var n uint64
	for _, s := range p.Stats().Sources {
		n += s.BytesAccepted
	}
	return n
}

// TestReplayedJobRefusedAcrossProvidersAndRestarts: a job one Provider took
// is refused by a second Provider sharing the journal and by a Provider of a
// later process that opens the same journal; neither serves a byte of it
// (contract point 3).
func TestReplayedJobRefusedAcrossProvidersAndRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := journal.Open(path)
	require.NoError(t, err)

	// The first Provider takes the job.
	var f1 atomic.Int64
	p1, err := entropy.New(replaySource(&f1, false), entropy.WithJournal(j), entropy.WithFetchSize(128), entropy.WithBufferSize(256))
	require.NoError(t, err)
	lbl, err := p1.ReadLabelled(ctx, make([]byte, 32))
	require.NoError(t, err)
	require.True(t, lbl.Verifiable)
	require.Equal(t, "job-replayed", lbl.Spans[0].JobID)

	// A second Provider on the same journal is handed the same job: refused.
	refusedBy := func(name string, p *entropy.Provider, fetches *atomic.Int64) {
		t.Helper()
		require.Eventually(t, func() bool { return fetches.Load() >= 3 }, 5*time.Second, time.Millisecond, "%s asked again and again", name)
		short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancelShort()
		b := make([]byte, 16)
		_, err := p.ReadLabelled(short, b)
		require.Error(t, err, "%s served bytes of a replayed job", name)
		assert.Equal(t, make([]byte, 16), b)
		assert.Zero(t, accepted(p), "%s accepted bytes of a replayed job", name)
		var rejected uint64
		for _, s := range p.Stats().Sources {
			rejected += s.BlocksRejected
		}
		assert.GreaterOrEqual(t, rejected, uint64(1), "%s counted the replays as refused blocks", name)
	}
	var f2 atomic.Int64
	p2, err := entropy.New(replaySource(&f2, false), entropy.WithJournal(j), entropy.WithPolicy(entropy.Defer),
		entropy.WithFetchSize(128), entropy.WithRetry(2, time.Millisecond, 2*time.Millisecond))
	require.NoError(t, err)
	refusedBy("a second Provider", p2, &f2)
	require.NoError(t, p2.Close())
	require.NoError(t, p1.Close())
	require.NoError(t, j.Close())

	// After a restart, the journal still knows the job.
	j, err = journal.Open(path)
	require.NoError(t, err)
	var f3 atomic.Int64
	p3, err := entropy.New(replaySource(&f3, true), entropy.WithJournal(j), entropy.WithPolicy(entropy.Defer),
		entropy.WithFetchSize(128), entropy.WithRetry(2, time.Millisecond, 2*time.Millisecond))
	require.NoError(t, err)
	// Its first fetch is the replay, every later one a fresh job: the
	// Provider serves the fresh jobs and never the replayed one.
	for i := 0; i < 8; i++ {
		lbl, err := p3.ReadLabelled(ctx, make([]byte, 32))
		require.NoError(t, err)
		for _, s := range lbl.Spans {
			assert.NotEqual(t, "job-replayed", s.JobID, "a restarted Provider served the replayed job")
		}
	}
	require.NoError(t, p3.Close())
	require.NoError(t, j.Close())

	rep, err := journal.VerifyFile(path)
	require.NoError(t, err, "one block record per job")
	assert.Empty(t, rep.DuplicateJobs)
	var f4 atomic.Int64
	j, err = journal.Open(path)
	require.NoError(t, err)
	defer j.Close()
	p4, err := entropy.New(replaySource(&f4, false), entropy.WithJournal(j), entropy.WithPolicy(entropy.Defer),
		entropy.WithFetchSize(128), entropy.WithRetry(2, time.Millisecond, 2*time.Millisecond))
	require.NoError(t, err)
	defer p4.Close()
	refusedBy("a restarted Provider", p4, &f4)
}

// The journal refuses a second block record of one job, in the process that
// wrote the first and in every later one, and ClaimJob answers for recorded
// and claimed jobs alike.
func TestJournalRecordsAJobOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := journal.Open(path)
	require.NoError(t, err)
	b := entropy.BlockRecord{Source: "quantropy", JobID: "job-1", Size: 32, Verifiable: true, Time: time.Now()}
	require.NoError(t, j.RecordBlock(ctx, b))
	assert.ErrorIs(t, j.RecordBlock(ctx, b), journal.ErrJobExists)
	other := b
	other.Source = "other"
	require.NoError(t, j.RecordBlock(ctx, other), "a job ID is a job of one source")

	fresh, err := j.ClaimJob(ctx, "quantropy", "job-1")
	require.NoError(t, err)
	assert.False(t, fresh, "a recorded job is not new")
	fresh, err = j.ClaimJob(ctx, "quantropy", "job-2")
	require.NoError(t, err)
	assert.True(t, fresh)
	fresh, err = j.ClaimJob(ctx, "quantropy", "job-2")
	require.NoError(t, err)
	assert.False(t, fresh, "a claimed job is taken")
	b2 := b
	b2.JobID = "job-2"
	require.NoError(t, j.RecordBlock(ctx, b2), "the claimer records the job it claimed")
	require.NoError(t, j.Close())

	j, err = journal.Open(path)
	require.NoError(t, err)
	defer j.Close()
	assert.ErrorIs(t, j.RecordBlock(ctx, b), journal.ErrJobExists, "after a restart too")
	fresh, err = j.ClaimJob(ctx, "quantropy", "job-2")
	require.NoError(t, err)
	assert.False(t, fresh)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = j.ClaimJob(cancelled, "quantropy", "job-3")
	assert.ErrorIs(t, err, context.Canceled)
	var _ interface {
		ClaimJob(ctx context.Context, source, jobID string) (bool, error)
	} = j
}

// A journal written by a process that took a job twice (before the replay
// guard) still opens, and Verify and the audit report the duplicate.
func TestVerifyReportsAJobTakenTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }
	dup := filepath.Join(dir, "dup.jsonl")
	j, err := journal.Open(dup, journal.WithClock(entropy.NowFunc(clock)))
	require.NoError(t, err)
	rec := entropy.BlockRecord{Source: "quantropy", JobID: "job-x", Size: 32, Verifiable: true, Time: clock()}
	require.NoError(t, j.RecordBlock(ctx, rec))
	// The same job again, as a process without the replay guard wrote it:
	// a sound record of the chain.
	require.NoError(t, journal.AppendBlockUnguarded(j, rec))
	require.NoError(t, j.Close())

	rep, err := journal.VerifyFile(dup)
	require.ErrorIs(t, err, journal.ErrDuplicateJob)
	var le *journal.LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 3, le.Line)
	require.Len(t, rep.DuplicateJobs, 1)
	assert.Equal(t, journal.DuplicateJob{Source: "quantropy", JobID: "job-x", Line: 3, Offset: le.Offset, FirstLine: 2}, rep.DuplicateJobs[0])
	assert.True(t, strings.Contains(err.Error(), `"job-x"`), err.Error())

	j, err = journal.Open(dup)
	require.NoError(t, err, "a journal with a duplicate still opens")
	defer j.Close()
	fresh, err := j.ClaimJob(ctx, "quantropy", "job-x")
	require.NoError(t, err)
	assert.False(t, fresh)
}

// slowBlockJournal is a journal whose block records take a while to reach
// the disk, as on a busy one.
type slowBlockJournal struct{ *journal.Journal }

func (s slowBlockJournal) RecordBlock(ctx context.Context, b entropy.BlockRecord) error {
	time.Sleep(100 * time.Millisecond)
	return s.Journal.RecordBlock(ctx, b)
}

// TestJobServedByReadProvenIsRefusedAfterACrash: ReadProven hands out a
// job's bytes only once the job's block record is on disk, so that a
// process killed (kill -9) right after the read loses no record of it, and
// the next process that opens the journal refuses the job when anyone
// replays it (contract point 3): a journal slow to write included.
func TestJobServedByReadProvenIsRefusedAfterACrash(t *testing.T) {
	const pathEnv = "JOURNAL_TEST_CRASH_PATH"
	if path := os.Getenv(pathEnv); path != "" {
		// The child: one ReadProven, its job ID printed, then killed.
		j, err := journal.Open(path)
		require.NoError(t, err)
		p, err := entropy.New(hashSource("quantropy", "job-", "crash"), entropy.WithJournal(slowBlockJournal{j}))
		require.NoError(t, err)
		lbl, _, err := p.ReadProven(context.Background(), make([]byte, 32))
		require.NoError(t, err)
		fmt.Printf("served job %s\n", lbl.Spans[0].JobID)
		self, err := os.FindProcess(os.Getpid())
		require.NoError(t, err)
		require.NoError(t, self.Kill()) // SIGKILL: nothing runs after it
		select {}
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), pathEnv+"="+path)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the child was to be killed: %s", out)
	var job string
	_, serr := fmt.Sscanf(string(out[strings.Index(string(out), "served job "):]), "served job %s", &job)
	require.NoError(t, serr, "the child served nothing: %s", out)

	j, err := journal.Open(path)
	require.NoError(t, err, "the journal of the killed process opens")
	defer j.Close()
	var fetches atomic.Int64
	replay := hashIDSource("quantropy", "crash", func(int64) string { fetches.Add(1); return job })
	p, err := entropy.New(replay, entropy.WithJournal(j), entropy.WithPolicy(entropy.Defer),
		entropy.WithFetchSize(128), entropy.WithRetry(2, time.Millisecond, 2*time.Millisecond))
	require.NoError(t, err)
	defer p.Close()
	require.Eventually(t, func() bool { return fetches.Load() >= 3 }, 5*time.Second, time.Millisecond, "the replay was asked for again and again")
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	_, err = p.ReadLabelled(short, make([]byte, 16))
	require.Error(t, err, "job %s, served before the crash, was served again after it", job)
	assert.Zero(t, accepted(p), "job %s, served before the crash, was accepted again after it", job)
}
