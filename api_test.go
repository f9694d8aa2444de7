package entropy

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// The core public names and signatures are a promise: programs and tests
// outside the package rely on them. This fails to
// compile if one drifts.
func TestPublicNamesAndSignatures(t *testing.T) {
	var (
		_ func(Source, ...Option) (*Provider, error)              = New
		_ func(Policy) Option                                     = WithPolicy
		_ func(gobreaker.Settings) Option                         = WithBreaker
		_ func(rate.Limit, int) Option                            = WithRateLimit
		_ func(int) Option                                        = WithBufferSize
		_ func(*Provider, []byte) (int, error)                    = (*Provider).Read
		_ func(*Provider, context.Context, []byte) (Label, error) = (*Provider).ReadLabelled
		_ func(*Provider, context.Context, []byte, *Label) error  = (*Provider).ReadLabelledInto
		_ func(*Provider) error                                   = (*Provider).Close
		_ func(*Provider) Stats                                   = (*Provider).Stats
		_ io.Reader                                               = (*Provider)(nil)
		_ interface {
			Fetch(context.Context, int) (Block, error)
		} = Source(nil)
	)
	b := Block{Data: []byte{1}, Source: "s", JobID: "j", Verifiable: true, Proof: []byte{2}, Time: time.Time{}}
	sp := Span{Source: b.Source, JobID: b.JobID, Offset: 0, Length: len(b.Data)}
	lb := Label{Verifiable: true, Spans: []Span{sp}, Reason: nil}
	assert.Equal(t, 1, lb.Len())
	assert.Equal(t, Policy(0), Degrade)
	assert.Equal(t, Policy(1), Defer)
	assert.Equal(t, Policy(2), Fail)
	var e error = ErrUnavailable
	require.Error(t, e)
	e = ErrClosed
	require.Error(t, e)
}
