package health

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// healthGiB sets how much crypto/rand output TestHealthFalseAlarms checks.
// Zero (the default) checks a short 16 MiB; the figure in docs/health.md
// comes from `go test -run TestHealthFalseAlarms -v ./health -health.gib=1`
// (the flag after the package: go test passes a flag it does not know, and
// every argument after it, to the test binary of the current directory).
var healthGiB = flag.Float64("health.gib", 0, "GiB of crypto/rand output TestHealthFalseAlarms checks (0: 16 MiB)")

// healthBlockSize is the block size of the false-alarm measurement in
// docs/health.md: 16 KiB, the Provider's default fetch size when it was
// made (now 64 KiB).
const healthBlockSize = 16 << 10

// TestAptCutoffMatchesSP80090BTable pins the APT cutoffs to SP 800-90B
// Table 2 (W = 512, α = 2^-20: H = 0.5, 1, 2, 4, 8 → 410, 311, 177, 62, 13)
// and the values reference implementations list for the H between them.
func TestAptCutoffMatchesSP80090BTable(t *testing.T) {
	want := map[float64]int{0.5: 410, 1: 311, 2: 177, 3: 103, 4: 62, 5: 39, 6: 25, 7: 18, 8: 13}
	for h, c := range want {
		assert.Equal(t, c, aptCutoff(AptWindow, h, -20), "H = %v", h)
	}
}

// TestRctCutoffMatchesSP80090B pins the RCT cutoffs at α = 2^-20 to the
// standard's formula 1 + ⌈20/H⌉ worked out by hand.
func TestRctCutoffMatchesSP80090B(t *testing.T) {
	want := map[float64]int{0.5: 41, 1: 21, 2: 11, 3: 8, 4: 6, 5: 5, 6: 5, 7: 4, 8: 4}
	for h, c := range want {
		assert.Equal(t, c, rctCutoff(h, 20), "H = %v", h)
	}
}

// exactTails returns, for an integer h, N[c] = Σ_{k≥c} C(w,k)·(2^h−1)^(w−k)
// for c = 0..w+1, which is P[Binomial(w, 2^-h) ≥ c] · 2^(h·w): the tails in
// exact integers, an oracle independent of aptCutoff's floating point.
func exactTails(w, h int) []*big.Int {
	tails := make([]*big.Int, w+2)
	tails[w+1] = new(big.Int)
	q := big.NewInt(1<<h - 1)
	qPow := big.NewInt(1) // (2^h−1)^(w−k)
	for k := w; k >= 0; k-- {
		term := new(big.Int).Binomial(int64(w), int64(k))
		term.Mul(term, qPow)
		tails[k] = new(big.Int).Add(tails[k+1], term)
		qPow.Mul(qPow, q)
	}
	return tails
}

// tailAtMost reports whether tails[c] / 2^(h·w) ≤ 2^-a, for tails from
// exactTails(w, h).
func tailAtMost(tails []*big.Int, w, h, c, a int) bool {
	bound := new(big.Int).Lsh(big.NewInt(1), uint(h*w-a))
	return tails[c].Cmp(bound) <= 0
}

// TestAptCutoffIsExact checks the defining property of every APT cutoff
// against exact integer arithmetic: tail(C) ≤ α < tail(C−1).
func TestAptCutoffIsExact(t *testing.T) {
	for h := 1; h <= 8; h++ {
		tails := exactTails(AptWindow, h)
		for _, a := range []int{10, 20, 30, 40, 47, 50, 64} {
			c := aptCutoff(AptWindow, float64(h), -float64(a))
			require.Greater(t, c, 1, "H=%d a=%d", h, a)
			require.LessOrEqual(t, c, AptWindow, "H=%d a=%d", h, a)
			assert.True(t, tailAtMost(tails, AptWindow, h, c, a), "tail(%d) > 2^-%d at H=%d", c, a, h)
			assert.False(t, tailAtMost(tails, AptWindow, h, c-1, a), "tail(%d) ≤ 2^-%d at H=%d: cutoff not the smallest", c-1, a, h)
		}
	}
}

