package draw_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/drandsource"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/health"
	"github.com/provenrand/entropy/httpsource"
	"github.com/provenrand/entropy/internal/drandtest"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simTranscript draws 6 of 49 from a Provider over the simulator, then stops
// the Provider and the simulator, and returns the transcript's JSON and the
// simulator's public key.
func simTranscript(t *testing.T) ([]byte, ed25519.PublicKey) {
	t.Helper()
	s := sim.New()
	p, stop := simProvider(t, s, entropy.WithPolicy(entropy.Defer))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, tr, err := draw.Pick(ctx, p, 6, 49)
	require.NoError(t, err)
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	stop()
	return js, s.PublicKey()
}

// TestTranscriptVerifiesOfflineWithTheSimulatorGone: a draw against the
// simulator carries the proof of a job of its own (512 bytes, the seed its
// first 32), and its
// transcript verifies, with the simulator stopped and nothing listening,
// from the public key alone; without the key the origin is reported
// unchecked, never passed.
func TestTranscriptVerifiesOfflineWithTheSimulatorGone(t *testing.T) {
	js, pub := simTranscript(t)
	tr, err := draw.ParseTranscript(js)
	require.NoError(t, err)

	require.Len(t, tr.Proofs, 1)
	p := tr.Proofs[0]
	assert.Equal(t, evidence.SchemeReferenceV2, p.Scheme)
	assert.Equal(t, sim.SourceName, p.Source)
	assert.Len(t, p.Data, health.AptWindow, "a job of its own, as small as the health tests can judge")
	assert.Equal(t, health.AptWindow, p.Size)
	assert.Equal(t, tr.Entropy, hex.EncodeToString(p.Data[:draw.SeedSize]), "the seed is the job's first bytes")
	assert.Len(t, p.Nonce, 16)
	require.Len(t, tr.Label.Spans, 1)
	assert.Equal(t, p.JobID, tr.Label.Spans[0].JobID)

	roots := draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}}
	require.NoError(t, draw.Verify(tr, roots))
	rep, err := draw.Check(tr, roots)
	require.NoError(t, err)
	assert.True(t, rep.OriginChecked)
	assert.Empty(t, rep.Unchecked)
	assert.Len(t, rep.Checks, 4, "replay, digest, binding, signature: %q", rep.Checks)
	assert.Contains(t, rep.Checks[2], "the first bytes of the data of the proof, span by span", "one proof is named in the singular")
	assert.Contains(t, rep.Checks[3], "protocol v2")

	rep, err = draw.Check(tr, draw.TrustRoots{})
	require.NoError(t, err, "without roots the replay still passes")
	assert.False(t, rep.OriginChecked)
	require.Len(t, rep.Unchecked, 1)
	assert.Contains(t, rep.Unchecked[0], "no public key")
	assert.ErrorIs(t, draw.Verify(tr, draw.TrustRoots{}), draw.ErrUnproven)

	other, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	err = draw.Verify(tr, draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: other}})
	assert.ErrorIs(t, err, draw.ErrProof, "another service's key")
}

// An old transcript (no proofs) still replays; with trust roots its origin
// is reported unchecked.
func TestTranscriptWithoutProofsReplaysUnchecked(t *testing.T) {
	js, pub := simTranscript(t)
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	delete(m, "proofs")
	tr := redigest(t, m)
	require.NoError(t, draw.Verify(tr))
	rep, err := draw.Check(tr, draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}})
	require.NoError(t, err)
	assert.False(t, rep.OriginChecked)
	assert.Contains(t, rep.Unchecked[0], "no proofs")
	assert.ErrorIs(t, draw.Verify(tr, draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}}), draw.ErrUnproven)
}

// redigest builds a transcript from its JSON members with the digest
// recomputed, as a forger who edits a field would.
func redigest(t *testing.T, m map[string]any) *draw.Transcript {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var tr draw.Transcript
	require.NoError(t, json.Unmarshal(b, &tr))
	tr.Digest = ""
	b, err = json.Marshal(&tr)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	tr.Digest = hex.EncodeToString(sum[:])
	return &tr
}

// editProof returns the transcript with field of its first proof set to v,
// and the digest recomputed.
func editProof(t *testing.T, js []byte, field string, v any) *draw.Transcript {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	proofs := m["proofs"].([]any)
	proofs[0].(map[string]any)[field] = v
	return redigest(t, m)
}

