// Package pgjournal is an entropy.Journal on PostgreSQL: one audit trail,
// and one draw per event, for every Provider of every process and machine
// that shares a database (a fleet of replicas behind a load balancer).
//
// # One draw per event
//
// An event's record is inserted only if the event has none (a unique key on
// the event name, INSERT ... ON CONFLICT DO NOTHING inside the transaction
// that appends to the chain); RecordEvent returns the record that is stored,
// whoever stored it. A replica that lost the race returns the winner's bytes
// and label from ReadFor, and zeroes its own (Stats.EventBytesDiscarded).
//
// # Tamper evidence
//
// Each row holds one record in the file journal's format (package journal):
// the same line, hashed and chained the same way, in insertion order across
// all replicas. Every append takes the chain head row FOR UPDATE inside its
// transaction, so appends are serialised fleet-wide and the chain has no
// fork; a replica that goes silent holding the head (a network partition)
// loses its transaction after 5 s of silence, so the others go on. Verify reads every row in one snapshot and checks the chain, that
// each row's columns agree with its line, and that the head row names the
// last record: a row edited, deleted or inserted by hand with SQL is caught,
// and the first bad record is named (*RecordError). As with a file, a
// writer with full access to the database can rebuild the whole chain; keep
// the head (Journal.Head) somewhere else too.
//
// # Schema
//
// Open creates or migrates its tables itself, inside a transaction that
// holds a PostgreSQL advisory lock, so that any number of replicas can start
// at once. Its tables are named with a prefix ("entropy_" by default) in a
// schema ("public" by default): WithSchema and WithTablePrefix let several
// applications share one database, as do the DSN's query parameters
// journal_schema and journal_prefix (removed before the DSN reaches the
// driver).
//
// # When PostgreSQL is down
//
// Calls fail with errors that wrap the driver's: ReadFor of an event not yet
// drawn fails cleanly, and nothing unrecorded is handed out. Reads go on from
// the pool; since the replay guard (ClaimJob, see entropy.Journal) cannot
// tell whether a new job is fresh, refills are refused meanwhile, and once
// the pool is empty reads follow the Provider's policy (Degrade: crypto/rand,
// labelled non-verifiable). Every append is idempotent
// (a retried block, episode or event after an unknown commit outcome is
// recognised and not recorded twice), so the Provider retries block and
// fallback records until they are written, and a ReadFor that failed can be
// called again. The connection pool (pgxpool) reconnects by itself.
//
// The driver is github.com/jackc/pgx/v5 (pgxpool).
package pgjournal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/names"
	"github.com/provenrand/entropy/journal"
)

// SchemaVersion is the version of the tables this package creates and
// migrates to.
const SchemaVersion = 1

// DefaultTablePrefix is the prefix of the table names without
// WithTablePrefix.
const DefaultTablePrefix = "entropy_"

var (
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("pgjournal: closed")
	// ErrHeadMismatch reports a chain head row that does not name the last
	// record: records were removed from the end, or added without it.
	ErrHeadMismatch = errors.New("pgjournal: chain head does not match the last record")
	// ErrColumnMismatch reports a row whose columns do not agree with the
	// record line it holds: the row was changed by hand.
	ErrColumnMismatch = errors.New("pgjournal: row columns do not match its record")
	// ErrSchemaVersion is returned by Open for tables of a newer version
	// than this package knows.
	ErrSchemaVersion = errors.New("pgjournal: schema version not supported")
)

// RecordError names the first bad record of a journal. Seq is the record's
// seq column (for ErrHeadMismatch: the head row's seq), Row its 1-based place
// in seq order. Err is one of journal.ErrHashMismatch, journal.ErrChainBroken,
// journal.ErrSequence, journal.ErrMalformed, ErrColumnMismatch or
// ErrHeadMismatch, possibly wrapping a detail.
type RecordError struct {
	Seq uint64
	Row int
	Err error
}

// Error returns "pgjournal: record N: ...".
func (e *RecordError) Error() string {
	return fmt.Sprintf("pgjournal: record %d (row %d in seq order): %v", e.Seq, e.Row, e.Err)
}

// Unwrap returns Err.
func (e *RecordError) Unwrap() error { return e.Err }

// Journal is an entropy.Journal in a PostgreSQL database. It is safe for
// concurrent use, and any number of Journals in any number of processes may
// share one database and prefix.
type Journal struct {
	pool   *pgxpool.Pool
	t      tables
	now    func() time.Time
	closed atomic.Bool
	// done ends at Close, and with it every call in flight (bind):
	// pgxpool's Close waits for them, and one on a database that does not
	// answer would hold Close for ever.
	done context.Context
	stop context.CancelFunc
}

