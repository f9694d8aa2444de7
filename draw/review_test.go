package draw

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
)

// TestReviewRejectionBoundaryExact pins, for the awkward n of the issue, that
// the largest accepted word gives x mod n and that the smallest rejected word
// is skipped (the next word is used).
func TestReviewRejectionBoundaryExact(t *testing.T) {
	const max = uint64(math.MaxUint64)
	cases := []struct {
		n           uint64
		maxAccepted uint64
		rejected    bool // whether any word is rejected
	}{
		{1, max, false},
		{2, max, false},
		{3, max - 1, true},
		{1<<63 + 1, 1 << 63, true},
		{max, max - 1, true},
	}
	for _, c := range cases {
		t.Run(strconv.FormatUint(c.n, 10), func(t *testing.T) {
			w := &listWords{w: []uint64{c.maxAccepted, 5}}
			assert.Equal(t, c.maxAccepted%c.n, uniform(w, c.n))
			assert.Equal(t, 1, w.used, "largest accepted word must be accepted")
			if c.rejected {
				w = &listWords{w: []uint64{c.maxAccepted + 1, 7}}
				assert.Equal(t, uint64(7)%c.n, uniform(w, c.n))
				assert.Equal(t, 2, w.used, "smallest rejected word must be skipped")
				// The accepted range holds each residue equally often.
				assert.Zero(t, (c.maxAccepted+1)%c.n, "accepted range is a multiple of n")
			}
		})
	}
}

// TestReviewPickAndShuffleShape checks, over many seeds, that a pick is k
// distinct values in range and a shuffle a permutation.
func TestReviewPickAndShuffleShape(t *testing.T) {
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

// TestReviewNoMathRand checks that no non-test file of the package imports
// math/rand or math/rand/v2.
func TestReviewNoMathRand(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			assert.NotContains(t, []string{"math/rand", "math/rand/v2"}, p, "%s imports %s", f, p)
		}
		checked++
	}
	require.Positive(t, checked)
}

// TestReviewRFC3797SectionSix is the RFC's example through the public API.
func TestReviewRFC3797SectionSix(t *testing.T) {
	src := []string{"9319", "2 5 12 8 10", "9 18 26 34 41 45"}
	key, err := RFC3797Key(src)
	require.NoError(t, err)
	assert.Equal(t, "9319./2.5.8.10.12./9.18.26.34.41.45./", key)
	sel, err := RFC3797(src, 25, 10)
	require.NoError(t, err)
	assert.Equal(t, []int{17, 7, 2, 16, 25, 23, 8, 24, 19, 13}, sel)
}

// TestReviewRFC3797OddInputs: leading zeros, extra blanks, commas and
// unsorted numbers canonicalise to the RFC's key; bad inputs are errors.
func TestReviewRFC3797OddInputs(t *testing.T) {
	key, err := RFC3797Key([]string{" 09319 ", "12,  8 ,2\t10 005", "45 41 34 26 18 09"})
	require.NoError(t, err)
	assert.Equal(t, "9319./2.5.8.10.12./9.18.26.34.41.45./", key)
	key, err = RFC3797Key([]string{"000", "0 00"})
	require.NoError(t, err)
	assert.Equal(t, "0./0.0./", key)
	// Numbers longer than 64 bits sort numerically, not as text.
	key, err = RFC3797Key([]string{"100000000000000000000000 99 1000"})
	require.NoError(t, err)
	assert.Equal(t, "99.1000.100000000000000000000000./", key)

	for _, bad := range [][]string{nil, {}, {""}, {"   "}, {"1", ""}, {"-1"}, {"1.5"}, {"+3"}, {"1e3"}, {"x"}} {
		_, err := RFC3797Key(bad)
		assert.ErrorIs(t, err, ErrRFC3797, "%q", bad)
		_, err = RFC3797(bad, 10, 1)
		assert.ErrorIs(t, err, ErrRFC3797, "%q", bad)
	}
	for _, pc := range [][2]int{{0, 1}, {10, 0}, {10, 11}, {-1, 1}, {65536, 1}} {
		_, err := RFC3797([]string{"1"}, pc[0], pc[1])
		assert.ErrorIs(t, err, ErrRFC3797, "pool %d count %d", pc[0], pc[1])
	}
	// Selecting the whole pool gives a permutation of 1..pool.
	sel, err := RFC3797([]string{"9319"}, 25, 25)
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, v := range sel {
		require.True(t, v >= 1 && v <= 25)
		seen[v] = true
	}
	assert.Len(t, seen, 25)
}

