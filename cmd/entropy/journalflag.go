package main

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/pgjournal"
)

// journalUsage is the help of --journal.
const journalUsage = "audit journal: a `file` (hash-chained; created if missing) or a postgres:// URL or key=value connection string (one journal, and one draw per event, for every replica that shares the database; its password is never printed)"

// journalConnectTimeout bounds connecting to a PostgreSQL journal.
const journalConnectTimeout = 15 * time.Second

// addJournalFlag registers --journal on fs.
func addJournalFlag(fs *flag.FlagSet) *string {
	return fs.String("journal", "", journalUsage)
}

// isPostgresURL reports whether spec names a PostgreSQL journal: a
// postgres:// URL, or a key=value connection string ("host=db
// password=…"), which must never be taken for a file name (the name, and
// the password in it, would be printed and written to disk).
func isPostgresURL(spec string) bool {
	s := strings.ToLower(spec)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") || isKeyValueDSN(s)
}

// keyValueDSN matches a libpq key=value connection string.
var keyValueDSN = regexp.MustCompile(`^\s*([a-z_]+\s*=\s*('(?:[^'\\]|\\.)*'|\S*)\s*)+$`)

// dsnKey matches a key that only a connection string has.
var dsnKey = regexp.MustCompile(`(^|\s)(host|hostaddr|port|dbname|user|password|sslmode|connect_timeout)\s*=`)

// isKeyValueDSN reports whether s (lower case) is a key=value connection
// string naming at least one of libpq's usual keys.
func isKeyValueDSN(s string) bool {
	return keyValueDSN.MatchString(s) && dsnKey.MatchString(s)
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
	close    func()
	verify   func(context.Context) (journal.Report, error)
	findHead func(context.Context, string) (uint64, bool, error)
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
		return &openedJournal{Journal: j, close: j.Close, verify: j.Verify, findHead: j.FindHead}, nil
	}
	j, err := journal.Open(spec)
	if err != nil {
		return nil, err
	}
	return &openedJournal{Journal: j, close: func() { _ = j.Close() }}, nil
}
