package pgjournal_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/journaltest"
	"github.com/provenrand/entropy/internal/testkit"
	"github.com/provenrand/entropy/pgjournal"
)

// replica is one Provider with its own journal (its own connection pool),
// as one process of a fleet has.
type replica struct {
	p *entropy.Provider
	j *pgjournal.Journal
}

func newReplica(t *testing.T, dsn, schema string, opts ...entropy.Option) replica {
	t.Helper()
	j, err := pgjournal.Open(context.Background(), dsn, pgjournal.WithSchema(schema), pgjournal.WithMaxConns(4))
	require.NoError(t, err)
	t.Cleanup(j.Close)
	return replica{journaltest.NewProvider(t, j, opts...), j}
}

// checkDraws requires that every caller of an event got the same bytes and
// label, and that the journal holds exactly one record of each, the same.
func checkDraws(t *testing.T, j *pgjournal.Journal, schema string, results map[string][]journaltest.Drawn) {
	t.Helper()
	journaltest.RequireOneDrawPerEvent(t, j, results)
	twice := sqlString(t, "SELECT count(*)::text FROM (SELECT line::jsonb->'data'->>'event' AS ev FROM "+
		table(schema, "journal_records")+" WHERE type = 'event' GROUP BY 1 HAVING count(*) > 1) d")
	assert.Equal(t, "0", twice, "events with two records")
	rep, err := j.Verify(context.Background())
	require.NoError(t, err)
	assert.Equal(t, len(results), rep.Events, "one record per event drawn")
}

// Contract point 8 across a fleet: N goroutines in each of M Providers, each
// with its own connection pool, draw K events at once; every caller of an
// event gets the same bytes and label, and no event has two records.
func TestFleetDrawsEachEventOnce(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	const providers, goroutines, events, size = 4, 6, 12, 24
	reps := make([]replica, providers)
	ps := make([]*entropy.Provider, providers)
	for i := range reps {
		reps[i] = newReplica(t, dsn, schema)
		ps[i] = reps[i].p
	}
	results := journaltest.DrawAtOnce(t, ps, goroutines, events, size, func(e int) string { return fmt.Sprintf("lotto-2026-12-%02d", e+1) })
	require.Len(t, results, events)
	for ev, rs := range results {
		require.Len(t, rs, providers*goroutines, ev)
	}
	checkDraws(t, reps[0].j, schema, results)
	var served, discarded uint64
	for _, r := range reps {
		st := r.p.Stats()
		served += st.VerifiableBytes
		discarded += st.EventBytesDiscarded
		assert.Zero(t, st.JournalErrors)
	}
	assert.Equal(t, uint64(events*size), served, "each event's bytes were handed out by one replica only")
	t.Logf("%d events, %d callers each; bytes taken and discarded by replicas that lost a race: %d", events, providers*goroutines, discarded)
}

