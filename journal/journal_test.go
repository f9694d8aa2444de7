package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/fsizelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedClock returns a clock that starts at a fixed time and ticks a second
// per call.
func fixedClock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Second) }
}

var (
	testBlock = entropy.BlockRecord{
		Source: "quantropy", JobID: "job-7", Size: 64, Digest: sha256.Sum256([]byte("block")),
		Verifiable: true, Time: time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC),
	}
	testEpisode = entropy.FallbackEpisode{
		Start: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 1, 11, 5, 0, 0, time.UTC),
		Ended: true, Reads: 3, Bytes: 96, Reason: errors.New("source down: 503"),
	}
	testEvent = entropy.EventRecord{
		Event: "lotto-2026-10", Data: bytes.Repeat([]byte{0xab}, 32),
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-8", Offset: 4, Length: 32}}},
		Time:  time.Date(2026, 3, 1, 11, 58, 0, 0, time.UTC),
	}
)

// writeSample makes a journal with a header, a block, a fallback episode and
// an event (lines 1 to 4), and returns its path.
func writeSample(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := Open(path, WithClock(entropy.NowFunc(fixedClock())))
	require.NoError(t, err)
	require.NoError(t, j.RecordBlock(context.Background(), testBlock))
	require.NoError(t, j.RecordFallback(context.Background(), testEpisode))
	require.NoError(t, recordEvent(j, testEvent))
	require.NoError(t, j.Close())
	return path
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasSuffix(b, []byte("\n")))
	return bytes.SplitAfter(b[:len(b)-1], []byte("\n"))
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	for _, l := range lines {
		buf.Write(l)
		if !bytes.HasSuffix(l, []byte("\n")) {
			buf.WriteByte('\n')
		}
	}
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

// requireLineErr checks that err names line and wraps want.
func requireLineErr(t *testing.T, err error, line int, want error) *LineError {
	t.Helper()
	require.Error(t, err)
	var le *LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, line, le.Line, "%v", err)
	assert.ErrorIs(t, err, want)
	return le
}

func TestAppendAndVerify(t *testing.T) {
	path := writeSample(t)
	rep, err := VerifyFile(path)
	require.NoError(t, err)
	assert.Equal(t, 4, rep.Records)
	assert.Equal(t, 1, rep.Blocks)
	assert.Equal(t, 1, rep.Fallbacks)
	assert.Equal(t, 1, rep.Events)
	assert.Equal(t, int64(96), rep.FallbackBytes)
	assert.Equal(t, uint64(4), rep.LastSeq)
	assert.Equal(t, []string{"lotto-2026-10"}, rep.EventNames)

	lines := readLines(t, path)
	require.Len(t, lines, 4)
	assert.Contains(t, string(lines[0]), `"type":"journal"`)
	assert.Contains(t, string(lines[0]), `"prev":"`+zeroHash+`"`)
	assert.Contains(t, string(lines[1]), fmt.Sprintf(`"digest":"%x"`, testBlock.Digest))
	assert.Contains(t, string(lines[2]), `"reason":"source down: 503"`)
	assert.Contains(t, string(lines[3]), `"class":"verifiable"`)
	// The chain: each prev is the hash of the line before; Head the last.
	for i := 1; i < len(lines); i++ {
		assert.Contains(t, string(lines[i]), `"prev":"`+lineHash(bytes.TrimSuffix(lines[i-1], []byte("\n")))+`"`)
	}
	assert.Equal(t, lineHash(bytes.TrimSuffix(lines[3], []byte("\n"))), rep.Head)

	j, err := Open(path)
	require.NoError(t, err)
	defer j.Close()
	seq, head := j.Head()
	assert.Equal(t, uint64(4), seq)
	assert.Equal(t, rep.Head, head)
}

