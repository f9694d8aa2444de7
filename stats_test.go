package entropy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Stats do not lie: after a run of mixed reads (ReadLabelled, Read,
// ReadSecret) from many goroutines while the source flips between healthy
// and failing, the counters equal what the readers saw, and the source
// counters equal what the source saw.
func TestStatsAddUpUnderMixedReads(t *testing.T) {
	src := newScriptSource("q")
	src.maxLen = 300
	p := newTestProvider(t, src, fast(WithBufferSize(2048), WithFetchSize(512), WithShards(2))...)
	full(t, p, 1500) // the first reads are verifiable; reads over 2048 bytes always fall back
	stopFlip := flipSource(src, 503, 3, time.Millisecond)
	var vReads, vBytes, fReads, fBytes, dReads, dBytes, rReads, rBytes atomic.Uint64
	runReaders(6, 300, func(g, i int) bool {
		n := 1 + (g*37+i*11)%2600
		b := make([]byte, n)
		switch i % 5 {
		case 3: // the io.Reader: its class is not known, only the totals
			got, err := p.Read(b)
			if !assert.NoError(t, err) || !assert.Equal(t, n, got) {
				return false
			}
			rReads.Add(1)
			rBytes.Add(uint64(n))
			return true
		case 4:
			lb, err := p.ReadSecret(context.Background(), b)
			if !assert.NoError(t, err) {
				return false
			}
			if lb.Derived {
				dReads.Add(1)
				dBytes.Add(uint64(n))
			} else {
				fReads.Add(1)
				fBytes.Add(uint64(n))
			}
			return true
		}
		lb, err := p.ReadLabelled(context.Background(), b)
		if !assert.NoError(t, err) {
			return false
		}
		if lb.Verifiable {
			vReads.Add(1)
			vBytes.Add(uint64(n))
		} else {
			fReads.Add(1)
			fBytes.Add(uint64(n))
		}
		return true
	})
	stopFlip()
	st := p.Stats()
	assert.Equal(t, vReads.Load()+fReads.Load()+rReads.Load(), st.VerifiableReads+st.FallbackReads)
	assert.Equal(t, vBytes.Load()+fBytes.Load()+rBytes.Load(), st.VerifiableBytes+st.FallbackBytes)
	assert.GreaterOrEqual(t, st.VerifiableReads, vReads.Load())
	assert.GreaterOrEqual(t, st.FallbackReads, fReads.Load())
	assert.LessOrEqual(t, st.VerifiableReads, vReads.Load()+rReads.Load())
	assert.LessOrEqual(t, st.FallbackBytes, fBytes.Load()+rBytes.Load())
	assert.Equal(t, dReads.Load(), st.DerivedReads)
	assert.Equal(t, dBytes.Load(), st.DerivedBytes)
	assert.Positive(t, vReads.Load(), "some reads were verifiable")
	assert.Positive(t, fReads.Load(), "some reads fell back")
	require.NoError(t, p.Close())
	st = p.Stats()
	s := st.Sources[0]
	assert.Equal(t, uint64(src.callCount()), s.Requests, "Requests counts every Fetch")
	// Every request gave an accepted block or failed, except at most one that
	// Close cancelled (a cancellation is not a failure).
	assert.GreaterOrEqual(t, s.Requests, s.BlocksAccepted+s.Failures)
	assert.LessOrEqual(t, s.Requests, s.BlocksAccepted+s.Failures+1)
	var total uint64
	for id := range src.jobs {
		total += uint64(len(src.jobs[id]))
	}
	assert.Equal(t, uint64(len(src.jobs)), s.BlocksAccepted)
	assert.Equal(t, total, s.BytesAccepted)
	assert.False(t, st.InFallback, "Close ends the open episode")
}