// TestReviewFallbackNeedsOptIn: without AllowFallback a fallback seed is an
// error wrapping ErrNotVerifiable; with it the transcript says so in the
// flag, the warning, the label's class, and verifies.
func TestReviewFallbackNeedsOptIn(t *testing.T) {
	f := newFake()
	f.class = entropy.ProvenanceFallback
	f.reason = entropy.ErrUnavailable
	_, tr, err := Pick(context.Background(), f, 6, 49, clock())
	require.ErrorIs(t, err, ErrNotVerifiable)
	require.Nil(t, tr)

	_, tr, err = Pick(context.Background(), f, 6, 49, clock(), AllowFallback())
	require.NoError(t, err)
	require.NoError(t, Verify(tr))
	js, err := json.Marshal(tr)
	require.NoError(t, err)
	s := string(js)
	assert.Contains(t, s, `"verifiable":false`)
	assert.Contains(t, s, `"warning":"NOT VERIFIABLE`)
	assert.Contains(t, s, `"class":"fallback"`)
	// The warning comes before the outputs, where a reader starts.
	assert.Less(t, strings.Index(s, "NOT VERIFIABLE"), strings.Index(s, `"outputs"`))
}

// reviewJSON returns a verified pick transcript as a generic JSON object.
func reviewJSON(t *testing.T, fallback bool) map[string]any {
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

// TestReviewTamperJSONFields changes, at the JSON level, every member a
// reader sees, and requires ParseTranscript+Verify to fail.
func TestReviewTamperJSONFields(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		base := reviewJSON(t, fallback)
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
			m := reviewJSON(t, fallback)
			edit(m)
			assert.Error(t, parseAndVerify(m), "fallback=%v: %s changed but the transcript verifies", fallback, name)
		}
	}
}

// TestReviewEntropyCheckedAgainstJobs: a verifiable transcript whose entropy
// was replaced (and everything recomputed) verifies by replay, but
// VerifyEntropy against the jobs catches it.
func TestReviewEntropyCheckedAgainstJobs(t *testing.T) {
	f := newFake()
	_, tr, err := Int(context.Background(), f, 1000, clock())
	require.NoError(t, err)
	require.NoError(t, VerifyEntropy(context.Background(), tr, f.jobData))
	seed, _ := hex.DecodeString(tr.Entropy)
	seed[0] ^= 1
	tr.Entropy = hex.EncodeToString(seed)
	tr.Outputs = replay(tr.Kind, tr.Inputs, seed)
	tr.Digest, err = digest(tr)
	require.NoError(t, err)
	require.NoError(t, Verify(tr))
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, f.jobData), ErrInvalid)
}

// TestReviewEventDrawsOnce: ForEvent from many goroutines gives one seed,
// and the same parameters the same outputs.
func TestReviewEventDrawsOnce(t *testing.T) {
	f := newFake()
	var wg sync.WaitGroup
	res := make([][]int, 16)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, tr, err := Pick(context.Background(), f, 6, 49, ForEvent("lotto-1"), clock())
			if assert.NoError(t, err) {
				assert.Equal(t, "lotto-1", tr.Event)
				assert.NoError(t, Verify(tr))
				res[i] = out
			}
		}()
	}
	wg.Wait()
	for _, r := range res[1:] {
		assert.Equal(t, res[0], r)
	}
	// A source without ReadFor cannot make an event draw.
	_, _, err := Pick(context.Background(), plainSource{f}, 6, 49, ForEvent("lotto-1"))
	assert.ErrorIs(t, err, ErrNoEvents)
}

// TestReviewParseTranscriptFromFile round-trips through a file as the CLI does.
func TestReviewParseTranscriptFromFile(t *testing.T) {
	f := newFake()
	_, tr, err := Shuffle(context.Background(), f, 10, clock())
	require.NoError(t, err)
	js, err := json.MarshalIndent(tr, "", "  ")
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "t.json")
	require.NoError(t, os.WriteFile(p, js, 0o600))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	back, err := ParseTranscript(b)
	require.NoError(t, err)
	require.NoError(t, Verify(back))
	_, err = ParseTranscript(append(b, []byte(`{}`)...))
	assert.ErrorIs(t, err, ErrInvalid)
}