var (
	_ entropy.Journal = (*Journal)(nil)
	_ interface {
		ClaimJob(ctx context.Context, source, jobID string) (bool, error)
	} = (*Journal)(nil) // the replay guard across the fleet
)

// config is what the options set.
type config struct {
	schema, prefix       string
	schemaSet, prefixSet bool
	now                  func() time.Time
	maxConns             int32
}

// Option configures Open.
type Option func(*config)

// WithSchema puts the tables in the named PostgreSQL schema (created if
// missing). Default: "public". The name is lower-case letters, digits and
// underscores, starting with a letter or underscore, at most 40 bytes.
func WithSchema(name string) Option {
	return func(c *config) { c.schema, c.schemaSet = name, true }
}

// WithTablePrefix names the tables with prefix (default DefaultTablePrefix),
// so that two applications can keep separate journals in one schema. The
// prefix is lower-case letters, digits and underscores, at most 40 bytes.
func WithTablePrefix(prefix string) Option {
	return func(c *config) { c.prefix, c.prefixSet = prefix, true }
}

// WithClock sets the clock that stamps records (default: the system
// clock). It takes the entropy.Clock that every WithClock of the module
// takes; entropy.NowFunc adapts a plain time function.
func WithClock(clk entropy.Clock) Option {
	return func(c *config) {
		if clk != nil {
			c.now = clk.Now
		}
	}
}

// WithMaxConns bounds the connection pool (default: pgxpool's, or the DSN's
// pool_max_conns).
func WithMaxConns(n int32) Option {
	return func(c *config) { c.maxConns = n }
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)
var prefixRE = regexp.MustCompile(`^[a-z0-9_]{0,40}$`)

// Open connects to the database at dsn (a postgres:// or postgresql:// URL,
// or a key=value connection string), creates or migrates the journal's
// tables, and returns the Journal. Errors never contain the DSN's password.
func Open(ctx context.Context, dsn string, opts ...Option) (*Journal, error) {
	if ctx == nil {
		return nil, errors.New("pgjournal: nil context")
	}
	c := config{schema: "public", prefix: DefaultTablePrefix, now: time.Now}
	dsn, err := takeParams(dsn, &c)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if !identRE.MatchString(c.schema) {
		return nil, fmt.Errorf("pgjournal: invalid schema name %q: use lower-case letters, digits and underscores (at most 40)", c.schema)
	}
	if !prefixRE.MatchString(c.prefix) {
		return nil, fmt.Errorf("pgjournal: invalid table prefix %q: use lower-case letters, digits and underscores (at most 40)", c.prefix)
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, redact(fmt.Errorf("pgjournal: invalid DSN: %w", parseError(err, dsn)), dsn)
	}
	if c.maxConns > 0 {
		pcfg.MaxConns = c.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, redact(fmt.Errorf("pgjournal: connect: %w", err), dsn)
	}
	j := &Journal{pool: pool, t: newTables(c.schema, c.prefix), now: c.now}
	j.done, j.stop = context.WithCancel(context.Background())
	if err := j.migrate(ctx); err != nil {
		pool.Close()
		return nil, redact(err, dsn)
	}
	return j, nil
}

// parseError is the driver's error for a DSN it cannot parse, with the DSN
// it quotes shown as Redact shows it: the driver's own redaction misses
// part of a password that holds an '@' or a quote.
func parseError(err error, dsn string) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return err
	}
	s := pe.Error()
	i := strings.LastIndex(s, "`: ")
	if i < 0 {
		return &redactedError{msg: "cannot parse " + Redact(dsn), cause: err}
	}
	return &redactedError{msg: "cannot parse " + Redact(dsn) + ": " + s[i+3:], cause: err}
}