// flip changes the first hex digit of s.
func flip(s string) string {
	if s[0] == '0' {
		return "1" + s[1:]
	}
	return "0" + s[1:]
}

// TestEveryProofFieldEditedFails: whatever field of a reference-protocol
// proof is changed (and the digest recomputed), Verify fails with ErrProof
// and the error names the field. Fields that only the signature binds
// (nonce, a timestamp moved within the window) fail its check, whose error
// names every field it covers.
func TestEveryProofFieldEditedFails(t *testing.T) {
	js, pub := simTranscript(t)
	roots := draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}}
	var orig map[string]any
	require.NoError(t, json.Unmarshal(js, &orig))
	p0 := orig["proofs"].([]any)[0].(map[string]any)
	ts, err := time.Parse(time.RFC3339Nano, p0["timestamp"].(string))
	require.NoError(t, err)

	for _, tc := range []struct {
		field, named string
		value        any
	}{
		{"scheme", "scheme", "provenrand/entropy/v9"},
		{"scheme", "scheme", evidence.SchemeReferenceV1},
		{"scheme", "scheme", evidence.SchemeDrand},
		{"source", "source", "quantropy"},
		{"job_id", "job_id", "job-0000000000000000"},
		{"data", "data", flip(p0["data"].(string))},
		{"nonce", "signature", flip(p0["nonce"].(string))}, // bound by the signature alone
		{"nonce", "nonce", "00"},
		{"size", "size", 31},
		{"timestamp", "signature", ts.Add(time.Second).Format(time.RFC3339Nano)}, // within the window: the signature
		{"timestamp", "timestamp", ts.Add(time.Hour).Format(time.RFC3339Nano)},
		{"timestamp", "timestamp", "yesterday"},
		{"signature", "signature", flip(p0["signature"].(string))},
		{"signature", "signature", "00"},
		{"chain", "chain", hex.EncodeToString(drandsource.Quicknet().Hash)},
		{"round", "round", 7},
		{"previous_signature", "previous_signature", "00"},
	} {
		tr := editProof(t, js, tc.field, tc.value)
		err := draw.Verify(tr, roots)
		require.Error(t, err, "%s = %v", tc.field, tc.value)
		assert.ErrorIs(t, err, draw.ErrProof, "%s = %v", tc.field, tc.value)
		assert.Contains(t, err.Error(), strconv.Quote(tc.named), "%s = %v: %v", tc.field, tc.value, err)
		assert.Contains(t, err.Error(), tc.field, "the error names the field")
	}
	// The untouched transcript, through the same path, verifies.
	require.NoError(t, draw.Verify(redigest(t, orig), roots))

	// A proof left out, or one too many.
	m := map[string]any{}
	require.NoError(t, json.Unmarshal(js, &m))
	m["proofs"] = append(m["proofs"].([]any), m["proofs"].([]any)[0])
	assert.ErrorIs(t, draw.Verify(redigest(t, m), roots), draw.ErrProof)

	// Seed and proof data changed together: the outputs no longer replay,
	// and when they are recomputed too, the signature fails.
	tr := editProof(t, js, "data", flip(p0["data"].(string)))
	tr.Entropy = flip(tr.Entropy)
	assert.Error(t, draw.Verify(tr, roots))
}