// FindHead finds the record a head published earlier names, once the
// journal has grown past it (in either case of hex), and finds nothing for
// a head no record has, or one whose record was cut off the end.
func TestFindHeadOfAGrownJournal(t *testing.T) {
	path := writeSample(t)
	lines := readLines(t, path)
	for i, l := range lines {
		seq, ok, err := FindHead(path, strings.ToUpper(lineHash(bytes.TrimSuffix(l, []byte("\n")))))
		require.NoError(t, err)
		assert.True(t, ok, "line %d", i+1)
		assert.Equal(t, uint64(i+1), seq)
	}
	_, ok, err := FindHead(path, strings.Repeat("0", 64))
	require.NoError(t, err)
	assert.False(t, ok)
	last := lineHash(bytes.TrimSuffix(lines[3], []byte("\n")))
	writeLines(t, path, lines[:3])
	_, ok, err = FindHead(path, last)
	require.NoError(t, err)
	assert.False(t, ok, "a head cut off the end is not found")
	_, _, err = FindHead(filepath.Join(t.TempDir(), "none"), last)
	assert.Error(t, err)
}

func TestEmptyInputVerifies(t *testing.T) {
	rep, err := Verify(strings.NewReader(""))
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Records)
	assert.Equal(t, "", rep.Head)
}

func TestReopenLookupEvent(t *testing.T) {
	path := writeSample(t)
	j, err := Open(path, WithClock(entropy.NowFunc(fixedClock())))
	require.NoError(t, err)

	got, ok, err := j.LookupEvent(context.Background(), testEvent.Event)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, testEvent.Data, got.Data)
	assert.Equal(t, testEvent.Label, got.Label)
	assert.True(t, testEvent.Time.Equal(got.Time))

	_, ok, err = j.LookupEvent(context.Background(), "never-drawn")
	require.NoError(t, err)
	assert.False(t, ok)

	// No re-roll: a second record of the event, after a restart, stores
	// nothing and returns the record stored before.
	again := testEvent
	again.Data = bytes.Repeat([]byte{0xcd}, 32)
	headSeq, _ := j.Head()
	stored, err := j.RecordEvent(context.Background(), again)
	require.NoError(t, err)
	assert.Equal(t, testEvent.Data, stored.Data, "the first record's bytes")
	assert.Equal(t, testEvent.Label, stored.Label)
	afterSeq, _ := j.Head()
	assert.Equal(t, headSeq, afterSeq, "nothing appended")

	// The appended chain continues where the file left off.
	fb := entropy.EventRecord{Event: "raffle-1", Data: []byte{1, 2, 3},
		Label: entropy.Label{Spans: []entropy.Span{{Source: entropy.FallbackSource, Length: 3}}, Reason: errors.New("no service")}}
	require.NoError(t, recordEvent(j, fb))
	got, ok, err = j.LookupEvent(context.Background(), "raffle-1")
	require.NoError(t, err)
	require.True(t, ok)
	got.Data[0] = 99 // a copy: the journal's record is untouched
	got2, _, _ := j.LookupEvent(context.Background(), "raffle-1")
	assert.Equal(t, []byte{1, 2, 3}, got2.Data)
	require.NoError(t, j.Close())

	rep, err := VerifyFile(path)
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Records)
	assert.Equal(t, 2, rep.Events)

	j, err = Open(path)
	require.NoError(t, err)
	defer j.Close()
	got, ok, err = j.LookupEvent(context.Background(), "raffle-1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, entropy.ProvenanceFallback, got.Label.Provenance())
	assert.EqualError(t, got.Label.Reason, "no service")
}

func TestRecordEventRejectsBadInput(t *testing.T) {
	j, err := Open(filepath.Join(t.TempDir(), "j"))
	require.NoError(t, err)
	defer j.Close()
	assert.ErrorIs(t, recordEvent(j, entropy.EventRecord{Data: []byte{1}}), ErrMalformed)
	assert.ErrorIs(t, recordEvent(j, entropy.EventRecord{Event: "e"}), ErrMalformed)
}

