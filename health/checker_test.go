package health

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// sameVerdict requires that k.Check and cfg.Check give the same answer for
// b: both nil, or errors with the same text (the same test, value, offsets
// and counts).
func sameVerdict(t *testing.T, k *Checker, cfg Config, b []byte, what string) {
	t.Helper()
	want, got := cfg.Check(b), k.Check(b)
	if want == nil || got == nil {
		require.Equal(t, want == nil, got == nil, "%s: Config.Check %v, Checker.Check %v", what, want, got)
		return
	}
	require.Equal(t, want.Error(), got.Error(), what)
	require.Equal(t, errors.Is(want, ErrFailed), errors.Is(got, ErrFailed), what)
}

// A Checker gives Config.Check's verdict on blocks built to fail, or nearly
// fail, where its pieces meet: runs of equal bytes one short of the RCT
// cutoff and at it, ending or starting at every offset around a piece
// boundary (a run the pieces cut in two); runs of 4 to 6 equal bytes, which
// the fast form of the tests cannot pass at once but Config.Check passes;
// and a value one short of the APT cutoff and at it in the last window of a
// piece and in the first of the next. Under the default cutoffs, and under
// configurations whose RCT cutoff is below 7 (which the Checker leaves to
// Config.Check) or whose APT cannot fail.
func TestCheckerAgreesWithCheckAtPieceBoundaries(t *testing.T) {
	cfgs := []Config{DefaultConfig(), {MinEntropy: 8, FalseAlarmLog2: 20}, {MinEntropy: 1, FalseAlarmLog2: 40}, {MinEntropy: 6, FalseAlarmLog2: 64}}
	cases := 0
	for _, cfg := range cfgs {
		k := NewChecker(cfg)
		rct, apt := cfg.Cutoffs()
		for _, n := range []int{2 * checkerPiece, 2*checkerPiece + 5, 4*checkerPiece - 1, 64 << 10} {
			base := distinctBytes(n)
			for boundary := checkerPiece; boundary < n; boundary += checkerPiece {
				for _, l := range []int{4, 5, 6, rct - 1, rct} {
					for off := boundary - l - 1; off <= boundary+1; off++ {
						if off < 0 || off+l > n || l < 1 {
							continue
						}
						b := slices.Clone(base)
						for i := off; i < off+l; i++ {
							b[i] = 0xa5
						}
						sameVerdict(t, k, cfg, b, fmt.Sprintf("%+v: run of %d at %d in %d bytes", cfg, l, off, n))
						cases++
					}
				}
				for _, start := range []int{boundary - AptWindow, boundary} {
					for _, c := range []int{apt - 1, apt} {
						if c < 1 || 2*c > AptWindow || start+2*c > n {
							continue
						}
						b := slices.Clone(base)
						for i := range c {
							b[start+2*i] = 0x5a
						}
						sameVerdict(t, k, cfg, b, fmt.Sprintf("%+v: %d of one value from %d in %d bytes", cfg, c, start, n))
						cases++
					}
				}
			}
		}
		k.Close()
	}
	t.Logf("%d crafted blocks", cases)
}

// A Checker gives Config.Check's verdict on random blocks of every size
// around its piece size, drawn from alphabets small enough that many fail.
func TestCheckerAgreesWithCheckOnRandomBlocks(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{'p', 'a', 'r'}))
	k := NewChecker(DefaultConfig())
	defer k.Close()
	failures := 0
	for i := range 400 {
		b := make([]byte, r.IntN(5*checkerPiece))
		alphabet := 8 + r.IntN(249)
		if i%2 == 0 {
			alphabet = 8 + r.IntN(24) // about 512/28 values or fewer: the APT fails
		}
		for j := range b {
			b[j] = byte(r.IntN(alphabet))
		}
		if DefaultConfig().Check(b) != nil {
			failures++
		}
		sameVerdict(t, k, DefaultConfig(), b, fmt.Sprintf("case %d, %d bytes, alphabet %d", i, len(b), alphabet))
	}
	require.Greater(t, failures, 100, "the sample should exercise failures")
}

