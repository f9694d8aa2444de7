package entropy

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fallback bytes come from a buffered crypto/rand: each is handed out once
// and its slot zeroed, and the buffer is zeroed at Close.
func TestFallbackBufferSingleUse(t *testing.T) {
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p, err := New(src, fast()...)
	require.NoError(t, err)
	seen := map[string]bool{}
	for i := 0; i < 300; i++ { // more than one buffer's worth
		b := make([]byte, 32)
		lb, err := p.ReadLabelled(context.Background(), b)
		require.NoError(t, err)
		require.False(t, lb.Verifiable)
		require.False(t, seen[string(b)], "fallback bytes served twice")
		seen[string(b)] = true
	}
	var lanes []*run
	for _, sh := range p.shards {
		sh.fbMu.Lock()
		if r := sh.fb.Load(); r != nil {
			lanes = append(lanes, r)
			served := bytes.Clone(r.data[:r.cursor()])
			assert.Equal(t, make([]byte, len(served)), served, "served fallback slots are zeroed")
			if rest := r.data[r.cursor():]; len(rest) > 0 {
				assert.NotEqual(t, make([]byte, len(rest)), rest, "unread fallback bytes are random")
			}
		}
		sh.fbMu.Unlock()
	}
	require.NotEmpty(t, lanes)
	st := p.Stats()
	assert.Equal(t, uint64(300), st.FallbackReads)
	assert.Equal(t, uint64(300*32), st.FallbackBytes)
	require.NoError(t, p.Close())
	for _, r := range lanes {
		assert.Equal(t, make([]byte, len(r.data)), r.data, "the fallback buffer is zeroed at Close")
	}
}
