package draw

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
)

// fakeSource is a deterministic Entropy: each read is a new job whose data is
// a SHA-256 expansion of its ID, and the read takes bytes 8… of it.
type fakeSource struct {
	mu       sync.Mutex
	class    entropy.Provenance
	reason   error
	err      error
	shortLbl bool // label covers one byte less than the read
	jobs     map[string][]byte
	reads    int
	events   map[string]fakeEvent
	fetches  int // event fetches (first reads of an event)
}

type fakeEvent struct {
	data  []byte
	label entropy.Label
}

func newFake() *fakeSource {
	return &fakeSource{class: entropy.ProvenanceVerifiable, jobs: map[string][]byte{}, events: map[string]fakeEvent{}}
}

func (f *fakeSource) ReadLabelled(_ context.Context, b []byte) (entropy.Label, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read(b)
}

// read requires f.mu.
func (f *fakeSource) read(b []byte) (entropy.Label, error) {
	if f.err != nil {
		return entropy.Label{}, f.err
	}
	f.reads++
	job := fmt.Sprintf("job-%d", f.reads)
	var data []byte
	for i := 0; len(data) < len(b)+8; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", job, i)))
		data = append(data, s[:]...)
	}
	f.jobs[job] = data
	copy(b, data[8:])
	n := len(b)
	if f.shortLbl {
		n--
	}
	switch f.class {
	case entropy.ProvenanceFallback:
		return entropy.Label{Spans: []entropy.Span{{Source: entropy.FallbackSource, Length: n}}, Reason: f.reason}, nil
	case entropy.ProvenanceDerived:
		return entropy.Label{Derived: true, Spans: []entropy.Span{{Source: "fake", JobID: job, Offset: 8, Length: n}}}, nil
	}
	return entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "fake", JobID: job, Offset: 8, Length: n}}}, nil
}

func (f *fakeSource) ReadFor(_ context.Context, event string, b []byte) (entropy.Label, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.events[event]; ok {
		if len(e.data) != len(b) {
			return entropy.Label{}, errors.New("fake: event size differs")
		}
		copy(b, e.data)
		return e.label, nil
	}
	l, err := f.read(b)
	if err != nil {
		return l, err
	}
	f.fetches++
	f.events[event] = fakeEvent{data: append([]byte(nil), b...), label: l}
	return l, nil
}

// jobData is the fake's JobData.
func (f *fakeSource) jobData(_ context.Context, source, job string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.jobs[job]
	if !ok || source != "fake" {
		return nil, errors.New("no such job")
	}
	return d, nil
}

// plainSource hides ReadFor.
type plainSource struct{ f *fakeSource }

func (p plainSource) ReadLabelled(ctx context.Context, b []byte) (entropy.Label, error) {
	return p.f.ReadLabelled(ctx, b)
}

var drawTime = time.Date(2026, 5, 1, 20, 0, 0, 0, time.UTC)

func clock() Option { return WithClock(entropy.NowFunc(func() time.Time { return drawTime })) }

func TestPickFromVerifiableEntropy(t *testing.T) {
	f := newFake()
	got, tr, err := Pick(context.Background(), f, 6, 49, clock())
	require.NoError(t, err)
	require.Len(t, got, 6)
	seen := map[int]bool{}
	for _, v := range got {
		assert.True(t, v >= 0 && v < 49)
		seen[v] = true
	}
	assert.Len(t, seen, 6, "distinct")

	assert.Equal(t, Algorithm, tr.Algorithm)
	assert.Equal(t, Version, tr.Version)
	assert.Equal(t, KindPick, tr.Kind)
	assert.Equal(t, Inputs{N: 49, K: 6}, tr.Inputs)
	assert.True(t, tr.Verifiable)
	assert.Empty(t, tr.Warning)
	assert.Equal(t, drawTime, tr.Time)
	assert.Len(t, tr.Entropy, 64)
	assert.Equal(t, hex.EncodeToString(f.jobs["job-1"][8:40]), tr.Entropy)
	for i, v := range got {
		assert.Equal(t, uint64(v), tr.Outputs[i])
	}
	require.NoError(t, Verify(tr))
	require.NoError(t, VerifyEntropy(context.Background(), tr, f.jobData))
	assert.Equal(t, 1, f.reads)

	// The outputs are the replay of the entropy by the spec.
	seed, _ := hex.DecodeString(tr.Entropy)
	assert.Equal(t, pick(newStream(seed), 6, 49), tr.Outputs)
}

