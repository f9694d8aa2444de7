package draw

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/provenrand/entropy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seedA is 00 01 … 1f and seedB 32 bytes ff: the seeds of docs/draw-spec.md §9.
var (
	seedA = func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()
	seedB = bytes.Repeat([]byte{0xff}, 32)
)

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestSpecVectors checks every test vector of docs/draw-spec.md §9.
func TestSpecVectors(t *testing.T) {
	s := newStream(seedA)
	blocks := make([]byte, 64)
	s.read(blocks)
	assert.Equal(t, hexBytes(t, "0dd62a5e85eaed3765755e27e3387897ca2980f944c43fa876eddd48319a43eb"), blocks[:32])
	assert.Equal(t, hexBytes(t, "70e6d72eeab208c121f9d3da935b6ef6be9e4c1f0dc6bc9dc4f2e4ad3ca59db6"), blocks[32:])

	s = newStream(seedA)
	assert.Equal(t, []uint64{0x0dd62a5e85eaed37, 0x65755e27e3387897, 0xca2980f944c43fa8, 0x76eddd48319a43eb},
		[]uint64{s.next(), s.next(), s.next(), s.next()})
	s = newStream(seedB)
	assert.Equal(t, []uint64{0xeae43faac5cc019c, 0x7e012b44029e902b, 0xffd268d91f935f5b, 0x82691aeeece0e139},
		[]uint64{s.next(), s.next(), s.next(), s.next()})

	assert.Equal(t, uint64(34), uniform(newStream(seedA), 49))
	assert.Equal(t, uint64(2), uniform(newStream(seedB), 3))
	assert.Equal(t, uint64(997030952971201847), uniform(newStream(seedA), 1<<63+1))
	assert.Equal(t, uint64(9079585894857347115), uniform(newStream(seedB), 1<<63+1))
	assert.Equal(t, uint64(997030952971201847), uniform(newStream(seedA), math.MaxUint64))

	assert.Equal(t, []uint64{34, 24, 37, 0, 35, 27}, pick(newStream(seedA), 6, 49))
	assert.Equal(t, []uint64{47, 28, 11, 20, 48, 27}, pick(newStream(seedB), 6, 49))
	assert.Equal(t, []uint64{405973691703, 171322502646, 1070627066538}, pick(newStream(seedA), 3, 1<<40))
	assert.Equal(t, []uint64{4, 6, 8, 5, 9, 1, 3, 0, 2, 7}, shuffle(newStream(seedA), 10))
	assert.Equal(t, []uint64{1, 40, 42, 21, 0, 33, 16, 38, 51, 28, 3, 34, 35, 18, 17, 39, 20, 2, 14, 23, 22, 50,
		10, 37, 13, 11, 31, 43, 30, 49, 4, 27, 36, 46, 44, 41, 8, 5, 12, 7, 9, 45, 47, 19, 29, 6, 32, 26, 15, 25, 24, 48},
		shuffle(newStream(seedB), 52))
}

// listWords hands out chosen words and counts them.
type listWords struct {
	w    []uint64
	used int
}

func (l *listWords) next() uint64 {
	v := l.w[l.used]
	l.used++
	return v
}

// TestRejectionBoundary checks the exact boundary of docs/draw-spec.md §3:
// the smallest rejected word is rejected (and the next word used), the
// largest accepted word is accepted.
func TestRejectionBoundary(t *testing.T) {
	const max = math.MaxUint64
	cases := []struct {
		name           string
		n              uint64
		largestAccept  uint64
		smallestReject uint64 // 0: nothing is rejected
	}{
		{"1", 1, max, 0},
		{"2", 2, max, 0},
		{"2^32", 1 << 32, max, 0},
		{"3", 3, max - 1, max},
		{"49", 49, max - 2, max - 1},
		{"2^31+1", 1<<31 + 1, max - 4, max - 3},
		{"2^63+1", 1<<63 + 1, 1 << 63, 1<<63 + 1},
		{"2^64-1", max, max - 1, max},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The boundary agrees with 2^64 mod n.
			r := -c.n % c.n
			assert.Equal(t, uint64(max)-r, c.largestAccept)

			w := &listWords{w: []uint64{c.largestAccept, 7}}
			assert.Equal(t, c.largestAccept%c.n, uniform(w, c.n))
			assert.Equal(t, 1, w.used, "largest accepted word must be used")

			if c.smallestReject != 0 {
				w = &listWords{w: []uint64{c.smallestReject, max, c.largestAccept - 1, 7}}
				assert.Equal(t, (c.largestAccept-1)%c.n, uniform(w, c.n))
				assert.Equal(t, 3, w.used, "words at or above the limit must be rejected")
			}
			// Word 0 is always accepted.
			w = &listWords{w: []uint64{0}}
			assert.Equal(t, uint64(0), uniform(w, c.n))
		})
	}
}

