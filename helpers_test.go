package entropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/provenrand/entropy/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// step is one scripted answer of a scriptSource: an error, a panic, a
// malformed block, or (zero step) a good block.
type step struct {
	err        error
	panic      bool
	block      *Block // returned as is (malformed-block tests)
	unverified bool
}

// scriptSource is an in-memory Source for tests: it answers with the script
// in order, then with good blocks (or with after, if set, forever). Every good
// block has a fresh job ID and random data, and a copy is kept so tests can
// check that labels point at the right bytes.
type scriptSource struct {
	name string

	mu     sync.Mutex
	script []step
	after  *step // answer once the script is used up; nil = good blocks
	jobs   map[string][]byte
	calls  []time.Time
	rng    *rand.ChaCha8
	seq    int
	maxLen int // cap on block size (0 = as asked)
}

func newScriptSource(name string, script ...step) *scriptSource {
	var seed [32]byte
	copy(seed[:], name)
	return &scriptSource{name: name, script: script, jobs: map[string][]byte{}, rng: rand.NewChaCha8(seed)}
}

func (s *scriptSource) Fetch(ctx context.Context, n int) (Block, error) {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	var st step
	switch {
	case len(s.script) > 0:
		st, s.script = s.script[0], s.script[1:]
	case s.after != nil:
		st = *s.after
	}
	if st.panic {
		s.mu.Unlock()
		panic("scripted panic")
	}
	if st.err != nil {
		s.mu.Unlock()
		return Block{}, st.err
	}
	if st.block != nil {
		s.mu.Unlock()
		return *st.block, nil
	}
	if s.maxLen > 0 && n > s.maxLen {
		n = s.maxLen
	}
	s.seq++
	data := make([]byte, n)
	_, _ = s.rng.Read(data)
	id := fmt.Sprintf("%s-job-%d", s.name, s.seq)
	s.jobs[id] = bytes.Clone(data)
	s.mu.Unlock()
	return Block{Data: data, Source: s.name, JobID: id, Verifiable: !st.unverified, Proof: []byte("sig"), Time: time.Now()}, nil
}

// set replaces the rest of the script and the standing answer.
func (s *scriptSource) set(after *step, script ...step) {
	s.mu.Lock()
	s.after, s.script = after, script
	s.mu.Unlock()
}

func (s *scriptSource) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *scriptSource) job(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.jobs[id]
	return d, ok
}

// fast are options for tests: no rate limit, quick retries and breaker.
func fast(extra ...Option) []Option {
	return append([]Option{
		WithRateLimit(rate.Inf, 1),
		WithRetry(2, time.Millisecond, 5*time.Millisecond),
	}, extra...)
}

// newTestProvider starts a Provider and closes it when the test ends.
func newTestProvider(t testing.TB, src Source, opts ...Option) *Provider {
	t.Helper()
	p, err := New(src, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// ready waits until the pool first holds bytes.
func ready(t testing.TB, p *Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx))
}

// full waits until the pool holds at least n bytes.
func full(t testing.TB, p *Provider, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return p.Stats().Pooled >= n }, 10*time.Second, time.Millisecond)
}

// ledger is the byte ledger of package testkit over the jobs of script
// sources, with the checks of a label's class around it.
type ledger struct {
	*testkit.Ledger
	mu    sync.Mutex
	keyed map[Span]bool // spans that keyed a derived-read stream
}

func newLedger(srcs ...*scriptSource) *ledger {
	bySource := map[string]*scriptSource{}
	for _, s := range srcs {
		bySource[s.name] = s
	}
	job := func(source, id string) ([]byte, bool) {
		if s, ok := bySource[source]; ok {
			return s.job(id)
		}
		return nil, false
	}
	return &ledger{Ledger: testkit.NewLedger(job), keyed: map[Span]bool{}}
}

// check verifies one read: b and its label. It returns a description of
// the first problem, or "".
func (l *ledger) check(b []byte, lb Label) string {
	if lb.Verifiable && lb.Derived {
		return "label both verifiable and derived"
	}
	if !lb.Verifiable {
		if lb.Reason == nil {
			return "fallback label without reason"
		}
		if len(lb.Spans) != 1 || lb.Spans[0].Source != FallbackSource || lb.Spans[0].Length != len(b) || lb.Spans[0].JobID != "" {
			return fmt.Sprintf("fallback label spans wrong: %+v", lb.Spans)
		}
		return ""
	}
	if lb.Reason != nil {
		return "verifiable label with a reason"
	}
	off := 0
	for _, sp := range lb.Spans {
		if sp.Length <= 0 || off+sp.Length > len(b) {
			return fmt.Sprintf("span out of range: %+v", sp)
		}
		if msg := l.take(sp, b[off:off+sp.Length]); msg != "" {
			return msg
		}
		off += sp.Length
	}
	if off != len(b) {
		return fmt.Sprintf("spans cover %d bytes of %d", off, len(b))
	}
	return ""
}

