package journal_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingSource is a verifiable source whose fetches are counted.
func countingSource(fetches *atomic.Int64, jobs *sync.Map) entropy.Source {
	return entropy.SourceFunc(func(_ context.Context, n int) (entropy.Block, error) {
		k := fetches.Add(1)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(k*31 + int64(i)*7)
		}
		id := "job-" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+k%26))
		jobs.Store(id, bytes.Clone(data))
		return entropy.Block{Data: data, Source: "counting", JobID: id, Verifiable: true, Time: time.Now()}, nil
	})
}

// TestReadForOnceConcurrentlyAndAcrossRestart: many goroutines get one
// event's bytes and label; the journal holds one event record; after a
// restart with the journal (and another source) the same bytes come back,
// again from many goroutines, with no new record; another size is refused.
func TestReadForOnceConcurrentlyAndAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	readAll := func(p *entropy.Provider) ([]byte, entropy.Label) {
		const n = 24
		bufs := make([][]byte, n)
		labels := make([]entropy.Label, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := make([]byte, 32)
				l, err := p.ReadFor(ctx, "raffle", b)
				assert.NoError(t, err)
				bufs[i], labels[i] = b, l
			}()
		}
		wg.Wait()
		for i := 1; i < n; i++ {
			require.Equal(t, bufs[0], bufs[i], "goroutine %d got other bytes", i)
			require.Equal(t, labels[0], labels[i])
		}
		return bufs[0], labels[0]
	}

	var f1 atomic.Int64
	var jobs sync.Map
	j, err := journal.Open(path)
	require.NoError(t, err)
	p, err := entropy.New(countingSource(&f1, &jobs), entropy.WithJournal(j), entropy.WithPolicy(entropy.Degrade))
	require.NoError(t, err)
	b1, l1 := readAll(p)
	require.True(t, l1.Verifiable)
	require.Equal(t, 32, l1.Len())
	// The bytes are the labelled span of the job.
	pos := 0
	for _, s := range l1.Spans {
		d, ok := jobs.Load(s.JobID)
		require.True(t, ok)
		require.Equal(t, d.([]byte)[s.Offset:s.Offset+s.Length], b1[pos:pos+s.Length])
		pos += s.Length
	}
	_, err = p.ReadFor(ctx, "raffle", make([]byte, 33))
	require.ErrorIs(t, err, entropy.ErrEventParams)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())

	rep, err := journal.VerifyFile(path)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Events)

	var f2 atomic.Int64
	j, err = journal.Open(path)
	require.NoError(t, err)
	p, err = entropy.New(countingSource(&f2, &jobs), entropy.WithJournal(j))
	require.NoError(t, err)
	b2, l2 := readAll(p)
	assert.Equal(t, b1, b2)
	assert.Equal(t, l1, l2)
	_, err = p.ReadFor(ctx, "raffle", make([]byte, 16))
	require.ErrorIs(t, err, entropy.ErrEventParams)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())
	rep, err = journal.VerifyFile(path)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Events, "a restart must not record the event again")
}

// TestReadForNeverFallsBack: under Degrade, with the source down, an
// event draw waits for verifiable bytes and fails at the deadline, handing
// out nothing and recording nothing.
func TestReadForNeverFallsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := journal.Open(path)
	require.NoError(t, err)
	down := entropy.SourceFunc(func(context.Context, int) (entropy.Block, error) {
		return entropy.Block{}, &entropy.APIError{StatusCode: 503}
	})
	p, err := entropy.New(down, entropy.WithJournal(j), entropy.WithPolicy(entropy.Degrade), entropy.WithRetry(1, time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	b := make([]byte, 32)
	l, err := p.ReadFor(ctx, "ev", b)
	require.Error(t, err)
	assert.False(t, l.Verifiable)
	assert.Empty(t, l.Spans)
	assert.Equal(t, make([]byte, 32), b)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())
	rep, err := journal.VerifyFile(path)
	require.NoError(t, err)
	assert.Zero(t, rep.Events)
}

// crashJournal is a file journal that kills its process (kill -9) at one
// step of an event draw: before or after the request's attempt record, a
// block record that follows it, or the event record.
type crashJournal struct {
	*journal.Journal
	at    string
	armed atomic.Bool // an attempt was recorded: the event draw is under way
}