// TestRecordsWithForgingNamesRefused: a block or event record whose names
// could forge an audit report (a line break, a bidi override, "..") is
// refused as malformed, and nothing is written.
func TestRecordsWithForgingNamesRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path)
	require.NoError(t, err)
	defer j.Close()
	seq, _ := j.Head()
	for _, name := range []string{"x\nevents: 0", "x\u2028y", "x\u202ey", "x\x1b[2J", ".."} {
		b := testBlock
		b.JobID = name
		assert.ErrorIs(t, j.RecordBlock(context.Background(), b), ErrMalformed, "%q", name)
		b = testBlock
		b.Source = name
		assert.ErrorIs(t, j.RecordBlock(context.Background(), b), ErrMalformed, "%q", name)
		e := testEvent
		e.Event = name
		assert.ErrorIs(t, recordEvent(j, e), ErrMalformed, "%q", name)
		e = testEvent
		e.Label.Spans = []entropy.Span{{Source: "quantropy", JobID: name, Length: 32}}
		assert.ErrorIs(t, recordEvent(j, e), ErrMalformed, "%q", name)
	}
	after, _ := j.Head()
	assert.Equal(t, seq, after, "a refused record was written")
}

// tamper changes the value of the nth (0-based) occurrence of "key": in line,
// byte by byte, the way a hand edit would, and keeps the old hash.
func tamper(t *testing.T, line []byte, key string, nth int) []byte {
	t.Helper()
	pat := []byte(`"` + key + `":`)
	at := -1
	for i, from := 0, 0; i <= nth; i++ {
		k := bytes.Index(line[from:], pat)
		require.GreaterOrEqual(t, k, 0, "key %s #%d not in %s", key, nth, line)
		at = from + k
		from = at + len(pat)
	}
	v := at + len(pat)
	out := bytes.Clone(line)
	switch c := out[v]; {
	case c >= '0' && c <= '9':
		out[v] = c + 1
		if c == '9' {
			out[v] = '1'
		}
	case c == 't':
		out = append(out[:v:v], append([]byte("false"), out[v+4:]...)...)
	case c == 'f':
		out = append(out[:v:v], append([]byte("true"), out[v+5:]...)...)
	case c == '"' && out[v+1] == '"':
		out = append(out[:v+1:v+1], append([]byte("x"), out[v+1:]...)...)
	case c == '"':
		switch d := out[v+1]; {
		case d >= '0' && d <= '8', d >= 'a' && d <= 'e', d >= 'A' && d <= 'Y':
			out[v+1] = d + 1
		default:
			out[v+1] = '1'
		}
	default:
		t.Fatalf("cannot tamper with %s in %s", key, line)
	}
	require.NotEqual(t, line, out)
	return out
}

func TestTamperEachField(t *testing.T) {
	cases := []struct {
		line int
		key  string
		nth  int
	}{
		{1, "seq", 0}, {1, "time", 0}, {1, "type", 0}, {1, "format", 0}, {1, "prev", 0}, {1, "hash", 0},
		{2, "seq", 0}, {2, "time", 0}, {2, "type", 0}, {2, "source", 0}, {2, "job_id", 0}, {2, "size", 0},
		{2, "digest", 0}, {2, "verifiable", 0}, {2, "time", 1}, {2, "prev", 0}, {2, "hash", 0},
		{3, "start", 0}, {3, "end", 0}, {3, "ended", 0}, {3, "reads", 0}, {3, "bytes", 0}, {3, "reason", 0},
		{4, "event", 0}, {4, "data", 1}, {4, "class", 0}, {4, "verifiable", 0}, {4, "source", 0},
		{4, "job_id", 0}, {4, "offset", 0}, {4, "length", 0}, {4, "time", 1}, {4, "seq", 0}, {4, "hash", 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("line%d/%s#%d", c.line, c.key, c.nth), func(t *testing.T) {
			path := writeSample(t)
			lines := readLines(t, path)
			lines[c.line-1] = tamper(t, lines[c.line-1], c.key, c.nth)
			writeLines(t, path, lines)
			_, err := VerifyFile(path)
			requireLineErr(t, err, c.line, ErrHashMismatch)
			_, err = Open(path)
			requireLineErr(t, err, c.line, ErrHashMismatch)
		})
	}
}