// Connections killed with pg_terminate_backend again and again while a
// fleet draws: no panic, no event drawn twice, no record lost, and the
// same Providers go on drawing afterwards.
func TestFleetSurvivesKilledConnections(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	app := "entropy_kill_" + schema[len(schema)-12:]
	dsn = withParam(dsn, "application_name", app)
	const providers, goroutines, events, size = 3, 4, 30, 16
	reps := make([]replica, providers)
	for i := range reps {
		reps[i] = newReplica(t, dsn, schema)
	}

	stop := make(chan struct{})
	var kills atomic.Int64
	var killer sync.WaitGroup
	killer.Add(1)
	go func() {
		defer killer.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			n := sqlInt(t, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()", app)
			kills.Add(n)
		}
	}()

	var mu sync.Mutex
	results := map[string][]journaltest.Drawn{}
	var failures atomic.Int64
	var wg sync.WaitGroup
	for _, r := range reps {
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for e := range events {
					ev := fmt.Sprintf("raffle-%d", e)
					b := make([]byte, size)
					var lb entropy.Label
					var err error
					for attempt := 0; attempt < 50; attempt++ {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						lb, err = r.p.ReadFor(ctx, ev, b)
						cancel()
						if err == nil {
							break
						}
						failures.Add(1)
						assert.Equal(t, make([]byte, size), b, "a failed ReadFor hands out nothing")
					}
					if !assert.NoError(t, err, ev) {
						return
					}
					// Ordinary reads go on meanwhile.
					_, rerr := r.p.Read(make([]byte, 64))
					assert.NoError(t, rerr)
					mu.Lock()
					results[ev] = append(results[ev], journaltest.Drawn{Data: b, Label: lb})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	killer.Wait()
	t.Logf("backends terminated: %d; ReadFor calls that failed and were retried: %d", kills.Load(), failures.Load())
	require.NotZero(t, kills.Load(), "no connection was killed: the test proved nothing")

	// Recovery: the same Providers draw a new event.
	for _, r := range reps {
		b := make([]byte, size)
		lb, err := r.p.ReadFor(context.Background(), "after-the-storm", b)
		require.NoError(t, err)
		mu.Lock()
		results["after-the-storm"] = append(results["after-the-storm"], journaltest.Drawn{Data: b, Label: lb})
		mu.Unlock()
	}
	checkDraws(t, reps[0].j, schema, results)

	// No record lost: every block a replica took is in the journal once
	// the replicas have closed.
	var accepted uint64
	for _, r := range reps {
		require.NoError(t, r.p.Close())
		st := r.p.Stats()
		assert.Zero(t, st.JournalLost, "records given up")
		for _, s := range st.Sources {
			accepted += s.BlocksAccepted
		}
	}
	blocks := sqlInt(t, "SELECT count(*) FROM "+table(schema, "journal_records")+" WHERE type = 'block'")
	assert.Equal(t, int64(accepted), blocks, "block records in the journal, one per block accepted")
}

// PostgreSQL unreachable: ReadFor fails with an error that wraps the
// driver's, ordinary reads go on (from the pool, then by the Provider's
// policy: no new job can be claimed while the replay guard cannot answer),
// and the Provider recovers by itself when the database is back.
func TestDatabaseDownAndBack(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	px := newProxy(t, dsn)
	r := newReplica(t, px.dsn, schema, entropy.WithPolicy(entropy.Degrade))
	b := make([]byte, 16)
	_, err := r.p.ReadFor(context.Background(), "before", b)
	require.NoError(t, err)

	px.SetCut(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = r.p.ReadFor(ctx, "while-down", make([]byte, 16))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pgjournal")
	var netErr net.Error
	var connErr *pgconn.ConnectError
	assert.True(t, errors.As(err, &netErr) || errors.As(err, &connErr) || errors.Is(err, io.ErrUnexpectedEOF),
		"the driver's error is wrapped: %v", err)
	t.Log(err)
	for range 20 {
		_, err := r.p.Read(make([]byte, 512))
		require.NoError(t, err, "ordinary reads go on while the journal is down")
	}

	px.SetCut(false)
	b2 := make([]byte, 16)
	var lb entropy.Label
	require.Eventually(t, func() bool {
		lb, err = r.p.ReadFor(context.Background(), "while-down", b2)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the Provider recovers without a restart")
	assert.True(t, lb.Verifiable)
	require.NoError(t, r.p.Close())
	st := r.p.Stats()
	assert.Zero(t, st.JournalLost)
	var accepted uint64
	for _, s := range st.Sources {
		accepted += s.BlocksAccepted
	}
	j := openIn(t, schema)
	blocks := sqlInt(t, "SELECT count(*) FROM "+table(schema, "journal_records")+" WHERE type = 'block'")
	assert.Equal(t, int64(accepted), blocks, "every block record was written once the database was back")
	_, err = j.Verify(context.Background())
	require.NoError(t, err)
}

// withParam adds a query parameter to a URL DSN.
func withParam(dsn, key, value string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + key + "=" + value
}

// proxy is a TCP proxy to the test database on a loopback port, that can be
// cut (every connection cut, new ones refused) and restored: PostgreSQL
// going away, without stopping the server others use. dsn is the test
// database's DSN through the proxy.
type proxy struct {
	*testkit.Proxy
	dsn string
}

func newProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	target := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	px := &proxy{Proxy: testkit.StartProxy(t, target)}
	_, port, _ := net.SplitHostPort(px.Addr())
	px.dsn = strings.Replace(dsn, target, "127.0.0.1:"+port, 1)
	require.NotEqual(t, dsn, px.dsn, "the DSN names host:port")
	return px
}

// journalOnly hides every method of a journal but entropy.Journal's: a
// Provider over it takes blocks without the replay guard.
type journalOnly struct{ entropy.Journal }

// Block records that cannot be written while PostgreSQL is unreachable are
// retried and counted, never dropped: once the database is back, every
// block the Provider took is in the journal, and the chain verifies. (Run
// without the replay guard, which would otherwise refuse new blocks while
// the database is away, so that blocks keep coming.)
func TestBlockRecordsRetriedUntilTheDatabaseIsBack(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	px := newProxy(t, dsn)
	j, err := pgjournal.Open(context.Background(), px.dsn, pgjournal.WithSchema(schema), pgjournal.WithMaxConns(2))
	require.NoError(t, err)
	t.Cleanup(j.Close)
	p, err := entropy.New(journaltest.NewSource(), entropy.WithJournal(journalOnly{j}), entropy.WithRateLimit(rate.Inf, 1),
		entropy.WithBufferSize(4096), entropy.WithFetchSize(1024))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.NoError(t, p.WaitReady(context.Background()))

	px.SetCut(true)
	for range 40 {
		_, err := p.Read(make([]byte, 512)) // drains the pool: refills follow, and their block records
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return p.Stats().JournalErrors >= 2 }, 20*time.Second, 10*time.Millisecond,
		"failed block records are retried and counted")

	px.SetCut(false)
	require.NoError(t, p.Close())
	st := p.Stats()
	t.Logf("failed attempts: %d; records given up: %d", st.JournalErrors, st.JournalLost)
	assert.Zero(t, st.JournalLost, "every record was written once the database was back")
	var accepted uint64
	for _, s := range st.Sources {
		accepted += s.BlocksAccepted
	}
	blocks := sqlInt(t, "SELECT count(*) FROM "+table(schema, "journal_records")+" WHERE type = 'block'")
	assert.Equal(t, int64(accepted), blocks, "one record per block accepted")
	_, err = j.Verify(context.Background())
	require.NoError(t, err)
}

// A database that stops answering holds the Provider's Close for the close
// budget (3 s), not for a journal call's own timeout (10 s): the record in
// flight is ended, and it and the records behind it are counted lost.
func TestStalledDatabaseHoldsCloseOnlyForTheCloseBudget(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	px := newProxy(t, dsn)
	j, err := pgjournal.Open(context.Background(), px.dsn, pgjournal.WithSchema(schema), pgjournal.WithMaxConns(2))
	require.NoError(t, err)
	t.Cleanup(j.Close)
	t.Cleanup(func() { px.SetStalled(false) }) // before j.Close
	p, err := entropy.New(journaltest.NewSource(), entropy.WithJournal(journalOnly{j}), entropy.WithRateLimit(rate.Inf, 1),
		entropy.WithBufferSize(4096), entropy.WithFetchSize(1024))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.NoError(t, p.WaitReady(context.Background()))
	require.Eventually(t, func() bool { return p.Stats().Pooled == 4096 }, 10*time.Second, time.Millisecond)
	before := p.Stats().Sources[0].BlocksAccepted

	px.SetStalled(true)
	// Reads drain the pool until a refill follows, and its block's record.
	require.Eventually(t, func() bool {
		_, err := p.Read(make([]byte, 512))
		require.NoError(t, err)
		return p.Stats().Sources[0].BlocksAccepted > before
	}, 10*time.Second, time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(9 * time.Second):
		t.Fatal("Close waited for the stalled database beyond the close budget")
	}
	assert.NotZero(t, p.Stats().JournalLost, "the records the database did not take are counted lost")
}

// A replica that goes silent (a network partition) just after it took the
// chain head's lock does not hold every other replica's appends until the
// server's TCP keepalive finds it dead: the server ends its transaction,
// the others go on, and the silent one, back, writes its record.
func TestSilentReplicaHoldingTheChainHeadDoesNotStallTheFleet(t *testing.T) {
	dsn, schema := testDSN(t), testSchema(t)
	other := openIn(t, schema)
	px := newProxy(t, dsn)
	app := "entropy_silent_" + schema[len(schema)-12:]
	silent, err := pgjournal.Open(context.Background(), withParam(px.dsn, "application_name", app), pgjournal.WithSchema(schema), pgjournal.WithMaxConns(1))
	require.NoError(t, err)
	t.Cleanup(silent.Close)
	t.Cleanup(func() { px.SetRepliesStalled(false) })
	ctx := context.Background()
	require.NoError(t, silent.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: "job-0", Size: 1, Verifiable: true, Time: time.Now()}))

	// The silent replica's append waits for the head behind a lock held
	// here; its answers are held as the lock passes to it.
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT 1 FROM "+table(schema, "journal_head")+" FOR UPDATE")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		done <- silent.RecordBlock(ctx, entropy.BlockRecord{Source: "q", JobID: "job-1", Size: 1, Verifiable: true, Time: time.Now()})
	}()
	backend := func(cond string) func() bool {
		return func() bool {
			var n int
			return queryRow(t, &n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND "+cond, app) == nil && n > 0
		}
	}
	require.Eventually(t, backend("wait_event_type = 'Lock'"), 10*time.Second, 5*time.Millisecond, "the append waits for the head")
	px.SetRepliesStalled(true)
	require.NoError(t, tx.Commit(ctx))
	require.Eventually(t, backend("state = 'idle in transaction'"), 10*time.Second, 5*time.Millisecond, "the silent replica holds the head")

	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err = other.RecordEvent(octx, entropy.EventRecord{Event: "draw", Data: []byte{1},
		Label: entropy.Label{Verifiable: true, Spans: []entropy.Span{{Source: "q", JobID: "job-0", Length: 1}}}})
	require.NoError(t, err, "another replica's append waits for the silent one")

	px.SetRepliesStalled(false)
	require.NoError(t, <-done, "the silent replica, back, writes its record")
	rep, err := other.Verify(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Events)
	assert.Equal(t, int64(2), sqlInt(t, "SELECT count(*) FROM "+table(schema, "journal_records")+" WHERE type = 'block'"))
}