// The stream's rejection path: seed B's first word is rejected for 2^63+1.
func TestStreamRejectsThenAccepts(t *testing.T) {
	s := newStream(seedB)
	first, second := s.next(), s.next()
	require.Greater(t, first, uint64(1<<63), "vector premise: first word above the limit")
	require.LessOrEqual(t, second, uint64(1<<63))
	assert.Equal(t, second, uniform(newStream(seedB), 1<<63+1))
}

func TestPickAndShuffleShape(t *testing.T) {
	for _, n := range []uint64{1, 2, 7, 49, 100} {
		p := shuffle(newStream(seedA), n)
		seen := make(map[uint64]bool)
		for _, v := range p {
			require.Less(t, v, n)
			seen[v] = true
		}
		assert.Len(t, seen, int(n), "shuffle is a permutation")

		all := pick(newStream(seedA), n, n)
		seen = make(map[uint64]bool)
		for _, v := range all {
			seen[v] = true
		}
		assert.Len(t, seen, int(n), "pick n of n is a permutation")
	}
	// A pick is a prefix of a longer pick from the same seed.
	assert.Equal(t, pick(newStream(seedB), 3, 49), pick(newStream(seedB), 6, 49)[:3])
	// n = 1 shuffles without reading a word.
	w := &listWords{}
	assert.Equal(t, []uint64{0}, shuffle(w, 1))
	assert.Equal(t, 0, w.used)
	// Over many seeds, a pick is k distinct values in range and a shuffle
	// a permutation.
	for s := 0; s < 300; s++ {
		seed := make([]byte, SeedSize)
		seed[0], seed[1] = byte(s), byte(s>>8)
		for _, kn := range [][2]uint64{{1, 1}, {2, 2}, {3, 3}, {6, 49}, {49, 49}, {5, 1<<63 + 1}} {
			out := pick(newStream(seed), kn[0], kn[1])
			require.Len(t, out, int(kn[0]))
			seen := map[uint64]bool{}
			for _, v := range out {
				require.Less(t, v, kn[1])
				require.False(t, seen[v], "pick(%d,%d) repeated %d", kn[0], kn[1], v)
				seen[v] = true
			}
		}
		for _, n := range []uint64{1, 2, 3, 52} {
			out := shuffle(newStream(seed), n)
			seen := make([]bool, n)
			for _, v := range out {
				require.Less(t, v, n)
				require.False(t, seen[v])
				seen[v] = true
			}
		}
	}
}

// verifiedTranscriptJSON returns a verified pick transcript as a generic JSON object.
func verifiedTranscriptJSON(t *testing.T, fallback bool) map[string]any {
	t.Helper()
	f := newFake()
	opts := []Option{clock()}
	if fallback {
		f.class = entropy.ProvenanceFallback
		f.reason = entropy.ErrUnavailable
		opts = append(opts, AllowFallback())
	}
	_, tr, err := Pick(context.Background(), f, 6, 49, opts...)
	require.NoError(t, err)
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	return m
}

// parseAndVerify is what `entropy verify` does with a file.
func parseAndVerify(m map[string]any) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tr, err := ParseTranscript(js)
	if err != nil {
		return err
	}
	return Verify(tr)
}

// TestTamperedJSONMembersFailVerify changes, at the JSON level, every member a
// reader sees, and requires ParseTranscript+Verify to fail.
func TestTamperedJSONMembersFailVerify(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		base := verifiedTranscriptJSON(t, fallback)
		require.NoError(t, parseAndVerify(base))
		edits := map[string]func(m map[string]any){
			"algorithm":    func(m map[string]any) { m["algorithm"] = "provenrand-drawx" },
			"version":      func(m map[string]any) { m["version"] = 2 },
			"verifiable":   func(m map[string]any) { m["verifiable"] = !m["verifiable"].(bool) },
			"kind":         func(m map[string]any) { m["kind"] = "shuffle" },
			"inputs.n":     func(m map[string]any) { m["inputs"].(map[string]any)["n"] = 50 },
			"inputs.k":     func(m map[string]any) { m["inputs"].(map[string]any)["k"] = 5 },
			"event add":    func(m map[string]any) { m["event"] = "x" },
			"outputs":      func(m map[string]any) { o := m["outputs"].([]any); o[0], o[1] = o[1], o[0] },
			"entropy":      func(m map[string]any) { s := m["entropy"].(string); m["entropy"] = flipHex(s) },
			"time":         func(m map[string]any) { m["time"] = "2030-01-01T00:00:00Z" },
			"digest":       func(m map[string]any) { m["digest"] = flipHex(m["digest"].(string)) },
			"extra member": func(m map[string]any) { m["note"] = "audited" },
			"label.spans.offset": func(m map[string]any) {
				sp := m["label"].(map[string]any)["spans"].([]any)[0].(map[string]any)
				sp["offset"] = sp["offset"].(float64) + 1
			},
			"label.spans.source": func(m map[string]any) {
				m["label"].(map[string]any)["spans"].([]any)[0].(map[string]any)["source"] = "other"
			},
			"label.spans.public": func(m map[string]any) {
				m["label"].(map[string]any)["spans"].([]any)[0].(map[string]any)["public"] = true
			},
			"label.class": func(m map[string]any) {
				l := m["label"].(map[string]any)
				l["class"] = map[string]string{"fallback": "verifiable", "verifiable": "fallback"}[l["class"].(string)]
			},
			"label.verifiable": func(m map[string]any) {
				l := m["label"].(map[string]any)
				l["verifiable"] = !l["verifiable"].(bool)
			},
			"label.derived": func(m map[string]any) { m["label"].(map[string]any)["derived"] = true },
			"label.reason":  func(m map[string]any) { m["label"].(map[string]any)["reason"] = "other reason" },
		}
		if fallback {
			edits["warning"] = func(m map[string]any) { m["warning"] = "drawn from local fallback entropy" }
			edits["warning removed"] = func(m map[string]any) { delete(m, "warning") }
		} else {
			edits["warning add"] = func(m map[string]any) { m["warning"] = WarningFallback }
			edits["label.spans.job_id"] = func(m map[string]any) {
				m["label"].(map[string]any)["spans"].([]any)[0].(map[string]any)["job_id"] = "job-999"
			}
		}
		for name, edit := range edits {
			m := verifiedTranscriptJSON(t, fallback)
			edit(m)
			assert.Error(t, parseAndVerify(m), "fallback=%v: %s changed but the transcript verifies", fallback, name)
		}
	}
}

