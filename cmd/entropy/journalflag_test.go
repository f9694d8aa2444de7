package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/pgtest"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/pgjournal"
)

// pgPassword is put in every journal URL of these tests (the test server
// trusts local connections and ignores it): it must never be printed.
const pgPassword = "pw-never-printed-7f3a"

// pgJournalURL returns a postgres:// journal URL with a password and a
// schema of its own, dropped when the test ends; it skips the test without
// a database.
func pgJournalURL(t *testing.T) string {
	t.Helper()
	dsn := pgtest.DSN(t, "the PostgreSQL journal tests of the CLI")
	schema := pgtest.Schema(t, dsn, "entropy_cli_")
	u, err := url.Parse(dsn)
	require.NoError(t, err, "%s must be a postgres:// URL", pgtest.EnvDSN)
	u.User = url.UserPassword(u.User.Username(), pgPassword)
	q := u.Query()
	q.Set("journal_schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Contract point 8 across processes: several `entropy draw --event E
// --journal postgres://...` started at once, each with its own embedded
// simulator, print one result; audit on the URL reports one event; no
// output holds the URL's password.
func TestDrawWithPostgresJournalOneResultAcrossProcesses(t *testing.T) {
	u := pgJournalURL(t)
	bin := buildCLI(t)
	const procs = 5
	type result struct {
		code        int
		out, errOut string
	}
	results := make([]result, procs)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "draw", "--pick", "6", "--of", "49", "--event", "lotto-2026-12-05", "--journal", u,
				"--transcript", filepath.Join(t.TempDir(), "transcript.json"))
			code, out, errOut, _ := runProcess(cmd)
			results[i] = result{code, out, errOut}
		}()
	}
	close(start)
	wg.Wait()
	var lines []string
	for i, r := range results {
		require.Equal(t, 0, r.code, "process %d: %s%s", i, r.out, r.errOut)
		assert.NotContains(t, r.out+r.errOut, pgPassword)
		first, _, _ := strings.Cut(r.out, "\n")
		require.True(t, strings.HasPrefix(first, "pick 6 of 1..49: "), "process %d printed %q", i, r.out)
		lines = append(lines, first)
	}
	for i := range lines {
		assert.Equal(t, lines[0], lines[i], "process %d printed another result", i)
	}
	t.Logf("%d processes printed: %s", procs, lines[0])

	cmd := exec.Command(bin, "audit", u)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "journal OK: ")
	assert.Contains(t, string(out), `events: 1 ("lotto-2026-12-05")`)
	assert.NotContains(t, string(out), pgPassword)
}

// entropy audit prints the same report for a PostgreSQL journal as for a
// file holding the same records, and catches a row changed by hand.
// A head published before later records were added still checks against
// a PostgreSQL journal, as against a file; one no record has fails.
func TestAuditPostgresJournalHeadPublishedEarlier(t *testing.T) {
	u := pgJournalURL(t)
	ctx := context.Background()
	pj, err := pgjournal.Open(ctx, u)
	require.NoError(t, err)
	require.NoError(t, pj.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: "job-a", Size: 32, Verifiable: true, Time: time.Unix(1, 0)}))
	seq, published, err := pj.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, pj.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: "job-b", Size: 32, Verifiable: true, Time: time.Unix(2, 0)}))
	pj.Close()

	code, out, errOut := runCLI(t, "audit", "--head", strings.ToUpper(published), u)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, fmt.Sprintf("published head: record %d, as it was when published; 1 records added since", seq))
	code, _, errOut = runCLI(t, "audit", "--head", strings.Repeat("ab", 32), u)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "cut off the end or rewritten")
	assert.NotContains(t, out+errOut, pgPassword)
}

