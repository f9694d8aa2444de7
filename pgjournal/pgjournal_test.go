package pgjournal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/journaltest"
	"github.com/provenrand/entropy/journal"
	"github.com/provenrand/entropy/pgjournal"
)

// The PostgreSQL journal passes the conformance suite of entropy.Journal,
// and what it wrote verifies.
func TestPostgresJournalConformance(t *testing.T) {
	testDSN(t)
	journaltest.Run(t, func(t *testing.T) entropy.Journal {
		j := openIn(t, testSchema(t))
		t.Cleanup(func() {
			_, err := j.Verify(context.Background())
			assert.NoError(t, err, "the journal the suite wrote verifies")
		})
		return j
	})
}

// Many replicas starting at once on an empty database: one creates the
// tables, every Open succeeds, and the journal has one first record.
func TestOpenConcurrentlyMigratesOnce(t *testing.T) {
	schema := testSchema(t)
	const replicas = 8
	var wg sync.WaitGroup
	js := make([]*pgjournal.Journal, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			js[i], errs[i] = pgjournal.Open(context.Background(), testDSN(t), pgjournal.WithSchema(schema))
		}()
	}
	wg.Wait()
	for i := range replicas {
		require.NoError(t, errs[i], "replica %d", i)
		defer js[i].Close()
	}
	rep, err := js[0].Verify(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Records, "one journal header, however many replicas started")
	// Opening again is idempotent.
	j := openIn(t, schema)
	rep, err = j.Verify(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Records)
}

// Applications with journals of their own prefixes in one schema that does
// not exist yet start at once: each Open creates or finds the schema, none
// fails.
func TestOpenConcurrentlyWithOtherPrefixesInANewSchema(t *testing.T) {
	schema := testSchema(t)
	const apps = 6
	var wg sync.WaitGroup
	errs := make([]error, apps)
	for i := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := pgjournal.Open(context.Background(), testDSN(t), pgjournal.WithSchema(schema), pgjournal.WithTablePrefix(fmt.Sprintf("app%d_", i)))
			if errs[i] = err; err == nil {
				j.Close()
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "application %d", i)
	}
}

// Two applications in one database keep separate journals: by schema or by
// table prefix, given as options or in the DSN.
func TestSchemasAndPrefixesSeparateJournals(t *testing.T) {
	schema := testSchema(t)
	a := openIn(t, schema)
	b := openIn(t, schema, pgjournal.WithTablePrefix("app_b_"))
	dsn := testDSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	c, err := pgjournal.Open(context.Background(), dsn+sep+"journal_schema="+schema+"&journal_prefix=app_c_")
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, schema, c.Schema())
	assert.Equal(t, "app_c_", c.TablePrefix())

	ev := entropy.EventRecord{Event: "shared-name", Data: []byte{1, 2, 3}, Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "q", JobID: "a", Length: 3}}}}
	_, err = a.RecordEvent(context.Background(), ev)
	require.NoError(t, err)
	for _, other := range []*pgjournal.Journal{b, c} {
		_, ok, err := other.LookupEvent(context.Background(), "shared-name")
		require.NoError(t, err)
		assert.False(t, ok, "another application's journal")
	}
	for _, j := range []*pgjournal.Journal{a, b, c} {
		_, err := j.Verify(context.Background())
		require.NoError(t, err)
	}
}