// forgeMember returns the compact JSON of tr with the member name's value
// replaced by shown, and the true value restated under another member that
// JSON, and the spec of §6, treat as a different (unknown) member or as a
// repeated one.
func forgeMember(t *testing.T, tr *Transcript, name string, shown any, restate func(name, value string) string) string {
	t.Helper()
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(js, &members))
	real := string(members[name])
	require.NotEmpty(t, real, "member %q", name)
	fake, err := json.Marshal(shown)
	require.NoError(t, err)
	old := `"` + name + `":` + real
	require.Contains(t, string(js), old)
	forged := strings.Replace(string(js), old, `"`+name+`":`+string(fake), 1)
	return strings.TrimSuffix(forged, "}") + "," + restate(name, real) + "}"
}

// TestTranscriptShowsOneResultVerifiesAnother: a transcript is
// tamper-evident (§6: a verifier refuses an unknown member, and the digest
// catches edits that do not recompute it). Here a member a reader of the file
// sees (outputs, event, inputs, entropy, time) is replaced, the digest is left
// alone, and the true value is restated at the end under "OUTPUTS" and the
// like (an unknown member: JSON names are case-sensitive) or as a second
// member of the same name. ParseTranscript and
// Verify must not accept such a file: what it shows is not what was drawn.
func TestTranscriptShowsOneResultVerifiesAnother(t *testing.T) {
	f := newFake()
	got, tr, err := Pick(context.Background(), f, 6, 49, ForEvent("lotto-7"), clock())
	require.NoError(t, err)
	require.NoError(t, Verify(tr))
	fakeOutputs := []uint64{0, 1, 2, 3, 4, 5}
	require.NotEqual(t, tr.Outputs, fakeOutputs, "pick a shown result that differs from %v", got)

	upper := func(name, value string) string { return `"` + strings.ToUpper(name) + `":` + value }
	title := func(name, value string) string { return `"` + strings.ToUpper(name[:1]) + name[1:] + `":` + value }
	again := func(name, value string) string { return `"` + name + `":` + value }
	cases := map[string]string{
		"outputs, true ones as OUTPUTS": forgeMember(t, tr, "outputs", fakeOutputs, upper),
		"outputs, true ones as Outputs": forgeMember(t, tr, "outputs", fakeOutputs, title),
		"outputs, true ones repeated":   forgeMember(t, tr, "outputs", fakeOutputs, again),
		"event, true one as EVENT":      forgeMember(t, tr, "event", "lotto-8", upper),
		"event, true one repeated":      forgeMember(t, tr, "event", "lotto-8", again),
		"inputs, true ones as INPUTS":   forgeMember(t, tr, "inputs", Inputs{N: 50, K: 6}, upper),
		"entropy, true seed as ENTROPY": forgeMember(t, tr, "entropy", strings.Repeat("ab", SeedSize), upper),
		"time, true one as Time":        forgeMember(t, tr, "time", "2030-01-01T00:00:00Z", title),
	}
	for name, forged := range cases {
		back, err := ParseTranscript([]byte(forged))
		if err == nil {
			err = Verify(back)
		}
		assert.Error(t, err, "%s: the file shows another result, yet it verifies:\n%s", name, forged)
	}
}