// take checks a span against its job (got: the read's bytes for it; nil
// for pool bytes that keyed a derived read) and records its bytes as
// handed out; it returns the problem, or "".
func (l *ledger) take(sp Span, got []byte) string {
	_, msg := l.Take(testkit.Span{Source: sp.Source, Job: sp.JobID, Offset: sp.Offset, Length: sp.Length}, got)
	return msg
}

// fakeClock is a Clock that moves only when a test advances it.
type fakeClock struct {
	mu    sync.Mutex
	start time.Time
	now   time.Time
	ws    []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &fakeClock{start: t0, now: t0}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.ws = append(c.ws, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// advance moves the clock and fires the waiters that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.ws[:0]
	for _, w := range c.ws {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.ws = kept
}

// waiters is how many After channels have not fired yet.
func (c *fakeClock) waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ws)
}

// claim records spans as handed out without comparing bytes (derived
// reads, whose output is not the job bytes); it returns the first problem,
// or "".
func (l *ledger) claim(spans []Span) string {
	for _, sp := range spans {
		if msg := l.take(sp, nil); msg != "" {
			return msg
		}
	}
	return ""
}

// claimDerived checks the spans of a derived read: many reads are served by
// one derivation and name its spans, so a span seen before in a derived
// label is that derivation again; any other span must name pool bytes never
// handed out before (as claim). It returns the problem, or "", and how many
// pool bytes the new derivations took.
func (l *ledger) claimDerived(spans []Span) (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, sp := range spans {
		if l.keyed[sp] {
			continue
		}
		if msg := l.take(sp, nil); msg != "" {
			return msg, 0
		}
		l.keyed[sp] = true
		n += sp.Length
	}
	return "", n
}

// episodeLog collects the episodes a Provider hands to its fallback hook
// (WithFallbackHook(log.hook)).
type episodeLog struct {
	mu  sync.Mutex
	eps []FallbackEpisode
}

func (c *episodeLog) hook(ep FallbackEpisode) {
	c.mu.Lock()
	c.eps = append(c.eps, ep)
	c.mu.Unlock()
}

// sums returns how many episodes started and ended, the ended episodes'
// reads and bytes, and how many ended episodes hold no read or no byte.
func (c *episodeLog) sums() (started, ended int, reads, byts int64, empty int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range c.eps {
		if !ep.Ended {
			started++
			continue
		}
		ended++
		reads += ep.Reads
		byts += ep.Bytes
		if ep.Reads <= 0 || ep.Bytes <= 0 {
			empty++
		}
	}
	return started, ended, reads, byts, empty
}

// all returns a copy of the episodes collected so far, starts and ends.
func (c *episodeLog) all() []FallbackEpisode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]FallbackEpisode(nil), c.eps...)
}

// childEnv names the environment variable that makes a test run its body
// in a child process (inChild, runInChild): for faults that would crash the
// whole program (a panic on a goroutine of the Provider) or spin for ever,
// which a test in the same process could neither recover from nor stop.
const childEnv = "ENTROPY_TEST_CHILD"

// inChild reports whether this process is the child of test t.
func inChild(t *testing.T) bool {
	return os.Getenv(childEnv) == t.Name()
}

// runInChild runs test t again in a child process, with a bounded
// wait, and returns its output and error.
func runInChild(t *testing.T) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// flipSource flips s between failing with status (every period-th tick,
// from the first) and healthy, a tick every d, until the function it
// returns is called; that function returns once the flipping has stopped.
func flipSource(s *scriptSource, status, period int, d time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(d):
			}
			if i%period == 0 {
				s.set(&step{err: &APIError{StatusCode: status}})
			} else {
				s.set(nil)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// goReaders is the reader loop of the concurrency tests: it starts n
// goroutines, each calling read(g, i) for i = 0, 1, … until read returns
// false, ops calls were made (ops 0: no limit), or stop is closed (nil:
// never). The function it returns waits for them all.
func goReaders(n, ops int, stop <-chan struct{}, read func(g, i int) bool) (wait func()) {
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ops == 0 || i < ops; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if !read(g, i) {
					return
				}
			}
		}()
	}
	return wg.Wait
}

// runReaders is goReaders of ops calls each, waited for.
func runReaders(n, ops int, read func(g, i int) bool) { goReaders(n, ops, nil, read)() }