// Bad input is refused with clear errors, never a panic, and a DSN's
// password appears in no error.
func TestOpenRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	_, err := pgjournal.Open(ctx, "postgres://u:s3cret-pw@127.0.0.1:1/db", pgjournal.WithSchema("Bad-Name"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid schema name")
	_, err = pgjournal.Open(ctx, "postgres://u:s3cret-pw@127.0.0.1:1/db", pgjournal.WithTablePrefix("x; DROP TABLE y"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid table prefix")

	// Nothing listens on port 1: the connection fails.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pgjournal.Open(cctx, "postgres://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=2")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret-pw")
	_, err = pgjournal.Open(cctx, "host=127.0.0.1 port=1 user=u password=s3cret-pw dbname=db connect_timeout=2")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret-pw")
	_, err = pgjournal.Open(cctx, "postgres://u:s3cret-pw@127.0.0.1:notaport/db")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret-pw")

	assert.Equal(t, "postgres://u:xxxxx@h/db", pgjournal.Redact("postgres://u:s3cret-pw@h/db"))
	assert.Equal(t, "host=h password=xxxxx user=u", pgjournal.Redact("host=h password=s3cret-pw user=u"))
	assert.Equal(t, "postgres://h/db", pgjournal.Redact("postgres://h/db"))
}

// Redact and Open's errors hide a password wherever a DSN carries one: in a
// URL's user info, in its password query parameter (which pgx reads too),
// in a key=value string, and in a URL that does not parse (a password with
// an unescaped '%', '#', '/' or '?', a bad escape elsewhere), which pgx
// refuses but a message still names.
func TestRedactHidesThePasswordWhereverItIs(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3c-r3t@127.0.0.1:1/db",
		"postgres://u@127.0.0.1:1/db?password=s3c-r3t",
		"postgresql://127.0.0.1:1/db?sslmode=disable&password=s3c-r3t",
		"postgres://u@127.0.0.1:1/db?password=s3c-r3t&x=%zz",
		"postgres://u:s3c%r3t@127.0.0.1:1/db",
		"postgres://u:s3c#r3t@127.0.0.1:1/db",
		"postgres://u:s3c/r3t@127.0.0.1:1/db",
		"postgres://u:s3c?r3t@127.0.0.1:1/db",
		"postgres://u:s3c-r3t@127.0.0.1:1/db%zz",
		"postgres://u:s3c-r3t@[::1/db",
		"postgres://u@127.0.0.1:1/db%zz?password=s3c-r3t",
		"host=127.0.0.1 port=1 password=s3c-r3t user=u",
		"host=127.0.0.1 port=1 password='s3c r3t' user=u",
		// pgx's own redaction stops at the first '@' or quote:
		"postgres://u:s3c@r3t@127.0.0.1:1/db?sslmode=bogus",
		"host=127.0.0.1 port=1 password='s3c\\' r3t' user=u sslmode=bogus",
		"host=127.0.0.1 port=1 PASSWORD=s3c-r3t user=u",
		// The passphrase of the client's key is a secret too:
		"postgres://u@127.0.0.1:1/db?sslpassword=s3c-r3t",
		"postgres://u:s3c-r3t@127.0.0.1:1/db?sslpassword=s3c-r3t&sslmode=bogus",
	} {
		r := pgjournal.Redact(dsn)
		assert.NotContains(t, r, "s3c", dsn)
		assert.NotContains(t, r, "r3t", dsn)
		assert.Contains(t, r, "xxxxx", dsn)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := pgjournal.Open(ctx, dsn)
		cancel()
		require.Error(t, err, dsn)
		assert.NotContains(t, err.Error(), "s3c", dsn)
		assert.NotContains(t, err.Error(), "r3t", dsn)
	}
}

// A journal of a newer schema version is refused, not written to.
func TestNewerSchemaVersionRefused(t *testing.T) {
	schema := testSchema(t)
	openIn(t, schema)
	sqlExec(t, "INSERT INTO "+table(schema, "journal_version")+" (version) VALUES ($1)", pgjournal.SchemaVersion+1)
	_, err := pgjournal.Open(context.Background(), testDSN(t), pgjournal.WithSchema(schema))
	assert.ErrorIs(t, err, pgjournal.ErrSchemaVersion)
}

// A journal with blocks, an episode and events: its records in the database
// verify, as a file of the same records would.
func TestVerifyReportsLikeAFile(t *testing.T) {
	j := openIn(t, testSchema(t))
	recordSample(t, j)
	rep, err := j.Verify(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 7, rep.Records)
	assert.Equal(t, 3, rep.Blocks)
	assert.Equal(t, 1, rep.Fallbacks)
	assert.Equal(t, 2, rep.Events)
	assert.Equal(t, int64(8), rep.FallbackBytes)
	assert.Equal(t, []string{"e1", "e2"}, rep.EventNames)
	seq, head, err := j.Head(context.Background())
	require.NoError(t, err)
	assert.Equal(t, rep.LastSeq, seq)
	assert.Equal(t, rep.Head, head)
}

// recordSample writes three blocks, an episode and two events.
func recordSample(t *testing.T, j *pgjournal.Journal) {
	t.Helper()
	ctx := context.Background()
	for i := range 3 {
		require.NoError(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: fmt.Sprintf("job-%d", i), Size: 32, Verifiable: true, Time: time.Now()}))
	}
	require.NoError(t, j.RecordFallback(ctx, entropy.FallbackEpisode{Start: time.Now(), End: time.Now(), Ended: true, Reads: 1, Bytes: 8, Reason: errors.New("down")}))
	for _, name := range []string{"e1", "e2"} {
		_, err := j.RecordEvent(ctx, entropy.EventRecord{Event: name, Data: []byte(name + "-bytes"),
			Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "q", JobID: "job-0", Length: 8}}}, Time: time.Now()})
		require.NoError(t, err)
	}
}

