package journal_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestProviderJournalRestart: a Provider records its blocks and an event;
// after a restart with the same journal, ReadFor returns the same bytes and
// label without drawing again.
func TestProviderJournalRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	j, err := journal.Open(path)
	require.NoError(t, err)
	p, err := entropy.New(hashSource("quantropy", "quantropy-", "quantropy"), entropy.WithJournal(j), entropy.WithFetchSize(128))
	require.NoError(t, err)
	first := make([]byte, 32)
	l1, err := p.ReadFor(ctx, "raffle-9", first)
	require.NoError(t, err)
	require.True(t, l1.Verifiable)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())

	rep, err := journal.VerifyFile(path)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rep.Blocks, 1, "blocks that entered the pool are recorded")
	assert.Equal(t, 1, rep.Events)

	j, err = journal.Open(path)
	require.NoError(t, err)
	defer j.Close()
	p2, err := entropy.New(hashSource("other", "other-", "other"), entropy.WithJournal(j), entropy.WithFetchSize(128))
	require.NoError(t, err)
	defer p2.Close()
	again := make([]byte, 32)
	l2, err := p2.ReadFor(ctx, "raffle-9", again)
	require.NoError(t, err)
	assert.Equal(t, first, again)
	assert.Equal(t, l1, l2)

	_, err = p2.ReadFor(ctx, "raffle-9", make([]byte, 16))
	assert.ErrorIs(t, err, entropy.ErrEventParams, "no re-roll by asking another size")
}

// TestJournalNeverHoldsAPIKey runs the simulator with an API key through
// the HTTP source into a journaled Provider, and checks that the key's text
// is nowhere in the journal.
func TestJournalNeverHoldsAPIKey(t *testing.T) {
	const key = "sk-live-DO-NOT-LEAK-5f1c2e"
	srv, src := startSim(t, key)
	defer srv.Close()

	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := journal.Open(path)
	require.NoError(t, err)
	p, err := entropy.New(src, entropy.WithJournal(j), entropy.WithFetchSize(256))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = p.ReadFor(ctx, "draw-1", make([]byte, 32))
	require.NoError(t, err)
	b := make([]byte, 64)
	_, err = p.ReadLabelled(ctx, b)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, j.Close())

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	rep, err := journal.VerifyFile(path)
	require.NoError(t, err)
	require.GreaterOrEqual(t, rep.Blocks, 1)
	assert.False(t, bytes.Contains(raw, []byte(key)), "the API key must never reach the journal")
	assert.False(t, bytes.Contains(raw, []byte("DO-NOT-LEAK")))
}
