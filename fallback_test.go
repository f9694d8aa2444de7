package entropy

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
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

// A fallback read allocates nothing, whatever the entry point and the size:
// Read, ReadLabelledInto, ReadSecret and SecretReader, and ReadLabelled,
// whose fallback span takes a span slot as a verifiable read's does.
func TestFallbackReadsAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates by itself; go test without -race counts the reads' allocations")
	}
	src := newScriptSource("quantropy")
	src.set(&step{err: &APIError{StatusCode: 503}})
	p := newTestProvider(t, src, fast(WithPolicy(Degrade), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	ctx := context.Background()
	r := p.SecretReader()
	for _, n := range []int{32, 4096} {
		b := make([]byte, n)
		var lb Label
		reads := map[string]func(){
			"Read": func() { _, _ = p.Read(b) },
			"ReadLabelledInto": func() {
				if err := p.ReadLabelledInto(ctx, b, &lb); err != nil || lb.Provenance() != ProvenanceFallback {
					t.Errorf("ReadLabelledInto: %v %v", err, lb)
				}
			},
			"ReadLabelled": func() {
				if lb, err := p.ReadLabelled(ctx, b); err != nil || lb.Provenance() != ProvenanceFallback {
					t.Errorf("ReadLabelled: %v %v", err, lb)
				}
			},
			"ReadSecret": func() {
				if lb, err := p.ReadSecret(ctx, b); err != nil || lb.Provenance() != ProvenanceFallback {
					t.Errorf("ReadSecret: %v %v", err, lb)
				}
			},
			"SecretReader": func() { _, _ = io.ReadFull(r, b) },
		}
		for name, read := range reads {
			read()
			assert.Zero(t, testing.AllocsPerRun(100, read), "%s of %d bytes", name, n)
		}
	}
	assert.Zero(t, p.Stats().DerivedReads, "no secret read was derived")
}
