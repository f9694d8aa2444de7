// Package health holds the continuous health tests (NIST SP 800-90B §4.4)
// that an entropy.Provider runs on every block it fetches.
//
// Every block a source returns is tested before it enters the pool; a block
// that fails is discarded whole and counts as a source failure (contract
// point 4). The samples are bytes (8-bit symbols). Two tests run together in
// one pass over the block:
//
//   - Repetition Count Test (RCT, §4.4.1): a run of RCT-cutoff identical
//     bytes fails. Cutoff C = 1 + ⌈k/H⌉ for a false-alarm probability
//     α = 2^-k per sample and an assessed min-entropy of H bits per byte.
//     It catches a source that has got stuck.
//   - Adaptive Proportion Test (APT, §4.4.2) with the window W = 512 of
//     non-binary samples: the block is cut into windows of W bytes from its
//     start, and a byte value seen APT-cutoff times in one window fails.
//     Cutoff C = the smallest c with 2^H·P[Binomial(W, 2^-H) ≥ c] ≤ α. It
//     catches a source that has become biased without sticking.
//
// The APT here counts every value of the window, not only the window's first
// sample as §4.4.2 does: a window fails when any byte value reaches the
// cutoff. The standard's test looks for the bias only when a window happens
// to start with the favoured value, so it misses a block of 8 windows whose
// source emits 0x00 half the time with probability 2^-8; this one sees the
// bias in every window. It fails whenever the standard test fails, and the
// factor 2^H in the cutoff (the union bound over the at most 2^H values that
// can have probability 2^-H) keeps its false-alarm probability per window
// at most α, as the standard's is.
//
// Each block is tested on its own (no state carries over from the block
// before: a failing block is dropped whole, so there is no stream to
// continue). A trailing window shorter than W is tested with the same cutoff:
// a count over fewer samples is stochastically smaller, so the false-alarm
// bound still holds, and gross failures in short blocks are still caught.
// A block shorter than both cutoffs can fail neither test.
//
// docs/health.md gives the derivation, the chosen parameters and the
// measured false-alarm rate.
package health

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"
)

// ErrFailed is matched by every *Error: a block failed a health test.
var ErrFailed = errors.New("entropy: health test failed")

// AptWindow is the window of the Adaptive Proportion Test: W = 512, the
// value SP 800-90B §4.4.2 sets for non-binary samples.
const AptWindow = 512

// Config sets the assumptions the health-test cutoffs derive from.
//
// MinEntropy is the assessed min-entropy H of the source in bits per byte,
// 0 < H ≤ 8: the tests assume no byte value has probability above 2^-H.
// Assessing less entropy than the source has makes the tests tolerate that
// much defect without false alarms, at the price of slower detection.
//
// FalseAlarmLog2 is k in the false-alarm probability α = 2^-k of each test:
// per sample for the RCT, per window for the APT, when the source meets
// its assessment. 1 ≤ k ≤ 256.
//
// The zero value is invalid; start from [DefaultConfig].
type Config struct {
	MinEntropy     float64 // assessed H, bits per byte
	FalseAlarmLog2 int     // α = 2^-FalseAlarmLog2
}

// Default health-test assumptions: see DefaultConfig.
const (
	DefaultMinEntropy     = 7.0
	DefaultFalseAlarmLog2 = 40
)

// DefaultConfig returns H = 7 bits per byte and α = 2^-40, which give
// the cutoffs RCT 7 and APT 28 (see Cutoffs).
//
// The services claim full-entropy output (H = 8), but assessing H = 8 leaves
// no margin: a source whose most likely byte is twice as likely as it should
// be would then raise false alarms far more often than α. H = 7 tolerates
// exactly that defect and still fails a stuck source within 7 bytes, and a
// source that emits one value a quarter of the time within one window.
// α = 2^-40 bounds false alarms at the assessed entropy to under one in 60
// million blocks of 64 KiB (2^-26, nearly all of it the RCT), and for
// full-entropy output to about one in 4·10^9 (2^-32); a real failure still
// exceeds the cutoffs by a wide margin.
func DefaultConfig() Config {
	return Config{MinEntropy: DefaultMinEntropy, FalseAlarmLog2: DefaultFalseAlarmLog2}
}