// An editor who also recomputes the hash of the changed line breaks the link
// to the next line.
func TestTamperWithRecomputedHash(t *testing.T) {
	path := writeSample(t)
	lines := readLines(t, path)
	var r record
	require.NoError(t, jsonUnmarshal(bytes.TrimSpace(lines[1]), &r))
	r.Data = []byte(strings.Replace(string(r.Data), `"size":64`, `"size":65`, 1))
	line, err := encode(r)
	require.NoError(t, err)
	lines[1] = line
	writeLines(t, path, lines)
	_, err = VerifyFile(path)
	requireLineErr(t, err, 3, ErrChainBroken)
}

// TestRechainedJournalShowsOnlyInItsHead: the chain has no key, so whoever
// can write the file can change a record and recompute every line after it,
// and Verify passes; the head is what differs (the limit the package
// documentation states, and why a head is published elsewhere).
func TestRechainedJournalShowsOnlyInItsHead(t *testing.T) {
	path := writeSample(t)
	published, err := VerifyFile(path)
	require.NoError(t, err)
	lines := readLines(t, path)
	prev := zeroHash
	for i, l := range lines {
		var r record
		require.NoError(t, jsonUnmarshal(bytes.TrimSpace(l), &r))
		if i == 1 {
			r.Data = []byte(strings.Replace(string(r.Data), `"size":64`, `"size":65`, 1))
		}
		r.Prev = prev
		line, err := encode(r)
		require.NoError(t, err)
		lines[i], prev = line, lineHash(line)
	}
	writeLines(t, path, lines)
	rep, err := VerifyFile(path)
	require.NoError(t, err, "a rewritten and rechained journal verifies")
	assert.Equal(t, published.Records, rep.Records)
	assert.NotEqual(t, published.Head, rep.Head, "the head shows the rewrite")
}

func TestNonCanonicalLineRejected(t *testing.T) {
	path := writeSample(t)
	lines := readLines(t, path)
	// Same content, same hash, different bytes: the bytes of a line are what
	// the next line's prev covers, so they must be the canonical ones.
	lines[1] = bytes.Replace(lines[1], []byte(`"seq":2,`), []byte(`"seq": 2,`), 1)
	writeLines(t, path, lines)
	_, err := VerifyFile(path)
	requireLineErr(t, err, 2, ErrMalformed)
}

func TestDeleteLine(t *testing.T) {
	for del := 1; del <= 3; del++ {
		path := writeSample(t)
		lines := readLines(t, path)
		lines = append(lines[:del-1:del-1], lines[del:]...)
		writeLines(t, path, lines)
		_, err := VerifyFile(path)
		requireLineErr(t, err, del, ErrSequence)
	}
}

func TestSwapLines(t *testing.T) {
	path := writeSample(t)
	lines := readLines(t, path)
	lines[1], lines[2] = lines[2], lines[1]
	writeLines(t, path, lines)
	_, err := VerifyFile(path)
	requireLineErr(t, err, 2, ErrSequence)
}

func TestDuplicateLine(t *testing.T) {
	path := writeSample(t)
	lines := readLines(t, path)
	lines = append(lines[:2:2], lines[1:]...)
	writeLines(t, path, lines)
	_, err := VerifyFile(path)
	requireLineErr(t, err, 3, ErrSequence)
}

func TestMissingHeader(t *testing.T) {
	var r record
	r.Seq, r.Type, r.Prev, r.Data = 1, TypeFallback, zeroHash, []byte(`{"start":"2026-01-01T00:00:00Z","end":"0001-01-01T00:00:00Z","ended":false,"reads":0,"bytes":0,"reason":""}`)
	line, err := encode(r)
	require.NoError(t, err)
	_, err = Verify(bytes.NewReader(append(line, '\n')))
	requireLineErr(t, err, 1, ErrMalformed)
}

