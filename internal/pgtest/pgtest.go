// Package pgtest gives the PostgreSQL integration tests of the module (the
// PostgreSQL journal's and the CLI's) their database: the DSN in
// ENTROPY_TEST_POSTGRES, and a schema of each test's own in it.
package pgtest

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the variable that points the integration tests at a
// PostgreSQL database.
const EnvDSN = "ENTROPY_TEST_POSTGRES"

// DSN returns the test database's DSN, or skips tb, saying that it is
// needed to run what.
func DSN(tb testing.TB, what string) string {
	tb.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		tb.Skip("set " + EnvDSN + " to a PostgreSQL DSN (postgres://...) to run " + what)
	}
	return dsn
}

// Schema returns a fresh schema name in the database dsn, prefix followed
// by random hex, dropped with all it holds when tb ends, so that tests
// never share tables, not even those of parallel runs.
func Schema(tb testing.TB, dsn, prefix string) string {
	tb.Helper()
	var b [6]byte
	_, _ = crand.Read(b[:])
	schema := fmt.Sprintf("%s%x", prefix, b)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}