// Validate reports whether c is a usable configuration.
func (c Config) Validate() error {
	if !(c.MinEntropy > 0 && c.MinEntropy <= 8) { // also refuses NaN
		return fmt.Errorf("entropy: health config: MinEntropy %v outside (0, 8] bits per byte", c.MinEntropy)
	}
	if c.FalseAlarmLog2 < 1 || c.FalseAlarmLog2 > 256 {
		return fmt.Errorf("entropy: health config: FalseAlarmLog2 %d outside 1..256", c.FalseAlarmLog2)
	}
	return nil
}

// Cutoffs returns the cutoffs the tests use, derived from c:
//
//	rct = 1 + ⌈k/H⌉
//	apt = smallest c with 2^H · P[Binomial(W=512, p=2^-H) ≥ c] ≤ 2^-k
//
// An apt of [AptWindow]+1 means the APT can never fail (H too small for the
// window to show anything at that α). Both are 0 if c is invalid (see
// Validate).
func (c Config) Cutoffs() (rct int, apt int) {
	rct, apt, err := c.cutoffs()
	if err != nil {
		return 0, 0
	}
	return rct, apt
}

// Check runs the health tests with [DefaultConfig] on one block.
// It is shorthand for DefaultConfig().Check(data).
func Check(data []byte) error {
	return DefaultConfig().Check(data)
}

// Check runs the Repetition Count Test and the Adaptive Proportion Test on
// data as one block and returns nil if both pass. A failure is a
// *Error, which matches [ErrFailed]; it names the first failure in
// the block. An invalid c returns a configuration error (see Validate) for
// every block. An empty block passes.
//
// Check makes one pass over data and allocates nothing unless it fails or c
// differs from the configuration of the previous call (its cutoffs are then
// computed once and cached).
func (c Config) Check(data []byte) error {
	rct, apt, err := c.cutoffs()
	if err != nil {
		return err
	}
	return checkCutoffs(data, rct, apt)
}

// checkCutoffs is Check with the cutoffs derived.
func checkCutoffs(data []byte, rct, apt int) error {
	if f := scanHealth(data, rct, apt); f.test != 0 {
		return &Error{Test: f.test, Value: f.value, Start: f.start, Offset: f.offset, Count: f.count, Cutoff: f.cutoff}
	}
	return nil
}

// MinBlock is the smallest block both tests can judge under c: a block of
// fewer bytes than a cutoff can never fail that test, so a source stuck at
// one value would pass in blocks of rct-1 bytes. An APT that can never fail
// (cutoff above the window) does not count. 0 for an invalid c.
func (c Config) MinBlock() int {
	rct, apt, err := c.cutoffs()
	if err != nil {
		return 0
	}
	if apt > AptWindow {
		return rct
	}
	return max(rct, apt)
}

// Test names one of the continuous health tests.
type Test int

// The health tests.
const (
	RepetitionCountTest    Test = iota + 1 // SP 800-90B §4.4.1
	AdaptiveProportionTest                 // SP 800-90B §4.4.2, every value counted
)

// String returns the test's name.
func (t Test) String() string {
	switch t {
	case RepetitionCountTest:
		return "repetition count test"
	case AdaptiveProportionTest:
		return "adaptive proportion test"
	}
	return fmt.Sprintf("Test(%d)", int(t))
}

// Error is a failed health test: which test, on which byte value,
// where in the block, with which count against which cutoff. It matches
// [ErrFailed] with [errors.Is].
type Error struct {
	Test   Test
	Value  byte // the repeated or over-frequent byte value
	Start  int  // offset in the block of the run (RCT) or window (APT)
	Offset int  // offset of the byte at which the count reached the cutoff
	Count  int  // the count reached: the run length or the window count
	Cutoff int  // the cutoff in force
}

