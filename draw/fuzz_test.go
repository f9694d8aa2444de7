package draw

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzClock is the fixed clock of the transcripts in the seed corpus.
func fuzzClock() time.Time { return time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC) }

// seedTranscripts returns transcripts made by the draw functions, in every
// class and kind, and hand-made ones that Verify must accept (two spans).
func seedTranscripts(tb testing.TB) []*Transcript {
	tb.Helper()
	ctx := context.Background()
	clock := WithClock(entropy.NowFunc(fuzzClock))
	var out []*Transcript
	keep := func(t *Transcript, err error) {
		if err != nil {
			tb.Fatalf("seed draw: %v", err)
		}
		out = append(out, t)
	}
	f := newFake()
	_, t, err := Int(ctx, f, 6, clock)
	keep(t, err)
	_, t, err = Int(ctx, f, 1, clock)
	keep(t, err)
	_, t, err = Int(ctx, f, 1<<64-1, clock)
	keep(t, err)
	_, t, err = Pick(ctx, f, 6, 49, clock)
	keep(t, err)
	_, t, err = Pick(ctx, f, 3, 1<<62, clock)
	keep(t, err)
	_, t, err = Shuffle(ctx, f, 10, clock)
	keep(t, err)
	_, t, err = Pick(ctx, f, 5, 90, clock, ForEvent("lottery 2025-03-14 <round 7> & \"more\""))
	keep(t, err)

	fb := newFake()
	fb.class = entropy.ProvenanceFallback
	fb.reason = errors.New("source unavailable: HTTP 503 service unavailable: Overloaded (request id r-1, retry after 2s)")
	_, t, err = Int(ctx, fb, 100, clock, AllowFallback())
	keep(t, err)
	_, t, err = Shuffle(ctx, fb, 4, clock, AllowFallback())
	keep(t, err)

	// A verifiable seed read across two jobs, as a Provider labels a read that
	// straddles two blocks.
	seed := bytes.Repeat([]byte{0xa5}, SeedSize)
	two := &Transcript{
		Algorithm: Algorithm, Version: Version, Verifiable: true, Kind: KindPick,
		Inputs: Inputs{N: 10, K: 10}, Entropy: hex.EncodeToString(seed), Time: fuzzClock(),
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{
			{Source: "quantropy", JobID: "job-a", Offset: 65520, Length: 16},
			{Source: "quantropy", JobID: "job-b", Offset: 0, Length: 16},
		}},
	}
	two.Outputs = replay(two.Kind, two.Inputs, seed)
	if two.Digest, err = digest(two); err != nil {
		tb.Fatal(err)
	}
	out = append(out, two)

	// An event draw whose job was bound to it: binding and a v2 proof.
	salt := bytes.Repeat([]byte{0x3c}, evidence.SaltSize)
	bound := &Transcript{
		Algorithm: Algorithm, Version: Version, Verifiable: true, Kind: KindPick, Event: "lotto-2026-12-05",
		Inputs: Inputs{N: 49, K: 6}, Entropy: hex.EncodeToString(seed), Time: fuzzClock(), Numbering: ZeroBased,
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "quantropy", JobID: "job-c", Length: 32}}},
	}
	params := Params(bound.Kind, bound.Inputs, nil)
	bound.Binding = &Binding{Params: string(params), Salt: hex.EncodeToString(salt)}
	bound.Proofs = []entropy.Proof{{
		Scheme: evidence.SchemeReferenceV2, Source: "quantropy", JobID: "job-c", Data: seed, Size: 32,
		Nonce: evidence.EventNonce(bound.Event, params, salt), Timestamp: "2025-01-01T00:00:00Z", Signature: make([]byte, 64),
	}}
	bound.Outputs = replay(bound.Kind, bound.Inputs, seed)
	if bound.Digest, err = digest(bound); err != nil {
		tb.Fatal(err)
	}
	out = append(out, bound)
	return out
}

