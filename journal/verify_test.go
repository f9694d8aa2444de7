package journal_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sampleJournal writes a journal of a header and n more records (blocks, a
// fallback episode and an event) and returns its path and bytes.
func sampleJournal(t *testing.T) (string, []byte) {
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

// TestVerifyNamesTheLineOfEveryChangedByte flips bytes all over every line and
// requires Verify to name that line.
func TestVerifyNamesTheLineOfEveryChangedByte(t *testing.T) {
	_, raw := sampleJournal(t)
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

// TestVerifyFindsRemovedAndReorderedRecords: removing any but the last record, or
// swapping two, is reported at the first bad line; removing the last record
// is seen by comparing heads.
func TestVerifyFindsRemovedAndReorderedRecords(t *testing.T) {
	_, raw := sampleJournal(t)
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

// TestTornLastLineReportedAndLeftAlone: a last line cut at any point is reported as torn
// with its line and offset, by Verify and by Open, and Open leaves the file
// exactly as it was.
func TestTornLastLineReportedAndLeftAlone(t *testing.T) {
	path, raw := sampleJournal(t)
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
