package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/stretchr/testify/require"
)

// seedJournal writes a journal with Open and the Record methods, as a
// Provider does, and returns its bytes.
func seedJournal(tb testing.TB, records func(j *Journal)) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audit.jsonl")
	j, err := Open(path, WithClock(entropy.NowFunc(fixedClock())))
	if err != nil {
		tb.Fatal(err)
	}
	records(j)
	if err := j.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// seedJournals returns real journals: a header only, the sample of the unit
// tests, and one with every kind of record, open episodes, fallback events,
// several spans and text that JSON escapes.
func seedJournals(tb testing.TB) [][]byte {
	tb.Helper()
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return [][]byte{
		seedJournal(tb, func(*Journal) {}),
		seedJournal(tb, func(j *Journal) {
			must(j.RecordBlock(context.Background(), testBlock))
			must(j.RecordFallback(context.Background(), testEpisode))
			must(recordEvent(j, testEvent))
		}),
		seedJournal(tb, func(j *Journal) {
			t0 := time.Date(2026, 3, 1, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
			for i, id := range []string{"job-1", "job-2", "round 4711"} {
				must(j.RecordBlock(context.Background(), entropy.BlockRecord{
					Source: "quantropy", JobID: id, Size: 65536 >> i, Digest: sha256.Sum256([]byte(id)),
					Verifiable: i != 2, Time: t0.Add(time.Duration(i) * time.Second),
				}))
			}
			must(j.RecordFallback(context.Background(), entropy.FallbackEpisode{
				Start: t0, Reads: 1, Bytes: 32,
				Reason: errors.New(`circuit breaker open: HTTP 503 unavailable: "Overloaded" <retry> & wait`),
			}))
			must(j.RecordFallback(context.Background(), entropy.FallbackEpisode{Start: t0, End: t0.Add(time.Minute), Ended: true, Reads: 9, Bytes: 1 << 40}))
			must(recordEvent(j, entropy.EventRecord{
				Event: "raffle #12 — ünïcode", Data: []byte{0, 1, 2, 0xff},
				Label: entropy.Label{Spans: []entropy.Span{{Source: entropy.FallbackSource, Length: 4}}, Reason: errors.New("source down")},
				Time:  t0,
			}))
			must(recordEvent(j, entropy.EventRecord{
				Event: "draw 2", Data: bytes.Repeat([]byte{0x5a}, 32),
				Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{
					{Source: "quantropy", JobID: "job-1", Offset: 65520, Length: 16},
					{Source: "quantropy", JobID: "job-2", Offset: 0, Length: 16},
				}},
				Time: t0,
			}))
		}),
		// An event whose job was bound to it, after its two requests.
		seedJournal(tb, func(j *Journal) {
			t0 := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
			params := []byte("provenrand-draw/1;kind=int;n=10")
			var salt []byte
			for i := range 2 {
				salt = bytes.Repeat([]byte{byte(i + 1)}, evidence.SaltSize)
				must(j.RecordAttempt(context.Background(), entropy.EventAttempt{
					Event: "lotto", Source: "quantropy", Params: params, Salt: salt,
					Nonce: evidence.EventNonce("lotto", params, salt), Time: t0,
				}))
			}
			data := bytes.Repeat([]byte{0x77}, 32)
			must(recordEvent(j, entropy.EventRecord{
				Event: "lotto", Data: data, Time: t0, Params: params, Salt: salt,
				Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-9", Length: 32}}},
				Proof: &entropy.Proof{Scheme: evidence.SchemeReferenceV2, Source: "quantropy", JobID: "job-9", Data: data,
					Nonce: evidence.EventNonce("lotto", params, salt), Size: 32, Timestamp: "2026-12-05T20:00:00Z", Signature: make([]byte, 64)},
			}))
		}),
	}
}