// takeParams removes the journal_schema and journal_prefix query parameters
// from a URL DSN and applies them to c (options given to Open win).
func takeParams(dsn string, c *config) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("pgjournal: invalid DSN: not a valid URL")
	}
	q := u.Query()
	changed := false
	if v, ok := q["journal_schema"]; ok {
		c.schema, changed = v[len(v)-1], true
		q.Del("journal_schema")
	}
	if v, ok := q["journal_prefix"]; ok {
		c.prefix, changed = v[len(v)-1], true
		q.Del("journal_prefix")
	}
	if !changed {
		return dsn, nil
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Redact returns dsn with its password (and its client key's passphrase,
// sslpassword), if any, replaced by "xxxxx": for logs and messages that
// name the database. A URL's password may be in its user info or in its
// password query parameter (pgx reads both); of a URL
// that does not parse (a password with an unescaped '%', '#', '/' or '?'),
// which pgx refuses too, only the scheme and the host are shown.
func Redact(dsn string) string {
	scheme, rest, isURL := strings.Cut(dsn, "://")
	if !isURL {
		// A key=value string: blank out password=...
		return passwordKV.ReplaceAllString(dsn, "${1}xxxxx")
	}
	u, q, ok := parseURL(dsn)
	if !ok {
		host := rest[strings.LastIndex(rest, "@")+1:]
		if i := strings.IndexAny(host, "/?#"); i >= 0 {
			host = host[:i]
		}
		return scheme + "://xxxxx@" + host
	}
	_, inUser := u.User.Password()
	inQuery := q.Has("password") || q.Has("sslpassword") // sslpassword: the client key's passphrase
	if !inUser && !inQuery {
		return dsn
	}
	if inUser {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if inQuery {
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// parseURL parses dsn, a URL, and its query; ok is false if either does
// not parse (url.URL.Query would drop a bad pair silently).
func parseURL(dsn string) (u *url.URL, q url.Values, ok bool) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, nil, false
	}
	if q, err = url.ParseQuery(u.RawQuery); err != nil {
		return nil, nil, false
	}
	return u, q, true
}

var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactedError is an error whose text had a password taken out; it still
// unwraps to the cause, for errors.Is and errors.As.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redact makes sure that err's text does not contain dsn's password.
func redact(err error, dsn string) error {
	if err == nil {
		return nil
	}
	pw := password(dsn)
	if pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), pw, "xxxxx"), cause: err}
}

// password returns the password in dsn, "" if none: of a URL that does not
// parse, the text between the first ':' of its user info and its last '@',
// or after "password=" in its query.
func password(dsn string) string {
	_, rest, isURL := strings.Cut(dsn, "://")
	if !isURL {
		if m := passwordKV.FindStringSubmatch(dsn); m != nil {
			return strings.Trim(m[2], "'")
		}
		return ""
	}
	if u, q, ok := parseURL(dsn); ok {
		if pw, ok := u.User.Password(); ok {
			return pw
		}
		return q.Get("password")
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
			return pw
		}
	}
	if _, pw, ok := strings.Cut(rest, "password="); ok {
		pw, _, _ = strings.Cut(pw, "&")
		pw, _, _ = strings.Cut(pw, "#")
		return pw
	}
	return ""
}

// tables holds the quoted, qualified names of the journal's tables.
type tables struct {
	schema, prefix string
	qschema        string // quoted schema
	version        string // schema versions applied
	records        string // one record per row
	head           string // the chain head: one row
	jobs           string // jobs claimed (the replay guard)
	lockKey        int64  // advisory lock key of migrations
	schemaLockKey  int64  // advisory lock key of the schema's creation, for every prefix
}

func newTables(schema, prefix string) tables {
	q := func(name string) string { return pgx.Identifier{schema, prefix + name}.Sanitize() }
	h := fnv.New64a()
	h.Write([]byte("provenrand/entropy/pgjournal\x00" + schema + "\x00" + prefix))
	hs := fnv.New64a()
	hs.Write([]byte("provenrand/entropy/pgjournal/schema\x00" + schema))
	return tables{
		schema: schema, prefix: prefix,
		qschema: pgx.Identifier{schema}.Sanitize(),
		version: q("journal_version"),
		records: q("journal_records"),
		head:    q("journal_head"),
		jobs:    q("journal_jobs"),
		lockKey: int64(h.Sum64()),

		schemaLockKey: int64(hs.Sum64()),
	}
}

