package pgjournal_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy/internal/pgtest"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/pgjournal"
)

// testDSN returns the test database's DSN, or skips the test.
func testDSN(t testing.TB) string {
	t.Helper()
	return pgtest.DSN(t, "the PostgreSQL journal's integration tests")
}

// testSchema returns a fresh schema name for one test, dropped when the
// test ends, so that parallel runs never share tables.
func testSchema(t testing.TB) string {
	t.Helper()
	return pgtest.Schema(t, testDSN(t), "entropy_test_")
}

// openIn opens a journal in schema, closed when the test ends.
func openIn(t testing.TB, schema string, opts ...pgjournal.Option) *pgjournal.Journal {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := pgjournal.Open(ctx, testDSN(t), append([]pgjournal.Option{pgjournal.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(j.Close)
	return j
}

// psql runs f on a connection of its own to the test database, as an
// operator (or an attacker) with psql would, within 30 seconds. It returns
// the error of the connection or of f.
func psql(t testing.TB, f func(ctx context.Context, conn *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testDSN(t))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return f(ctx, conn)
}

// sqlExec runs statements on the test database directly and returns the
// rows they affected.
func sqlExec(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, psql(t, func(ctx context.Context, conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	}), sql)
	return n
}

// table is the qualified name of one of the journal's tables in schema.
func table(schema, name string) string {
	return pgx.Identifier{schema, pgjournal.DefaultTablePrefix + name}.Sanitize()
}

// queryRow scans the one row a query returns into dest.
func queryRow(t testing.TB, dest any, sql string, args ...any) error {
	return psql(t, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, sql, args...).Scan(dest)
	})
}

// sqlString runs a query that returns one text value.
func sqlString(t testing.TB, sql string, args ...any) string {
	t.Helper()
	var v string
	require.NoError(t, queryRow(t, &v, sql, args...), sql)
	return v
}

// sqlInt runs a query that returns one integer. It only marks the test
// failed, so that any goroutine may call it.
func sqlInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var v int64
	assert.NoError(t, queryRow(t, &v, sql, args...), sql)
	return v
}

// dataHash is the data_hash column of a record, as the package computes it:
// an attacker who read the source can compute it too.
func dataHash(e journal.Entry) string {
	h := sha256.Sum256(append([]byte(e.Type+"\x00"), e.Data...))
	return hex.EncodeToString(h[:])
}