// TestDefaultHealthCutoffs pins the default cutoffs and checks them against
// their definition: RCT 1 + ⌈40/7⌉ = 7; APT 28, the smallest c with
// 2^7·P[Binomial(512, 2^-7) ≥ c] ≤ 2^-40.
func TestDefaultHealthCutoffs(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())
	rct, apt := cfg.Cutoffs()
	assert.Equal(t, 7, rct)
	assert.Equal(t, 28, apt)
	tails := exactTails(AptWindow, 7)
	assert.True(t, tailAtMost(tails, AptWindow, 7, apt, 47))
	assert.False(t, tailAtMost(tails, AptWindow, 7, apt-1, 47))
	// A run of rct identical bytes at H = 7 has probability 2^-42 ≤ 2^-40;
	// one byte shorter it would be 2^-35 > 2^-40.
	assert.LessOrEqual(t, -7*(rct-1), -40)
	assert.Greater(t, -7*(rct-2), -40)
}

// TestAptUnionBoundCondition checks the condition under which the
// every-value APT keeps the false-alarm bound α (docs/health.md): tail(p)/p
// is nondecreasing on (0, 2^-H] when (C−1)/(W−1) ≥ 2^-H, and that holds for
// every configuration in a grid over the accepted range.
func TestAptUnionBoundCondition(t *testing.T) {
	checked := 0
	for h := 0.25; h <= 8; h += 0.25 {
		for k := 1; k <= 256; k += 5 {
			_, apt := Config{MinEntropy: h, FalseAlarmLog2: k}.Cutoffs()
			require.Positive(t, apt)
			if apt > AptWindow {
				continue // the APT cannot fail: nothing to bound
			}
			assert.GreaterOrEqual(t, float64(apt-1)/float64(AptWindow-1), math.Exp2(-h), "H=%v k=%d apt=%d", h, k, apt)
			checked++
		}
	}
	assert.Greater(t, checked, 1000)
}

// TestHealthConfigValidate checks that bad configurations are refused with a
// clear error, never a panic, and never taken for a health-test failure.
func TestHealthConfigValidate(t *testing.T) {
	bad := []Config{
		{},
		{MinEntropy: 0, FalseAlarmLog2: 40},
		{MinEntropy: -1, FalseAlarmLog2: 40},
		{MinEntropy: 8.5, FalseAlarmLog2: 40},
		{MinEntropy: math.NaN(), FalseAlarmLog2: 40},
		{MinEntropy: math.Inf(1), FalseAlarmLog2: 40},
		{MinEntropy: 7, FalseAlarmLog2: 0},
		{MinEntropy: 7, FalseAlarmLog2: -3},
		{MinEntropy: 7, FalseAlarmLog2: 257},
	}
	for _, c := range bad {
		err := c.Validate()
		require.Error(t, err, "%+v", c)
		assert.Contains(t, err.Error(), "health config")
		rct, apt := c.Cutoffs()
		assert.Zero(t, rct)
		assert.Zero(t, apt)
		err = c.Check([]byte{1, 2, 3})
		require.Error(t, err, "%+v", c)
		assert.NotErrorIs(t, err, ErrFailed)
	}
	for _, c := range []Config{{MinEntropy: 8, FalseAlarmLog2: 1}, {MinEntropy: 0.01, FalseAlarmLog2: 256}, DefaultConfig()} {
		assert.NoError(t, c.Validate(), "%+v", c)
		rct, apt := c.Cutoffs()
		assert.GreaterOrEqual(t, rct, 2)
		assert.GreaterOrEqual(t, apt, 1)
	}
}