// migrate creates the tables or brings them to SchemaVersion. A journal at
// the current version is only read (no lock, no DDL), so a role that may
// only read and insert can open it.
func (j *Journal) migrate(ctx context.Context) error {
	if v, err := j.version(ctx, j.pool); err == nil && v == SchemaVersion {
		return nil
	}
	return pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		// Many replicas may start at once: one migrates, the others wait
		// here and then find the work done.
		// Journals of other prefixes may be creating the same schema: the
		// schema's lock first, then the journal's.
		if _, err := tx.Exec(ctx, "SELECT set_config('idle_in_transaction_session_timeout', $3, true), pg_advisory_xact_lock($1), pg_advisory_xact_lock($2)",
			j.t.schemaLockKey, j.t.lockKey, holdLimit); err != nil {
			return fmt.Errorf("pgjournal: migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+j.t.qschema); err != nil {
			return fmt.Errorf("pgjournal: create schema %s: %w", j.t.schema, err)
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+j.t.version+
			" (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
			return fmt.Errorf("pgjournal: create version table: %w", err)
		}
		v, err := j.version(ctx, tx)
		if err != nil {
			return err
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w: the tables are at version %d, this package knows %d", ErrSchemaVersion, v, SchemaVersion)
		}
		for next := v + 1; next <= SchemaVersion; next++ {
			if err := j.migrations()[next-1](ctx, tx); err != nil {
				return fmt.Errorf("pgjournal: migrate to version %d: %w", next, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+j.t.version+" (version) VALUES ($1)", next); err != nil {
				return fmt.Errorf("pgjournal: record version %d: %w", next, err)
			}
		}
		return nil
	})
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// version returns the schema version applied (0 if none; an error if the
// version table does not exist).
func (j *Journal) version(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+j.t.version).Scan(&v); err != nil {
		return 0, fmt.Errorf("pgjournal: read schema version: %w", err)
	}
	return v, nil
}

// migrations returns the migration to version i+1 at index i.
func (j *Journal) migrations() []func(context.Context, pgx.Tx) error {
	return []func(context.Context, pgx.Tx) error{
		// Version 1: the records, the chain head and the journal's first
		// record.
		func(ctx context.Context, tx pgx.Tx) error {
			for _, stmt := range []string{
				"CREATE TABLE " + j.t.records + ` (
					seq        bigint PRIMARY KEY CHECK (seq > 0),
					type       text   NOT NULL,
					event      text   UNIQUE,
					data_hash  text   NOT NULL UNIQUE,
					source     text,
					job_id     text,
					line       text   NOT NULL,
					hash       text   NOT NULL,
					written_at timestamptz NOT NULL DEFAULT now()
				)`,
				"CREATE UNIQUE INDEX ON " + j.t.records + " (source, job_id) WHERE type = 'block'",
				"CREATE TABLE " + j.t.jobs + ` (
					source     text NOT NULL,
					job_id     text NOT NULL,
					claimed_at timestamptz NOT NULL DEFAULT now(),
					PRIMARY KEY (source, job_id)
				)`,
				"CREATE TABLE " + j.t.head + ` (
					id   boolean PRIMARY KEY DEFAULT true CHECK (id),
					seq  bigint  NOT NULL,
					hash text    NOT NULL
				)`,
			} {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return err
				}
			}
			e, err := journal.NewChain().Append(j.now(), journal.HeaderData{Format: journal.Format})
			if err != nil {
				return err
			}
			if err := insert(ctx, tx, j.t, e, journal.HeaderData{}); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "INSERT INTO "+j.t.head+" (id, seq, hash) VALUES (true, $1, $2)", int64(e.Seq), e.Hash)
			return err
		},
	}
}