// TestDrandVectorsVerifyFromATranscript: a draw from each of the real
// beacons of the vectors (quicknet, unchained; default, chained) verifies
// from its transcript offline with the pinned chain info alone; another
// chain's info does not check it, and an edited previous signature fails.
func TestDrandVectorsVerifyFromATranscript(t *testing.T) {
	for _, b := range drandtest.Beacons(t) {
		t.Run(b.Chain, func(t *testing.T) {
			src, chain := beaconEntropy(t, b)
			id := strconv.FormatUint(b.Round, 10)
			drawn := chain.RoundTime(b.Round).Add(time.Minute)
			_, tr, err := draw.Pick(context.Background(), src, 6, 49, draw.WithClock(entropy.NowFunc(func() time.Time { return drawn })))
			require.NoError(t, err)
			js, err := json.Marshal(tr)
			require.NoError(t, err)
			tr, err = draw.ParseTranscript(js)
			require.NoError(t, err)

			roots := draw.TrustRoots{Chains: []drandsource.ChainInfo{drandsource.Quicknet(), drandsource.Default()}}
			rep, err := draw.Check(tr, roots)
			require.NoError(t, err)
			assert.True(t, rep.OriginChecked, "%q", rep.Unchecked)
			assert.Contains(t, rep.Checks[len(rep.Checks)-1], "drand round "+id)
			require.NoError(t, draw.Verify(tr, roots))

			assert.ErrorIs(t, draw.Verify(tr, draw.TrustRoots{Chains: []drandsource.ChainInfo{otherChain(b.Chain)}}), draw.ErrUnproven)
			edited := editProof(t, js, "signature", flip(b.Signature))
			assert.ErrorIs(t, draw.Verify(edited, roots), draw.ErrProof)
			if b.PreviousSignature != "" {
				err := draw.Verify(editProof(t, js, "previous_signature", flip(b.PreviousSignature)), roots)
				assert.ErrorIs(t, err, draw.ErrProof)
				assert.Contains(t, err.Error(), "previous_signature")
			}
			err = draw.Verify(editProof(t, js, "round", b.Round+1), roots)
			assert.ErrorIs(t, err, draw.ErrProof)
			assert.Contains(t, err.Error(), `"round"`)
			early := drawnBefore(t, js, chain.RoundTime(b.Round).Add(-time.Hour))
			err = draw.Verify(early, roots)
			assert.ErrorIs(t, err, draw.ErrProof, "a draw stated before its round was due")
			assert.Contains(t, err.Error(), `"round"`)
		})
	}
}

// otherChain returns the pinned chain that is not name.
func otherChain(name string) drandsource.ChainInfo {
	if name == "quicknet" {
		return drandsource.Default()
	}
	return drandsource.Quicknet()
}

// drawnBefore returns the transcript with its time set to at and the digest
// recomputed.
func drawnBefore(t *testing.T, js []byte, at time.Time) *draw.Transcript {
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	m["time"] = at.UTC().Format(time.RFC3339Nano)
	return redigest(t, m)
}

// FuzzProofTranscript feeds arbitrary bytes to ParseTranscript and Check
// with trust roots. Neither may panic; a transcript whose origin Check
// reports checked must verify under Verify with the same roots, survive a
// JSON round trip, and each of its reference-protocol proofs must verify on
// its own with httpsource's check of the v2 signature.
func FuzzProofTranscript(f *testing.F) {
	s := sim.New(sim.WithSeed(3))
	p, stop := simProvider(f, s, entropy.WithPolicy(entropy.Defer))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, tr, err := draw.Shuffle(ctx, p, 5)
	cancel()
	require.NoError(f, err)
	stop()
	js, err := json.Marshal(tr)
	require.NoError(f, err)
	f.Add(js)
	f.Add([]byte(strings.Replace(string(js), `"scheme":"provenrand/entropy/v2"`, `"scheme":"drand"`, 1)))
	f.Add([]byte(strings.Replace(string(js), `"proofs":[`, `"proofs":[{},`, 1)))
	roots := draw.TrustRoots{
		PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: s.PublicKey()},
		Chains:     []drandsource.ChainInfo{drandsource.Quicknet(), drandsource.Default()},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := draw.ParseTranscript(b)
		if err != nil {
			return
		}
		rep, err := draw.Check(tr, roots)
		if err != nil || !rep.OriginChecked {
			return
		}
		if err := draw.Verify(tr, roots); err != nil {
			t.Fatalf("Check passed the origin, Verify refuses: %v", err)
		}
		again, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		back, err := draw.ParseTranscript(again)
		if err != nil {
			t.Fatalf("a checked transcript does not parse again: %v", err)
		}
		if err := draw.Verify(back, roots); err != nil {
			t.Fatalf("a checked transcript fails after a round trip: %v", err)
		}
		for _, pr := range tr.Proofs {
			if pr.Scheme == evidence.SchemeReferenceV2 &&
				!httpsource.VerifySignatureV2(roots.PublicKeys[pr.Source], pr.JobID, pr.Nonce, pr.Size, pr.Timestamp, pr.Data, pr.Signature) {
				t.Fatalf("a checked proof whose signature does not verify: %+v", pr)
			}
		}
	})
}

// seedEntropy hands out its bytes as the seed of a draw, as a job would.
type seedEntropy []byte

