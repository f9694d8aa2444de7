package journal_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/journaltest"
	"github.com/provenrand/entropy/journal"
)

// The file journal passes the conformance suite of entropy.Journal, and
// what it wrote verifies.
func TestFileJournalConformance(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) entropy.Journal {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		j, err := journal.Open(path)
		require.NoError(t, err)
		t.Cleanup(func() {
			require.NoError(t, j.Close())
			_, err := journal.VerifyFile(path)
			require.NoError(t, err, "the journal the suite wrote verifies")
		})
		return j
	})
}