// dataHash identifies a record's content, whatever its place and time in
// the chain: a retried append of the same block or episode is recognised.
func dataHash(typ string, data []byte) string {
	h := sha256.New()
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// jobColumnsMatch reports whether a row's source and job_id columns are
// those of its record: a block's source and job ID, NULL for other records.
func jobColumnsMatch(e journal.Entry, source, jobID *string) bool {
	if e.Type != journal.TypeBlock {
		return source == nil && jobID == nil
	}
	var b struct {
		Source *string `json:"source"`
		JobID  *string `json:"job_id"`
	}
	if json.Unmarshal(e.Data, &b) != nil || b.Source == nil || b.JobID == nil || source == nil || jobID == nil {
		return false
	}
	return *source == *b.Source && *jobID == *b.JobID
}

// insert adds e's row; it reports false if a unique key (the event, the
// data hash) already holds it.
func insert(ctx context.Context, tx pgx.Tx, t tables, e journal.Entry, rec any) error {
	_, err := insertIfAbsent(ctx, tx, t, e, rec)
	return err
}

func insertIfAbsent(ctx context.Context, tx pgx.Tx, t tables, e journal.Entry, rec any) (bool, error) {
	var event, source, jobID *string
	if e.Type == journal.TypeEvent {
		event = &e.Event
	}
	if b, ok := rec.(entropy.BlockRecord); ok {
		source, jobID = &b.Source, &b.JobID
	}
	tag, err := tx.Exec(ctx, "INSERT INTO "+t.records+
		" (seq, type, event, data_hash, source, job_id, line, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
		int64(e.Seq), e.Type, event, dataHash(e.Type, e.Data), source, jobID, string(e.Line), e.Hash)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// Close closes the connection pool. Calls in flight end, and calls after
// Close return, with errors wrapping ErrClosed.
func (j *Journal) Close() {
	if j.closed.CompareAndSwap(false, true) && j.pool != nil {
		j.stop()
		j.pool.Close()
	}
}

// Schema and TablePrefix return where the journal's tables are.
func (j *Journal) Schema() string { return j.t.schema }

// TablePrefix returns the prefix of the journal's table names.
func (j *Journal) TablePrefix() string { return j.t.prefix }

// errClaimUnknown is ClaimJob's answer when an attempt whose answer was
// lost may have claimed the job that a later attempt finds claimed.
var errClaimUnknown = errors.New("the claim's answer was lost with its connection, and the job is claimed now, by it or by another")

// errAlreadyRecorded is append's answer for a record whose content is in
// the journal already: an event drawn before, or a retried block or episode.
var errAlreadyRecorded = errors.New("already recorded")

// usable returns the error of a call under ctx that cannot start: j not
// made by Open (no pool), j closed (ErrClosed), ctx nil, or ctx ended.
func (j *Journal) usable(ctx context.Context) error {
	switch {
	case j.pool == nil:
		return errors.New("pgjournal: a Journal must be made by Open")
	case j.closed.Load():
		return ErrClosed
	case ctx == nil:
		return errors.New("pgjournal: nil context")
	}
	return ctx.Err()
}

// bind returns ctx, ended also by Close (with the cause ErrClosed), and
// the function that releases it.
func (j *Journal) bind(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(j.done, func() { cancel(ErrClosed) })
	return ctx, func() { unhook(); cancel(nil) }
}

// holdLimit is the longest a transaction of the journal may wait for its
// client while it holds a lock that other replicas wait for (the chain
// head's, the migration's): the server then ends the session, and the
// locks with it (idle_in_transaction_session_timeout). A live client
// waits for nothing between its statements.
const holdLimit = "5s"

// append adds rec as the next record of the chain, in one transaction that
// holds the chain head row. It returns errAlreadyRecorded (and adds nothing)
// when a unique key holds the record already.
func (j *Journal) append(ctx context.Context, rec any) error {
	if err := j.usable(ctx); err != nil {
		return err
	}
	ctx, end := j.bind(ctx)
	defer end()
	return j.retry(ctx, func() error {
		return pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
			var seq int64
			var head string
			// The head's lock holds every replica's appends: a replica
			// that goes silent holding it (a network partition) gives it
			// up after holdLimit, not when the server's TCP keepalive
			// finds the connection dead, hours later.
			var limit string
			if err := tx.QueryRow(ctx, "SELECT seq, hash, set_config('idle_in_transaction_session_timeout', $1, true) FROM "+j.t.head+" WHERE id FOR UPDATE",
				holdLimit).Scan(&seq, &head, &limit); err != nil {
				return fmt.Errorf("chain head: %w", err)
			}
			e, err := journal.ChainAt(uint64(seq), head).Append(j.now(), rec)
			if err != nil {
				return err
			}
			ok, err := insertIfAbsent(ctx, tx, j.t, e, rec)
			if err != nil {
				return fmt.Errorf("insert record %d: %w", e.Seq, err)
			}
			if !ok {
				var n int
				err := tx.QueryRow(ctx, "SELECT count(*) FROM "+j.t.records+" WHERE data_hash = $1 OR (event IS NOT NULL AND event = $2)",
					dataHash(e.Type, e.Data), e.Event).Scan(&n)
				if err != nil {
					return fmt.Errorf("look for record %d: %w", e.Seq, err)
				}
				if n == 0 {
					if b, ok := rec.(entropy.BlockRecord); ok {
						err := tx.QueryRow(ctx, "SELECT count(*) FROM "+j.t.records+" WHERE type = 'block' AND source = $1 AND job_id = $2", b.Source, b.JobID).Scan(&n)
						if err == nil && n > 0 {
							return fmt.Errorf("%w: job %q of %q, with other bytes", journal.ErrJobExists, b.JobID, b.Source)
						}
					}
					return fmt.Errorf("record %d: its seq is taken by a row the chain head does not know: the table was changed by hand (run Verify)", e.Seq)
				}
				return errAlreadyRecorded
			}
			if _, err := tx.Exec(ctx, "UPDATE "+j.t.head+" SET seq = $1, hash = $2 WHERE id", int64(e.Seq), e.Hash); err != nil {
				return fmt.Errorf("update chain head: %w", err)
			}
			return nil
		})
	})
}