func (s seedEntropy) ReadLabelled(_ context.Context, b []byte) (entropy.Label, error) {
	copy(b, s)
	return entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "s", JobID: "j", Length: len(b)}}}, nil
}

// reseed returns the transcript of js with the label's spans and the seed
// replaced, its outputs replayed from the new seed and the digest
// recomputed: a forger's transcript in which every check of the replay
// holds.
func reseed(t *testing.T, js []byte, spans []entropy.Span, seed []byte) *draw.Transcript {
	t.Helper()
	tr, err := draw.ParseTranscript(js)
	require.NoError(t, err)
	var again *draw.Transcript
	switch tr.Kind {
	case draw.KindPick:
		_, again, err = draw.Pick(context.Background(), seedEntropy(seed), int(tr.Inputs.K), int(tr.Inputs.N))
	case draw.KindShuffle:
		_, again, err = draw.Shuffle(context.Background(), seedEntropy(seed), int(tr.Inputs.N))
	default:
		_, again, err = draw.Int(context.Background(), seedEntropy(seed), tr.Inputs.N)
	}
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	m["outputs"] = again.Outputs
	m["entropy"] = hex.EncodeToString(seed)
	m["label"].(map[string]any)["spans"] = spans
	return redigest(t, m)
}

// TestSeedIsTheFirstBytesOfItsJob: the seed is its job's first bytes, taken
// in order, each once. A transcript whose spans take other bytes of the
// job (a window further in, the same bytes twice, bytes picked one by one)
// is refused, though every such byte is in the signed data: were it
// accepted, the drawer could choose among the job's bytes, and so choose
// the result, of an event's bound job as of any other. The first bytes split
// into two spans still verify.
func TestSeedIsTheFirstBytesOfItsJob(t *testing.T) {
	js, pub := simTranscript(t)
	entrants := []string{"ada", "grace", "edsger", "barbara", "donald"}
	events, evPub, _ := simEventTranscripts(t, entrants, "raffle-2026-12-06")
	for _, c := range []struct {
		name string
		js   []byte
		pub  ed25519.PublicKey
	}{{"draw", js, pub}, {"bound event draw", events[0], evPub}} {
		t.Run(c.name, func(t *testing.T) {
			roots := draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: c.pub}}
			tr, err := draw.ParseTranscript(c.js)
			require.NoError(t, err)
			job, data := tr.Proofs[0].JobID, tr.Proofs[0].Data
			span := func(off, n int) entropy.Span {
				return entropy.Span{Source: sim.SourceName, JobID: job, Offset: off, Length: n}
			}
			var picked []entropy.Span
			var pickedSeed []byte
			for i := 0; i < draw.SeedSize; i++ {
				picked = append(picked, span(7*i, 1))
				pickedSeed = append(pickedSeed, data[7*i])
			}
			for _, f := range []struct {
				name  string
				spans []entropy.Span
				seed  []byte
			}{
				{"a window further in", []entropy.Span{span(100, 32)}, data[100:132]},
				{"the last bytes", []entropy.Span{span(len(data)-32, 32)}, data[len(data)-32:]},
				{"the same bytes twice", []entropy.Span{span(0, 16), span(0, 16)}, append(slices.Clone(data[:16]), data[:16]...)},
				{"the first bytes out of order", []entropy.Span{span(16, 16), span(0, 16)}, append(slices.Clone(data[16:32]), data[:16]...)},
				{"bytes picked one by one", picked, pickedSeed},
			} {
				forged := reseed(t, c.js, f.spans, f.seed)
				require.NoError(t, draw.Verify(forged), "%s: the replay alone holds", f.name)
				err := draw.Verify(forged, roots)
				assert.ErrorIs(t, err, draw.ErrProof, f.name)
				assert.ErrorContains(t, err, `proof 0 "data"`, f.name)
			}
			split := reseed(t, c.js, []entropy.Span{span(0, 16), span(16, 16)}, data[:32])
			assert.NoError(t, draw.Verify(split, roots), "the job's first bytes in two spans")
		})
	}
}