// waitWithin calls wait (a WaitGroup's Wait, goReaders' wait), waiting at
// most d for it to return; it reports whether it did.
func waitWithin(wait func(), d time.Duration) bool {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// memJournal is the in-memory Journal of the tests; it outlives Providers,
// as a file journal outlives a process, and like package journal's it
// refuses appends once closed and records an event only if absent. Its
// optional fields stand in for a slow or misbehaving journal: blockGate
// holds every RecordBlock until it is closed (a slow disk), beforeFallback
// runs at the start of every RecordFallback, afterEvent runs once an event
// is recorded, failBlock fails RecordBlock and RecordFallback while set, and
// failEvent fails RecordEvent. Its methods use their receiver, as package
// journal's do, so a typed-nil *memJournal crashes where a nil file journal
// would.
type memJournal struct {
	blockGate      chan struct{}
	beforeFallback func(FallbackEpisode)
	afterEvent     func()

	mu          sync.Mutex
	blocks      []BlockRecord
	episodes    []FallbackEpisode
	events      map[string]EventRecord
	early       []string // events recorded before a block their spans name
	failEvent   error
	failBlock   error
	failAttempt error
	attempts    []EventAttempt
	closed      bool
}

var errMemJournalClosed = errors.New("memJournal: closed")

func newMemJournal() *memJournal { return &memJournal{events: map[string]EventRecord{}} }

func (j *memJournal) RecordBlock(_ context.Context, b BlockRecord) error {
	if j.blockGate != nil {
		<-j.blockGate
	}
	return j.write(func() { j.blocks = append(j.blocks, b) })
}

// write runs add under the lock unless the journal fails (failBlock) or
// is closed.
func (j *memJournal) write(add func()) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failBlock != nil {
		return j.failBlock
	}
	if j.closed {
		return errMemJournalClosed
	}
	add()
	return nil
}

func (j *memJournal) RecordFallback(_ context.Context, e FallbackEpisode) error {
	if j.beforeFallback != nil {
		j.beforeFallback(e)
	}
	return j.write(func() { j.episodes = append(j.episodes, e) })
}

func (j *memJournal) RecordEvent(_ context.Context, e EventRecord) (EventRecord, error) {
	stored, err := j.recordEvent(e)
	if err == nil && j.afterEvent != nil {
		j.afterEvent()
	}
	return stored, err
}

func (j *memJournal) recordEvent(e EventRecord) (EventRecord, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failEvent != nil {
		return EventRecord{}, j.failEvent
	}
	if j.closed {
		return EventRecord{}, errMemJournalClosed
	}
	if old, ok := j.events[e.Event]; ok {
		old.Data = bytes.Clone(old.Data)
		return old, nil
	}
	for _, sp := range e.Label.Spans {
		if !j.hasBlock(sp.Source, sp.JobID) {
			j.early = append(j.early, e.Event+": "+sp.JobID)
		}
	}
	e.Data = bytes.Clone(e.Data)
	j.events[e.Event] = e
	return e, nil
}

// hasBlock reports whether the block of job of source is recorded; j.mu is
// held.
func (j *memJournal) hasBlock(source, job string) bool {
	for _, b := range j.blocks {
		if b.Source == source && b.JobID == job {
			return true
		}
	}
	return false
}

func (j *memJournal) RecordAttempt(_ context.Context, a EventAttempt) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failAttempt != nil {
		return j.failAttempt
	}
	if j.closed {
		return errMemJournalClosed
	}
	j.attempts = append(j.attempts, a)
	return nil
}

// hasAttempt reports whether an attempt with nonce is recorded.
func (j *memJournal) hasAttempt(nonce []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, a := range j.attempts {
		if bytes.Equal(a.Nonce, nonce) {
			return true
		}
	}
	return false
}

func (j *memJournal) LookupEvent(_ context.Context, name string) (EventRecord, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.events[name]
	return e, ok, nil
}

// close makes the journal refuse every later append, as a closed file
// journal does.
func (j *memJournal) close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
}

// episodeSums returns how many episodes the journal holds and their reads
// and bytes.
func (j *memJournal) episodeSums() (n int, reads, byts int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, ep := range j.episodes {
		n++
		reads += ep.Reads
		byts += ep.Bytes
	}
	return n, reads, byts
}

// counting returns the bytes 0, 1, 2, … (mod 256): no two neighbours equal,
// each value once in a window, so the health tests pass them.
func counting(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// httpStatus is a class sentinel of one HTTP status, made as package
// httpsource's are (a MatchStatus method), which the root's tests cannot
// import.
type httpStatus int

func (s httpStatus) Error() string               { return "HTTP " + strconv.Itoa(int(s)) }
func (s httpStatus) MatchStatus(status int) bool { return int(s) == status }
