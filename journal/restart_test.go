package journal_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// hashSource is a verifiable source whose job IDs are prefix+N and whose
// data is a SHA-256 expansion of the job ID and a salt, so that two sources
// with different salts never give the same bytes.
func hashSource(name, prefix, salt string) entropy.Source {
	return hashIDSource(name, salt, func(k int64) string { return fmt.Sprintf("%s%d", prefix, k) })
}

// hashIDSource is hashSource with the job IDs that id gives (k counts
// the fetches from 1).
func hashIDSource(name, salt string, id func(k int64) string) entropy.Source {
	var k atomic.Int64
	return entropy.SourceFunc(func(_ context.Context, n int) (entropy.Block, error) {
		id := id(k.Add(1))
		data := make([]byte, 0, n+sha256.Size)
		for i := 0; len(data) < n; i++ {
			d := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", salt, id, i)))
			data = append(data, d[:]...)
		}
		return entropy.Block{Data: data[:n], Source: name, JobID: id, Verifiable: true, Time: time.Now()}, nil
	})
}

// handedOut is one successful ReadFor: what was handed out.
type handedOut struct {
	event string
	data  []byte
	label entropy.Label
}

// drawThenRestart draws each event with ReadFor from a Provider over
// src with a journal at a new path, closes both, and then checks contract
// point 8 across a restart: every event that ReadFor handed out comes back
// from a new Provider (over another source) with the same journal, with the
// same bytes and label. An event that ReadFor refused handed out nothing, and
// is not checked.
func drawThenRestart(t *testing.T, src entropy.Source, size int, events []string, opts ...entropy.Option) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	j, err := journal.Open(path)
	require.NoError(t, err)
	p, err := entropy.New(src, append([]entropy.Option{entropy.WithJournal(j)}, opts...)...)
	require.NoError(t, err)
	var handed []handedOut
	for _, ev := range events {
		b := make([]byte, size)
		l, err := p.ReadFor(ctx, ev, b)
		if err != nil {
			assert.Equal(t, make([]byte, size), b, "a refused event draw hands out no bytes")
			continue
		}
		handed = append(handed, handedOut{event: ev, data: b, label: l})
	}
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())

	// The journal verifies and opens again: it holds what was handed out.
	_, err = journal.VerifyFile(path)
	require.NoError(t, err, "the journal the Provider wrote does not verify")
	j, err = journal.Open(path)
	require.NoError(t, err, "the journal the Provider wrote cannot be opened again: no event in it can be asked for again")
	defer j.Close()
	p, err = entropy.New(hashSource("other", "other-", "other"), append([]entropy.Option{entropy.WithJournal(j)}, opts...)...)
	require.NoError(t, err)
	defer p.Close()
	for _, d := range handed {
		b := make([]byte, size)
		l, err := p.ReadFor(ctx, d.event, b)
		require.NoError(t, err, "event %.40q was handed out before the restart", d.event)
		assert.True(t, bytes.Equal(d.data, b), "event %.40q: other bytes after a restart (a re-roll)", d.event)
		assert.Equal(t, d.label, l, "event %.40q: another label after a restart", d.event)
	}
}

// TestEventNameNotUTF8SurvivesRestart: event names are Go strings and
// ReadFor takes any non-empty one. Names that are not valid UTF-8 (bytes
// from a file, a database, another language's string type) are drawn and
// handed out, but the journal record that made them "durable" is written in
// a form the journal itself refuses on the next Open: after a restart no
// event of that journal can be asked for again.
func TestEventNameNotUTF8SurvivesRestart(t *testing.T) {
	drawThenRestart(t, hashSource("quantropy", "job-", "first"), 32,
		[]string{"round-\xff", "round-\xfe", "round-\ufffd", "round-ok"})
}

// TestJobIDNotUTF8SurvivesRestart: a block's JobID comes from the
// service; one that is not valid UTF-8 (here the first job's) passes the
// Provider's checks, and its bytes are handed out by ReadFor, but the
// journal's block and event records that name it do not verify after a
// restart.
func TestJobIDNotUTF8SurvivesRestart(t *testing.T) {
	src := hashIDSource("quantropy", "first", func(k int64) string {
		if k == 1 {
			return "job-\xff-1"
		}
		return fmt.Sprintf("job-%d", k)
	})
	drawThenRestart(t, src, 32, []string{"round-1"}, entropy.WithRateLimit(rate.Inf, 1))
}

// TestOversizedEventSurvivesRestart: an event record longer than
// MaxLineSize is appended and acknowledged (ReadFor hands its bytes out), and
// Open then refuses the whole journal.
func TestOversizedEventSurvivesRestart(t *testing.T) {
	t.Run("long name", func(t *testing.T) {
		drawThenRestart(t, hashSource("quantropy", "job-", "first"), 32,
			[]string{strings.Repeat("n", journal.MaxLineSize)})
	})
	t.Run("large draw", func(t *testing.T) {
		drawThenRestart(t, hashSource("quantropy", "job-", "first"), journal.MaxLineSize/2+1,
			[]string{"big"},
			entropy.WithRateLimit(rate.Inf, 1), entropy.WithBufferSize(1<<20), entropy.WithFetchSize(1<<20))
	})
}

// TestFallbackEpisodeNotUTF8SurvivesRestart (contract point 9): the
// reason of a fallback episode is the text of a source's error, which carries
// what the service sent (an X-Request-Id header may hold any byte above
// 0x7f). The journal records the episode, and then refuses itself on the
// next Open: one odd header from a failing service makes the audit trail
// unusable.
func TestFallbackEpisodeNotUTF8SurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := journal.Open(path)
	require.NoError(t, err)
	down := entropy.SourceFunc(func(context.Context, int) (entropy.Block, error) {
		return entropy.Block{}, &entropy.APIError{StatusCode: 503, RequestID: "req-\xff\xfe"}
	})
	p, err := entropy.New(down, entropy.WithJournal(j), entropy.WithPolicy(entropy.Degrade),
		entropy.WithRetry(1, time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		u := p.Stats().Unavailable
		return u != nil && strings.Contains(u.Error(), "req-")
	}, 10*time.Second, time.Millisecond, "the source's failure never reached the Provider")
	l, err := p.ReadLabelled(context.Background(), make([]byte, 10))
	require.NoError(t, err)
	require.Equal(t, entropy.ProvenanceFallback, l.Provenance())
	require.NoError(t, p.Close())
	served := p.Stats().FallbackBytes
	require.NoError(t, j.Close())

	rep, err := journal.VerifyFile(path)
	require.NoError(t, err, "the journal with the fallback episode does not verify")
	assert.Equal(t, 1, rep.Fallbacks)
	assert.Equal(t, int64(served), rep.FallbackBytes)
	j, err = journal.Open(path)
	require.NoError(t, err, "the journal with the fallback episode cannot be opened again")
	require.NoError(t, j.Close())
}