// TestCheckStuckFailsRCT: a stuck source (every byte equal) fails the
// Repetition Count Test at the cutoff-th byte, whatever the value and the
// block length, and so does a stuck stretch inside good data.
func TestCheckStuckFailsRCT(t *testing.T) {
	rct, _ := DefaultConfig().Cutoffs()
	for v := range 256 {
		for _, n := range []int{rct, 100, 4096, 65536} {
			err := Check(bytes.Repeat([]byte{byte(v)}, n))
			require.ErrorIs(t, err, ErrFailed, "value %d, %d bytes", v, n)
			var he *Error
			require.ErrorAs(t, err, &he)
			assert.Equal(t, RepetitionCountTest, he.Test)
			assert.Equal(t, byte(v), he.Value)
			assert.Equal(t, 0, he.Start)
			assert.Equal(t, rct-1, he.Offset)
			assert.Equal(t, rct, he.Count)
			assert.Equal(t, rct, he.Cutoff)
		}
	}

	// One byte short of the cutoff passes; a stuck stretch mid-block fails.
	require.NoError(t, Check(bytes.Repeat([]byte{0xAA}, rct-1)))
	data := distinctBytes(3000)
	copy(data[1500:], bytes.Repeat([]byte{0x42}, 40))
	data[1499] = 0x41
	var he *Error
	require.ErrorAs(t, Check(data), &he)
	assert.Equal(t, RepetitionCountTest, he.Test)
	assert.Equal(t, 1500, he.Start)
	assert.Equal(t, 1500+rct-1, he.Offset)
}

// distinctBytes returns n bytes with no two neighbours equal and each value
// at most twice in any 512-byte window: a block that passes any valid
// configuration with both cutoffs above 2.
func distinctBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// biasedBlock fills b as the simulator's "biased" fault does: each byte is
// 0x00 with probability 1/2, otherwise uniform.
func biasedBlock(r *rand.Rand, b []byte) {
	for i := range b {
		if r.IntN(2) == 0 {
			b[i] = 0
		} else {
			b[i] = byte(r.UintN(256))
		}
	}
}

// standardAPTFails is the APT exactly as SP 800-90B §4.4.2 words it: count
// the first sample of each window. Only for comparison.
func standardAPTFails(data []byte, cutoff int) bool {
	for start := 0; start < len(data); start += AptWindow {
		w := data[start:min(start+AptWindow, len(data))]
		n := 0
		for _, b := range w {
			if b == w[0] {
				n++
				if n >= cutoff {
					return true
				}
			}
		}
	}
	return false
}

// TestCheckBiasedFailsAPT: biased blocks (0x00 half the time) fail the
// Adaptive Proportion Test alone, in every 4 KiB block, in every window of
// it, and in short blocks too; the full check fails every block. The
// standard's first-sample APT misses some of them, which is why this APT
// counts every value.
func TestCheckBiasedFailsAPT(t *testing.T) {
	_, apt := DefaultConfig().Cutoffs()
	r := rand.New(rand.NewChaCha8([32]byte{'h', 'e', 'a', 'l', 't', 'h'}))
	const blocks = 2000
	block := make([]byte, 4096)
	standardMissed := 0
	for i := range blocks {
		biasedBlock(r, block)
		require.ErrorIs(t, Check(block), ErrFailed, "block %d", i)

		// The APT on its own (an RCT cutoff it can never reach).
		f := scanHealth(block, len(block)+1, apt)
		require.Equal(t, AdaptiveProportionTest, f.test, "block %d", i)
		assert.Equal(t, byte(0), f.value)
		assert.Equal(t, 0, f.start, "block %d: the first window already fails", i)
		// Every window fails on its own.
		for start := 0; start < len(block); start += AptWindow {
			assert.Equal(t, AdaptiveProportionTest, scanHealth(block[start:start+AptWindow], AptWindow+1, apt).test)
		}
		if !standardAPTFails(block, apt) {
			standardMissed++
		}
	}
	t.Logf("biased 4 KiB blocks: %d of %d fail the APT; the standard first-sample APT would miss %d", blocks, blocks, standardMissed)

	// A short biased block, under one window, still fails the APT.
	short := make([]byte, 200)
	for i := range 100 {
		biasedBlock(r, short)
		assert.Equal(t, AdaptiveProportionTest, scanHealth(short, len(short)+1, apt).test, "short block %d", i)
	}
}