func TestTruncateMidLine(t *testing.T) {
	path := writeSample(t)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := readLines(t, path)
	lastStart := int64(len(b) - len(lines[3]) - 1)

	for _, cut := range []int{1, 2, 10, len(lines[3])} { // bytes removed from the end
		require.NoError(t, os.WriteFile(path, b[:len(b)-cut], 0o600))
		_, err = VerifyFile(path)
		le := requireLineErr(t, err, 4, ErrTorn)
		assert.Equal(t, lastStart, le.Offset)
		_, err = Open(path)
		requireLineErr(t, err, 4, ErrTorn)
	}
}

// A line cut short in the middle of the file (its rest lost, the next line
// intact) is not a crash: it is reported as malformed at that line.
func TestTruncatedRecordInside(t *testing.T) {
	path := writeSample(t)
	lines := readLines(t, path)
	lines[1] = append(bytes.Clone(lines[1][:len(lines[1])/2]), '\n')
	writeLines(t, path, lines)
	_, err := VerifyFile(path)
	requireLineErr(t, err, 2, ErrMalformed)
}

func TestCrashTornLastLine(t *testing.T) {
	path := writeSample(t)
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	// The record the crashed process was writing.
	j, err := Open(filepath.Join(t.TempDir(), "other"), WithClock(entropy.NowFunc(fixedClock())))
	require.NoError(t, err)
	var r record
	r.Seq, r.Type, r.Prev, r.Data = 5, TypeBlock, lineHash(bytes.TrimSuffix(readLines(t, path)[3], []byte("\n"))), []byte(`{}`)
	require.NoError(t, j.Close())
	full, err := encode(r)
	require.NoError(t, err)

	for name, tail := range map[string][]byte{
		"half a record":          full[:len(full)/2],
		"record without newline": full,
		"garbage with newline":   []byte("{\"seq\":5,\"ti\x00\x00\x00\n"),
		"zero bytes":             make([]byte, 4096),
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, append(bytes.Clone(good), tail...), 0o600))
			_, err := VerifyFile(path)
			le := requireLineErr(t, err, 5, ErrTorn)
			assert.Equal(t, int64(len(good)), le.Offset)

			_, err = Open(path)
			requireLineErr(t, err, 5, ErrTorn)
			// The file is left exactly as it was: nothing dropped or repaired.
			after, rerr := os.ReadFile(path)
			require.NoError(t, rerr)
			assert.Equal(t, append(bytes.Clone(good), tail...), after)

			// The operator's procedure: move the torn bytes out at Offset.
			require.NoError(t, os.Truncate(path, le.Offset))
			j, err := Open(path, WithClock(entropy.NowFunc(fixedClock())))
			require.NoError(t, err)
			next := testBlock
			next.JobID = "job after the torn line" // testBlock itself is in the file: a replay
			require.NoError(t, j.RecordBlock(context.Background(), next))
			seq, _ := j.Head()
			assert.Equal(t, uint64(5), seq)
			require.NoError(t, j.Close())
			_, err = VerifyFile(path)
			require.NoError(t, err)
		})
	}
}

// TestVerifyingAJournalBeingWrittenReportsNoTornLine: a journal that a
// Journal holds ends, now and then, in part of a line that is being
// appended. VerifyFile (entropy audit on a live journal) says so
// (ErrLocked), and does not call it torn, whose remedy (moving the bytes
// out) would cut off a record as it is acknowledged; once no Journal holds
// the file, the same bytes are a torn line.
func TestVerifyingAJournalBeingWrittenReportsNoTornLine(t *testing.T) {
	path := writeSample(t)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	j, err := Open(path)
	require.NoError(t, err)
	// The first bytes of an append in progress.
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = w.WriteString(`{"seq":5,"time":"2026-03-01T12:00:05Z","type":"blo`)
	require.NoError(t, err)
	require.NoError(t, w.Close())

	rep, err := VerifyFile(path)
	le := requireLineErr(t, err, 5, ErrLocked)
	assert.NotErrorIs(t, err, ErrTorn, "an append in progress is called torn")
	assert.Equal(t, int64(len(good)), le.Offset)
	assert.Equal(t, 4, rep.Records, "the complete records before it verified")

	require.NoError(t, j.Close())
	_, err = VerifyFile(path)
	requireLineErr(t, err, 5, ErrTorn)
}