// retry runs f while it fails for a lost connection (a restarted server, a
// terminated backend), at most once more than the pool has connections (each
// idle one may have died with the server) and at most 10 times: every
// append is idempotent, so a transaction whose outcome is unknown can be
// run again.
func (j *Journal) retry(ctx context.Context, f func() error) error {
	attempts := min(int(j.pool.Config().MaxConns)+2, 10)
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(min(time.Duration(attempt)*50*time.Millisecond, 250*time.Millisecond)):
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			}
		}
		err = f()
		if err == nil || errors.Is(err, errAlreadyRecorded) || !transient(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// transient reports whether err is a lost connection or a server going
// away, which a new attempt on another connection may not meet.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "57P"),      // admin shutdown, crash shutdown, cannot connect now
			pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock
			pe.Code == "25P03": // idle in transaction for holdLimit: the session was ended
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnClosed(err)
}

// isConnClosed recognises a connection that died under a query.
func isConnClosed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unexpected EOF") || strings.Contains(s, "conn closed") ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe")
}

// ClaimJob reports whether (source, jobID) is new to the journal, and if it
// is, reserves it for the caller, atomically across every replica sharing
// the database: a job replayed to two replicas, or to one after a restart,
// is taken once. It is the replay guard that entropy.Journal describes.
//
// A claim whose answer was lost with its connection may have been taken
// by the database all the same: tried again, it finds the job claimed and
// cannot tell by whom. It then returns an error (errClaimUnknown), not
// false, which would say the job was claimed before: a Provider refuses the
// block either way, but counts a job claimed before against the source, as
// a replay.
func (j *Journal) ClaimJob(ctx context.Context, source, jobID string) (bool, error) {
	if err := j.usable(ctx); err != nil {
		return false, err
	}
	ctx, end := j.bind(ctx)
	defer end()
	var fresh, unknown bool // unknown: an attempt failed, and may have taken the job
	err := j.retry(ctx, func() error {
		tag, err := j.pool.Exec(ctx, "INSERT INTO "+j.t.jobs+" (source, job_id) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM "+
			j.t.records+" WHERE type = 'block' AND source = $1 AND job_id = $2) ON CONFLICT DO NOTHING", source, jobID)
		if err != nil {
			unknown = true
			return err
		}
		fresh = tag.RowsAffected() == 1
		if !fresh && unknown {
			return errClaimUnknown
		}
		return nil
	})
	if err != nil {
		return false, j.wrap(fmt.Sprintf("claim job %s/%s", source, jobID), err)
	}
	return fresh, nil
}

// RecordBlock appends a "block" record. A block already recorded (a retry
// after a lost connection) is not recorded twice; another block of a job
// recorded before is refused (journal.ErrJobExists).
func (j *Journal) RecordBlock(ctx context.Context, b entropy.BlockRecord) error {
	// Names come back in audit reports that people read: the file journal's
	// rule (docs/protocol.md, "Names"), so that both journals hold the same.
	for _, n := range []string{b.Source, b.JobID} {
		if err := names.Check(n); err != nil {
			return fmt.Errorf("%w: block record: name %v (docs/protocol.md, \"Names\")", journal.ErrMalformed, err)
		}
	}
	err := j.append(ctx, b)
	if errors.Is(err, errAlreadyRecorded) {
		return nil
	}
	if err != nil {
		return j.wrap(fmt.Sprintf("record block %s/%s", b.Source, b.JobID), err)
	}
	return nil
}

// RecordFallback appends a "fallback" record. An episode already recorded
// (a retry after a lost connection) is not recorded twice.
func (j *Journal) RecordFallback(ctx context.Context, e entropy.FallbackEpisode) error {
	err := j.append(ctx, e)
	if errors.Is(err, errAlreadyRecorded) {
		return nil
	}
	if err != nil {
		return j.wrap("record fallback episode", err)
	}
	return nil
}

var (
	_ entropy.Journal = (*Journal)(nil)
	_ interface {
		RecordAttempt(context.Context, entropy.EventAttempt) error
	} = (*Journal)(nil) // the Provider records event attempts in it
)