// TestAPTIsStrongerThanStandard: whenever the standard's first-sample APT
// fails a block, the every-value APT fails it too, at the same offset or
// earlier.
func TestAPTIsStrongerThanStandard(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{'s', 't', 'd'}))
	block := make([]byte, 2048)
	const cutoff = 20
	fails := 0
	for range 3000 {
		// A source with one favoured value, of varying strength.
		fav, pr := byte(r.UintN(256)), 0.01+0.05*r.Float64()
		for i := range block {
			if r.Float64() < pr {
				block[i] = fav
			} else {
				block[i] = byte(r.UintN(256))
			}
		}
		if standardAPTFails(block, cutoff) {
			fails++
			require.Equal(t, AdaptiveProportionTest, scanHealth(block, len(block)+1, cutoff).test)
		}
	}
	assert.Positive(t, fails, "the sample should include blocks the standard test fails")
}

// TestHealthAPTWindows: windows are aligned at the start of the block,
// counts do not carry from one window to the next, and the trailing partial
// window is tested with the full cutoff.
func TestHealthAPTWindows(t *testing.T) {
	_, apt := DefaultConfig().Cutoffs()
	// spread writes n copies of v into w, every third byte from off: never a
	// run, so only the APT can see them.
	spread := func(w []byte, off, n int, v byte) {
		for i := range n {
			w[off+3*i] = v
		}
	}
	// Blocks of distinctBytes with v taken out, so that every copy of v is
	// one the test planted.
	const v = 0xEE
	noV := func(n int) []byte {
		b := distinctBytes(n)
		for i := range b {
			if b[i] == v {
				b[i] = 0x11 ^ byte(i>>8)
			}
		}
		return b
	}

	// apt−1 copies at the end of window 0 and apt−1 at the start of window
	// 1: no window reaches the cutoff.
	b := noV(1024)
	spread(b, 512-3*(apt-1), apt-1, v)
	spread(b, 512, apt-1, v)
	require.NoError(t, Check(b))

	// One more in window 1 reaches it; the error names window 1.
	b[512+3*(apt-1)] = v
	var he *Error
	require.ErrorAs(t, Check(b), &he)
	assert.Equal(t, AdaptiveProportionTest, he.Test)
	assert.Equal(t, byte(v), he.Value)
	assert.Equal(t, 512, he.Start)
	assert.Equal(t, 512+3*(apt-1), he.Offset)
	assert.Equal(t, apt, he.Count)
	assert.Equal(t, apt, he.Cutoff)

	// A trailing partial window of 100 bytes is tested with the same cutoff.
	b = noV(612)
	spread(b, 512, apt, v)
	require.ErrorAs(t, Check(b), &he)
	assert.Equal(t, 512, he.Start)

	// So is a block shorter than one window.
	b = noV(100)
	spread(b, 0, apt, v)
	require.ErrorAs(t, Check(b), &he)
	assert.Equal(t, AdaptiveProportionTest, he.Test)
	assert.Equal(t, 0, he.Start)

	// One short of the cutoff in a partial window passes.
	b = noV(100)
	spread(b, 0, apt-1, v)
	require.NoError(t, Check(b))
}

// TestCheckShortAndEmpty: an empty block passes; short blocks get the
// RCT.
func TestCheckShortAndEmpty(t *testing.T) {
	require.NoError(t, Check(nil))
	require.NoError(t, Check([]byte{}))
	require.NoError(t, Check([]byte{0}))
	rct, _ := DefaultConfig().Cutoffs()
	require.NoError(t, Check(bytes.Repeat([]byte{7}, rct-1)))
	require.ErrorIs(t, Check(bytes.Repeat([]byte{7}, rct)), ErrFailed)
}

// TestCheckCryptoRandPasses: crypto/rand output of the block sizes the
// sources return passes.
func TestCheckCryptoRandPasses(t *testing.T) {
	for _, n := range []int{1, 32, 511, 512, 513, 4096, 65536} {
		for range 20 {
			b := make([]byte, n)
			_, _ = crand.Read(b)
			require.NoError(t, Check(b), "%d bytes", n)
		}
	}
}