func (c *crashJournal) crash(step string) {
	if c.at == step {
		self, _ := os.FindProcess(os.Getpid())
		self.Kill()
		select {}
	}
}

func (c *crashJournal) RecordAttempt(ctx context.Context, a entropy.EventAttempt) error {
	c.crash("attempt/before")
	err := c.Journal.RecordAttempt(ctx, a)
	c.armed.Store(true)
	c.crash("attempt/after")
	return err
}

func (c *crashJournal) RecordBlock(ctx context.Context, b entropy.BlockRecord) error {
	if !c.armed.Load() {
		return c.Journal.RecordBlock(ctx, b)
	}
	c.crash("block/before")
	err := c.Journal.RecordBlock(ctx, b)
	c.crash("block/after")
	return err
}

func (c *crashJournal) RecordEvent(ctx context.Context, r entropy.EventRecord) (entropy.EventRecord, error) {
	c.crash("event/before")
	stored, err := c.Journal.RecordEvent(ctx, r)
	c.crash("event/after")
	return stored, err
}

// TestEventDrawnOnceAcrossACrashAtEveryStep: a process killed (kill -9) at
// any step of a bound event draw leaves a journal that opens and verifies,
// and the next process draws the event at most once: the bytes the killed
// process handed out, or the record it wrote, come back; an event it never
// recorded is drawn anew, once (contract point 8).
func TestEventDrawnOnceAcrossACrashAtEveryStep(t *testing.T) {
	const stepEnv, pathEnv = "JOURNAL_TEST_CRASH_STEP", "JOURNAL_TEST_CRASH_PATH"
	if step := os.Getenv(stepEnv); step != "" {
		_, src := startSim(t, "crash-key")
		j, err := journal.Open(os.Getenv(pathEnv))
		require.NoError(t, err)
		p, err := entropy.New(src, entropy.WithJournal(&crashJournal{Journal: j, at: step}))
		require.NoError(t, err)
		b := make([]byte, 32)
		_, err = p.ReadFor(context.Background(), "raffle", b)
		require.NoError(t, err)
		fmt.Printf("handed out %x\n", b)
		self, _ := os.FindProcess(os.Getpid())
		self.Kill()
		select {}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, step := range []string{"attempt/before", "attempt/after", "block/before", "block/after", "event/before", "event/after", "handed out"} {
		t.Run(step, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEventDrawnOnceAcrossACrashAtEveryStep$", "-test.count=1")
			cmd.Env = append(os.Environ(), stepEnv+"="+step, pathEnv+"="+path)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the child was to be killed: %s", out)
			var handed []byte
			if i := strings.Index(string(out), "handed out "); i >= 0 {
				var h string
				_, err := fmt.Sscanf(string(out[i:]), "handed out %s", &h)
				require.NoError(t, err)
				handed, err = hex.DecodeString(h)
				require.NoError(t, err)
			}
			assert.Equal(t, step == "handed out", handed != nil, "killed at the wrong step: %s", out)

			rep, err := journal.VerifyFile(path)
			require.NoError(t, err, "the journal of the killed process verifies")
			require.LessOrEqual(t, rep.Events, 1)
			j, err := journal.Open(path)
			require.NoError(t, err, "the journal of the killed process opens")
			before, recorded, err := j.LookupEvent(ctx, "raffle")
			require.NoError(t, err)
			if handed != nil {
				require.True(t, recorded, "an event handed out before the crash is not in the journal")
			}
			assert.Equal(t, step == "event/after" || step == "handed out", recorded, "recorded at the wrong step")
			p, err := entropy.New(hashSource("other", "other-", "crash"), entropy.WithJournal(j))
			require.NoError(t, err)
			b := make([]byte, 32)
			_, err = p.ReadFor(ctx, "raffle", b)
			require.NoError(t, err)
			if recorded {
				assert.Equal(t, before.Data, b, "the event was drawn again after the crash")
			}
			if handed != nil {
				assert.Equal(t, handed, b, "the bytes handed out before the crash did not come back")
			}
			require.NoError(t, p.Close())
			require.NoError(t, j.Close())
			rep, err = journal.VerifyFile(path)
			require.NoError(t, err)
			assert.Equal(t, 1, rep.Events)
		})
	}
}