// A Checker is safe for concurrent use: Checks from several goroutines at
// once (one uses the helper, the others test alone) each give the verdict
// of Config.Check on their own block.
func TestCheckerConcurrentChecks(t *testing.T) {
	k := NewChecker(DefaultConfig())
	defer k.Close()
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewChaCha8([32]byte{byte(g)}))
			for i := range 30 {
				b := make([]byte, 2*checkerPiece+r.IntN(3*checkerPiece))
				for j := range b {
					b[j] = byte(r.Uint32())
				}
				if i%3 == 0 { // a run of 7 where two pieces meet
					copy(b[checkerPiece-3:], []byte{9, 9, 9, 9, 9, 9, 9})
				}
				want, got := DefaultConfig().Check(b), k.Check(b)
				if fmt.Sprint(want) != fmt.Sprint(got) {
					errs <- fmt.Sprintf("goroutine %d block %d: Config.Check %v, Checker.Check %v", g, i, want, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// The helper takes a share of the pieces: with a second CPU, a run of
// large blocks sees it test some of them (the wait is bounded: 10 s).
func TestCheckerHelperTestsPieces(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("GOMAXPROCS is 1: the Checker tests every block on the caller's goroutine")
	}
	k := NewChecker(DefaultConfig())
	defer k.Close()
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewChaCha8([32]byte{'h'}))
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	deadline := time.Now().Add(10 * time.Second)
	for k.helped.Load() == 0 {
		require.NoError(t, k.Check(b))
		require.True(t, time.Now().Before(deadline), "the helper tested no piece of a 1 MiB block in 10 s")
	}
}

// Close stops the helper and waits for it; Check still gives the right
// verdict afterwards (alone), and Close may be called again. A Checker that
// never tested a large block started no goroutine.
func TestCheckerCloseStopsTheHelper(t *testing.T) {
	keep := goleak.IgnoreCurrent()
	idle := NewChecker(DefaultConfig())
	require.NoError(t, idle.Check(distinctBytes(100)))
	idle.Close()

	k := NewChecker(DefaultConfig())
	big := distinctBytes(4 * checkerPiece)
	require.NoError(t, k.Check(big))
	k.Close()
	goleak.VerifyNone(t, keep)

	stuck := slices.Clone(big)
	copy(stuck[checkerPiece-2:], []byte{0, 0, 0, 0, 0, 0, 0})
	require.ErrorIs(t, k.Check(stuck), ErrFailed)
	require.NoError(t, k.Check(big))
	k.Close()
	goleak.VerifyNone(t, keep)
}

// A Checker gives Check's answers, testing large blocks on two goroutines;
// Close stops its helper.
func ExampleChecker() {
	k := NewChecker(DefaultConfig())
	defer k.Close()
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte(i * 7)
	}
	fmt.Println(k.Check(block))
	block[40000], block[40001], block[40002] = 0, 0, 0
	block[40003], block[40004], block[40005], block[40006] = 0, 0, 0, 0
	fmt.Println(k.Check(block))
	// Output:
	// <nil>
	// entropy: health test failed: repetition count test: byte 0x00 repeated 7 times from offset 40000 to 40006 (cutoff 7)
}

// A helper that never gets a CPU is soon woken for few blocks: a Checker
// whose helper cannot run (here it never started, and reads as asleep)
// wakes it for the first blocks, then for two in every checkerRetry, and
// offers it no other block (Assist callers may still take their pieces),
// with Config.Check's verdict throughout.
func TestCheckerStopsOfferingBlocksToAHelperWithoutACPU(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("GOMAXPROCS is 1: the Checker never offers a block")
	}
	k := NewChecker(DefaultConfig())
	k.done = make(chan struct{}) // as if started; no goroutine runs
	k.parked.Store(true)
	b := distinctBytes(4 * checkerPiece)
	const blocks = 3 * checkerRetry
	woken, forHelper := 0, 0
	for range blocks {
		require.NoError(t, k.Check(b))
		if k.job.helper {
			forHelper++
		}
		select {
		case <-k.wake: // drain the wake nobody takes
			woken++
		default:
		}
	}
	require.LessOrEqual(t, woken, 3+2*3, "wakes of a helper that never runs, in %d blocks", blocks)
	require.Greater(t, woken, 3, "the helper is woken again from time to time")
	require.Equal(t, woken, forHelper, "a block the helper may take is one it was woken for")
	require.Equal(t, uint64(blocks), k.gen, "every block is offered to Assist callers")
	stuck := slices.Clone(b)
	copy(stuck[checkerPiece-3:], []byte{1, 1, 1, 1, 1, 1, 1})
	require.ErrorIs(t, k.Check(stuck), ErrFailed)
}