// Error describes the failure.
func (e *Error) Error() string {
	if e == nil {
		return ErrFailed.Error()
	}
	if e.Test == AdaptiveProportionTest {
		return fmt.Sprintf("%v: %v: byte 0x%02x seen %d times in the window at offset %d by offset %d (cutoff %d)",
			ErrFailed, e.Test, e.Value, e.Count, e.Start, e.Offset, e.Cutoff)
	}
	return fmt.Sprintf("%v: %v: byte 0x%02x repeated %d times from offset %d to %d (cutoff %d)",
		ErrFailed, e.Test, e.Value, e.Count, e.Start, e.Offset, e.Cutoff)
}

// Unwrap returns [ErrFailed].
func (e *Error) Unwrap() error { return ErrFailed }

// healthFailure is the allocation-free result of scanHealth; test is 0 when
// the block passed.
type healthFailure struct {
	test                         Test
	value                        byte
	start, offset, count, cutoff int
}

// scanHealth runs both tests over data in one pass and returns the first
// failure, by offset; at an offset where both fail, the RCT is reported. It
// requires rct ≥ 2 and apt ≥ 1.
func scanHealth(data []byte, rct, apt int) healthFailure {
	if len(data) == 0 || healthPasses(data, rct, apt) {
		return healthFailure{}
	}
	var counts [256]uint16 // occurrences of each value in the current window
	prev, run, runStart := data[0], 0, 0
	for start := 0; start < len(data); start += AptWindow {
		window := data[start:min(start+AptWindow, len(data))]
		if start > 0 {
			counts = [256]uint16{}
		}
		for j, b := range window {
			if b == prev {
				run++
			} else {
				prev, run, runStart = b, 1, start+j
			}
			if run >= rct {
				return healthFailure{RepetitionCountTest, b, runStart, start + j, run, rct}
			}
			counts[b]++
			if int(counts[b]) >= apt {
				return healthFailure{AdaptiveProportionTest, b, start, start + j, int(counts[b]), apt}
			}
		}
	}
	return healthFailure{}
}

// healthPasses is the fast path of scanHealth on the refill path: it reports
// true only if data passes both tests, about 2.5 times as fast as the
// exact scan (which then has nothing to find); on false the exact scan runs
// and names the first failure. It handles rct ≥ 7 (the defaults) and
// otherwise defers to the exact scan.
//
//   - RCT: a run of rct ≥ 7 identical bytes contains a whole group of 4 bytes
//     aligned to a multiple of 4 from the block's start, so it suffices to
//     test every aligned group for four equal bytes: two masks per 8 bytes.
//   - APT: a window's counts only grow, so a value reached apt in the window
//     if and only if its count at the window's end is at least apt: the
//     counts are tested once per window, not once per byte. They are 16-bit
//     (at most AptWindow = 512 each) and read four at a time as 64-bit
//     words, to each lane of which 0x8000-apt is added: a lane's bit 15 is
//     then set exactly when its count is at least apt, and no lane carries
//     into the next (0x7fff + 512 < 0x10000). So a window costs, per byte,
//     the count's load and store and the byte's load, plus 64 additions and
//     64 zeroing stores of 8 bytes at its end.
func healthPasses(data []byte, rct, apt int) bool {
	if rct < 7 || apt < 1 || apt > 0x7fff {
		return false
	}
	// The counts, as 64 words of four 16-bit lanes; counts is the same
	// memory as 256 16-bit counts, one per byte value (the order of the
	// lanes in a word does not matter: every lane is tested alike).
	var words [256 / 4]uint64
	counts := (*[256]uint16)(unsafe.Pointer(&words))
	bias := uint64(0x8000-apt) * 0x0001_0001_0001_0001
	for start := 0; start < len(data); start += AptWindow {
		w := data[start:min(start+AptWindow, len(data))]
		words = [256 / 4]uint64{}
		i := 0
		for ; i+8 <= len(w); i += 8 {
			g := (*[8]byte)(w[i : i+8])
			x := binary.LittleEndian.Uint64(g[:])
			if d := x ^ x>>8; d&0x0000_0000_00ff_ffff == 0 || d&0x00ff_ffff_0000_0000 == 0 {
				return false
			}
			// Unrolled by hand: the compiler does not unroll the loop.
			// Each byte is loaded on its own (one instruction), not
			// shifted out of x (two).
			counts[g[0]]++
			counts[g[1]]++
			counts[g[2]]++
			counts[g[3]]++
			counts[g[4]]++
			counts[g[5]]++
			counts[g[6]]++
			counts[g[7]]++
		}
		if t := w[i:]; len(t) >= 4 && t[0] == t[1] && t[1] == t[2] && t[2] == t[3] {
			return false
		}
		for _, b := range w[i:] {
			counts[b]++
		}
		var acc uint64
		for _, c := range words {
			acc |= c + bias
		}
		if acc&0x8000_8000_8000_8000 != 0 {
			return false
		}
	}
	return true
}

