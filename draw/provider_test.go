package draw_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/draw"
	"github.com/provenrand/entropy/journal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// jobSource is a verifiable entropy.Source whose jobs are kept, as a
// service keeps them for auditors.
type jobSource struct {
	name string
	mu   sync.Mutex
	jobs map[string][]byte
	down bool
}

func newJobSource(name string) *jobSource { return &jobSource{name: name, jobs: map[string][]byte{}} }

func (s *jobSource) Fetch(_ context.Context, n int) (entropy.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return entropy.Block{}, fmt.Errorf("%s: %w", s.name, entropy.ErrUnavailable)
	}
	id := fmt.Sprintf("%s-job-%d", s.name, len(s.jobs)+1)
	var data []byte
	for i := 0; len(data) < n; i++ {
		d := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", id, i)))
		data = append(data, d[:]...)
	}
	data = data[:n]
	s.jobs[id] = data
	return entropy.Block{Data: data, Source: s.name, JobID: id, Verifiable: true, Time: time.Now()}, nil
}

// jobData is the auditor's view of the service.
func (s *jobSource) jobData(_ context.Context, source, job string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.jobs[job]
	if !ok || source != s.name {
		return nil, errors.New("no such job")
	}
	return d, nil
}

func newProvider(t *testing.T, src entropy.Source, opts ...entropy.Option) *entropy.Provider {
	t.Helper()
	p, err := entropy.New(src, append([]entropy.Option{entropy.WithFetchSize(256), entropy.WithBufferSize(1024)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestDrawWithProvider(t *testing.T) {
	src := newJobSource("quantropy")
	p := newProvider(t, src, entropy.WithPolicy(entropy.Defer))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	balls, tr, err := draw.Pick(ctx, p, 6, 49)
	require.NoError(t, err)
	assert.Len(t, balls, 6)
	assert.True(t, tr.Verifiable)
	assert.Equal(t, entropy.ProvenanceVerifiable, tr.Label.Provenance())
	require.NoError(t, draw.Verify(tr))
	require.NoError(t, draw.VerifyEntropy(ctx, tr, src.jobData))

	// Single use: a second draw uses other bytes.
	_, tr2, err := draw.Pick(ctx, p, 6, 49)
	require.NoError(t, err)
	assert.NotEqual(t, tr.Entropy, tr2.Entropy)
}

func TestDrawWithDegradedProvider(t *testing.T) {
	src := newJobSource("quantropy")
	src.down = true
	p := newProvider(t, src, entropy.WithPolicy(entropy.Degrade), entropy.WithRetry(1, time.Millisecond, time.Millisecond))
	ctx := context.Background()

	// Without AllowFallback the draw waits for a verifiable job until its
	// context ends, and draws nothing; with a context that never ends it
	// does not wait.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, tr, err := draw.Pick(short, p, 6, 49)
	assert.ErrorIs(t, err, draw.ErrNotVerifiable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Nil(t, tr)
	_, tr, err = draw.Pick(ctx, p, 6, 49)
	assert.ErrorIs(t, err, draw.ErrNotVerifiable)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Nil(t, tr)

	_, tr, err = draw.Pick(ctx, p, 6, 49, draw.AllowFallback())
	require.NoError(t, err)
	assert.False(t, tr.Verifiable)
	assert.Equal(t, draw.WarningFallback, tr.Warning)
	require.NoError(t, draw.Verify(tr))
}

// Draws require verifiable entropy by default, as Defer with the caller's
// context: under Degrade (whose fallback a draw refuses) as under Defer, a
// draw made while the source is down waits, and once the source is back it
// is drawn from a verifiable job. A permanent failure ends the wait at
// once, and so does the Fail policy, whose callers asked for an answer at
// once.
func TestDrawWaitsForVerifiableEntropyUnlessFail(t *testing.T) {
	for _, pol := range []entropy.Policy{entropy.Degrade, entropy.Defer} {
		t.Run(pol.String(), func(t *testing.T) {
			src := newJobSource("quantropy")
			src.down = true
			p := newProvider(t, src, entropy.WithPolicy(pol), entropy.WithRetry(1, time.Millisecond, time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			type result struct {
				tr  *draw.Transcript
				err error
			}
			done := make(chan result, 1)
			go func() {
				_, tr, err := draw.Pick(ctx, p, 6, 49)
				done <- result{tr, err}
			}()
			// The draw is still waiting once the source has failed it.
			require.Eventually(t, func() bool { return p.Stats().Sources[0].Failures > 0 }, 10*time.Second, time.Millisecond)
			select {
			case r := <-done:
				t.Fatalf("the draw ended while the source was down: %v", r.err)
			default:
			}
			src.mu.Lock()
			src.down = false
			src.mu.Unlock()
			r := <-done
			require.NoError(t, r.err)
			assert.True(t, r.tr.Verifiable)
			require.NoError(t, draw.Verify(r.tr))
		})
	}

	down := entropy.SourceFunc(func(context.Context, int) (entropy.Block, error) {
		return entropy.Block{}, &entropy.APIError{StatusCode: 401, Code: "unauthorized"}
	})
	p := newProvider(t, down, entropy.WithPolicy(entropy.Degrade), entropy.WithRetry(1, time.Millisecond, time.Millisecond))
	long, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, _, err := draw.Pick(long, p, 6, 49)
	assert.ErrorIs(t, err, entropy.ErrPermanent, "a permanent failure ends the wait")
	assert.ErrorIs(t, err, draw.ErrNotVerifiable)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)

	src := newJobSource("quantropy")
	src.down = true
	p = newProvider(t, src, entropy.WithPolicy(entropy.Fail), entropy.WithRetry(1, time.Millisecond, time.Millisecond))
	_, _, err = draw.Pick(long, p, 6, 49)
	assert.ErrorIs(t, err, entropy.ErrUnavailable, "Fail answers at once")
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
}

// A Defer Provider whose source is down: the caller's context bounds the
// wait, and nothing is drawn.
func TestDrawDeferTimesOut(t *testing.T) {
	src := newJobSource("quantropy")
	src.down = true
	p := newProvider(t, src, entropy.WithPolicy(entropy.Defer), entropy.WithRetry(1, time.Millisecond, time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, tr, err := draw.Int(ctx, p, 10)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Nil(t, tr)
}

// TestEventDrawSurvivesRestart: an event drawn with a journal gives the same
// draw after the process restarts with the same journal, even from a
// Provider over another source; many goroutines share one draw.
func TestEventDrawSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	j, err := journal.Open(path)
	require.NoError(t, err)
	src := newJobSource("quantropy")
	p, err := entropy.New(src, entropy.WithJournal(j), entropy.WithFetchSize(256))
	require.NoError(t, err)

	const workers = 8
	trs := make([]*draw.Transcript, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, tr, err := draw.Pick(ctx, p, 6, 49, draw.ForEvent("lotto-2026-21"))
			assert.NoError(t, err)
			trs[i] = tr
		}()
	}
	wg.Wait()
	for _, tr := range trs {
		require.NotNil(t, tr)
		assert.Equal(t, trs[0].Outputs, tr.Outputs)
		assert.Equal(t, trs[0].Entropy, tr.Entropy)
	}
	require.NoError(t, draw.VerifyEntropy(ctx, trs[0], src.jobData))
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())

	rep, err := journal.VerifyFile(path)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Events)
	assert.Equal(t, []string{"lotto-2026-21"}, rep.EventNames)

	// Restart: another journal handle, another source.
	j, err = journal.Open(path)
	require.NoError(t, err)
	defer j.Close()
	p2, err := entropy.New(newJobSource("other"), entropy.WithJournal(j), entropy.WithFetchSize(256))
	require.NoError(t, err)
	defer p2.Close()
	_, again, err := draw.Pick(ctx, p2, 6, 49, draw.ForEvent("lotto-2026-21"))
	require.NoError(t, err)
	assert.Equal(t, trs[0].Outputs, again.Outputs)
	assert.Equal(t, trs[0].Entropy, again.Entropy)
	assert.Equal(t, trs[0].Label, again.Label)
	require.NoError(t, draw.Verify(again))
}