// Assist tests pieces of the block a Check is testing, on the caller's
// goroutine, whether or not the helper may take them: a block whose
// pieces all pass is passed, and one whose failing piece an Assist call
// tested gets Config.Check's error.
func TestCheckerAssistTestsPieces(t *testing.T) {
	k := NewChecker(DefaultConfig())
	require.False(t, k.Assist(), "no block is being checked")
	b := distinctBytes(8 * checkerPiece)
	for _, helper := range []bool{true, false} {
		j := &k.job
		j.data, j.gen, j.pieces, j.helper = b, 1, 8, helper
		j.next.Store(0)
		j.doubt.Store(false)
		k.cur.Store(j)
		require.True(t, k.Assist())
		require.False(t, k.Assist(), "every piece was taken")
		require.GreaterOrEqual(t, j.next.Load(), int64(8))
		require.False(t, j.doubt.Load())
		k.cur.Store(nil)
	}
	require.Equal(t, uint64(16), k.helped.Load())
	require.Zero(t, k.inside.Load())

	// With Check: an assistant spinning beside it takes pieces of blocks
	// the helper found no CPU for (which the helper may not take), and a
	// block that fails in any piece fails as Config.Check says.
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("GOMAXPROCS is 1: the Checker tests every block alone")
	}
	k = NewChecker(DefaultConfig())
	k.done = make(chan struct{}) // as if started; no goroutine runs
	k.parked.Store(true)
	stop := make(chan struct{})
	var assisted atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if k.Assist() {
				assisted.Add(1)
			}
		}
	}()
	big := distinctBytes(64 * checkerPiece)
	for i := 0; i < 200 || assisted.Load() == 0; i++ {
		require.Less(t, i, 100000, "the assistant never took a piece")
		blk := big
		var want error
		if i%3 == 0 {
			blk = slices.Clone(big)
			at := (i * 7919) % (len(blk) - 7)
			for n := range 7 {
				blk[at+n] = 9
			}
			want = DefaultConfig().Check(blk)
			require.Error(t, want)
		}
		k.cold = 2 // every block cold: for Assist alone
		got := k.Check(blk)
		require.False(t, k.job.helper)
		if want == nil {
			require.NoError(t, got, "block %d", i)
		} else {
			require.EqualError(t, got, want.Error(), "block %d", i)
		}
		select {
		case <-k.wake:
		default:
		}
	}
	close(stop)
	require.Positive(t, assisted.Load())
}

// Check allocates nothing once the helper has started, whether the helper
// takes pieces or not, and whatever other configuration was used last in
// the process (Checkers of two configurations do not take each other's
// cutoffs from one cache).
func TestCheckerCheckDoesNotAllocate(t *testing.T) {
	k := NewChecker(DefaultConfig())
	defer k.Close()
	other := NewChecker(Config{MinEntropy: 8, FalseAlarmLog2: 20})
	defer other.Close()
	b := distinctBytes(4 * checkerPiece)
	require.NoError(t, k.Check(b)) // starts the helper
	require.NoError(t, other.Check(b))
	allocs := testing.AllocsPerRun(100, func() {
		if k.Check(b) != nil || other.Check(b) != nil {
			t.Fatal("a passing block failed")
		}
	})
	require.Zero(t, allocs)
}