// TestHealthErrorMessage: the error says which test failed, on which value,
// where, with which count and cutoff, and matches ErrFailed.
func TestHealthErrorMessage(t *testing.T) {
	err := Check(append([]byte{1, 2, 3}, bytes.Repeat([]byte{0xAB}, 10)...))
	require.ErrorIs(t, err, ErrFailed)
	assert.Equal(t, "entropy: health test failed: repetition count test: byte 0xab repeated 7 times from offset 3 to 9 (cutoff 7)", err.Error())

	e := &Error{Test: AdaptiveProportionTest, Value: 0, Start: 512, Offset: 700, Count: 28, Cutoff: 28}
	assert.Equal(t, "entropy: health test failed: adaptive proportion test: byte 0x00 seen 28 times in the window at offset 512 by offset 700 (cutoff 28)", e.Error())
	assert.ErrorIs(t, e, ErrFailed)
	assert.Equal(t, "Test(9)", Test(9).String())
}

// TestCheckNoAlloc: a passing check allocates nothing.
func TestCheckNoAlloc(t *testing.T) {
	b := make([]byte, 64<<10)
	_, _ = crand.Read(b)
	require.NoError(t, Check(b))
	allocs := testing.AllocsPerRun(100, func() {
		if Check(b) != nil {
			panic("unreachable: the block passed above")
		}
	})
	assert.Zero(t, allocs)
}

// TestFalseAlarmCommandReachesThisPackage checks the measurement command
// that docs/health.md and this file show: go test passes a flag it does not
// know, and every argument after it, to the test binary of the current
// directory, so a -health.gib written before ./health runs another
// package's tests, which have no such flag, and fails.
func TestFalseAlarmCommandReachesThisPackage(t *testing.T) {
	commands := 0
	for _, file := range []string{"../docs/health.md", "health_test.go"} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			flagAt := strings.Index(line, "-health.gib=")
			if !strings.Contains(line, "go test") || flagAt < 0 {
				continue
			}
			commands++
			pkgAt := strings.Index(line, "./health")
			assert.True(t, pkgAt >= 0 && pkgAt < flagAt, "%s: %q: -health.gib must come after ./health", file, strings.TrimSpace(line))
		}
	}
	assert.GreaterOrEqual(t, commands, 2, "the commands of docs/health.md and this file")
}

// TestHealthFalseAlarms measures false alarms on crypto/rand output in
// 16 KiB blocks: 16 MiB by default, -health.gib=N for N GiB. The target,
// and the assertion, is zero. It also reports the longest run and the
// highest window count seen, the margins below the cutoffs.
func TestHealthFalseAlarms(t *testing.T) {
	total := int64(16 << 20)
	if *healthGiB > 0 {
		total = int64(*healthGiB * (1 << 30))
	}
	rct, apt := DefaultConfig().Cutoffs()
	block := make([]byte, healthBlockSize)
	var blocks, alarms, checked int64
	maxRun, maxCount := 0, 0
	began := time.Now()
	for checked < total {
		_, _ = crand.Read(block)
		if err := Check(block); err != nil {
			alarms++
			t.Logf("false alarm in block %d: %v", blocks, err)
		}
		run, count := healthMaxima(block)
		maxRun, maxCount = max(maxRun, run), max(maxCount, count)
		blocks++
		checked += int64(len(block))
	}
	elapsed := time.Since(began)
	msg := fmt.Sprintf("health false alarms: %d in %d blocks of %d bytes (%.2f GiB of crypto/rand) in %v; longest run %d (cutoff %d), highest window count %d (cutoff %d)",
		alarms, blocks, healthBlockSize, float64(checked)/(1<<30), elapsed.Round(time.Millisecond), maxRun, rct, maxCount, apt)
	t.Log(msg)
	if *healthGiB > 0 {
		fmt.Println(msg)
	}
	assert.Zero(t, alarms)
	assert.Less(t, maxRun, rct)
	assert.Less(t, maxCount, apt)
}

// healthMaxima returns the longest run of one value in data and the highest
// count of one value in any window: a plain second implementation.
func healthMaxima(data []byte) (maxRun, maxCount int) {
	run := 0
	for i := range data {
		if i > 0 && data[i] == data[i-1] {
			run++
		} else {
			run = 1
		}
		maxRun = max(maxRun, run)
	}
	for start := 0; start < len(data); start += AptWindow {
		var counts [256]int
		for _, b := range data[start:min(start+AptWindow, len(data))] {
			counts[b]++
			maxCount = max(maxCount, counts[b])
		}
	}
	return maxRun, maxCount
}

