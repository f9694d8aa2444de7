// Package journal is a tamper-evident audit trail for an entropy.Provider: an
// append-only JSON Lines file in which every record is hash-chained to the one
// before it (SHA-256) and fsynced before the append returns.
//
// A *Journal implements entropy.Journal; give it to a Provider with
// entropy.WithJournal and every block fetched, every fallback episode and every
// event draw is recorded, even for a caller that only uses the Provider as an
// io.Reader.
//
// # Format
//
// Each line is one JSON object with the members, in this order,
//
//	{"seq":N,"time":T,"type":TYPE,"data":{...},"prev":P,"hash":H}
//
// where seq counts from 1, time is when the record was appended (RFC 3339,
// UTC), prev is the hex SHA-256 of the previous line's bytes (without its
// newline; 64 zeros on the first line) and hash is the hex SHA-256 of the line
// without its hash member, that is of
//
//	{"seq":N,"time":T,"type":TYPE,"data":{...},"prev":P}
//
// Lines are written in the canonical form that Go's encoding/json gives those
// structures, and Verify insists on it, so that a change of any byte shows. The
// first record has type "journal" and names the format (Format). The others
// are "block", "fallback", "attempt" and "event"; their data members are
// documented on BlockData, FallbackData, AttemptData and EventData.
//
// # What Verify detects, and what it cannot
//
// A changed byte in any record, a removed or reordered record and a record cut
// short are reported with the number of the first bad line (*LineError). A
// last line cut short by a crash is reported as ErrTorn, never dropped. What no
// file can show by itself is that whole records were cut off its end: compare
// Report.Head (or Journal.Head) with a value you published or stored elsewhere
// to detect that.
//
// The chain has no key: it shows a change made by an editor who did not
// rewrite every line after it, not one made by whoever can write the file
// and recomputes the hashes. Such a rewrite (records changed, removed,
// reordered or added, and every seq, prev and hash after them recomputed)
// verifies; only its head differs from the one the journal had. Publish or
// store the head elsewhere after the records that matter (a draw's event
// record, say), and check it later (`entropy audit --head HASH`): that is
// what shows a rewritten journal.
//
// # A torn last line
//
// An append writes one line and fsyncs it. When the write or the fsync fails
// (a full disk, a file size limit), the append cuts the file back to its last
// complete record before it returns the error: the record was not kept and
// the file is as it was. Only a crash in between (or a failure of that cut)
// can leave part of a line at the end of the file. That record was never
// acknowledged: the call that wrote it did not return, so an event whose
// record is torn was never handed out. Open refuses such a file with a *LineError whose Err is ErrTorn
// and whose Offset is where the torn line starts. The operator keeps a copy of
// the file, moves the torn bytes out of it (for example
// `tail -c +$((OFFSET+1)) FILE > FILE.torn && truncate -s OFFSET FILE`), notes
// that in the operations log, and opens the journal again; the chain continues
// from the last complete record. The package never does this by itself.
// A file that a Journal holds open is being written: VerifyFile reports a
// last line in progress there with ErrLocked, not ErrTorn; never move bytes
// out of such a file.
//
// Event entropy is stored in the journal in clear: it is for public draws,
// never for secrets. No API key ever reaches the journal: nothing in it takes
// one.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/internal/evidence"
	"github.com/provenrand/entropy/internal/names"
)

// Format names the journal format in the first record of every journal.
const Format = "provenrand-journal/1"

// MaxLineSize is the longest line Verify and Open accept, newline included.
const MaxLineSize = 1 << 20

// Record types.
const (
	TypeJournal  = "journal"  // the first record: the format
	TypeBlock    = "block"    // a block that entered a Provider's pool
	TypeFallback = "fallback" // a fallback episode
	TypeEvent    = "event"    // the entropy of a named event
	TypeAttempt  = "attempt"  // a request made for an event's job, before it was sent
)

// zeroHash is the prev of the first line.
const zeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