// A retried block or episode (after a commit whose outcome was unknown) is
// not recorded twice.
func TestRetriedRecordsAreNotDuplicated(t *testing.T) {
	j := openIn(t, testSchema(t))
	ctx := context.Background()
	b := entropy.BlockRecord{Source: "q", JobID: "job-1", Size: 32, Verifiable: true, Time: time.Now()}
	ep := entropy.FallbackEpisode{Start: time.Now(), End: time.Now(), Ended: true, Reads: 2, Bytes: 16}
	for range 3 {
		require.NoError(t, j.RecordBlock(ctx, b))
		require.NoError(t, j.RecordFallback(ctx, ep))
	}
	rep, err := j.Verify(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Blocks)
	assert.Equal(t, 1, rep.Fallbacks)
}

// Rows changed by hand with SQL are caught by Verify, which names the first
// bad record; LookupEvent refuses an event row whose line was edited.
func TestVerifyCatchesTampering(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		tamper  func(schema string)
		seq     uint64
		wantErr error
	}{
		{"event bytes edited", func(s string) {
			sqlExec(t, "UPDATE "+table(s, "journal_records")+` SET line = replace(line, '"event":"e1"', '"event":"e9"') WHERE seq = 6`)
		}, 6, journal.ErrHashMismatch},
		{"block job edited", func(s string) {
			sqlExec(t, "UPDATE "+table(s, "journal_records")+` SET line = replace(line, '"job_id":"job-1"', '"job_id":"job-X"') WHERE seq = 3`)
		}, 3, journal.ErrHashMismatch},
		{"block rewritten with a valid line and hash", func(s string) {
			// An attacker who knows the format rewrites record 3 whole, with
			// a correct hash of its own: record 4's prev no longer matches.
			prevHash := sqlString(t, "SELECT hash FROM "+table(s, "journal_records")+" WHERE seq = 2")
			e, err := journal.ChainAt(2, prevHash).Append(time.Now(), entropy.BlockRecord{Source: "q", JobID: "job-forged", Size: 32, Verifiable: true, Time: time.Now()})
			require.NoError(t, err)
			sqlExec(t, "UPDATE "+table(s, "journal_records")+" SET line = $1, hash = $2, data_hash = $3, job_id = 'job-forged' WHERE seq = 3", string(e.Line), e.Hash, dataHash(e))
		}, 4, journal.ErrChainBroken},
		{"record deleted", func(s string) {
			sqlExec(t, "DELETE FROM "+table(s, "journal_records")+" WHERE seq = 4")
		}, 5, journal.ErrSequence},
		{"last record deleted", func(s string) {
			sqlExec(t, "DELETE FROM "+table(s, "journal_records")+" WHERE seq = 7")
		}, 7, pgjournal.ErrHeadMismatch},
		{"record inserted", func(s string) {
			sqlExec(t, "INSERT INTO "+table(s, "journal_records")+` (seq, type, event, data_hash, line, hash)
				SELECT 8, type, 'e3', 'x' || data_hash, replace(replace(line, '"seq":7', '"seq":8'), '"event":"e2"', '"event":"e3"'), hash
				FROM `+table(s, "journal_records")+" WHERE seq = 7")
		}, 8, journal.ErrHashMismatch},
		{"record appended without the head", func(s string) {
			// A well-formed, chained record added at the end by hand.
			prevHash := sqlString(t, "SELECT hash FROM "+table(s, "journal_records")+" WHERE seq = 7")
			e, err := journal.ChainAt(7, prevHash).Append(time.Now(), entropy.BlockRecord{Source: "q", JobID: "job-forged", Size: 32, Verifiable: true, Time: time.Now()})
			require.NoError(t, err)
			sqlExec(t, "INSERT INTO "+table(s, "journal_records")+" (seq, type, data_hash, source, job_id, line, hash) VALUES (8, 'block', $3, 'q', 'job-forged', $1, $2)", string(e.Line), e.Hash, dataHash(e))
		}, 8, pgjournal.ErrHeadMismatch},
		{"event column edited", func(s string) {
			sqlExec(t, "UPDATE "+table(s, "journal_records")+" SET event = 'e7' WHERE seq = 6")
		}, 6, pgjournal.ErrColumnMismatch},
		{"job_id column edited", func(s string) {
			// The replay guard and the one-record-per-job key read the
			// column: job-0 would be taken again, and recorded twice.
			sqlExec(t, "UPDATE "+table(s, "journal_records")+" SET job_id = 'job-other' WHERE seq = 2")
		}, 2, pgjournal.ErrColumnMismatch},
		{"source column edited", func(s string) {
			sqlExec(t, "UPDATE "+table(s, "journal_records")+" SET source = 'other' WHERE seq = 3")
		}, 3, pgjournal.ErrColumnMismatch},
		{"job columns set on an event", func(s string) {
			sqlExec(t, "UPDATE "+table(s, "journal_records")+" SET source = 'q', job_id = 'job-9' WHERE seq = 6")
		}, 6, pgjournal.ErrColumnMismatch},
		{"seq renumbered", func(s string) {
			sqlExec(t, "UPDATE "+table(s, "journal_records")+" SET seq = 100 WHERE seq = 7")
		}, 100, pgjournal.ErrColumnMismatch},
		{"head moved back", func(s string) {
			sqlExec(t, "UPDATE "+table(s, "journal_head")+" SET seq = 6")
		}, 7, pgjournal.ErrHeadMismatch},
		{"head row deleted", func(s string) {
			sqlExec(t, "DELETE FROM "+table(s, "journal_head"))
		}, 0, pgjournal.ErrHeadMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			schema := testSchema(t)
			j := openIn(t, schema)
			recordSample(t, j)
			_, err := j.Verify(ctx)
			require.NoError(t, err)
			tc.tamper(schema)
			_, err = j.Verify(ctx)
			require.Error(t, err)
			var re *pgjournal.RecordError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.seq, re.Seq, "the first bad record: %v", err)
			assert.ErrorIs(t, err, tc.wantErr)
			t.Log(err)
		})
	}

	t.Run("lookup of an edited event", func(t *testing.T) {
		schema := testSchema(t)
		j := openIn(t, schema)
		recordSample(t, j)
		sqlExec(t, "UPDATE "+table(schema, "journal_records")+` SET line = replace(line, encode('e1-bytes', 'hex'), encode('e1-BYTES', 'hex')) WHERE event = 'e1'`)
		_, _, err := j.LookupEvent(ctx, "e1")
		assert.ErrorIs(t, err, journal.ErrHashMismatch)
	})
}

