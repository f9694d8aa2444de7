package entropy

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// Bad input gets a clear error, never a panic (a NaN rate too: NaN compares
// false with everything, so it would otherwise mean "no limit").
func TestBadInput(t *testing.T) {
	_, err := New(nil)
	assert.Error(t, err)
	src := newScriptSource("q")
	for _, o := range []Option{
		nil, WithBufferSize(0), WithBufferSize(-1), WithFetchSize(0), WithRetry(0, time.Millisecond, time.Second),
		WithRetry(1, 0, time.Second), WithRetry(1, time.Second, time.Millisecond), WithRateLimit(0, 1),
		WithRateLimit(-1, 1), WithRateLimit(10, 0), WithRateLimit(rate.Limit(math.NaN()), 1), WithPolicy(Policy(7)), WithFailover(nil), WithShards(0),
		WithClock(nil), WithMaxRetryAfter(-1), WithFetchTimeout(0),
	} {
		_, err := New(src, o)
		assert.Error(t, err)
	}
	p := newTestProvider(t, src, fast()...)
	_, err = p.ReadLabelled(context.Background(), nil)
	assert.Error(t, err)
	_, err = p.ReadSecret(context.Background(), []byte{})
	assert.Error(t, err)
	_, err = p.ReadFor(context.Background(), "", make([]byte, 4))
	assert.Error(t, err)
	n, err := p.Read(nil)
	assert.Zero(t, n)
	assert.NoError(t, err)
}

// Bad input: a nil context is a clear error, as in ReadLabelled, not a panic.
func TestWaitReadyNilContext(t *testing.T) {
	p := newTestProvider(t, newScriptSource("q"), fast()...)
	assert.NotPanics(t, func() {
		//lint:ignore SA1012 the point of the test
		_ = p.WaitReady(nil) //nolint:staticcheck
	})
}

// WaitReady after Close says ErrClosed, every time.
func TestWaitReadyAfterClose(t *testing.T) {
	p, err := New(newScriptSource("q"), fast()...)
	require.NoError(t, err)
	ready(t, p)
	require.NoError(t, p.Close())
	nils := 0
	for i := 0; i < 200; i++ {
		if p.WaitReady(context.Background()) == nil {
			nils++
		}
	}
	assert.Zero(t, nils, "WaitReady returned nil after Close")
}
