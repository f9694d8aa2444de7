package entropy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLabelJSONRoundTrip(t *testing.T) {
	for _, l := range []Label{
		{Verifiable: true, Spans: []Span{{Source: "quantropy", JobID: "j1", Offset: 4, Length: 28}, {Source: "quantropy", JobID: "j2", Length: 4}}},
		{Derived: true, Spans: []Span{{Source: "drand/quicknet", JobID: "123", Length: 32}}},
		{Spans: []Span{{Source: FallbackSource, Length: 16}}, Reason: errors.New("entropy: verifiable entropy unavailable: HTTP 503")},
	} {
		b, err := json.Marshal(l)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		assert.Equal(t, l.Provenance().String(), m["class"], "the class is spelt out")
		var back Label
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, l.Verifiable, back.Verifiable)
		assert.Equal(t, l.Derived, back.Derived)
		assert.Equal(t, l.Spans, back.Spans)
		if l.Reason != nil {
			assert.EqualError(t, back.Reason, l.Reason.Error())
		} else {
			assert.NoError(t, back.Reason)
		}
	}
}

// A label whose class contradicts its flags is refused: a transcript edited
// to call fallback bytes verifiable does not load.
func TestLabelJSONRejectsContradiction(t *testing.T) {
	var l Label
	assert.Error(t, json.Unmarshal([]byte(`{"class":"fallback","verifiable":true,"spans":[]}`), &l))
	assert.Error(t, json.Unmarshal([]byte(`{"class":"verifiable","verifiable":true,"derived":true,"spans":[]}`), &l))
	assert.Error(t, json.Unmarshal([]byte(`{"class":"verifiable","verifiable":false,"spans":[]}`), &l))
}

// A label whose spans its class rules out is refused: fallback bytes edited
// to name a service's job, a verifiable span of crypto/rand or of no job, a
// negative length that would shrink Len, a reason on a verifiable read.
func TestLabelJSONRejectsSpansItsClassRulesOut(t *testing.T) {
	for name, js := range map[string]string{
		"fallback naming a job":         `{"class":"fallback","verifiable":false,"spans":[{"source":"quantropy","job_id":"j1","offset":0,"length":8}]}`,
		"fallback of a service":         `{"class":"fallback","verifiable":false,"spans":[{"source":"quantropy","offset":0,"length":8}]}`,
		"fallback with an offset":       `{"class":"fallback","verifiable":false,"spans":[{"source":"crypto/rand","offset":4,"length":8}]}`,
		"fallback public":               `{"class":"fallback","verifiable":false,"spans":[{"source":"crypto/rand","offset":0,"length":8,"public":true}]}`,
		"verifiable crypto/rand":        `{"class":"verifiable","verifiable":true,"spans":[{"source":"crypto/rand","job_id":"j1","offset":0,"length":8}]}`,
		"verifiable with no job":        `{"class":"verifiable","verifiable":true,"spans":[{"source":"quantropy","offset":0,"length":8}]}`,
		"derived with no job":           `{"class":"derived","verifiable":false,"derived":true,"spans":[{"source":"quantropy","offset":0,"length":32}]}`,
		"derived crypto/rand":           `{"class":"derived","verifiable":false,"derived":true,"spans":[{"source":"crypto/rand","job_id":"j","offset":0,"length":32}]}`,
		"negative length":               `{"class":"verifiable","verifiable":true,"spans":[{"source":"q","job_id":"j","offset":0,"length":40},{"source":"q","job_id":"k","offset":0,"length":-8}]}`,
		"negative offset":               `{"class":"verifiable","verifiable":true,"spans":[{"source":"q","job_id":"j","offset":-1,"length":8}]}`,
		"negative fallback length":      `{"class":"fallback","verifiable":false,"spans":[{"source":"crypto/rand","offset":0,"length":-8}]}`,
		"verifiable with a reason":      `{"class":"verifiable","verifiable":true,"spans":[{"source":"q","job_id":"j","offset":0,"length":8}],"reason":"HTTP 503"}`,
		"derived with a reason":         `{"class":"derived","verifiable":false,"derived":true,"spans":[{"source":"q","job_id":"j","offset":0,"length":32}],"reason":"x"}`,
		"second span of a fallback job": `{"class":"fallback","verifiable":false,"spans":[{"source":"crypto/rand","offset":0,"length":8},{"source":"q","job_id":"j","offset":0,"length":8}]}`,
	} {
		var l Label
		assert.Error(t, json.Unmarshal([]byte(js), &l), name)
		assert.Zero(t, l.Len(), "%s: a refused label leaves the target alone", name)
	}
	// What the Provider makes still loads: a fallback with no spans (the
	// label of a failed read) and one with a reason.
	for _, js := range []string{
		`{"class":"fallback","verifiable":false,"spans":[]}`,
		`{"class":"fallback","verifiable":false,"spans":[{"source":"crypto/rand","offset":0,"length":8}],"reason":"pool empty"}`,
	} {
		var l Label
		assert.NoError(t, json.Unmarshal([]byte(js), &l), js)
	}
}

func TestLabelString(t *testing.T) {
	l := Label{Verifiable: true, Spans: []Span{{Source: "quantropy", JobID: "j1", Offset: 4, Length: 28}}}
	assert.Equal(t, "verifiable quantropy j1[4:32]", l.String())
	assert.Equal(t, 28, l.Len())
	f := Label{Spans: []Span{{Source: FallbackSource, Length: 8}}, Reason: ErrPoolEmpty}
	assert.Equal(t, "fallback crypto/rand[8] (entropy: pool holds too few verifiable bytes)", f.String())
}

// A label that lost its class or gained a member (in itself or a span) does
// not load: an edited transcript cannot pass as the original.
func TestLabelJSONStrict(t *testing.T) {
	var l Label
	assert.Error(t, json.Unmarshal([]byte(`{"verifiable":true,"spans":[]}`), &l), "no class")
	assert.Error(t, json.Unmarshal([]byte(`{"class":"verifiable","verifiable":true,"spans":[],"attested":"yes"}`), &l))
	assert.Error(t, json.Unmarshal([]byte(`{"class":"verifiable","verifiable":true,"spans":[{"source":"q","job_id":"j","offset":0,"length":1,"note":"x"}]}`), &l))
	require.NoError(t, json.Unmarshal([]byte(`{"class":"verifiable","verifiable":true,"spans":[{"source":"q","job_id":"j","offset":0,"length":1,"public":true}]}`), &l))
	assert.True(t, l.Spans[0].Public)
}

// Bytes of a public source (a drand round) are labelled public in every span,
// so nobody mistakes them for secret material.
func TestPublicBlocksLabelledPublic(t *testing.T) {
	var seq int
	src := SourceFunc(func(ctx context.Context, n int) (Block, error) {
		seq++
		d := make([]byte, min(n, 32))
		rand.NewChaCha8([32]byte{byte(seq)}).Read(d)
		return Block{Data: d, Source: "drand/quicknet", JobID: fmt.Sprint(seq), Verifiable: true, Public: true}, nil
	})
	p := newTestProvider(t, src, fast(WithBufferSize(256), WithFetchSize(32))...)
	full(t, p, 64)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 40))
	require.NoError(t, err)
	require.NotEmpty(t, lb.Spans)
	for _, sp := range lb.Spans {
		assert.True(t, sp.Public)
	}
	assert.Contains(t, lb.String(), "public")
	js, err := json.Marshal(lb)
	require.NoError(t, err)
	assert.Contains(t, string(js), `"public":true`)
}