var (
	// ErrTorn reports a last line cut short by a crash: it has no newline or
	// cannot be parsed. See the package documentation for what to do.
	ErrTorn = errors.New("journal: torn last line (an append did not complete)")
	// ErrHashMismatch reports a record whose hash does not match its content:
	// the record was changed.
	ErrHashMismatch = errors.New("journal: record hash does not match its content (record changed)")
	// ErrChainBroken reports a record whose prev is not the hash of the line
	// before it.
	ErrChainBroken = errors.New("journal: prev does not match the line before (chain broken)")
	// ErrSequence reports a record whose seq is not one more than the record
	// before it: a record was removed, inserted or moved.
	ErrSequence = errors.New("journal: record out of sequence (removed, inserted or reordered)")
	// ErrMalformed reports a line that is not a record of this format, or not
	// in its canonical form.
	ErrMalformed = errors.New("journal: malformed record")
	// ErrClosed is returned by appends after Close.
	ErrClosed = errors.New("journal: closed")
	// ErrLocked is returned by Open when another Journal holds the file,
	// and wrapped by VerifyFile's error when the last line of a file a
	// Journal holds is an append in progress.
	ErrLocked = errors.New("journal: file is in use by another journal")
)

// LineError names the first bad line of a journal. Err is one of ErrTorn,
// ErrHashMismatch, ErrChainBroken, ErrSequence or ErrMalformed, possibly
// wrapping a detail.
type LineError struct {
	Line   int   // 1-based line number
	Offset int64 // byte offset of the line's first byte in the file
	Err    error
}

// Error returns "journal: line N: ...".
func (e *LineError) Error() string {
	return fmt.Sprintf("journal: line %d (offset %d): %v", e.Line, e.Offset, e.Err)
}

// Unwrap returns Err, so that errors.Is(err, ErrTorn) and friends work.
func (e *LineError) Unwrap() error { return e.Err }

