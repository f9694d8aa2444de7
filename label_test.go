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
