package entropy

import (
	"bytes"
	"context"
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

// counting returns the bytes 0, 1, 2, … (mod 256): no two neighbours equal,
// each value once in a window, so the health tests pass them.
func counting(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// httpStatus is a class sentinel of one HTTP status, made as httpsource's class
// sentinels (httpsource.ErrRateLimited, …) are, with a MatchStatus method, so that a test can ask
// for any single status.
type httpStatus int

func (s httpStatus) Error() string               { return "HTTP " + strconv.Itoa(int(s)) }
func (s httpStatus) MatchStatus(status int) bool { return int(s) == status }