func TestAuditPostgresJournalLikeAFile(t *testing.T) {
	u := pgJournalURL(t)
	ctx := context.Background()
	pj, err := pgjournal.Open(ctx, u)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	fj, err := journal.Open(path)
	require.NoError(t, err)
	for _, j := range []entropy.Journal{pj, fj} {
		for i := range 3 {
			require.NoError(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: fmt.Sprint("job-", i), Size: 32, Verifiable: true, Time: time.Unix(1, 0)}))
		}
		require.NoError(t, j.RecordFallback(ctx, entropy.FallbackEpisode{Start: time.Unix(1, 0), End: time.Unix(2, 0), Ended: true, Reads: 2, Bytes: 40}))
		_, err := j.RecordEvent(ctx, entropy.EventRecord{Event: "raffle \"12\"", Data: []byte("0123456789abcdef"),
			Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "q", JobID: "job-0", Length: 16}}}, Time: time.Unix(3, 0)})
		require.NoError(t, err)
	}
	pj.Close()
	require.NoError(t, fj.Close())

	codeF, outF, errF := runCLI(t, "audit", path)
	require.Equal(t, 0, codeF, errF)
	codeP, outP, errP := runCLI(t, "audit", u)
	require.Equal(t, 0, codeP, errP)
	withoutHead := func(s string) string {
		i := strings.Index(s, "head: ")
		require.GreaterOrEqual(t, i, 0, s)
		return s[:i]
	}
	assert.Equal(t, withoutHead(outF), withoutHead(outP), "the same report")
	assert.NotContains(t, outP+errP, pgPassword)
	codeJ, outJ, _ := runCLI(t, "audit", "--journal", u)
	assert.Equal(t, 0, codeJ)
	assert.Equal(t, outP, outJ, "--journal URL is the same as the argument")

	// A row edited by hand: audit fails and names the record.
	pu, err := url.Parse(os.Getenv(pgtest.EnvDSN))
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, pu.String())
	require.NoError(t, err)
	defer conn.Close(ctx)
	schema := mustQuery(t, u, "journal_schema")
	_, err = conn.Exec(ctx, "UPDATE "+pgx.Identifier{schema, "entropy_journal_records"}.Sanitize()+` SET line = replace(line, '"bytes":40', '"bytes":4') WHERE type = 'fallback'`)
	require.NoError(t, err)
	code, out, errOut := runCLI(t, "audit", u)
	assert.NotEqual(t, 0, code, out)
	assert.Contains(t, errOut, "record 5")
	assert.NotContains(t, out+errOut, pgPassword)
}

// mustQuery returns a query parameter of a URL.
func mustQuery(t *testing.T, u, key string) string {
	t.Helper()
	pu, err := url.Parse(u)
	require.NoError(t, err)
	v := pu.Query().Get(key)
	require.NotEmpty(t, v)
	return v
}

// A journal URL that cannot be reached fails draw, read and audit with an
// error that does not print its password; no test database is needed.
func TestJournalURLPasswordNeverPrinted(t *testing.T) {
	u := "postgres://entropy:" + pgPassword + "@127.0.0.1:1/nodb?sslmode=disable&connect_timeout=2"
	for _, args := range [][]string{
		{"audit", u},
		{"audit", "--journal", u},
		{"read", "-n", "8", "--journal", u},
		{"draw", "--int", "10", "--event", "e", "--journal", u},
		{"draw", "--int", "10", "--journal", "postgresql://entropy:" + pgPassword + "@127.0.0.1:1/nodb?connect_timeout=2"},
		// A key=value connection string is a database too, never a file name.
		{"audit", "host=127.0.0.1 port=1 user=entropy password=" + pgPassword + " dbname=nodb connect_timeout=2"},
		{"draw", "--int", "10", "--journal", "host=127.0.0.1 port=1 user=entropy password='" + pgPassword + "' dbname=nodb connect_timeout=2"},
		// In the query, where pgx reads it too, and in a URL that does not
		// parse: pgx refuses it, and the message names it without the password.
		{"audit", "postgres://entropy@127.0.0.1:1/nodb?connect_timeout=2&password=" + pgPassword},
		{"audit", "postgres://entropy:" + pgPassword + "%@127.0.0.1:1/nodb"},
		{"read", "-n", "8", "--journal", "postgres://entropy:" + pgPassword + "@127.0.0.1:1/nodb%zz"},
	} {
		code, out, errOut := runCLI(t, args...)
		assert.NotEqual(t, 0, code, "%v", args)
		assert.NotContains(t, out+errOut, pgPassword, "%v", args)
		assert.Contains(t, errOut, "xxxxx", "%v: the URL is named, without its password: %s", args, errOut)
	}
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), pgPassword, "a file named after the connection string")
	}
}

// entropy read --journal records the blocks it fetched.
func TestReadRecordsToJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "read.jsonl")
	code, _, errOut := runCLI(t, "read", "-n", "16", "--journal", path)
	require.Equal(t, 0, code, errOut)
	rep, err := journal.VerifyFile(path)
	require.NoError(t, err)
	assert.Positive(t, rep.Blocks, "the blocks the read fetched are journalled")
}