// healthCutoffs is one configuration with its derived cutoffs.
type healthCutoffs struct {
	cfg      Config
	rct, apt int
}

// lastCutoffs caches the cutoffs of the configuration Check saw last, so that
// the refill path, which checks every block with one configuration, derives
// them once.
var lastCutoffs atomic.Pointer[healthCutoffs]

// cutoffs returns the cutoffs of c from the cache, or derives and caches them.
func (c Config) cutoffs() (rct, apt int, err error) {
	if e := lastCutoffs.Load(); e != nil && e.cfg == c {
		return e.rct, e.apt, nil
	}
	if err := c.Validate(); err != nil {
		return 0, 0, err
	}
	rct = rctCutoff(c.MinEntropy, float64(c.FalseAlarmLog2))
	apt = aptCutoff(AptWindow, c.MinEntropy, -float64(c.FalseAlarmLog2)-c.MinEntropy)
	lastCutoffs.Store(&healthCutoffs{cfg: c, rct: rct, apt: apt})
	return rct, apt, nil
}

// rctCutoff returns the Repetition Count Test cutoff 1 + ⌈k/h⌉ of SP 800-90B
// §4.4.1 for min-entropy h bits per sample and α = 2^-k: a run of that many
// identical samples has probability at most 2^-h·(C-1) ≤ α.
func rctCutoff(h, k float64) int {
	c := math.Ceil(k / h)
	if !(c < maxCutoff) { // a tiny h: no run could ever be that long; also NaN
		return maxCutoff
	}
	return 1 + int(c)
}

// maxCutoff bounds a cutoff: no block is that long, so a test with it never
// fails. A vanishingly small assessed min-entropy tolerates everything.
const maxCutoff = 1 << 40

// aptCutoff returns the Adaptive Proportion Test cutoff of SP 800-90B §4.4.2,
// the smallest c with P[Binomial(w, 2^-h) ≥ c] ≤ 2^log2Alpha, or w+1 when even
// c = w is too likely. (The standard writes it 1 + CRITBINOM(w, 2^-h, 1-α).)
//
// The binomial tail is summed exactly in log space from the top term down,
// each term derived from the one above by the ratio of binomial coefficients,
// so nothing underflows however small p^w is.
func aptCutoff(w int, h, log2Alpha float64) int {
	lnP := -h * math.Ln2
	lnQ := math.Log1p(-math.Exp2(-h))
	lnAlpha := log2Alpha * math.Ln2
	lnTerm := float64(w) * lnP // ln P[X = w]
	lnTail := math.Inf(-1)     // ln P[X ≥ k+1], for the k below
	for k := w; k >= 0; k-- {
		lnTail = logAddExp(lnTail, lnTerm) // now ln P[X ≥ k]
		if lnTail > lnAlpha {
			return k + 1
		}
		// P[X = k-1] = P[X = k] · k/(w-k+1) · q/p
		lnTerm += math.Log(float64(k)/float64(w-k+1)) + lnQ - lnP
	}
	return 0 // P[X ≥ 0] = 1 > α for every α < 1, so this is not reached
}

// logAddExp returns ln(e^a + e^b) without overflow or underflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}