// RecordAttempt appends an "attempt" record: a request for the job of an
// event, recorded before it is sent (see entropy.Journal). An
// attempt already recorded (a retry after a lost connection) is not
// recorded twice.
func (j *Journal) RecordAttempt(ctx context.Context, a entropy.EventAttempt) error {
	err := j.append(ctx, a)
	if errors.Is(err, errAlreadyRecorded) {
		return nil
	}
	if err != nil {
		return j.wrap(fmt.Sprintf("record attempt for event %q", a.Event), err)
	}
	return nil
}

// RecordEvent appends an "event" record unless the event has one, and
// returns the record stored, whoever stored it (this or another replica).
func (j *Journal) RecordEvent(ctx context.Context, r entropy.EventRecord) (entropy.EventRecord, error) {
	if r.Event == "" {
		return entropy.EventRecord{}, fmt.Errorf("%w: event name is empty", journal.ErrMalformed)
	}
	if len(r.Data) == 0 {
		return entropy.EventRecord{}, fmt.Errorf("%w: event %q has no data", journal.ErrMalformed, r.Event)
	}
	if j.closed.Load() {
		return entropy.EventRecord{}, ErrClosed
	}
	err := j.append(ctx, r)
	if err == nil {
		// Ours is the record stored: as it reads back.
		r.Data = bytes.Clone(r.Data)
		r.Time = r.Time.UTC()
		return r, nil
	}
	if !errors.Is(err, errAlreadyRecorded) {
		return entropy.EventRecord{}, j.wrap(fmt.Sprintf("record event %q", r.Event), err)
	}
	stored, ok, err := j.LookupEvent(ctx, r.Event)
	if err != nil {
		return entropy.EventRecord{}, err
	}
	if !ok {
		return entropy.EventRecord{}, fmt.Errorf("pgjournal: event %q was recorded but is not found: the table was changed by hand (run Verify)", r.Event)
	}
	return stored, nil
}