// referenceCheck is a plain, slow statement of what Check must return: the
// first offset at which a run or a window count reaches its cutoff, with the
// RCT first at the same offset.
func referenceCheck(data []byte, rct, apt int) healthFailure {
	for i := range data {
		runStart := i
		for runStart > 0 && data[runStart-1] == data[i] {
			runStart--
		}
		if i-runStart+1 >= rct {
			return healthFailure{RepetitionCountTest, data[i], runStart, i, i - runStart + 1, rct}
		}
		wStart := i / AptWindow * AptWindow
		count := bytes.Count(data[wStart:i+1], data[i:i+1])
		if count >= apt {
			return healthFailure{AdaptiveProportionTest, data[i], wStart, i, count, apt}
		}
	}
	return healthFailure{}
}

// fuzzConfig turns two fuzz bytes into a valid configuration.
func fuzzConfig(h, k uint8) Config {
	return Config{MinEntropy: 0.25 + float64(h%32)*0.25, FalseAlarmLog2: 1 + int(k)%64}
}

// TestCheckMatchesReference compares Check with referenceCheck on
// random blocks over alphabets of 1 to 256 values (the small ones make runs
// and favoured values), over many configurations.
func TestCheckMatchesReference(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{'r', 'e', 'f'}))
	failures := 0
	for i := range 3000 {
		cfg := fuzzConfig(uint8(r.UintN(256)), uint8(r.UintN(256)))
		b := make([]byte, r.IntN(1500))
		alphabet := 1 + r.IntN(256)
		for j := range b {
			b[j] = byte(r.IntN(alphabet))
		}
		rct, apt := cfg.Cutoffs()
		want := referenceCheck(b, rct, apt)
		require.Equal(t, want, scanHealth(b, rct, apt), "case %d %+v", i, cfg)
		err := cfg.Check(b)
		if want.test == 0 {
			require.NoError(t, err)
			continue
		}
		failures++
		var he *Error
		require.ErrorAs(t, err, &he)
		assert.Equal(t, want.test, he.Test)
		assert.Equal(t, want.offset, he.Offset)
	}
	assert.Greater(t, failures, 100, "the sample should exercise failures")
}

// TestCheckMatchesReferenceOnCraftedBlocks compares Check with
// referenceCheck on blocks built to sit at the edges of both tests: a run
// one short of the RCT cutoff or at it, and a value one short of the APT
// cutoff in a window or at it, planted at every offset modulo 8 (the fast
// path reads 8 bytes at a time), across a window boundary and at the end of
// the block, under the default cutoffs and others.
func TestCheckMatchesReferenceOnCraftedBlocks(t *testing.T) {
	cfgs := []Config{DefaultConfig(), {MinEntropy: 8, FalseAlarmLog2: 20}, {MinEntropy: 1, FalseAlarmLog2: 40}, {MinEntropy: 0.5, FalseAlarmLog2: 30}}
	cases := 0
	check := func(cfg Config, b []byte, what string) {
		t.Helper()
		rct, apt := cfg.Cutoffs()
		want := referenceCheck(b, rct, apt)
		require.Equal(t, want, scanHealth(b, rct, apt), "%s, cutoffs %d %d", what, rct, apt)
		err := cfg.Check(b)
		require.Equal(t, want.test == 0, err == nil, "%s: %v", what, err)
		cases++
	}
	for _, cfg := range cfgs {
		rct, apt := cfg.Cutoffs()
		for _, n := range []int{AptWindow - 3, 2*AptWindow + 5, 4096} {
			base := distinctBytes(n)
			offsets := []int{0, n - rct, n - rct + 1, AptWindow - rct/2, AptWindow - 1}
			for off := range 16 {
				offsets = append(offsets, 40+off)
			}
			for _, off := range offsets {
				for _, l := range []int{rct - 1, rct} {
					if off < 0 || off+l > n {
						continue
					}
					b := slices.Clone(base)
					for i := off; i < off+l; i++ {
						b[i] = 0xa5
					}
					check(cfg, b, fmt.Sprintf("run of %d at %d in %d bytes", l, off, n))
				}
			}
			// A value repeated apt-1 or apt times in one window, never twice
			// in a row, from different starts.
			for _, start := range []int{0, 3, AptWindow - 2*apt + 1} {
				for _, c := range []int{apt - 1, apt} {
					if start < 0 || start+2*c > n || 2*c > AptWindow {
						continue
					}
					b := slices.Clone(base)
					for k := range c {
						b[start+2*k] = 0x5a
					}
					check(cfg, b, fmt.Sprintf("%d of one value from %d in %d bytes", c, start, n))
				}
			}
		}
	}
	t.Logf("%d crafted blocks", cases)
}