func TestIntAndShuffle(t *testing.T) {
	f := newFake()
	v, tr, err := Int(context.Background(), f, 1<<63+1, clock())
	require.NoError(t, err)
	assert.Equal(t, []uint64{v}, tr.Outputs)
	assert.Equal(t, KindInt, tr.Kind)
	require.NoError(t, Verify(tr))

	perm, tr, err := Shuffle(context.Background(), f, 52, clock())
	require.NoError(t, err)
	assert.Len(t, perm, 52)
	assert.Equal(t, KindShuffle, tr.Kind)
	require.NoError(t, Verify(tr))
	assert.Equal(t, 2, f.reads, "one read per draw")
}

func TestTranscriptJSONRoundTrip(t *testing.T) {
	_, tr, err := Pick(context.Background(), newFake(), 6, 49, clock(), ForEvent("lotto-1"))
	require.NoError(t, err)
	b, err := json.MarshalIndent(tr, "", "  ")
	require.NoError(t, err)
	for _, s := range []string{`"algorithm": "provenrand-draw"`, `"verifiable": true`, `"class": "verifiable"`, `"event": "lotto-1"`, `"kind": "pick"`} {
		assert.Contains(t, string(b), s)
	}
	back, err := ParseTranscript(b)
	require.NoError(t, err)
	assert.Equal(t, tr, back)
	require.NoError(t, Verify(back))

	_, err = ParseTranscript([]byte(strings.Replace(string(b), `"kind"`, `"extra": 1, "kind"`, 1)))
	assert.ErrorIs(t, err, ErrInvalid, "unknown members are refused")
	_, err = ParseTranscript(append(b, []byte(" {}")...))
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = ParseTranscript([]byte("not json"))
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestDrawRefusesFallbackByDefault(t *testing.T) {
	f := newFake()
	f.class = entropy.ProvenanceFallback
	f.reason = errors.New("quantropy: 503 unavailable")
	_, tr, err := Pick(context.Background(), f, 6, 49)
	assert.ErrorIs(t, err, ErrNotVerifiable)
	assert.ErrorIs(t, err, f.reason, "the reason is reachable")
	assert.Nil(t, tr)
	_, _, err = Int(context.Background(), f, 10)
	assert.ErrorIs(t, err, ErrNotVerifiable)
	_, _, err = Shuffle(context.Background(), f, 10)
	assert.ErrorIs(t, err, ErrNotVerifiable)
}

func TestAllowFallbackTranscriptSaysSo(t *testing.T) {
	f := newFake()
	f.class = entropy.ProvenanceFallback
	f.reason = errors.New("source down")
	_, tr, err := Pick(context.Background(), f, 6, 49, AllowFallback(), clock())
	require.NoError(t, err)
	assert.False(t, tr.Verifiable)
	assert.Equal(t, WarningFallback, tr.Warning)
	require.NoError(t, Verify(tr))

	b, err := json.Marshal(tr)
	require.NoError(t, err)
	s := string(b)
	assert.Contains(t, s, `"verifiable":false,"warning":"NOT VERIFIABLE`)
	assert.Contains(t, s, `"class":"fallback"`)
	assert.Less(t, strings.Index(s, "NOT VERIFIABLE"), strings.Index(s, `"outputs"`), "the warning comes before the result")
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, f.jobData), ErrNotVerifiable)
}

func TestDrawRefusesDerived(t *testing.T) {
	f := newFake()
	f.class = entropy.ProvenanceDerived
	_, _, err := Pick(context.Background(), f, 6, 49, AllowFallback())
	assert.ErrorIs(t, err, ErrDerived)
}

func TestDrawBadInputs(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	errs := []error{}
	_, _, err := Int(ctx, f, 0)
	errs = append(errs, err)
	for _, c := range [][2]int{{0, 49}, {-1, 49}, {6, 0}, {50, 49}, {MaxItems + 1, MaxItems + 2}} {
		_, _, err = Pick(ctx, f, c[0], c[1])
		errs = append(errs, err)
	}
	for _, n := range []int{0, -5, MaxItems + 1} {
		_, _, err = Shuffle(ctx, f, n)
		errs = append(errs, err)
	}
	_, _, err = Int(ctx, nil, 5)
	errs = append(errs, err)
	var typedNil *entropy.Provider
	_, _, err = Int(ctx, typedNil, 5)
	errs = append(errs, err)
	_, _, err = Int(ctx, f, 5, nil)
	errs = append(errs, err)
	for i, err := range errs {
		assert.ErrorIs(t, err, ErrBadInput, "case %d", i)
	}
	assert.Equal(t, 0, f.reads, "no entropy is spent on a bad draw")
}