// LookupEvent returns the record of an event, if any replica recorded one.
// A row whose line was changed by hand is refused (journal.ErrHashMismatch).
func (j *Journal) LookupEvent(ctx context.Context, event string) (entropy.EventRecord, bool, error) {
	if err := j.usable(ctx); err != nil {
		return entropy.EventRecord{}, false, err
	}
	ctx, end := j.bind(ctx)
	defer end()
	var line string
	err := j.retry(ctx, func() error {
		return j.pool.QueryRow(ctx, "SELECT line FROM "+j.t.records+" WHERE event = $1", event).Scan(&line)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return entropy.EventRecord{}, false, nil
	}
	if err != nil {
		return entropy.EventRecord{}, false, j.wrap(fmt.Sprintf("look up event %q", event), err)
	}
	r, err := journal.ParseEvent([]byte(line))
	if err != nil {
		return entropy.EventRecord{}, false, fmt.Errorf("pgjournal: event %q: %w", event, err)
	}
	if r.Event != event {
		return entropy.EventRecord{}, false, fmt.Errorf("pgjournal: event %q: %w: the row holds event %q", event, ErrColumnMismatch, r.Event)
	}
	return r, true, nil
}

// wrap names the operation that failed; a closed journal says so.
func (j *Journal) wrap(op string, err error) error {
	if j.closed.Load() {
		return fmt.Errorf("pgjournal: %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("pgjournal: %s: %w", op, err)
}

// Head returns the seq and hash of the last record, from the chain head
// row: publish or store them elsewhere, and compare with Verify's
// Report.Head later.
func (j *Journal) Head(ctx context.Context) (seq uint64, hash string, err error) {
	if err := j.usable(ctx); err != nil {
		return 0, "", err
	}
	ctx, end := j.bind(ctx)
	defer end()
	var s int64
	if err := j.pool.QueryRow(ctx, "SELECT seq, hash FROM "+j.t.head+" WHERE id").Scan(&s, &hash); err != nil {
		return 0, "", j.wrap("read chain head", err)
	}
	return uint64(s), hash, nil
}

// FindHead looks for the record whose hash is head, a Report.Head or
// Journal.Head published earlier (hex, either case), and returns its seq.
// Verify the journal first: in a journal that verifies, a head found means
// every record up to it is as it was when the head was taken, and the
// records after it were added since; a head not found means records were
// removed from the end or rewritten.
func (j *Journal) FindHead(ctx context.Context, head string) (seq uint64, ok bool, err error) {
	if err := j.usable(ctx); err != nil {
		return 0, false, err
	}
	ctx, end := j.bind(ctx)
	defer end()
	var s int64
	err = j.pool.QueryRow(ctx, "SELECT seq FROM "+j.t.records+" WHERE hash = $1", strings.ToLower(strings.TrimSpace(head))).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, j.wrap("find head", err)
	}
	return uint64(s), true, nil
}

// Verify reads every record, in one snapshot of the database, and checks
// the chain as journal.Verify checks a file: canonical form, hash, sequence
// and chain; also that each row's columns agree with its line and that the
// chain head row names the last record. It returns the first problem as a
// *RecordError; the Report then covers the records before it.
func (j *Journal) Verify(ctx context.Context) (journal.Report, error) {
	if err := j.usable(ctx); err != nil {
		return journal.Report{}, err
	}
	ctx, end := j.bind(ctx)
	defer end()
	var rep journal.Report
	err := pgx.BeginTxFunc(ctx, j.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var headSeq int64
		var headHash string
		err := tx.QueryRow(ctx, "SELECT seq, hash FROM "+j.t.head+" WHERE id").Scan(&headSeq, &headHash)
		if errors.Is(err, pgx.ErrNoRows) {
			return &RecordError{Err: fmt.Errorf("%w: the chain head row is missing", ErrHeadMismatch)}
		}
		if err != nil {
			return j.wrap("read chain head", err)
		}
		rows, err := tx.Query(ctx, "SELECT seq, type, event, data_hash, source, job_id, line, hash FROM "+j.t.records+" ORDER BY seq")
		if err != nil {
			return j.wrap("read records", err)
		}
		defer rows.Close()
		c := journal.NewChain()
		row := 0
		for rows.Next() {
			row++
			var seq int64
			var typ, dh, line, hash string
			var event, source, jobID *string
			if err := rows.Scan(&seq, &typ, &event, &dh, &source, &jobID, &line, &hash); err != nil {
				return j.wrap("read records", err)
			}
			bad := func(err error) error {
				rep = c.Report()
				return &RecordError{Seq: uint64(seq), Row: row, Err: err}
			}
			e, err := c.Check([]byte(line))
			if err != nil {
				return bad(err)
			}
			ev := ""
			if event != nil {
				ev = *event
			}
			switch {
			case uint64(seq) != e.Seq:
				return bad(fmt.Errorf("%w: seq column %d, the record says %d", ErrColumnMismatch, seq, e.Seq))
			case typ != e.Type:
				return bad(fmt.Errorf("%w: type column %q, the record says %q", ErrColumnMismatch, typ, e.Type))
			case ev != e.Event || (event != nil) != (e.Type == journal.TypeEvent):
				return bad(fmt.Errorf("%w: event column %q, the record says %q", ErrColumnMismatch, ev, e.Event))
			case hash != e.Hash:
				return bad(fmt.Errorf("%w: hash column is not the record's hash", ErrColumnMismatch))
			case dh != dataHash(e.Type, e.Data):
				return bad(fmt.Errorf("%w: data_hash column is not the record's", ErrColumnMismatch))
			case !jobColumnsMatch(e, source, jobID):
				// The replay guard and the one-record-per-job key read
				// these columns: an edited one lets a recorded job in again.
				return bad(fmt.Errorf("%w: source or job_id column is not the record's", ErrColumnMismatch))
			}
		}
		if err := rows.Err(); err != nil {
			return j.wrap("read records", err)
		}
		rep = c.Report()
		if len(rep.DuplicateJobs) > 0 {
			d := rep.DuplicateJobs[0]
			return &RecordError{Seq: uint64(d.Line), Row: d.Line, Err: fmt.Errorf("%w: job %q of %q, first recorded in record %d", journal.ErrDuplicateJob, d.JobID, d.Source, d.FirstLine)}
		}
		if uint64(headSeq) != rep.LastSeq || headHash != rep.Head {
			// The first record the head and the rows disagree on: one
			// removed from the end, or one added without the head.
			first := min(uint64(headSeq), rep.LastSeq) + 1
			if uint64(headSeq) == rep.LastSeq {
				first = rep.LastSeq
			}
			return &RecordError{Seq: first, Row: int(min(uint64(row), first)), Err: fmt.Errorf("%w: the head names record %d, the last record is %d (records removed from the end, or added without the head)", ErrHeadMismatch, headSeq, rep.LastSeq)}
		}
		if rep.Records == 0 {
			return &RecordError{Seq: 1, Row: 1, Err: fmt.Errorf("%w: no records, not even the journal's first", journal.ErrSequence)}
		}
		return nil
	})
	return rep, err
}
