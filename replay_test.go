package entropy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Contract point 3 (and Source's documentation: the Provider refuses "a
// (Source, JobID) it has taken before"): a source that hands out an old job
// again, however many jobs later, must not get its bytes served twice.
func TestReplayedOldJobNotServedTwice(t *testing.T) {
	src := newScriptSource("quantropy")
	l := newLedger(src)
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(64), WithFetchSize(64))...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	read := func() {
		t.Helper()
		b := make([]byte, 64)
		lb, err := p.ReadLabelled(ctx, b)
		require.NoError(t, err)
		require.Empty(t, l.check(b, lb))
	}
	const jobs = 5000
	for src.callCount() < jobs {
		read()
	}
	first, ok := src.job("quantropy-job-1")
	require.True(t, ok)
	replay := Block{Data: append([]byte(nil), first...), Source: "quantropy", JobID: "quantropy-job-1",
		Verifiable: true, Proof: []byte("sig"), Time: time.Now()}
	src.set(nil, step{block: &replay})
	for i := 0; i < 4; i++ {
		read()
	}
}

// The replay guard remembers every job it was given, refuses each again,
// and accepts a fresh one, across the table's growth.
func TestReplayGuardRemembersEveryJob(t *testing.T) {
	s := newJobSet()
	const jobs = 20000
	for i := range jobs {
		require.True(t, s.add("quantropy", fmt.Sprintf("job-%d", i)), "job %d is new", i)
		if i%997 == 0 {
			require.False(t, s.add("quantropy", fmt.Sprintf("job-%d", i/2)), "job %d again", i/2)
		}
	}
	for i := range jobs {
		require.False(t, s.add("quantropy", fmt.Sprintf("job-%d", i)), "job %d again", i)
	}
	// The same job name from another source is another job, and the
	// boundary between source and job names counts.
	require.True(t, s.add("drand", "job-1"))
	require.True(t, s.add("quantropyjob-", "1"))
	require.Equal(t, jobs+2, s.n)
	require.LessOrEqual(t, s.n*5, len(s.slots)*4, "table at most 80 % full")
}

// A hash of 0 (the empty slot's mark) is stored as 1, and colliding keys
// probe on, wrapping at the end of the table.
func TestReplayGuardProbing(t *testing.T) {
	slots := make([]uint64, 4)
	last := ^uint64(0) // names the last slot
	require.True(t, insertSlot(slots, last))
	require.True(t, insertSlot(slots, last-1)) // same slot: wraps to slot 0
	require.Equal(t, []uint64{last - 1, 0, 0, last}, slots)
	require.False(t, insertSlot(slots, last-1))
	require.False(t, insertSlot(slots, last))
	s := newJobSet()
	require.NotZero(t, s.hash("", ""))
}

// Memory per remembered job at 10⁶ jobs, measured on the live heap: at
// most 16 bytes (the target in README.md's benchmark table; the table holds 10 to 12.5).
func TestReplayGuardMemoryPerJob(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a table of 10^6 jobs")
	}
	const jobs = 1_000_000
	perJob := replayGuardBytesPerJob(jobs)
	t.Logf("replay guard: %.2f bytes per job at %d jobs", perJob, jobs)
	require.LessOrEqual(t, perJob, 16.0)
}

// BenchmarkReplayGuardMemory reports the replay guard's live heap per job
// at 10⁶ jobs (bytes/job) and the time of one add.
func BenchmarkReplayGuardMemory(b *testing.B) {
	perJob := replayGuardBytesPerJob(1_000_000)
	s := newJobSet()
	names := make([]string, 4096)
	for i := range names {
		names[i] = fmt.Sprintf("quantropy-job-%d", i)
	}
	b.ResetTimer()
	for i := range b.N {
		s.add(names[i%len(names)], names[(i/len(names))%len(names)])
	}
	b.ReportMetric(perJob, "bytes/job") // after the loop: ResetTimer drops metrics
}