func TestDrawReadErrors(t *testing.T) {
	f := newFake()
	f.err = context.DeadlineExceeded
	_, _, err := Pick(context.Background(), f, 1, 2)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	f = newFake()
	f.shortLbl = true
	_, _, err = Int(context.Background(), f, 2)
	assert.ErrorContains(t, err, "label covers 31 bytes")

	_, _, err = Int(context.Background(), plainSource{newFake()}, 2, ForEvent("e"))
	assert.ErrorIs(t, err, ErrNoEvents)
}

// TestEventDrawnOnce: the same event gives the same draw, from many
// goroutines at once, with one fetch.
func TestEventDrawnOnce(t *testing.T) {
	f := newFake()
	const workers = 16
	results := make([][]int, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, tr, err := Pick(context.Background(), f, 6, 49, ForEvent("lotto-2026-18"))
			assert.NoError(t, err)
			if err == nil {
				assert.Equal(t, "lotto-2026-18", tr.Event)
				assert.NoError(t, Verify(tr))
			}
			results[i] = got
		}()
	}
	wg.Wait()
	for i := 1; i < workers; i++ {
		assert.Equal(t, results[0], results[i])
	}
	assert.Equal(t, 1, f.fetches)

	other, _, err := Pick(context.Background(), f, 6, 49, ForEvent("lotto-2026-19"))
	require.NoError(t, err)
	assert.Equal(t, 2, f.fetches)
	assert.NotEqual(t, results[0], other)
	// A source without ReadFor cannot make an event draw.
	_, _, err = Pick(context.Background(), plainSource{f}, 6, 49, ForEvent("lotto-2026-18"))
	assert.ErrorIs(t, err, ErrNoEvents)
}

// mutation changes one field of a transcript. detect says whether Verify
// finds it even when the digest is recomputed after the change.
type mutation struct {
	name   string
	detect bool
	apply  func(*Transcript)
}

func mutations() []mutation {
	return []mutation{
		{"algorithm", true, func(t *Transcript) { t.Algorithm = "provenrand-draw2" }},
		{"version", true, func(t *Transcript) { t.Version = 2 }},
		{"verifiable", true, func(t *Transcript) { t.Verifiable = !t.Verifiable }},
		{"warning added", true, func(t *Transcript) { t.Warning = WarningFallback }},
		{"warning other", true, func(t *Transcript) { t.Warning = "note" }},
		{"kind", true, func(t *Transcript) { t.Kind = KindShuffle }},
		{"kind unknown", true, func(t *Transcript) { t.Kind = "roll" }},
		{"inputs.n", true, func(t *Transcript) { t.Inputs.N = 50 }},
		{"inputs.k", true, func(t *Transcript) { t.Inputs.K = 5 }},
		{"outputs value", true, func(t *Transcript) { t.Outputs[2] = (t.Outputs[2] + 1) % 49 }},
		{"outputs order", true, func(t *Transcript) { t.Outputs[0], t.Outputs[1] = t.Outputs[1], t.Outputs[0] }},
		{"outputs dropped", true, func(t *Transcript) { t.Outputs = t.Outputs[:5] }},
		{"outputs added", true, func(t *Transcript) { t.Outputs = append(t.Outputs, 48) }},
		{"entropy byte", true, func(t *Transcript) { t.Entropy = flipHex(t.Entropy) }},
		{"entropy case", true, func(t *Transcript) { t.Entropy = strings.ToUpper(t.Entropy) }},
		{"entropy short", true, func(t *Transcript) { t.Entropy = t.Entropy[:62] }},
		{"label class", true, func(t *Transcript) {
			t.Label.Verifiable = false
			t.Label.Reason = errors.New("x")
		}},
		{"label reason", true, func(t *Transcript) { t.Label.Reason = errors.New("x") }},
		{"label derived", true, func(t *Transcript) { t.Label.Derived = true }},
		{"label length", true, func(t *Transcript) { t.Label.Spans[0].Length = 31 }},
		{"label job removed", true, func(t *Transcript) { t.Label.Spans[0].JobID = "" }},
		// Fallback bytes passed off as a job: no source has the fallback's name.
		{"label source the fallback's", true, func(t *Transcript) { t.Label.Spans[0].Source = entropy.FallbackSource }},
		{"label negative offset", true, func(t *Transcript) { t.Label.Spans[0].Offset = -1 }},
		{"time zero", true, func(t *Transcript) { t.Time = time.Time{} }},
		{"digest", true, func(t *Transcript) { t.Digest = flipHex(t.Digest) }},
		// Only the digest (and VerifyEntropy, or a journal) can see these.
		{"label span added", false, func(t *Transcript) {
			t.Label.Spans[0].Length = 16
			t.Label.Spans = append(t.Label.Spans, entropy.Span{Source: "fake", JobID: "job-9", Length: 16})
		}},
		{"label job", false, func(t *Transcript) { t.Label.Spans[0].JobID = "job-2" }},
		{"label offset", false, func(t *Transcript) { t.Label.Spans[0].Offset = 9 }},
		{"label source", false, func(t *Transcript) { t.Label.Spans[0].Source = "other" }},
		{"time", false, func(t *Transcript) { t.Time = t.Time.Add(time.Hour) }},
		{"event", false, func(t *Transcript) { t.Event = "lotto-2" }},
		{"event removed", false, func(t *Transcript) { t.Event = "" }},
	}
}