// Calls after Close fail with ErrClosed.
func TestClosed(t *testing.T) {
	j := openIn(t, testSchema(t))
	j.Close()
	j.Close()
	ctx := context.Background()
	assert.ErrorIs(t, j.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: "j", Size: 1, Verifiable: true}), pgjournal.ErrClosed)
	_, err := j.RecordEvent(ctx, entropy.EventRecord{Event: "e", Data: []byte{1}})
	assert.ErrorIs(t, err, pgjournal.ErrClosed)
	_, _, err = j.LookupEvent(ctx, "e")
	assert.ErrorIs(t, err, pgjournal.ErrClosed)
	_, err = j.Verify(ctx)
	assert.ErrorIs(t, err, pgjournal.ErrClosed)
}

// Close ends the calls in flight, with ErrClosed, even on a database that
// no longer answers: the connection pool's Close waits for them, and used
// to wait for ever.
func TestCloseEndsCallsInFlightOnASilentDatabase(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	px := newProxy(t, dsn)
	app := "entropy-close-" + schema
	appDSN := px.dsn + "&application_name=" + app
	if !strings.Contains(px.dsn, "?") {
		appDSN = px.dsn + "?application_name=" + app
	}
	j, err := pgjournal.Open(context.Background(), appDSN, pgjournal.WithSchema(schema), pgjournal.WithMaxConns(2))
	require.NoError(t, err)
	t.Cleanup(j.Close)
	t.Cleanup(func() { px.SetRepliesStalled(false) })

	px.SetRepliesStalled(true)
	done := make(chan error, 1)
	go func() {
		_, err := j.RecordEvent(context.Background(), entropy.EventRecord{Event: "e", Data: []byte{1},
			Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "q", JobID: "j", Length: 1}}}})
		done <- err
	}()
	require.Eventually(t, func() bool {
		var n int
		return queryRow(t, &n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'begin%'", app) == nil && n > 0
	}, 10*time.Second, 5*time.Millisecond, "the call reached the database")

	closed := make(chan struct{})
	go func() { j.Close(); close(closed) }()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, pgjournal.ErrClosed)
	case <-time.After(30 * time.Second):
		t.Error("Close did not end a call on a database that does not answer")
	}
	// pgx says goodbye to the server before it lets a connection go, for
	// 15 s at most: let the answers through.
	px.SetRepliesStalled(false)
	<-closed
}