// TestOneJobNamedTwiceFails: a job's proof given twice, under two source
// names, is refused, though each verifies: the seed would take the job's
// bytes twice, split where the drawer chose. A drand round's proof names
// the chain, not the source; a reference job is checked under the key given
// for each name (entropy verify --public-key gives one key to every name).
func TestOneJobNamedTwiceFails(t *testing.T) {
	twice := func(t *testing.T, js []byte, roots draw.TrustRoots) {
		t.Helper()
		tr, err := draw.ParseTranscript(js)
		require.NoError(t, err)
		p := tr.Proofs[0]
		q := p.Clone()
		q.Source += "-again"
		if roots.PublicKeys != nil {
			roots.PublicKeys[q.Source] = roots.PublicKeys[p.Source]
		}
		seed := append(slices.Clone(p.Data[:10]), p.Data[:22]...)
		forged := reseed(t, js, []entropy.Span{
			{Source: p.Source, JobID: p.JobID, Length: 10, Public: true},
			{Source: q.Source, JobID: q.JobID, Length: 22, Public: true},
		}, seed)
		forged.Proofs = []entropy.Proof{p, q}
		b, err := json.Marshal(forged)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		err = draw.Verify(redigest(t, m), roots)
		assert.ErrorIs(t, err, draw.ErrProof)
		assert.ErrorContains(t, err, `proof 1 "signature"`)
	}
	for _, b := range drandtest.Beacons(t) {
		t.Run(b.Chain, func(t *testing.T) {
			src, chain := beaconEntropy(t, b)
			drawn := chain.RoundTime(b.Round).Add(time.Minute)
			_, tr, err := draw.Pick(context.Background(), src, 6, 49, draw.WithClock(entropy.NowFunc(func() time.Time { return drawn })))
			require.NoError(t, err)
			js, err := json.Marshal(tr)
			require.NoError(t, err)
			twice(t, js, draw.TrustRoots{Chains: []drandsource.ChainInfo{chain}})
		})
	}
	t.Run("reference", func(t *testing.T) {
		js, pub := simTranscript(t)
		twice(t, js, draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}})
	})
}

// A draw from fallback entropy is never reported as of checked origin, not
// even with a valid proof attached: its seed came from local bytes that no
// third party can check.
func TestFallbackTranscriptWithProofsIsUnproven(t *testing.T) {
	js, pub := simTranscript(t)
	roots := draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{sim.SourceName: pub}}
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	m["verifiable"] = false
	m["warning"] = draw.WarningFallback
	m["label"] = map[string]any{"class": "fallback", "verifiable": false, "reason": "source down",
		"spans": []any{map[string]any{"source": entropy.FallbackSource, "offset": 0, "length": draw.SeedSize}}}
	tr := redigest(t, m)
	require.NotEmpty(t, tr.Proofs)
	require.NoError(t, draw.Verify(tr), "a consistent fallback transcript replays")
	rep, err := draw.Check(tr, roots)
	require.NoError(t, err)
	assert.False(t, rep.OriginChecked)
	require.Len(t, rep.Unchecked, 1)
	assert.Contains(t, rep.Unchecked[0], "fallback")
	assert.ErrorIs(t, draw.Verify(tr, roots), draw.ErrUnproven)
}

// Every line of a Report is one line, whatever the transcript names: a
// proof's source name is not signed, so a verifier that trusts its key for
// any name checks the proof, and a line break, a bidi override or a quote in
// that name is printed quoted, never as part of the line.
func TestReportLinesQuoteOddNames(t *testing.T) {
	js, pub := simTranscript(t)
	for _, name := range []string{"sim\nchecked: forged", "sim\u2028forged", "sim\u202eforged", `sim" forged`} {
		tr, err := draw.ParseTranscript(js)
		require.NoError(t, err)
		tr.Label.Spans[0].Source, tr.Proofs[0].Source = name, name
		b, err := json.Marshal(tr)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		rep, err := draw.Check(redigest(t, m), draw.TrustRoots{PublicKeys: map[string]ed25519.PublicKey{name: pub}})
		require.NoError(t, err)
		require.True(t, rep.OriginChecked)
		for _, line := range append(rep.Checks, rep.Unchecked...) {
			assert.NotContains(t, line, name, "the name appears only quoted")
			for _, r := range line {
				assert.True(t, r >= ' ' && r < 0x7f || unicode.IsPrint(r), "%q holds %U", line, r)
			}
		}
		assert.Contains(t, rep.Checks[len(rep.Checks)-1], strconv.QuoteToASCII(name))
	}
}