// flipHex changes the first hex digit of s.
func flipHex(s string) string {
	c := byte('0')
	if s[0] == '0' {
		c = '1'
	}
	return string(c) + s[1:]
}

// TestTranscriptTamper changes each field of a transcript: Verify fails for
// every change; with the digest recomputed after the change it still fails
// for every field it can check by replay, and VerifyEntropy catches the
// label's job and offset.
func TestTranscriptTamper(t *testing.T) {
	f := newFake()
	_, orig, err := Pick(context.Background(), f, 6, 49, clock(), ForEvent("lotto-1"))
	require.NoError(t, err)
	require.NoError(t, Verify(orig))
	clone := func() *Transcript {
		b, err := json.Marshal(orig)
		require.NoError(t, err)
		c, err := ParseTranscript(b)
		require.NoError(t, err)
		return c
	}
	for _, m := range mutations() {
		t.Run(m.name, func(t *testing.T) {
			tr := clone()
			m.apply(tr)
			assert.Error(t, Verify(tr), "changed %s must not verify", m.name)

			if m.name == "digest" {
				return
			}
			tr = clone()
			m.apply(tr)
			tr.Digest, err = digest(tr)
			require.NoError(t, err)
			if m.detect {
				assert.Error(t, Verify(tr), "changed %s must not verify even with a new digest", m.name)
			} else {
				assert.NoError(t, Verify(tr), "documented limit: %s is guarded by the digest only", m.name)
				if strings.HasPrefix(m.name, "label") {
					assert.Error(t, VerifyEntropy(context.Background(), tr, f.jobData))
				}
			}
		})
	}
}

// TestFakedEntropyCaughtByJobs: a transcript made up from scratch with a
// consistent replay and digest verifies, but not against the service's job.
func TestFakedEntropyCaughtByJobs(t *testing.T) {
	f := newFake()
	_, tr, err := Pick(context.Background(), f, 6, 49, clock())
	require.NoError(t, err)
	tr.Entropy = flipHex(tr.Entropy)
	seed, _ := hex.DecodeString(tr.Entropy)
	tr.Outputs = replay(tr.Kind, tr.Inputs, seed)
	tr.Digest, err = digest(tr)
	require.NoError(t, err)
	require.NoError(t, Verify(tr))
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, f.jobData), ErrInvalid)

	tr.Label.Spans[0].JobID = "job-404"
	assert.ErrorContains(t, VerifyEntropy(context.Background(), tr, f.jobData), "no such job")
	tr.Label.Spans[0].JobID = "job-1"
	tr.Label.Spans[0].Offset = 1000
	assert.ErrorIs(t, VerifyEntropy(context.Background(), tr, f.jobData), ErrInvalid)
	assert.ErrorIs(t, VerifyEntropy(context.Background(), nil, f.jobData), ErrBadInput)
	assert.ErrorIs(t, Verify(nil), ErrInvalid)
}

func TestVerifyUnknownAlgorithm(t *testing.T) {
	_, tr, err := Int(context.Background(), newFake(), 6, clock())
	require.NoError(t, err)
	tr.Version = 2
	assert.ErrorIs(t, Verify(tr), ErrUnknownAlgorithm)
	tr.Version = 1
	tr.Algorithm = "rfc3797"
	assert.ErrorIs(t, Verify(tr), ErrUnknownAlgorithm)
}

// ForEvent("") is an error, never an ordinary draw that could be re-rolled.
func TestForEventEmptyNameRefused(t *testing.T) {
	f := newFake()
	_, _, err := Pick(context.Background(), f, 6, 49, ForEvent(""))
	assert.ErrorIs(t, err, ErrBadInput)
	assert.Zero(t, f.reads, "no entropy was read")
}

// TestNoMathRandInPackage checks that no non-test file of the package imports
// math/rand or math/rand/v2.
func TestNoMathRandInPackage(t *testing.T) {
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

// TestParseTranscriptFromFile round-trips through a file as the CLI does.
func TestParseTranscriptFromFile(t *testing.T) {
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