// FuzzVerify feeds arbitrary bytes to Verify. It must never panic, and every
// error it returns for in-memory input names a line. A journal it accepts
// must verify again to the same report, its head must be the hash of its last
// line, a single flipped byte anywhere in it must be refused with the number
// and offset of the line that holds the byte (every byte of a small journal,
// a spread of bytes of a larger one), and Open must accept it and
// append to it a record that verifies.
func FuzzVerify(f *testing.F) {
	for _, j := range seedJournals(f) {
		f.Add(j, uint16(0), byte(0x01))
		f.Add(j, uint16(len(j)/2), byte(0x20))
		lines := bytes.SplitAfter(j, []byte("\n"))
		// Torn last line, a removed record, records swapped, a duplicate.
		f.Add(j[:len(j)-1], uint16(0), byte(0x80))
		f.Add(j[:len(j)-len(lines[len(lines)-2])/2], uint16(0), byte(0x01))
		if len(lines) > 3 {
			f.Add(bytes.Join([][]byte{lines[0], lines[2]}, nil), uint16(0), byte(0x01))
			f.Add(bytes.Join([][]byte{lines[0], lines[2], lines[1]}, nil), uint16(0), byte(0x01))
			f.Add(bytes.Join([][]byte{lines[0], lines[1], lines[1]}, nil), uint16(0), byte(0x01))
			f.Add(append(bytes.Clone(j), j...), uint16(0), byte(0x01))
		}
	}
	f.Add([]byte{}, uint16(0), byte(1))
	f.Add([]byte("\n"), uint16(0), byte(1))
	f.Add([]byte("{}\n"), uint16(0), byte(1))
	f.Add([]byte(`{"seq":1,"time":"0001-01-01T00:00:00Z","type":"journal","data":{"format":"provenrand-journal/1"},"prev":"","hash":""}`+"\n"), uint16(0), byte(1))
	f.Add([]byte("\xff\xfe\x00{\"seq\":"), uint16(0), byte(1))

	f.Fuzz(func(t *testing.T, data []byte, at uint16, mask byte) {
		rep, err := Verify(bytes.NewReader(data))
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("Verify of in-memory bytes returned %v, not a *LineError", err)
			}
			if le.Line < 1 || le.Offset < 0 || le.Offset > int64(len(data)) {
				t.Fatalf("line error %+v for %d bytes", le, len(data))
			}
			return
		}
		rep2, err := Verify(bytes.NewReader(data))
		if err != nil || !reflect.DeepEqual(rep, rep2) {
			t.Fatalf("second Verify differs: %+v, %v; first %+v", rep2, err, rep)
		}
		lines := bytes.SplitAfter(data, []byte("\n"))
		lines = lines[:len(lines)-1] // an accepted journal ends with a newline
		if rep.Records != len(lines) || rep.LastSeq != uint64(len(lines)) {
			t.Fatalf("report %+v for %d lines", rep, len(lines))
		}
		if len(lines) > 0 {
			last := lines[len(lines)-1]
			if rep.Head != lineHash(last[:len(last)-1]) {
				t.Fatalf("head %s is not the hash of the last line", rep.Head)
			}
		}
		attempts := 0
		for _, n := range rep.Attempts {
			attempts += n
		}
		if rep.Blocks+rep.Fallbacks+rep.Events+attempts+min(rep.Records, 1) != rep.Records {
			t.Fatalf("report %+v does not add up", rep)
		}

		if mask == 0 {
			mask = 1
		}
		flip := func(pos int) {
			bad := bytes.Clone(data)
			bad[pos] ^= mask
			_, err := Verify(bytes.NewReader(bad))
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("byte %d ^ %#x accepted or not named by line: %v", pos, mask, err)
			}
			line, start := 1, 0
			for _, l := range lines {
				if pos < start+len(l) {
					break
				}
				start += len(l)
				line++
			}
			if le.Line != line || le.Offset != int64(start) {
				t.Fatalf("byte %d ^ %#x is in line %d (offset %d), error names line %d (offset %d): %v",
					pos, mask, line, start, le.Line, le.Offset, err)
			}
		}
		// Every byte of a small journal; of a larger one the first and last
		// byte of each line, 64 spread over it, and the one the fuzzer chose.
		if len(data) <= 512 {
			for pos := range data {
				flip(pos)
			}
		} else if len(data) > 0 {
			start := 0
			for _, l := range lines {
				flip(start)
				flip(start + len(l) - 1)
				start += len(l)
			}
			for pos := int(at) % 64; pos < len(data); pos += max(len(data)/64, 1) {
				flip(pos)
			}
			flip(int(at) % len(data))
		}

		// Open continues an accepted journal.
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := Open(path, WithClock(entropy.NowFunc(fixedClock())))
		if err != nil {
			t.Fatalf("Open refused a journal Verify accepted: %v", err)
		}
		appended := testBlock // a job this journal cannot hold yet: a replay would be refused
		appended.JobID = "appended after " + rep.Head
		if err := j.RecordBlock(context.Background(), appended); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		rep3, err := VerifyFile(path)
		want := rep.Records + 1
		if len(data) == 0 {
			want = 2 // Open wrote the header first
		}
		if err != nil || rep3.Records != want {
			t.Fatalf("after one append: %+v, %v; before %+v", rep3, err, rep)
		}
	})
}

// TestSeedJournalsVerify checks that the seed corpus of FuzzVerify holds
// journals that verify, so the fuzzer starts from accepted ones.
func TestSeedJournalsVerify(t *testing.T) {
	for i, j := range seedJournals(t) {
		rep, err := Verify(bytes.NewReader(j))
		require.NoError(t, err, "seed %d", i)
		require.Positive(t, rep.Records, "seed %d", i)
	}
}