// TestFastPathPassesExactlyWhatTheReferencePasses holds healthPasses, the
// fast path that tests each window's counts once at its end, to the
// reference: it never passes a block the reference fails, and it passes
// every block the reference passes unless the block holds an aligned group
// of four equal bytes (its RCT shortcut, which sends such a block to the
// exact scan). The blocks are random over small and full alphabets, and
// crafted with a value counted apt-1 or apt times in a window whose last
// byte is that value, so that a count tested one byte early or late, or in
// the wrong window, fails.
func TestFastPathPassesExactlyWhatTheReferencePasses(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{'f', 'a', 's', 't'}))
	alignedQuad := func(b []byte) bool {
		for i := 0; i+4 <= len(b); i += 4 {
			if b[i] == b[i+1] && b[i+1] == b[i+2] && b[i+2] == b[i+3] {
				return true
			}
		}
		return false
	}
	passed, failed := 0, 0
	check := func(b []byte, rct, apt int, what string) {
		t.Helper()
		want := referenceCheck(b, rct, apt).test == 0
		got := healthPasses(b, rct, apt)
		if got {
			require.True(t, want, "%s: the fast path passed a block the reference fails (cutoffs %d %d)", what, rct, apt)
			passed++
			return
		}
		require.False(t, want && !alignedQuad(b), "%s: the fast path failed a block the reference passes (cutoffs %d %d)", what, rct, apt)
		failed++
	}
	for i := range 2000 {
		// RCT cutoff 1 + ⌈k/H⌉ ≥ 7: k > 5H.
		h := 1 + r.IntN(8)
		cfg := Config{MinEntropy: float64(h), FalseAlarmLog2: min(256, 5*h+1+r.IntN(40))}
		rct, apt := cfg.Cutoffs()
		require.GreaterOrEqual(t, rct, 7)
		b := make([]byte, r.IntN(3*AptWindow+20))
		alphabet := 1 + r.IntN(256)
		for j := range b {
			b[j] = byte(r.IntN(alphabet))
		}
		check(b, rct, apt, fmt.Sprintf("random block %d over %d values", i, alphabet))
	}
	for _, cfg := range []Config{DefaultConfig(), {MinEntropy: 4, FalseAlarmLog2: 30}, {MinEntropy: 8, FalseAlarmLog2: 64}} {
		rct, apt := cfg.Cutoffs()
		for _, n := range []int{AptWindow, 2 * AptWindow, 2*AptWindow + 9, 3*AptWindow - 1} {
			for _, end := range []int{AptWindow - 1, 2*AptWindow - 1, n - 1} {
				for _, c := range []int{apt - 1, apt} {
					if end >= n {
						continue
					}
					// c bytes 0x5a in end's window, the last at end (the
					// window's last byte, or the block's).
					from := end / AptWindow * AptWindow
					if 2*c > end-from+1 {
						continue // the window is too short
					}
					b := distinctBytes(n)
					for k := end; bytes.Count(b[from:end+1], []byte{0x5a}) < c; k -= 2 {
						b[k] = 0x5a
					}
					require.Equal(t, c, bytes.Count(b[from:end+1], []byte{0x5a}))
					check(b, rct, apt, fmt.Sprintf("%d of one value ending at %d in %d bytes", c, end, n))
				}
			}
		}
	}
	t.Logf("fast path: %d blocks passed, %d sent to the exact scan", passed, failed)
	assert.Greater(t, passed, 500, "the sample should exercise the fast path")
	assert.Greater(t, failed, 100, "the sample should exercise failures")
}