// FuzzTranscript feeds arbitrary bytes to ParseTranscript, Verify and
// VerifyEntropy. None may panic; a transcript that Verify accepts must replay
// to its own outputs, survive a JSON round trip unchanged, cover exactly the
// seed with its spans, and VerifyEntropy must accept it against jobs that hold
// its entropy where its label says.
func FuzzTranscript(f *testing.F) {
	for _, t := range seedTranscripts(f) {
		b, err := json.Marshal(t)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		indented, err := json.MarshalIndent(t, "", "  ")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(indented)
		s := string(b)
		// Tampered forms, each of which Verify must refuse.
		f.Add([]byte(strings.Replace(s, `"outputs":[`, `"outputs":[1,`, 1)))
		f.Add([]byte(strings.Replace(s, `"digest":"`, `"digest":"0`, 1)))
		f.Add([]byte(strings.Replace(s, `"verifiable":true`, `"verifiable":false`, 1)))
		f.Add([]byte(strings.Replace(s, `"class":"verifiable"`, `"class":"fallback"`, 1)))
		f.Add([]byte(strings.Replace(s, `"derived"`, `"derived":true,"x"`, 1)))
		f.Add([]byte(strings.Replace(s, `"version":1`, `"version":2`, 1)))
		f.Add([]byte(strings.Replace(s, `"length":32`, `"length":9223372036854775807`, 1)))
		f.Add([]byte(strings.Replace(s, `"offset":8`, `"offset":-1`, 1)))
		f.Add([]byte(s + ` {}`))
		f.Add([]byte(strings.Replace(s, `{`, `{"extra":1,`, 1)))
		f.Add(b[:len(b)/2])
	}
	// Spans whose lengths overflow int to a sum of 32.
	f.Add([]byte(`{"algorithm":"provenrand-draw","version":1,"verifiable":true,"kind":"int","inputs":{"n":6},"outputs":[0],` +
		`"entropy":"0000000000000000000000000000000000000000000000000000000000000000",` +
		`"label":{"class":"verifiable","verifiable":true,"spans":[{"source":"s","job_id":"j","offset":1,"length":9223372036854775807},` +
		`{"source":"s","job_id":"j","offset":0,"length":9223372036854775807},{"source":"s","job_id":"j","offset":0,"length":34}]},` +
		`"time":"2025-01-01T00:00:00Z","digest":""}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Add([]byte("\xff\xfe{"))

	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTranscript(b)
		if err != nil {
			if tr != nil {
				t.Fatalf("ParseTranscript returned a transcript with error %v", err)
			}
			return
		}
		// Verify is O(outputs); keep the fuzzer's executions fast.
		if tr.Inputs.K > 1<<12 || (tr.Kind == KindShuffle && tr.Inputs.N > 1<<12) {
			return
		}
		jobs := spanJobs(tr)
		verr := Verify(tr)
		eerr := VerifyEntropy(context.Background(), tr, jobs)
		if verr != nil {
			return
		}
		seed, err := hex.DecodeString(tr.Entropy)
		if err != nil || len(seed) != SeedSize {
			t.Fatalf("Verify accepted entropy %q", tr.Entropy)
		}
		want := replay(tr.Kind, tr.Inputs, seed)
		if len(want) != len(tr.Outputs) {
			t.Fatalf("Verify accepted %d outputs, replay gives %d", len(tr.Outputs), len(want))
		}
		for i := range want {
			if want[i] != tr.Outputs[i] {
				t.Fatalf("Verify accepted output %d = %d, replay gives %d", i, tr.Outputs[i], want[i])
			}
		}
		covered := 0
		for i, s := range tr.Label.Spans {
			if s.Length <= 0 || s.Length > SeedSize-covered || s.Offset < 0 {
				t.Fatalf("Verify accepted span %d %+v of a %d-byte seed", i, s, SeedSize)
			}
			covered += s.Length
		}
		if covered != SeedSize {
			t.Fatalf("Verify accepted spans covering %d bytes", covered)
		}
		if tr.Verifiable && eerr != nil {
			t.Fatalf("VerifyEntropy refused a verified transcript against jobs that hold its entropy: %v", eerr)
		}
		again, err := json.Marshal(tr)
		if err != nil {
			t.Fatalf("marshal an accepted transcript: %v", err)
		}
		tr2, err := ParseTranscript(again)
		if err != nil {
			t.Fatalf("parse a re-marshalled accepted transcript: %v\n%s", err, again)
		}
		if err := Verify(tr2); err != nil {
			t.Fatalf("a re-marshalled accepted transcript no longer verifies: %v\n%s", err, again)
		}
		again2, err := json.Marshal(tr2)
		if err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("transcript JSON is not stable:\n%s\n%s", again, again2)
		}
	})
}

// spanJobs returns a JobData whose job data holds t's entropy exactly where
// t's label says: each job is zeros up to the span's offset, then the span's
// bytes. Spans that do not fit in memory get a short job.
func spanJobs(t *Transcript) JobData {
	seed, _ := hex.DecodeString(t.Entropy)
	jobs := map[string][]byte{}
	pos := 0
	for _, s := range t.Label.Spans {
		key := s.Source + "\x00" + s.JobID
		if s.Offset < 0 || s.Offset > 1<<16 || s.Length <= 0 || s.Length > len(seed)-pos {
			jobs[key] = make([]byte, 8)
			continue
		}
		d := jobs[key]
		if len(d) < s.Offset+s.Length {
			d = append(d, make([]byte, s.Offset+s.Length-len(d))...)
		}
		copy(d[s.Offset:], seed[pos:pos+s.Length])
		jobs[key] = d
		pos += s.Length
	}
	return func(_ context.Context, source, jobID string) ([]byte, error) {
		d, ok := jobs[source+"\x00"+jobID]
		if !ok {
			return nil, errors.New("no such job")
		}
		return d, nil
	}
}

// FuzzRFC3797 feeds arbitrary published values, pool sizes and counts to
// RFC3797Key and RFC3797. Neither may panic; a selection must be count
// distinct members of 1..poolSize and the same on a second run.
func FuzzRFC3797(f *testing.F) {
	// RFC 3797 section 6: "9319./2.5.8.10.12./9.18.26.34.41.45./".
	f.Add("9319|2 5 12 8 10|9 18 26 34 41 45", 25, 10)
	f.Add("00042,7|0", 1, 1)
	f.Add("1 2 3", 65535, 3)
	f.Add("", 10, 1)
	f.Add("12a|3", 10, 2)
	f.Add("5", 0, 0)
	f.Add("5|6", 10, 11)
	f.Add("99999999999999999999999999999999999999", 65536, 1)
	f.Add("1\t2\r\n3,,4", 300, 300)
	f.Fuzz(func(t *testing.T, published string, pool, count int) {
		sources := strings.Split(published, "|")
		key, kerr := RFC3797Key(sources)
		if kerr == nil && !strings.HasSuffix(key, "/") {
			t.Fatalf("key %q does not end with /", key)
		}
		if count > 4096 {
			return
		}
		sel, err := RFC3797(sources, pool, count)
		if err != nil {
			if !errors.Is(err, ErrRFC3797) {
				t.Fatalf("error %v is not ErrRFC3797", err)
			}
			return
		}
		if kerr != nil {
			t.Fatalf("RFC3797 accepted sources whose key fails: %v", kerr)
		}
		if len(sel) != count {
			t.Fatalf("%d selected, asked for %d", len(sel), count)
		}
		seen := map[int]bool{}
		for _, m := range sel {
			if m < 1 || m > pool || seen[m] {
				t.Fatalf("selection %v of a pool of %d", sel, pool)
			}
			seen[m] = true
		}
		sel2, err := RFC3797(sources, pool, count)
		if err != nil || len(sel2) != len(sel) {
			t.Fatalf("second run differs: %v, %v", sel2, err)
		}
		for i := range sel {
			if sel[i] != sel2[i] {
				t.Fatalf("second run differs: %v, %v", sel, sel2)
			}
		}
	})
}

// TestVerifyRefusesSpansThatOverflow is the regression test of a crash that
// fuzzing found: span lengths whose sum wraps around int to 32 passed Verify
// (Label.Len overflowed to the seed's length), and VerifyEntropy then indexed
// past the seed and the job (panic), because Offset+Length wrapped too.
func TestVerifyRefusesSpansThatOverflow(t *testing.T) {
	const huge = 1<<63 - 1
	tr := &Transcript{
		Algorithm: Algorithm, Version: Version, Verifiable: true, Kind: KindInt,
		Inputs: Inputs{N: 6}, Entropy: "0000000000000000000000000000000000000000000000000000000000000000",
		Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{
			{Source: "s", JobID: "j", Offset: 1, Length: huge},
			{Source: "s", JobID: "j", Offset: 0, Length: huge},
			{Source: "s", JobID: "j", Offset: 0, Length: 34},
		}},
	}
	require.Equal(t, SeedSize, tr.Label.Len(), "the lengths wrap around to the seed's length")
	tr.Outputs = replay(tr.Kind, tr.Inputs, make([]byte, SeedSize))
	var err error
	tr.Digest, err = digest(tr)
	require.NoError(t, err)

	assert.ErrorIs(t, Verify(tr), ErrInvalid)
	jobs := func(context.Context, string, string) ([]byte, error) { return make([]byte, 8), nil }
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, jobs), ErrInvalid)

	// An offset near the top of int with a fitting length: Offset+Length
	// wrapped negative and passed the bounds check of the job.
	tr.Label.Spans = []entropy.Span{{Source: "s", JobID: "j", Offset: huge - 4, Length: 32}}
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, jobs), ErrInvalid)
	lookups := 0
	tr.Label.Spans = []entropy.Span{{Source: "s", JobID: "j", Offset: 0, Length: 33}, {Source: "s", JobID: "j", Offset: 0, Length: -1}}
	err = VerifyEntropy(context.Background(), tr, func(context.Context, string, string) ([]byte, error) {
		lookups++
		return nil, errors.New("not asked")
	})
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Zero(t, lookups, "a span that cannot fit is refused before any job lookup")
}

// TestSeedTranscriptsVerify checks that the seed corpus of FuzzTranscript
// holds transcripts that verify, so the fuzzer starts from accepted ones.
func TestSeedTranscriptsVerify(t *testing.T) {
	for i, tr := range seedTranscripts(t) {
		require.NoError(t, Verify(tr), "seed %d", i)
		if tr.Verifiable {
			require.NoError(t, VerifyEntropy(context.Background(), tr, spanJobs(tr)), "seed %d", i)
		}
	}
}