// The replay guard across a fleet: of replicas claiming one job at once,
// exactly one gets it; a job with a block record is not new; a second block
// record of a job is refused.
func TestReplayGuardAcrossReplicas(t *testing.T) {
	schema := testSchema(t)
	const replicas = 6
	js := make([]*pgjournal.Journal, replicas)
	for i := range js {
		js[i] = openIn(t, schema)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	fresh := make([]bool, replicas)
	for i, j := range js {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			fresh[i], err = j.ClaimJob(ctx, "quantropy", "job-replayed")
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	n := 0
	for _, f := range fresh {
		if f {
			n++
		}
	}
	assert.Equal(t, 1, n, "one replica takes a job")

	b := entropy.BlockRecord{Source: "quantropy", JobID: "job-recorded", Size: 8, Verifiable: true, Time: time.Now()}
	require.NoError(t, js[0].RecordBlock(ctx, b))
	f, err := js[1].ClaimJob(ctx, "quantropy", "job-recorded")
	require.NoError(t, err)
	assert.False(t, f, "a job with a block record is not new")
	other := b
	other.Digest[0] = 1
	assert.ErrorIs(t, js[1].RecordBlock(ctx, other), journal.ErrJobExists)
	_, err = js[2].Verify(ctx)
	require.NoError(t, err)
}

// WithClock stamps every record line (and the header) with the clock's
// time, not the system's.
func TestWithClockStampsRecords(t *testing.T) {
	at := time.Date(2031, 7, 1, 12, 0, 0, 0, time.UTC)
	schema := testSchema(t)
	j := openIn(t, schema, pgjournal.WithClock(entropy.NowFunc(func() time.Time { return at })))
	require.NoError(t, j.RecordBlock(context.Background(), entropy.BlockRecord{Source: "q", JobID: "job-clock", Size: 32, Verifiable: true, Time: time.Now()}))
	line := sqlString(t, "SELECT line FROM "+table(schema, "journal_records")+" WHERE job_id = $1", "job-clock")
	var rec struct{ Time time.Time }
	require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
	assert.True(t, rec.Time.Equal(at), "record stamped %v, clock says %v", rec.Time, at)
}

// A claim whose answer is lost with its connection, after the database
// took it, is not taken for a replay when pgjournal tries it again: the
// job is the caller's, or the claim's outcome is unknown (an error), never
// "claimed before", which a Provider counts against the source as a
// replayed job.
func TestClaimWhoseAnswerIsLostIsNoReplay(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	px := newProxy(t, dsn)
	ctx := context.Background()
	j, err := pgjournal.Open(ctx, px.dsn, pgjournal.WithSchema(schema), pgjournal.WithMaxConns(2))
	require.NoError(t, err)
	t.Cleanup(j.Close)
	// Before j.Close:
	t.Cleanup(func() { px.SetRepliesStalled(false); px.SetCut(false) })
	// A connection in the pool, just used:
	fresh, err := j.ClaimJob(ctx, "quantropy", "job-0")
	require.NoError(t, err)
	require.True(t, fresh)

	px.SetRepliesStalled(true)
	type answer struct {
		fresh bool
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		f, err := j.ClaimJob(cctx, "quantropy", "job-1")
		done <- answer{f, err}
	}()
	require.Eventually(t, func() bool {
		var n int
		return queryRow(t, &n, "SELECT count(*) FROM "+table(schema, "journal_jobs")+" WHERE job_id = $1", "job-1") == nil && n == 1
	}, 10*time.Second, 5*time.Millisecond, "the database took the claim")
	px.SetCut(true) // the answer is lost with the connection
	px.SetRepliesStalled(false)
	px.SetCut(false)
	var a answer
	select {
	case a = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the claim did not return")
	}
	if a.err == nil {
		assert.True(t, a.fresh, "the claim the database took for this caller came back as a replay")
	}
	fresh, err = j.ClaimJob(ctx, "quantropy", "job-1")
	require.NoError(t, err)
	assert.False(t, fresh, "a job claimed before is not new")
}