// FuzzCheck: Check never panics, gives the same answer twice, and
// agrees with the reference statement, for any data and configuration.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{}, uint8(27), uint8(39))
	f.Add(bytes.Repeat([]byte{0}, 100), uint8(27), uint8(39))
	f.Add(distinctBytes(1100), uint8(31), uint8(0))
	f.Add([]byte("0123456789abcdef0123456789abcdef"), uint8(0), uint8(63))
	f.Fuzz(func(t *testing.T, data []byte, h, k uint8) {
		cfg := fuzzConfig(h, k)
		err1 := cfg.Check(data)
		err2 := cfg.Check(data)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v then %v", err1, err2)
		}
		rct, apt := cfg.Cutoffs()
		want := referenceCheck(data, rct, apt)
		var he *Error
		switch {
		case want.test == 0 && err1 != nil:
			t.Fatalf("reference passes, Check: %v", err1)
		case want.test != 0 && !errors.As(err1, &he):
			t.Fatalf("reference fails with %+v, Check: %v", want, err1)
		case want.test != 0 && (he.Test != want.test || he.Offset != want.offset || he.Count != want.count):
			t.Fatalf("reference %+v, Check %+v", want, *he)
		}
	})
}

// BenchmarkCheck measures the check on the refill path for 4 KiB and
// 64 KiB blocks of crypto/rand output (which pass, so every byte is seen).
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			data := make([]byte, n)
			_, _ = crand.Read(data)
			if err := Check(data); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if err := Check(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A block from a source that got stuck fails the Repetition Count Test.
func ExampleCheck() {
	stuck := bytes.Repeat([]byte{0x00}, 4096)
	err := Check(stuck)
	fmt.Println(errors.Is(err, ErrFailed))
	fmt.Println(err)
	// Output:
	// true
	// entropy: health test failed: repetition count test: byte 0x00 repeated 7 times from offset 0 to 6 (cutoff 7)
}

// The cutoffs follow from the assessed entropy and the false-alarm rate.
func ExampleConfig_Cutoffs() {
	rct, apt := DefaultConfig().Cutoffs()
	fmt.Println("default:", rct, apt)
	rct, apt = Config{MinEntropy: 8, FalseAlarmLog2: 20}.Cutoffs()
	fmt.Println("H=8, α=2^-20:", rct, apt)
	// Output:
	// default: 7 28
	// H=8, α=2^-20: 4 15
}

// WithHealthTests / Config.Validate: a configuration Validate accepts
// must give usable cutoffs. Assessing less entropy makes the tests more
// tolerant, never less, so a block that passes the default tests must pass
// a configuration with a (valid) tiny MinEntropy too; otherwise Validate must
// refuse that configuration.
func TestTinyMinEntropyValidatedOrTolerant(t *testing.T) {
	data := make([]byte, 4096)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	require.NoError(t, DefaultConfig().Check(data))
	for _, h := range []float64{1e-18, 5e-324} {
		c := Config{MinEntropy: h, FalseAlarmLog2: DefaultFalseAlarmLog2}
		if c.Validate() != nil {
			continue
		}
		rct, apt := c.Cutoffs()
		assert.GreaterOrEqual(t, rct, 2, "MinEntropy %v: RCT cutoff", h)
		assert.GreaterOrEqual(t, apt, 1, "MinEntropy %v: APT cutoff", h)
		assert.NoError(t, c.Check(data), "MinEntropy %v passed Validate but fails a block the default tests pass", h)
	}
}

// A nil *Error, returned as an error, still describes itself.
func TestNilErrorDescribesItself(t *testing.T) {
	var e *Error
	require.NotPanics(t, func() { assert.Equal(t, ErrFailed.Error(), e.Error()) })
}
