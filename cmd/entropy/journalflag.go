package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/pgjournal"
)

// journalUsage is the help of --journal.
const journalUsage = "audit journal: a `file` (hash-chained; created if missing) or a postgres:// URL (one journal, and one draw per event, for every replica that shares the database; its password is never printed)"

// journalConnectTimeout bounds connecting to a PostgreSQL journal.
const journalConnectTimeout = 15 * time.Second

// addJournalFlag registers --journal on fs.
func addJournalFlag(fs *flag.FlagSet) *string {
	return fs.String("journal", "", journalUsage)
}

// isPostgresURL reports whether spec names a PostgreSQL journal.
func isPostgresURL(spec string) bool {
	s := strings.ToLower(spec)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// journalName is spec as it may be printed: a URL without its password.
func journalName(spec string) string {
	if isPostgresURL(spec) {
		return pgjournal.Redact(spec)
	}
	return spec
}

// openedJournal is a journal the CLI opened: a file or a database.
type openedJournal struct {
	entropy.Journal
	close  func()
	verify func(context.Context) (journal.Report, error)
}

// openJournal opens the journal spec names. Its errors never hold a URL's
// password.
func openJournal(ctx context.Context, spec string) (*openedJournal, error) {
	if isPostgresURL(spec) {
		ctx, cancel := context.WithTimeout(ctx, journalConnectTimeout)
		defer cancel()
		j, err := pgjournal.Open(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("journal %s: %w", journalName(spec), err)
		}
		return &openedJournal{Journal: j, close: j.Close, verify: j.Verify}, nil
	}
	j, err := journal.Open(spec)
	if err != nil {
		return nil, err
	}
	return &openedJournal{Journal: j, close: func() { _ = j.Close() }}, nil
}
