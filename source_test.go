package entropy

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Bad input: a typed nil Source (a nil SourceFunc) is a failing source, not a
// crash; Degrade still serves, labelled fallback, and Fail reports
// errSourcePanic as the cause.
func TestNilSourceFuncIsAFailingSource(t *testing.T) {
	var f SourceFunc
	p, err := New(f, fast()...)
	if err != nil {
		return // refusing it at New is fine too
	}
	defer p.Close()
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures > 0 }, 5*time.Second, time.Millisecond)
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 8))
	require.NoError(t, err)
	assert.False(t, lb.Verifiable)
	assert.ErrorIs(t, lb.Reason, errSourcePanic)
	n, err := p.Read(make([]byte, 8))
	assert.NoError(t, err)
	assert.Equal(t, 8, n)
}