func TestLineTooLong(t *testing.T) {
	path := writeSample(t)
	lines := readLines(t, path)
	long := append(bytes.Repeat([]byte("x"), MaxLineSize+1), '\n')
	lines = append(lines[:2:2], append([][]byte{long}, lines[2:]...)...)
	writeLines(t, path, lines)
	_, err := VerifyFile(path)
	requireLineErr(t, err, 3, ErrMalformed)
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path)
	require.NoError(t, err)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	var won atomic.Int32
	storedBy := make([][]byte, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				b := testBlock
				b.JobID = fmt.Sprintf("job-%d-%d", w, i)
				assert.NoError(t, j.RecordBlock(context.Background(), b))
			}
			ev := testEvent
			ev.Data = bytes.Repeat([]byte{byte(w)}, len(testEvent.Data))
			stored, err := j.RecordEvent(context.Background(), ev)
			if assert.NoError(t, err) {
				storedBy[w] = stored.Data
				if bytes.Equal(stored.Data, ev.Data) {
					won.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), won.Load(), "exactly one record of an event")
	for w := range storedBy {
		assert.Equal(t, storedBy[0], storedBy[w], "every caller gets the one stored record")
	}
	require.NoError(t, j.Close())

	rep, err := VerifyFile(path)
	require.NoError(t, err)
	assert.Equal(t, 1+workers*each+1, rep.Records)
	assert.Equal(t, workers*each, rep.Blocks)
	assert.Equal(t, 1, rep.Events)
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path)
	require.NoError(t, err)
	_, err = Open(path)
	assert.ErrorIs(t, err, ErrLocked)
	require.NoError(t, j.Close())
	j, err = Open(path)
	require.NoError(t, err)
	require.NoError(t, j.Close())
}

func TestClosed(t *testing.T) {
	j, err := Open(filepath.Join(t.TempDir(), "j"))
	require.NoError(t, err)
	require.NoError(t, j.Close())
	require.NoError(t, j.Close())
	assert.ErrorIs(t, j.RecordBlock(context.Background(), testBlock), ErrClosed)
	assert.ErrorIs(t, recordEvent(j, testEvent), ErrClosed)
	_, _, err = j.LookupEvent(context.Background(), "x")
	assert.ErrorIs(t, err, ErrClosed)
}

// A failed write leaves the file in a state only an operator can judge: every
// later append fails too, and nothing is recorded as if all were well.
func TestFailedAppendIsSticky(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, j.f.Close()) // the file goes away under the journal
	err = recordEvent(j, testEvent)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs an operator")
	_, ok, _ := j.LookupEvent(context.Background(), testEvent.Event)
	assert.False(t, ok, "an event that was not recorded must not be found")
	assert.Equal(t, err, j.RecordBlock(context.Background(), testBlock))
	j.closed = true
}