// record is one line. Its field order is the wire order.
type record struct {
	Seq  uint64          `json:"seq"`
	Time time.Time       `json:"time"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	Prev string          `json:"prev"`
	Hash string          `json:"hash,omitempty"`
}

// HeaderData is the data of the first record.
type HeaderData struct {
	Format string `json:"format"` // Format
}

// BlockData is the data of a "block" record: entropy.BlockRecord with its
// digest in hex.
type BlockData struct {
	Source     string    `json:"source"`
	JobID      string    `json:"job_id"`
	Size       int       `json:"size"`
	Digest     string    `json:"digest"` // hex SHA-256 of the block's bytes
	Verifiable bool      `json:"verifiable"`
	Time       time.Time `json:"time"` // when the Provider accepted the block
}

// FallbackData is the data of a "fallback" record: entropy.FallbackEpisode
// with its reason as text.
type FallbackData struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Ended  bool      `json:"ended"`
	Reads  int64     `json:"reads"`
	Bytes  int64     `json:"bytes"`
	Reason string    `json:"reason"`
}

// EventData is the data of an "event" record: entropy.EventRecord with its
// bytes in hex and its label in entropy.Label's JSON form. An event whose
// job was bound to it (docs/protocol.md, "Event nonces") also has its params and salt in
// hex and the job's proof in entropy.Proof's JSON form; the proof's nonce is
// then EventNonce(event, params, salt), the hash docs/protocol.md defines,
// and the event's bytes the first bytes
// of its data, or the record does not verify.
type EventData struct {
	Event  string         `json:"event"`
	Data   string         `json:"data"` // hex
	Label  entropy.Label  `json:"label"`
	Time   time.Time      `json:"time"`             // when the event was drawn
	Params string         `json:"params,omitempty"` // hex
	Salt   string         `json:"salt,omitempty"`   // hex
	Proof  *entropy.Proof `json:"proof,omitempty"`
}

// AttemptData is the data of an "attempt" record: entropy.EventAttempt, a
// request made for an event's job, recorded before it was sent, with its
// bytes in hex. Its nonce is EventNonce(event, params, salt), or the record
// does not verify. Report.Attempts counts them by event.
type AttemptData struct {
	Event  string    `json:"event"`
	Source string    `json:"source"`
	Params string    `json:"params,omitempty"` // hex
	Salt   string    `json:"salt"`             // hex
	Nonce  string    `json:"nonce"`            // hex
	Time   time.Time `json:"time"`             // when the request was about to be sent
}

// Journal is an open journal file. It is safe for concurrent use; appends are
// serialised and each is on disk when it returns. Only one Journal may have a
// file open at a time (on Unix an exclusive lock enforces this).
type Journal struct {
	path string
	now  func() time.Time

	mu     sync.Mutex // guards everything below
	f      *os.File
	seq    uint64
	prev   string                         // hex SHA-256 of the last line
	events map[string]entropy.EventRecord // by event name
	jobs   map[jobKey]jobState            // every job recorded or claimed (jobs.go)
	size   int64                          // bytes of the complete records: where a failed append is cut back to
	err    error                          // sticky: set when a failed append could not be undone
	closed bool
}

var (
	_ entropy.Journal = (*Journal)(nil)
	_ interface {
		RecordAttempt(context.Context, entropy.EventAttempt) error
	} = (*Journal)(nil) // the Provider records event attempts in it
)

// errNotOpened is the error of a Journal that Open did not make (a zero
// Journal): it has no file.
var errNotOpened = errors.New("journal: a Journal must be made by Open")

// live returns the error of a call under ctx that cannot start: ctx nil, or
// ended.
func live(ctx context.Context) error {
	if ctx == nil {
		return errors.New("journal: nil context")
	}
	return ctx.Err()
}

// Option configures Open.
type Option func(*Journal)

// WithClock sets the clock that stamps records (default: the system
// clock). It takes the entropy.Clock that every WithClock of the module
// takes; entropy.NowFunc adapts a plain time function.
func WithClock(clk entropy.Clock) Option {
	return func(j *Journal) {
		if clk != nil {
			j.now = clk.Now
		}
	}
}

// Open opens the journal at path, creating it (mode 0600) if it does not
// exist; path must name a regular file (or a symbolic link to one). An existing journal is verified first, and Open refuses one that fails
// (a *LineError; with ErrTorn for a torn last line, see the package
// documentation). The events it holds are loaded, so LookupEvent answers for
// events drawn by earlier processes.
func Open(path string, opts ...Option) (*Journal, error) {
	j := &Journal{path: path, now: time.Now, events: make(map[string]entropy.EventRecord), jobs: make(map[jobKey]jobState)}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("journal: option %d is nil", i)
		}
		o(j)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	// Only a regular file keeps what is appended, and can be cut back
	// after a failed append: a named pipe would hold Open for ever in
	// Verify, a device (/dev/null) would keep nothing.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file (%v)", path, st.Mode().Type())
		}
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	v := verifier{
		onEvent: func(r entropy.EventRecord) { j.events[r.Event] = r },
		onBlock: func(k jobKey) { j.jobs[k] = jobRecorded },
	}
	if err := v.run(f); err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	j.f, j.seq, j.prev, j.size = f, v.rep.LastSeq, v.rep.Head, st.Size()
	if j.seq == 0 {
		j.prev = zeroHash
		if err := j.append(TypeJournal, HeaderData{Format: Format}); err != nil {
			f.Close()
			return nil, err
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return j, nil
}

// Path returns the file name the journal was opened with.
func (j *Journal) Path() string { return j.path }

// Head returns the seq and hash of the last record: publish or store them
// elsewhere, and Verify's Report.Head shows later whether records were cut off
// the end of the file.
func (j *Journal) Head() (seq uint64, hash string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq, j.prev
}

// Close closes the file. Appends after Close return ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	return j.f.Close()
}

// RecordBlock appends a "block" record. ctx is checked before the append;
// a file append is not interrupted once it has started.
func (j *Journal) RecordBlock(ctx context.Context, b entropy.BlockRecord) error {
	if err := live(ctx); err != nil {
		return err
	}
	if err := checkNames("block", b.Source, b.JobID); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	k := jobKey{source: b.Source, job: b.JobID}
	if j.jobs[k] == jobRecorded {
		return fmt.Errorf("%w: job %q of %q", ErrJobExists, b.JobID, b.Source)
	}
	if err := j.append(TypeBlock, blockData(b)); err != nil {
		return err
	}
	j.jobs[k] = jobRecorded
	return nil
}

// checkNames refuses (ErrMalformed, nothing written) a record whose names
// (event, source, job ID) are outside the character set of names
// (names.Check): they come back in audit reports that people read.
func checkNames(typ string, ns ...string) error {
	for _, n := range ns {
		if err := names.Check(n); err != nil {
			return fmt.Errorf("%w: %s record: name %v (docs/protocol.md, \"Names\")", ErrMalformed, typ, err)
		}
	}
	return nil
}

// RecordFallback appends a "fallback" record. ctx is checked before the
// append.
func (j *Journal) RecordFallback(ctx context.Context, e entropy.FallbackEpisode) error {
	if err := live(ctx); err != nil {
		return err
	}
	d := fallbackData(e)
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.append(TypeFallback, d)
}

// maxReason is the longest fallback reason a record keeps, in bytes.
const maxReason = 4096

// reasonText is a fallback reason as the journal records it: the text of a
// source's error, which can carry whatever a failing service sent (a header
// of stray bytes, a long body), as valid UTF-8 (each invalid byte sequence
// becomes U+FFFD) and at most maxReason bytes, cut at a rune boundary.
func reasonText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// RecordEvent appends an "event" record, unless the event is recorded
// already (by this Journal or in the file it opened): then it appends
// nothing and returns the record stored before, for an event is drawn once.
// It returns the stored record, whoever stored it, once it is on disk. The
// returned Data is a copy. ctx is checked before the append.
func (j *Journal) RecordEvent(ctx context.Context, r entropy.EventRecord) (entropy.EventRecord, error) {
	if r.Event == "" {
		return entropy.EventRecord{}, fmt.Errorf("%w: event name is empty", ErrMalformed)
	}
	if len(r.Data) == 0 {
		return entropy.EventRecord{}, fmt.Errorf("%w: event %q has no data", ErrMalformed, r.Event)
	}
	names := []string{r.Event}
	for _, sp := range r.Label.Spans {
		names = append(names, sp.Source)
		if sp.JobID != "" {
			names = append(names, sp.JobID)
		}
	}
	if err := checkNames("event", names...); err != nil {
		return entropy.EventRecord{}, err
	}
	if err := live(ctx); err != nil {
		return entropy.EventRecord{}, err
	}
	r.Time = r.Time.UTC()
	d := eventData(r)
	j.mu.Lock()
	defer j.mu.Unlock()
	if old, ok := j.events[r.Event]; ok {
		if j.closed {
			return entropy.EventRecord{}, ErrClosed
		}
		return old.Clone(), nil
	}
	if err := j.append(TypeEvent, d); err != nil {
		return entropy.EventRecord{}, err
	}
	r = r.Clone()
	j.events[r.Event] = r
	return r.Clone(), nil
}

// RecordAttempt appends an "attempt" record: a request for the job of an
// event, recorded before it is sent (see entropy.Journal). It
// returns once the record is on disk. ctx is checked before the append.
func (j *Journal) RecordAttempt(ctx context.Context, a entropy.EventAttempt) error {
	d, err := attemptData(a)
	if err != nil {
		return err
	}
	if err := checkNames("attempt", a.Event, a.Source); err != nil {
		return err
	}
	if err := live(ctx); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.append(TypeAttempt, d)
}

// LookupEvent returns the record of an event, if one was recorded by this
// Journal or is in the file it opened. The returned Data is a copy.
func (j *Journal) LookupEvent(ctx context.Context, event string) (entropy.EventRecord, bool, error) {
	if err := live(ctx); err != nil {
		return entropy.EventRecord{}, false, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return entropy.EventRecord{}, false, ErrClosed
	}
	r, ok := j.events[event]
	if ok {
		r = r.Clone()
	}
	return r, ok, nil
}

// append writes one record and fsyncs the file. A failure part-way leaves the
// file in a state only an operator can judge, so it is sticky: every later
// append returns it. append requires that j.mu is held (or that j is not yet
// shared, in Open).
func (j *Journal) append(typ string, data any) error {
	if j.f == nil {
		return errNotOpened
	}
	if j.closed {
		return ErrClosed
	}
	if j.err != nil {
		return j.err
	}
	d, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("journal: encode %s record: %w", typ, err)
	}
	r := record{Seq: j.seq + 1, Time: j.now().UTC(), Type: typ, Data: d, Prev: j.prev}
	line, err := encode(r)
	if err != nil {
		return err
	}
	// Never write a line that Open and Verify would refuse: the record
	// would be acknowledged (an event's bytes handed out) and the journal
	// unusable after it. Too long a line, or text that is not valid UTF-8
	// (encoding/json writes it as escapes it never writes for valid text,
	// so the line is not canonical), is refused here and nothing is written.
	if len(line)+1 > MaxLineSize {
		return fmt.Errorf("%w: %s record of %d bytes, more than %d", ErrMalformed, typ, len(line)+1, MaxLineSize)
	}
	probe := verifier{rep: Report{LastSeq: j.seq, Head: j.prev}, seen: make(map[string]bool)}
	if err := probe.check(line, false); err != nil {
		return fmt.Errorf("journal: %s record refused, it would not verify: %w", typ, err)
	}
	if err := j.writeLine(r.Seq, line); err != nil {
		return err
	}
	j.seq = r.Seq
	j.prev = lineHash(line)
	return nil
}

// writeLine appends line and its newline and fsyncs the file. When the write
// or the fsync fails (a full disk: ENOSPC, EFBIG), the file is cut back to
// its last complete record and fsynced, so that it holds no part of the
// record and later opens succeed; the record was not kept, and the error
// says so. Only if that undo fails too is the failure sticky: the file may
// then end in a torn line, which needs an operator (see the package
// documentation).
func (j *Journal) writeLine(seq uint64, line []byte) error {
	what := "append"
	_, err := j.f.Write(append(line, '\n'))
	if err == nil {
		what = "fsync"
		err = j.f.Sync()
	}
	if err == nil {
		j.size += int64(len(line)) + 1
		return nil
	}
	if uerr := j.undo(); uerr != nil {
		j.err = fmt.Errorf("journal: %s of record %d failed (%w), and cutting the file back to its last complete record failed too (%v): the journal needs an operator", what, seq, err, uerr)
		return j.err
	}
	return fmt.Errorf("journal: %s of record %d failed; the record was not kept, the file is as it was before: %w", what, seq, err)
}

// undo cuts the file back to its last complete record and fsyncs it.
func (j *Journal) undo() error {
	if err := j.f.Truncate(j.size); err != nil {
		return err
	}
	return j.f.Sync()
}

// encode returns the canonical line of r (r.Hash is ignored and computed).
func encode(r record) ([]byte, error) {
	r.Hash = ""
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("journal: encode record: %w", err)
	}
	r.Hash = lineHash(body)
	line, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("journal: encode record: %w", err)
	}
	return line, nil
}

// lineHash returns the hex SHA-256 of b.
func lineHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// syncDir fsyncs a directory, so that a file just created in it survives a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("journal: sync directory: %w", err)
	}
	return nil
}

// Report summarises a journal that verified.
type Report struct {
	Records   int // lines, the "journal" header included
	Blocks    int // "block" records
	Fallbacks int // "fallback" records
	Events    int // "event" records
	// Attempts counts the "attempt" records by event: every request made
	// for an event's job, the ones whose bytes were never used included.
	Attempts      map[string]int
	FallbackBytes int64  // bytes served in the recorded fallback episodes
	LastSeq       uint64 // seq of the last record (0 for an empty file)
	Head          string // hex SHA-256 of the last line ("" for an empty file)
	EventNames    []string
	// DuplicateJobs lists every block record of a (source, job) recorded
	// before: a job taken twice. Verify reports the first as an error
	// (ErrDuplicateJob); Open accepts a journal with some, so that one
	// written before the replay guard existed can still be opened.
	DuplicateJobs []DuplicateJob
}

// Verify reads a journal from r and checks every record: canonical form, hash,
// sequence and chain. It returns the first problem as a *LineError; the Report
// then covers the lines before it. An empty input is a valid, empty journal.
// A journal whose records are sound but that holds two block records of one
// (source, job) fails with a *LineError wrapping ErrDuplicateJob naming the
// second; the Report then covers the whole journal and lists every duplicate.
func Verify(r io.Reader) (Report, error) {
	if r == nil {
		return Report{}, errors.New("journal: nil reader")
	}
	var v verifier
	err := v.run(r)
	if err == nil && len(v.rep.DuplicateJobs) > 0 {
		d := v.rep.DuplicateJobs[0]
		err = &LineError{Line: d.Line, Offset: d.Offset, Err: fmt.Errorf("%w: job %q of %q, first recorded on line %d", ErrDuplicateJob, d.JobID, d.Source, d.FirstLine)}
	}
	return v.rep, err
}

// VerifyFile is Verify on the file at path. A journal that a Journal holds
// open (in this process or another) is being written: a last line without
// its end is then an append in progress, not a torn line, and is reported
// as a *LineError wrapping ErrLocked, never ErrTorn, so that nobody moves
// out the bytes of a record that is being acknowledged. Verify it again, or
// verify a copy.
func VerifyFile(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	rep, err := Verify(f)
	var le *LineError
	if errors.As(err, &le) && errors.Is(err, ErrTorn) && heldByJournal(f) {
		err = &LineError{Line: le.Line, Offset: le.Offset, Err: fmt.Errorf("%w: its last line is an append in progress, not a torn line; verify it again, or verify a copy", ErrLocked)}
	}
	return rep, err
}

// FindHead looks in the journal file at path for the record whose line
// hashes to head, a Report.Head or Journal.Head published earlier (hex,
// either case), and returns its seq. Verify the file first: in a journal
// that verifies, a head found means every record up to it is as it was
// when the head was taken, and the records after it were added since; a
// head not found means records were cut off the end or rewritten. A line
// cut short at the end is not matched.
func FindHead(path, head string) (seq uint64, ok bool, err error) {
	want := strings.ToLower(strings.TrimSpace(head))
	f, err := os.Open(path)
	if err != nil {
		return 0, false, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for n := uint64(1); ; n++ {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, false, nil
			}
			return 0, false, fmt.Errorf("journal: %w", err)
		}
		if lineHash(line[:len(line)-1]) == want {
			return n, true, nil
		}
	}
}

// verifier checks a journal line by line.
type verifier struct {
	rep     Report
	onEvent func(entropy.EventRecord) // called for each event record, if set
	onBlock func(jobKey)              // called for each block record, if set
	seen    map[string]bool
	jobs    map[jobKey]int  // line of each job's first block record
	nonces  map[string]bool // the nonce (hex) of every attempt record
	// whole: the verifier reads the journal from its first line (run), so
	// an event's attempt record, if any, is among the lines it saw.
	whole  bool
	line   int   // the line being checked
	offset int64 // its offset
	last   Entry // the last line that verified
}

// run checks every line of r.
func (v *verifier) run(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	v.seen = make(map[string]bool)
	v.whole = true
	var offset int64
	cur, curErr := readLine(br)
	for line := 1; ; line++ {
		if curErr == io.EOF && len(cur) == 0 {
			return nil
		}
		if curErr != nil && curErr != io.EOF {
			if errors.Is(curErr, errLineTooLong) {
				return &LineError{Line: line, Offset: offset, Err: fmt.Errorf("%w: %v", ErrMalformed, curErr)}
			}
			return fmt.Errorf("journal: read: %w", curErr)
		}
		if curErr == io.EOF || cur[len(cur)-1] != '\n' {
			// Bytes after the last newline: an append that never completed.
			return &LineError{Line: line, Offset: offset, Err: fmt.Errorf("%w: %d bytes without a newline", ErrTorn, len(cur))}
		}
		next, nextErr := readLine(br)
		last := nextErr == io.EOF && len(next) == 0
		text := cur[:len(cur)-1]
		v.line, v.offset = line, offset
		if err := v.check(text, last); err != nil {
			return &LineError{Line: line, Offset: offset, Err: err}
		}
		offset += int64(len(cur))
		cur, curErr = next, nextErr
	}
}

// check verifies one line (without its newline); last says whether it is the
// last line of the file, where a line that does not parse is torn.
func (v *verifier) check(text []byte, last bool) error {
	var r record
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || dec.More() {
		if last {
			return fmt.Errorf("%w: last line does not parse", ErrTorn)
		}
		return fmt.Errorf("%w: not a JSON record", ErrMalformed)
	}
	body := r
	body.Hash = ""
	bodyBytes, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.Hash != lineHash(bodyBytes) {
		return ErrHashMismatch
	}
	v.last.Event = ""
	canon, err := canonicalData(r.Type, r.Data, v)
	if err != nil {
		return err
	}
	r.Data = canon
	want, err := encode(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(want, text) {
		return fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	if r.Seq != v.rep.LastSeq+1 {
		return fmt.Errorf("%w: seq %d after %d", ErrSequence, r.Seq, v.rep.LastSeq)
	}
	prev := v.rep.Head
	if prev == "" {
		prev = zeroHash
	}
	if r.Prev != prev {
		return ErrChainBroken
	}
	if (r.Seq == 1) != (r.Type == TypeJournal) {
		return fmt.Errorf("%w: a journal starts with one %q record", ErrMalformed, TypeJournal)
	}
	v.rep.Records++
	v.rep.LastSeq = r.Seq
	v.rep.Head = lineHash(text)
	v.last = Entry{Seq: r.Seq, Type: r.Type, Event: v.last.Event, Data: canon, Line: text, Hash: v.rep.Head}
	return nil
}

// canonicalData decodes the data of a record of type typ strictly, checks it,
// counts it in v's report and returns its canonical encoding.
func canonicalData(typ string, raw json.RawMessage, v *verifier) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s data: %s", ErrMalformed, typ, fmt.Sprintf(format, a...))
	}
	var out any
	switch typ {
	case TypeJournal:
		var d HeaderData
		if err := dec.Decode(&d); err != nil {
			return nil, bad("%v", err)
		}
		if d.Format != Format {
			return nil, bad("unknown format %q", d.Format)
		}
		out = d
	case TypeBlock:
		var d BlockData
		if err := dec.Decode(&d); err != nil {
			return nil, bad("%v", err)
		}
		if b, err := hex.DecodeString(d.Digest); err != nil || len(b) != sha256.Size {
			return nil, bad("digest is not 32 bytes of hex")
		}
		if d.Size < 1 {
			return nil, bad("size %d: a block holds at least one byte", d.Size)
		}
		v.rep.Blocks++
		v.block(d)
		out = d
	case TypeFallback:
		var d FallbackData
		if err := dec.Decode(&d); err != nil {
			return nil, bad("%v", err)
		}
		if d.Reads < 0 || d.Bytes < 0 {
			// Summed into the report: a negative count would hide others.
			return nil, bad("negative reads (%d) or bytes (%d)", d.Reads, d.Bytes)
		}
		v.rep.Fallbacks++
		v.rep.FallbackBytes += d.Bytes
		out = d
	case TypeEvent:
		var d EventData
		if err := dec.Decode(&d); err != nil {
			return nil, bad("%v", err)
		}
		data, err := hex.DecodeString(d.Data)
		if err != nil || len(data) == 0 || d.Event == "" {
			return nil, bad("needs an event name and hex data")
		}
		// The label says where each byte came from: its spans cover the
		// event's bytes, no more, no fewer.
		covered := 0
		for _, sp := range d.Label.Spans {
			if sp.Length <= 0 || sp.Offset < 0 || sp.Length > len(data)-covered {
				return nil, bad("event %q: its label's spans do not cover its %d bytes", d.Event, len(data))
			}
			covered += sp.Length
		}
		if covered != len(data) {
			return nil, bad("event %q: its label covers %d bytes, the event has %d", d.Event, covered, len(data))
		}
		params, perr := hex.DecodeString(d.Params)
		salt, serr := hex.DecodeString(d.Salt)
		if perr != nil || serr != nil {
			return nil, bad("params and salt must be hex")
		}
		if len(salt) == 0 {
			salt = nil
		}
		if pr := d.Proof; pr != nil {
			if len(pr.Data) < len(data) || !bytes.Equal(pr.Data[:len(data)], data) {
				return nil, bad("event %q: its bytes are not the first bytes of its proof's job", d.Event)
			}
			if !bytes.Equal(pr.Nonce, evidence.EventNonce(d.Event, params, salt)) {
				return nil, bad("event %q: its proof's nonce is not the one of its event, params and salt", d.Event)
			}
			if v.whole && !v.nonces[hex.EncodeToString(pr.Nonce)] {
				return nil, bad("event %q: the request for its job has no attempt record before it", d.Event)
			}
		} else if salt != nil {
			return nil, bad("event %q: a salt without a proof", d.Event)
		}
		if v.seen[d.Event] {
			return nil, bad("event %q recorded twice", d.Event)
		}
		v.seen[d.Event] = true
		v.last.Event = d.Event
		v.rep.Events++
		v.rep.EventNames = append(v.rep.EventNames, d.Event)
		if v.onEvent != nil {
			r := entropy.EventRecord{Event: d.Event, Data: data, Label: d.Label, Time: d.Time, Salt: salt, Proof: d.Proof}
			if len(params) > 0 {
				r.Params = params
			}
			v.onEvent(r)
		}
		out = d
	case TypeAttempt:
		var d AttemptData
		if err := dec.Decode(&d); err != nil {
			return nil, bad("%v", err)
		}
		params, perr := hex.DecodeString(d.Params)
		salt, serr := hex.DecodeString(d.Salt)
		nonce, nerr := hex.DecodeString(d.Nonce)
		if d.Event == "" || perr != nil || serr != nil || nerr != nil || len(salt) == 0 {
			return nil, bad("needs an event name, a salt and a nonce in hex")
		}
		if !bytes.Equal(nonce, evidence.EventNonce(d.Event, params, salt)) {
			return nil, bad("event %q: the nonce is not the one of its event, params and salt", d.Event)
		}
		if v.rep.Attempts == nil {
			v.rep.Attempts = make(map[string]int)
		}
		v.rep.Attempts[d.Event]++
		if v.nonces == nil {
			v.nonces = make(map[string]bool)
		}
		v.nonces[d.Nonce] = true
		out = d
	default:
		return nil, bad("unknown record type")
	}
	if dec.More() {
		return nil, bad("trailing data")
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, bad("%v", err)
	}
	return b, nil
}

// errLineTooLong reports a line longer than MaxLineSize.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLineSize)

// readLine returns the next line of br with its newline, or the bytes before
// EOF (with io.EOF), reading at most MaxLineSize bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxLineSize {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}