// replayGuardBytesPerJob fills a replay guard with n jobs and returns the
// growth of the live heap per job (runtime.MemStats.HeapAlloc after GC).
func replayGuardBytesPerJob(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newJobSet()
	name := make([]byte, 0, 32)
	for i := range n {
		name = strconv.AppendInt(append(name[:0], "job-"...), int64(i), 10)
		s.add("quantropy", string(name))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// claimsJournal is a memJournal that is also a jobClaimer: it remembers the
// jobs claimed, as a journal that a fleet's replicas share does.
type claimsJournal struct {
	*memJournal
	mu      sync.Mutex
	claimed map[string]bool
}

func (j *claimsJournal) ClaimJob(_ context.Context, source, job string) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := source + "\x00" + job
	if j.claimed[k] {
		return false, nil
	}
	j.claimed[k] = true
	return true, nil
}

// downClaims is a claimsJournal whose replay guard cannot answer while
// down is set, as a journal whose database is unreachable.
type downClaims struct {
	*claimsJournal
	down atomic.Bool
}

func (j *downClaims) ClaimJob(ctx context.Context, source, job string) (bool, error) {
	if j.down.Load() {
		return false, errors.New("journal database unreachable")
	}
	return j.claimsJournal.ClaimJob(ctx, source, job)
}

// stallingClaims is a claimsJournal whose first ClaimJob (the first
// stalls, if set) stalls, as a database that stops answering does, until
// its context ends.
type stallingClaims struct {
	*claimsJournal
	stalls int32
	calls  atomic.Int32
}

func (j *stallingClaims) ClaimJob(ctx context.Context, source, job string) (bool, error) {
	if j.calls.Add(1) <= max(j.stalls, 1) {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return j.claimsJournal.ClaimJob(ctx, source, job)
}

// A journal that stalls in ClaimJob holds the refill no longer than the
// fetch timeout: the block it could not claim is refused (its freshness is
// unknown), the breaker does not count it, and the refill goes on.
func TestStalledJournalClaimEndsAtTheFetchTimeout(t *testing.T) {
	j := &stallingClaims{claimsJournal: &claimsJournal{memJournal: newMemJournal(), claimed: map[string]bool{}}}
	src := newScriptSource("stall")
	p := newTestProvider(t, src, fast(WithJournal(j), WithPolicy(Fail), WithFetchTimeout(50*time.Millisecond),
		WithBreaker(gobreaker.Settings{Timeout: time.Hour}), WithBufferSize(512), WithFetchSize(256))...)
	full(t, p, 256)
	assert.GreaterOrEqual(t, j.calls.Load(), int32(2))
	st := p.Stats().Sources[0]
	assert.Equal(t, "closed", st.Breaker)
	assert.Equal(t, uint64(1), st.BlocksRejected, "the block whose claim stalled is refused")
	lb, err := p.ReadLabelled(context.Background(), make([]byte, 32))
	require.NoError(t, err)
	assert.True(t, lb.Verifiable)
}

// roundSource serves one job per round, "round-1" up, as a drand relay
// serves the same rounds to every replica; public says whether its blocks
// are public.
type roundSource struct {
	public bool
	mu     sync.Mutex
	rng    *rand.ChaCha8
	round  int
}

func (s *roundSource) Fetch(_ context.Context, n int) (Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.round++
	data := make([]byte, n)
	_, _ = s.rng.Read(data)
	return Block{Data: data, Source: "beacon", JobID: "round-" + strconv.Itoa(s.round), Verifiable: true,
		Public: s.public, Proof: []byte("sig"), Time: time.Now()}, nil
}

func (s *roundSource) rounds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.round
}

// Replicas that share a journal ask a public beacon for the same round,
// and the one that loses the race has its block refused as a replay. The
// source is not at fault: the replica's breaker stays closed, and it serves
// the first round no other replica took. A job that is not public and is
// already in the journal is a replay the source made, and still counts as
// its failure.
func TestPublicRoundTakenByAnotherReplicaIsNotASourceFailure(t *testing.T) {
	for _, public := range []bool{true, false} {
		t.Run(fmt.Sprintf("public=%v", public), func(t *testing.T) {
			j := &claimsJournal{memJournal: newMemJournal(), claimed: map[string]bool{}}
			for r := 1; r <= 20; r++ { // taken by another replica
				fresh, err := j.ClaimJob(context.Background(), "beacon", "round-"+strconv.Itoa(r))
				require.NoError(t, err)
				require.True(t, fresh)
			}
			src := &roundSource{public: public, rng: rand.NewChaCha8([32]byte{'r'})}
			p := newTestProvider(t, src, fast(WithJournal(j), WithPolicy(Degrade),
				WithBreaker(gobreaker.Settings{Timeout: time.Hour}),
				WithBufferSize(512), WithFetchSize(512))...)
			if !public {
				require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 10*time.Second, time.Millisecond,
					"replays of a source's own jobs open its breaker")
				return
			}
			require.Eventually(t, func() bool {
				lb, err := p.ReadLabelled(context.Background(), make([]byte, 16))
				return err == nil && lb.Verifiable
			}, 10*time.Second, time.Millisecond, "the first round no other replica took is served")
			assert.Greater(t, src.rounds(), 20)
			assert.Equal(t, "closed", p.Stats().Sources[0].Breaker)
		})
	}
}