// TestFailedAppendLeavesFileAsItWas: an append that the disk refuses part
// way (EFBIG: the file size limit, as a full disk) leaves the file exactly
// as it was, with no torn line, so later opens succeed and the chain goes on;
// the journal does not take the failure as permanent (a later append, once
// there is room, is kept).
func TestFailedAppendLeavesFileAsItWas(t *testing.T) {
	if !fsizelimit.Supported() {
		t.Skip("no file size limit on this system")
	}
	if limited, err := fsizelimit.FromEnv(); limited || err != nil {
		// The child: every append runs past the limit and must fail whole.
		require.NoError(t, err)
		j, err := Open(os.Getenv("JOURNAL_TEST_PATH"))
		require.NoError(t, err)
		for i := range 3 {
			b := testBlock
			b.JobID = fmt.Sprintf("job-past-the-limit-%d", i)
			err := j.RecordBlock(context.Background(), b)
			require.ErrorIs(t, err, syscall.EFBIG)
			assert.NotContains(t, err.Error(), "needs an operator")
			_, err = j.RecordEvent(context.Background(), testEvent)
			require.ErrorIs(t, err, syscall.EFBIG)
		}
		_, ok, err := j.LookupEvent(context.Background(), testEvent.Event)
		require.NoError(t, err)
		assert.False(t, ok, "an event that was not kept is not found")
		require.NoError(t, j.Close())
		return
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := Open(path, WithClock(entropy.NowFunc(fixedClock())))
	require.NoError(t, err)
	require.NoError(t, j.RecordBlock(context.Background(), testBlock))
	require.NoError(t, j.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	fsizelimit.Set(cmd, int64(len(before))+40) // room for part of a line
	cmd.Env = append(cmd.Env, "JOURNAL_TEST_PATH="+path)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "PASS")

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "the failed appends left bytes in the file")
	rep, err := VerifyFile(path)
	require.NoError(t, err)
	j, err = Open(path)
	require.NoError(t, err, "a later open")
	later := testBlock
	later.JobID = "job-after-the-limit"
	require.NoError(t, j.RecordBlock(context.Background(), later))
	seq, _ := j.Head()
	assert.Equal(t, rep.LastSeq+1, seq)
	require.NoError(t, j.Close())
	_, err = VerifyFile(path)
	require.NoError(t, err)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "j"))
	require.Error(t, err)
	_, err = VerifyFile(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	_, err = Open(filepath.Join(t.TempDir(), "j"), nil)
	require.ErrorContains(t, err, "option 0 is nil")
	_, err = Verify(nil)
	require.Error(t, err)
}

// TestOpenRefusesWhatIsNotARegularFile: a journal path that names a named
// pipe (which held Open for ever, reading) or a device (which keeps
// nothing) is refused at once, directly or through a symbolic link, and the
// pipe is not read.
func TestOpenRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(fifo, link))
	for _, path := range []string{fifo, link, os.DevNull} {
		done := make(chan error, 1)
		go func() {
			j, err := Open(path)
			if err == nil {
				j.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			require.Error(t, err, path)
			assert.Contains(t, err.Error(), "not a regular file", path)
		case <-time.After(10 * time.Second):
			// Unblock the Open that reads the pipe, so the test ends.
			if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			t.Fatalf("Open(%s) never returned", path)
		}
	}
}

// A Journal that Open did not make has no file: its calls are errors, not
// panics.
func TestZeroJournalErrors(t *testing.T) {
	var j Journal
	ctx := context.Background()
	_, err := j.ClaimJob(ctx, "quantropy", "job-1")
	require.ErrorIs(t, err, errNotOpened)
	require.ErrorIs(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "quantropy", JobID: "job-1", Size: 8, Verifiable: true}), errNotOpened)
	require.ErrorIs(t, j.RecordFallback(ctx, entropy.FallbackEpisode{Ended: true}), errNotOpened)
}

func TestUnknownFormatRefused(t *testing.T) {
	var r record
	r.Seq, r.Type, r.Prev, r.Data = 1, TypeJournal, zeroHash, []byte(`{"format":"provenrand-journal/9"}`)
	line, err := encode(r)
	require.NoError(t, err)
	_, err = Verify(bytes.NewReader(append(line, '\n')))
	requireLineErr(t, err, 1, ErrMalformed)
	assert.Contains(t, err.Error(), "unknown format")
}

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "journal")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.jsonl")

	j, err := Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = j.RecordEvent(context.Background(), entropy.EventRecord{
		Event: "raffle-2026-05",
		Data:  []byte{0x01, 0x02, 0x03, 0x04},
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-1", Length: 4}}},
	})
	j.Close()

	rep, err := VerifyFile(path)
	fmt.Println(rep.Records, rep.Events, err)
	// Output: 2 1 <nil>
}

