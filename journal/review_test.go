package journal_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
)

// reviewJournal writes a journal of a header and n more records (blocks, a
// fallback episode and an event) and returns its path and bytes.
func reviewJournal(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := journal.Open(path)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, j.RecordBlock(context.Background(), entropy.BlockRecord{Source: "q", JobID: "job-" + string(rune('a'+i)), Size: 32, Verifiable: true, Time: time.Now()}))
	}
	require.NoError(t, j.RecordFallback(context.Background(), entropy.FallbackEpisode{Start: time.Now(), End: time.Now(), Ended: true, Reads: 1, Bytes: 8, Reason: errors.New("down")}))
	_, err = j.RecordEvent(context.Background(), entropy.EventRecord{Event: "e1", Data: bytes.Repeat([]byte{7}, 32),
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "q", JobID: "job-z", Length: 32}}}, Time: time.Now()})
	require.NoError(t, err)
	require.NoError(t, j.RecordBlock(context.Background(), entropy.BlockRecord{Source: "q", JobID: "job-last", Size: 32, Verifiable: true, Time: time.Now()}))
	require.NoError(t, j.Close())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, raw
}

func lines(raw []byte) [][]byte {
	return bytes.SplitAfter(raw[:len(raw)-1], []byte("\n"))
}

func join(ls [][]byte) []byte {
	var b bytes.Buffer
	for _, l := range ls {
		b.Write(l)
		if !bytes.HasSuffix(l, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func lineErr(t *testing.T, err error) *journal.LineError {
	t.Helper()
	var le *journal.LineError
	require.ErrorAs(t, err, &le, "%v", err)
	return le
}

// TestReviewEveryByteOfEveryLine flips bytes all over every line and
// requires Verify to name that line.
func TestReviewEveryByteOfEveryLine(t *testing.T) {
	_, raw := reviewJournal(t)
	ls := lines(raw)
	require.Len(t, ls, 7)
	for i, l := range ls {
		for pos := 0; pos < len(l)-1; pos += 7 {
			c := make([][]byte, len(ls))
			copy(c, ls)
			m := bytes.Clone(l)
			m[pos] ^= 0x01
			c[i] = m
			_, err := journal.Verify(bytes.NewReader(join(c)))
			require.Error(t, err, "line %d byte %d changed", i+1, pos)
			assert.Equal(t, i+1, lineErr(t, err).Line, "line %d byte %d: %v", i+1, pos, err)
		}
	}
}

// TestReviewRemovedAndReordered: removing any but the last record, or
// swapping two, is reported at the first bad line; removing the last record
// is seen by comparing heads.
func TestReviewRemovedAndReordered(t *testing.T) {
	_, raw := reviewJournal(t)
	ls := lines(raw)
	full, err := journal.Verify(bytes.NewReader(raw))
	require.NoError(t, err)
	for i := 0; i < len(ls)-1; i++ {
		c := append(append([][]byte{}, ls[:i]...), ls[i+1:]...)
		_, err := journal.Verify(bytes.NewReader(join(c)))
		assert.Equal(t, i+1, lineErr(t, err).Line, "removed line %d: %v", i+1, err)

		s := append([][]byte{}, ls...)
		s[i], s[i+1] = s[i+1], s[i]
		_, err = journal.Verify(bytes.NewReader(join(s)))
		assert.Equal(t, i+1, lineErr(t, err).Line, "swapped lines %d,%d: %v", i+1, i+2, err)
	}
	cut, err := journal.Verify(bytes.NewReader(join(ls[:len(ls)-1])))
	require.NoError(t, err, "a journal cut at a record boundary verifies by itself")
	assert.NotEqual(t, full.Head, cut.Head, "but its head differs from the published one")
	assert.Equal(t, full.LastSeq-1, cut.LastSeq)
}

// TestReviewTornLastLine: a last line cut at any point is reported as torn
// with its line and offset, by Verify and by Open, and Open leaves the file
// exactly as it was.
func TestReviewTornLastLine(t *testing.T) {
	path, raw := reviewJournal(t)
	ls := lines(raw)
	lastStart := len(raw) - len(ls[len(ls)-1]) - 1 // lines drops the final newline
	cuts := []int{lastStart + 1, len(raw) - 1}     // one byte; a whole record without its newline
	for c := lastStart + 2; c < len(raw)-1; c += 13 {
		cuts = append(cuts, c)
	}
	for _, cut := range cuts {
		torn := raw[:cut]
		_, err := journal.Verify(bytes.NewReader(torn))
		require.ErrorIs(t, err, journal.ErrTorn, "cut at %d", cut)
		le := lineErr(t, err)
		assert.Equal(t, len(ls), le.Line)
		assert.Equal(t, int64(lastStart), le.Offset)

		require.NoError(t, os.WriteFile(path, torn, 0o600))
		j, err := journal.Open(path)
		if j != nil {
			j.Close()
		}
		require.ErrorIs(t, err, journal.ErrTorn)
		after, rerr := os.ReadFile(path)
		require.NoError(t, rerr)
		require.Equal(t, torn, after, "Open must not repair or drop a torn line")
	}
	// A record cut short in the middle of the file is reported at its line.
	mid := append(append([][]byte{}, ls[:2]...), ls[2][:len(ls[2])/2])
	mid = append(mid, ls[3:]...)
	_, err := journal.Verify(bytes.NewReader(join(mid)))
	assert.Equal(t, 3, lineErr(t, err).Line, "%v", err)
}

// reviewSource is a verifiable source whose fetches are counted.
func reviewSource(fetches *atomic.Int64, jobs *sync.Map) entropy.Source {
	return entropy.SourceFunc(func(_ context.Context, n int) (entropy.Block, error) {
		k := fetches.Add(1)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(k*31 + int64(i)*7)
		}
		id := "job-" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+k%26))
		jobs.Store(id, bytes.Clone(data))
		return entropy.Block{Data: data, Source: "review", JobID: id, Verifiable: true, Time: time.Now()}, nil
	})
}

// TestReviewReadForOnceConcurrentAndAcrossRestart: many goroutines get one
// event's bytes and label; the journal holds one event record; after a
// restart with the journal (and another source) the same bytes come back,
// again from many goroutines, with no new record; another size is refused.
func TestReviewReadForOnceConcurrentAndAcrossRestart(t *testing.T) {
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
	p, err := entropy.New(reviewSource(&f1, &jobs), entropy.WithJournal(j), entropy.WithPolicy(entropy.Degrade))
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
	require.ErrorIs(t, err, entropy.ErrEventSize)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())

	rep, err := journal.VerifyFile(path)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Events)

	var f2 atomic.Int64
	j, err = journal.Open(path)
	require.NoError(t, err)
	p, err = entropy.New(reviewSource(&f2, &jobs), entropy.WithJournal(j))
	require.NoError(t, err)
	b2, l2 := readAll(p)
	assert.Equal(t, b1, b2)
	assert.Equal(t, l1, l2)
	_, err = p.ReadFor(ctx, "raffle", make([]byte, 16))
	require.ErrorIs(t, err, entropy.ErrEventSize)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())
	rep, err = journal.VerifyFile(path)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Events, "a restart must not record the event again")
}

// TestReviewReadForNeverFallback: under Degrade, with the source down, an
// event draw waits for verifiable bytes and fails at the deadline, handing
// out nothing and recording nothing.
func TestReviewReadForNeverFallback(t *testing.T) {
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
