package entropy

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A ReadProven whose request failed once and then succeeded on a retry
// leaves the sources known to work: the next ReadProven under Fail sends its
// request rather than answering at once with the failure that was retried.
func TestReadProvenAfterARetriedFailureStillFetches(t *testing.T) {
	src := newScriptSource("blip")
	p := newTestProvider(t, src, fast(WithPolicy(Fail), WithBufferSize(4096), WithFetchSize(1024))...)
	full(t, p, 4096) // the refill is idle: the scripted failure is ReadProven's
	src.set(nil, step{err: &APIError{StatusCode: 503}})
	before := src.callCount()
	b := make([]byte, 64)
	lb, _, err := p.ReadProven(context.Background(), b)
	require.NoError(t, err, "the 503 is retried")
	require.True(t, lb.Verifiable)
	require.Equal(t, before+2, src.callCount())
	lb, _, err = p.ReadProven(context.Background(), b)
	require.NoError(t, err, "the retried failure still refuses ReadProven")
	require.True(t, lb.Verifiable)
	require.Equal(t, before+3, src.callCount())
}