// A record that binds an event's job to something else does not verify, even
// with its hashes and chain recomputed (as whoever rewrites the file can):
// an event whose proof's nonce is another event's, whose proof is of other
// bytes, whose request has no attempt record before it, and an attempt whose
// nonce is not its event's. Attempts are counted
// by event.
func TestEventBindingRecordsVerify(t *testing.T) {
	salt := bytes.Repeat([]byte{7}, evidence.SaltSize)
	params := []byte("provenrand-draw/1;kind=int;n=10")
	data := []byte{1, 2, 3, 4}
	good := func() EventData {
		return EventData{
			Event: "lotto", Data: hex.EncodeToString(data), Time: time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC),
			Label:  entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-1", Length: 4}}},
			Params: hex.EncodeToString(params), Salt: hex.EncodeToString(salt),
			Proof: &entropy.Proof{Scheme: evidence.SchemeReferenceV2, Source: "quantropy", JobID: "job-1", Data: data,
				Nonce: evidence.EventNonce("lotto", params, salt), Size: 4, Timestamp: "2026-12-05T20:00:00Z", Signature: make([]byte, 64)},
		}
	}
	attempt := AttemptData{Event: "lotto", Source: "quantropy", Params: hex.EncodeToString(params), Salt: hex.EncodeToString(salt),
		Nonce: hex.EncodeToString(evidence.EventNonce("lotto", params, salt)), Time: time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)}

	// write forges a journal, hashes and chain sound, whose last record is
	// d: as whoever rewrites the file can (the Journal itself refuses to
	// append a record that would not verify).
	write := func(t *testing.T, typ string, d any) string {
		a := attempt
		a.Salt = hex.EncodeToString(bytes.Repeat([]byte{8}, evidence.SaltSize))
		a.Nonce = hex.EncodeToString(evidence.EventNonce("lotto", params, bytes.Repeat([]byte{8}, evidence.SaltSize)))
		var out []byte
		prev := zeroHash
		for i, rec := range []struct {
			typ  string
			data any
		}{{TypeJournal, HeaderData{Format: Format}}, {TypeAttempt, attempt}, {TypeAttempt, a}, {typ, d}} {
			raw, err := json.Marshal(rec.data)
			require.NoError(t, err)
			line, err := encode(record{Seq: uint64(i + 1), Time: time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC), Type: rec.typ, Data: raw, Prev: prev})
			require.NoError(t, err)
			prev = lineHash(line)
			out = append(append(out, line...), '\n')
		}
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		require.NoError(t, os.WriteFile(path, out, 0o600))
		return path
	}

	rep, err := VerifyFile(write(t, TypeEvent, good()))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"lotto": 2}, rep.Attempts)
	reopened, err := Open(write(t, TypeEvent, good()))
	require.NoError(t, err)
	r, ok, err := reopened.LookupEvent(context.Background(), "lotto")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, salt, r.Salt)
	assert.Equal(t, params, r.Params)
	require.NotNil(t, r.Proof)
	require.NoError(t, reopened.Close())

	foreign := good()
	foreign.Proof.Nonce = evidence.EventNonce("another-event", params, salt)
	_, err = VerifyFile(write(t, TypeEvent, foreign))
	assert.ErrorIs(t, err, ErrMalformed)

	otherBytes := good()
	otherBytes.Proof.Data = []byte{9, 9, 9, 9}
	_, err = VerifyFile(write(t, TypeEvent, otherBytes))
	assert.ErrorIs(t, err, ErrMalformed)

	saltOnly := good()
	saltOnly.Proof = nil
	_, err = VerifyFile(write(t, TypeEvent, saltOnly))
	assert.ErrorIs(t, err, ErrMalformed)

	unasked := good()
	other := bytes.Repeat([]byte{9}, evidence.SaltSize)
	unasked.Salt = hex.EncodeToString(other)
	unasked.Proof.Nonce = evidence.EventNonce("lotto", params, other)
	_, err = VerifyFile(write(t, TypeEvent, unasked))
	assert.ErrorIs(t, err, ErrMalformed, "an event whose request has no attempt record before it")

	badAttempt := attempt
	badAttempt.Event = "another-event"
	_, err = VerifyFile(write(t, TypeAttempt, badAttempt))
	assert.ErrorIs(t, err, ErrMalformed)
}
