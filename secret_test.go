package entropy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Contract point 11: a derived read is labelled derived, names the pool
// bytes it drew on, and its output is neither those bytes nor any function
// of them alone.
func TestSecretReadIsDerived(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1))...)
	full(t, p, 1024)
	out := make([]byte, 32)
	lb, err := p.ReadSecret(context.Background(), out)
	require.NoError(t, err)
	assert.True(t, lb.Derived)
	assert.False(t, lb.Verifiable)
	assert.Nil(t, lb.Reason)
	assert.Equal(t, ProvenanceDerived, lb.Provenance())
	require.Equal(t, secretSeed, lb.Len())
	assert.Empty(t, newLedger(src).claim(lb.Spans))

	// The pool bytes that went in.
	var pool []byte
	for _, sp := range lb.Spans {
		d, ok := src.job(sp.JobID)
		require.True(t, ok)
		pool = append(pool, d[sp.Offset:sp.Offset+sp.Length]...)
	}
	assert.False(t, bytes.Contains(pool, out[:8]), "output shares bytes with the pool input")
	// Anyone who knows only the job bytes (the service, an auditor) cannot
	// recompute the output: try the KDF with the local half zeroed, omitted,
	// or equal to the pool half.
	info := append([]byte(secretInfo), 0, 0, 0, 0)
	for _, ikm := range [][]byte{
		append(bytes.Clone(pool), make([]byte, secretSeed)...),
		pool,
		append(bytes.Clone(pool), pool...),
	} {
		guess, err := hkdf.Key(sha256.New, ikm, []byte(secretSalt), string(info), len(out))
		require.NoError(t, err)
		assert.NotEqual(t, guess, out)
	}
	// The same pool bytes with the local bytes it drew would match; since
	// those are gone, two reads never give the same output.
	out2 := make([]byte, 32)
	_, err = p.ReadSecret(context.Background(), out2)
	require.NoError(t, err)
	assert.NotEqual(t, out, out2)
	st := p.Stats()
	assert.Equal(t, uint64(2), st.DerivedReads)
	assert.Equal(t, uint64(64), st.DerivedBytes)
}

// Reads longer than one HKDF output use one seed per 8160-byte chunk, with
// the chunk index in the info, so no two chunks repeat.
func TestSecretReadLong(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast()...)
	full(t, p, 1024)
	out := make([]byte, 2*secretChunk+10)
	lb, err := p.ReadSecret(context.Background(), out)
	require.NoError(t, err)
	assert.Equal(t, 3*secretSeed, lb.Len())
	assert.NotEqual(t, out[:64], out[secretChunk:secretChunk+64])
	assert.NotEqual(t, make([]byte, 10), out[len(out)-10:])
}

// Contract points 2, 3 and 11 together: derived and raw reads from many
// goroutines never share a pool byte, and each read has one class.
func TestSecretReadsNeverReuseSpans(t *testing.T) {
	src := newScriptSource("quantropy")
	src.maxLen = 700
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(8192), WithFetchSize(700))...)
	led := newLedger(src)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := 0; i < 200; i++ {
				b := make([]byte, 16+i%64)
				var lb Label
				var err error
				var msg string
				if (g+i)%2 == 0 {
					lb, err = p.ReadSecret(ctx, b)
					if err == nil {
						if !lb.Derived || lb.Verifiable {
							msg = "secret read not labelled derived"
						} else {
							msg = led.claim(lb.Spans)
						}
					}
				} else {
					lb, err = p.ReadLabelled(ctx, b)
					if err == nil {
						if lb.Derived {
							msg = "raw read labelled derived"
						} else {
							msg = led.check(b, lb)
						}
					}
				}
				if err != nil {
					msg = err.Error()
				}
				if msg != "" {
					mu.Lock()
					problems = append(problems, msg)
					mu.Unlock()
					return
				}
			}
		}(g)
	}
	wg.Wait()
	require.Empty(t, problems)
}

// Under each policy with the source down, a secret read follows the policy:
// Degrade gives crypto/rand alone labelled as a fallback (never derived),
// Fail an error, Defer the context's error.
func TestSecretReadPolicies(t *testing.T) {
	for _, pol := range []Policy{Degrade, Fail, Defer} {
		t.Run(pol.String(), func(t *testing.T) {
			src := newScriptSource("quantropy")
			src.set(&step{err: &APIError{StatusCode: 503}})
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
			require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			out := make([]byte, 32)
			lb, err := p.ReadSecret(ctx, out)
			switch pol {
			case Degrade:
				require.NoError(t, err)
				assert.Equal(t, ProvenanceFallback, lb.Provenance())
				assert.Equal(t, []Span{{Source: FallbackSource, Length: 32}}, lb.Spans)
				assert.ErrorIs(t, lb.Reason, ErrServiceUnavailable)
				assert.NotEqual(t, make([]byte, 32), out)
			case Fail:
				assert.ErrorIs(t, err, ErrUnavailable)
				assert.Equal(t, make([]byte, 32), out)
			case Defer:
				assert.ErrorIs(t, err, context.DeadlineExceeded)
			}
		})
	}
}

// SecretReader and WithDerivedReads make key generation secret-safe.
func TestSecretReaderForKeys(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithPolicy(Defer))...)
	pub, priv, err := ed25519.GenerateKey(p.SecretReader())
	require.NoError(t, err)
	sig := ed25519.Sign(priv, []byte("m"))
	assert.True(t, ed25519.Verify(pub, []byte("m"), sig))
	assert.Equal(t, uint64(1), p.Stats().DerivedReads)

	q := newTestProvider(t, newScriptSource("q2"), fast(WithPolicy(Defer), WithDerivedReads())...)
	b := make([]byte, 48)
	n, err := q.Read(b)
	require.NoError(t, err)
	assert.Equal(t, 48, n)
	assert.Equal(t, uint64(1), q.Stats().DerivedReads)
	assert.Zero(t, q.Stats().VerifiableReads)
}
