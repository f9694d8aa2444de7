package entropy

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Contract point 11: a derived read is labelled derived, names the pool
// bytes it drew on, and its output is neither those bytes nor any function
// of them alone.
func TestSecretReadIsDerived(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1))...)
	full(t, p, 1024)
	out := make([]byte, 32)
	lb, err := p.ReadSecret(context.Background(), out)
	require.NoError(t, err)
	assert.True(t, lb.Derived)
	assert.False(t, lb.Verifiable)
	assert.Nil(t, lb.Reason)
	assert.Equal(t, ProvenanceDerived, lb.Provenance())
	require.Equal(t, secretSeed, lb.Len())
	assert.Empty(t, newLedger(src).claim(lb.Spans))

	// The pool bytes that went in.
	var pool []byte
	for _, sp := range lb.Spans {
		d, ok := src.job(sp.JobID)
		require.True(t, ok)
		pool = append(pool, d[sp.Offset:sp.Offset+sp.Length]...)
	}
	assert.False(t, bytes.Contains(pool, out[:8]), "output shares bytes with the pool input")
	// Anyone who knows only the job bytes (the service, an auditor) cannot
	// recompute the output: try the stream keyed with the local half zeroed,
	// or equal to the pool half.
	for _, local := range [][]byte{make([]byte, secretSeed), pool} {
		var ikm [2 * secretSeed]byte
		copy(ikm[:], pool)
		copy(ikm[secretSeed:], local)
		k := secretDerive(&ikm)
		guess := make([]byte, secretBatch)
		var next [secretKey]byte
		secretKeystream(&k, &next, guess)
		assert.False(t, bytes.Contains(guess, out[:16]), "a guess from the pool bytes alone matches")
	}
	// The same pool bytes with the local bytes it drew would match; since
	// those are gone, two reads never give the same output.
	out2 := make([]byte, 32)
	_, err = p.ReadSecret(context.Background(), out2)
	require.NoError(t, err)
	assert.NotEqual(t, out, out2)
	st := p.Stats()
	assert.Equal(t, uint64(2), st.DerivedReads)
	assert.Equal(t, uint64(64), st.DerivedBytes)
}

// A read longer than one derivation may serve is keyed again part way:
// its label names the pool bytes of every derivation that went into it,
// and no stretch of output repeats.
func TestSecretReadLong(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1))...)
	full(t, p, 1024)
	out := make([]byte, 2*secretReseed+10)
	lb, err := p.ReadSecret(context.Background(), out)
	require.NoError(t, err)
	assert.Equal(t, 3*secretSeed, lb.Len())
	assert.Empty(t, newLedger(src).claim(lb.Spans), "three derivations, three distinct seeds")
	seen := map[string]int{}
	for i := 0; i+16 <= len(out); i += 16 {
		k := string(out[i : i+16])
		if j, ok := seen[k]; ok {
			t.Fatalf("output block at %d repeats the one at %d", i, j)
		}
		seen[k] = i
	}
	assert.NotEqual(t, make([]byte, 10), out[len(out)-10:])
}

// Reads served by one derivation carry its spans; once the stream has
// served secretReseed bytes, the next read is keyed from fresh pool bytes.
func TestSecretStreamReseeds(t *testing.T) {
	oneP(t)
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1))...)
	full(t, p, 1024)
	b := make([]byte, 32)
	first, err := p.ReadSecret(context.Background(), b)
	require.NoError(t, err)
	reads := secretReseed / 32
	for i := 1; i < reads; i++ {
		lb, err := p.ReadSecret(context.Background(), b)
		require.NoError(t, err)
		require.Equal(t, first.Spans, lb.Spans, "read %d of one derivation", i)
	}
	next, err := p.ReadSecret(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, secretSeed, next.Len())
	led := newLedger(src)
	require.Empty(t, led.claim(first.Spans))
	require.Empty(t, led.claim(next.Spans), "the second derivation took fresh pool bytes")
}

// The cipher: AES-256-CTR as ctrKeystream makes it reproduces the known
// answer of NIST SP 800-38A, F.5.5 (CTR-AES256.Encrypt), and wipe leaves no
// trace of the key schedule in the cipher objects.
func TestSecretCipherKnownAnswer(t *testing.T) {
	key := unhex(t, "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	iv := unhex(t, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
	plain := unhex(t, "6bc1bee22e409f96e93d7e117393172a"+"ae2d8a571e03ac9c9eb76fac45af8e51"+
		"30c81c46a35ce411e5fbc1191a0a52ef"+"f69f2445df4f9b17ad2b417be66c3710")
	want := unhex(t, "601ec313775789a5b7a7f504bbf3d228"+"f443e3ca4d62b59aca84e990cacaf5c5"+
		"2b0930daa23de94ce87017ba2d84988d"+"dfc9c58db67aada613c2dd08457941a6")
	// The keystream split at an odd place, as a batch splits into next key
	// and output.
	a, b := make([]byte, 23), make([]byte, 41)
	ctrKeystream(key, iv, a, b)
	got := append(a, b...)
	for i := range got {
		got[i] ^= plain[i]
	}
	require.Equal(t, want, got)
}

// wipe zeroes the key schedule behind an AES block and a CTR stream.
func TestSecretWipeErasesKeySchedule(t *testing.T) {
	if secretCgo() {
		t.Skip("BoringCrypto keeps the key schedule in C memory, out of wipe's reach (docs/secret.md)")
	}
	key := bytes.Repeat([]byte{0x5a}, 32)
	blk, err := aes.NewCipher(key)
	require.NoError(t, err)
	ctr := cipher.NewCTR(blk, make([]byte, 16))
	for _, v := range []any{blk, ctr} {
		mem := cipherMemory(t, v)
		require.NotEqual(t, make([]byte, len(mem)), mem, "%T holds its key schedule", v)
		wipe(v)
		require.Equal(t, make([]byte, len(mem)), mem, "%T wiped", v)
	}
}

// The derivation and the stream, on fixed inputs: pool bytes 00..1f and
// local bytes 20..3f. The expected values were computed apart from this
// code (HMAC-SHA-256 for HKDF, and an AES-256-CTR of another library).
func TestSecretDerivationVector(t *testing.T) {
	var ikm [2 * secretSeed]byte
	for i := range ikm {
		ikm[i] = byte(i)
	}
	k0 := secretDerive(&ikm)
	require.Equal(t, unhex(t, "bcd2d104f4165e36edf8c88533d34ca632c6c1100d91b45988aa2b70dcc7a262"), k0[:])

	st := &secretStream{key: k0}
	out := make([]byte, 64)
	st.batch(out)
	// Batch 0 = AES-256-CTR(K0, IV 0): K1 is its first 32 bytes, the output
	// the next 64; K0 is erased.
	require.Equal(t, unhex(t, "c63ca7b52954ae96363f251c1de41e2a987ff91ce6ca278430f7281b3a3cb35a"), st.key[:])
	require.Equal(t, unhex(t, "49f79addab1d0bdbebb7839bec39d1d3b039451aef3bebebd757b90ea84d7a42"+
		"69f5f12df4119a29ceef13972f359f904bbe42dd4f1758b52a2f966170ab0cf1"), out)
	out2 := make([]byte, 32)
	st.batch(out2)
	require.Equal(t, unhex(t, "901185ef97ed612b11ef90aa97c8a229a30a32579f8284c16075bd32ce88d901"), st.key[:])
	require.Equal(t, unhex(t, "b1514f35655ef7be159db7c741b7430745b814a8867a4b0e3b94264af01b93e3"), out2)
}

// Fast key erasure as the reader sees it: after a read, no key that made
// output already handed out is left in the generator, and the output handed
// out is zeroed in its buffer; Close erases the rest.
func TestSecretStreamErasesKeysAndOutput(t *testing.T) {
	oneP(t)
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1))...)
	full(t, p, 1024)
	out := make([]byte, 100)
	_, err := p.ReadSecret(context.Background(), out)
	require.NoError(t, err)
	st := p.secrets[0].Load()
	require.NotNil(t, st)
	k1 := st.key
	pos := int(st.state.Load() & secretPosMask)
	require.Equal(t, len(out), pos)
	// The key that made out is gone: the key held now does not make it.
	var next [secretKey]byte
	probe := make([]byte, secretBatch)
	k := k1
	secretKeystream(&k, &next, probe)
	assert.False(t, bytes.Contains(probe, out[:16]))
	assert.Equal(t, make([]byte, pos), st.buf[:pos], "output handed out is zeroed")
	assert.False(t, bytes.Contains(st.buf[:], out[:16]))
	require.NoError(t, p.Close())
	assert.Equal(t, make([]byte, secretKey), st.key[:])
	assert.Equal(t, make([]byte, secretBatch), st.buf[:])
	assert.Equal(t, uint64(secretClosed|secretBusy), st.state.Load())
}

// A secret read from a keyed stream allocates nothing; a batch costs the two
// cipher objects crypto/aes and crypto/cipher make for its key, and a reseed
// only its label's spans, so over many reads, of 32 bytes or of 4 KiB, the
// count is about two per batch.
func TestSecretReadAllocations(t *testing.T) {
	oneP(t)
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1), WithBufferSize(1<<16))...)
	full(t, p, 1024)
	b := make([]byte, 32)
	ctx := context.Background()
	_, err := p.ReadSecret(ctx, b)
	require.NoError(t, err)
	// Within one batch: none at all.
	within := (secretBatch - int(p.secrets[0].Load().state.Load()&secretPosMask)) / 32
	require.Greater(t, within, 50)
	allocs := testing.AllocsPerRun(50, func() { _, _ = p.ReadSecret(ctx, b) })
	require.Zero(t, allocs)
	// Across batches and reseeds.
	if raceEnabled {
		t.Skip("the race detector allocates by itself; go test without -race counts the reads' allocations")
	}
	for _, n := range []int{32, 4096} {
		b := make([]byte, n)
		var before, after runtime.MemStats
		reads := 3 * secretReseed / n
		runtime.ReadMemStats(&before)
		for range reads {
			if _, err := p.ReadSecret(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		allocs := after.Mallocs - before.Mallocs
		batches := uint64(reads*n/secretBatch + 1)
		reseeds := uint64(reads*n/secretReseed + 1)
		t.Logf("%d allocations over %d secret reads of %d bytes (%d batches)", allocs, reads, n, batches)
		// Two per batch (three with BoringCrypto's cipher objects); per
		// reseed, the spans taken from the pool and those of a read that
		// crosses it.
		perBatch := uint64(2)
		if secretCgo() {
			perBatch = 3
		}
		assert.LessOrEqual(t, allocs, perBatch*batches+2*reseeds, "reads of %d bytes", n)
	}
}

// hkdfSHA256, the derivation's HKDF, equals crypto/hkdf's on inputs of
// every length it takes (salt and ikm up to 64 bytes, info up to 63), and
// allocates nothing.
func TestHKDFMatchesCryptoHKDF(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	buf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	check := func(salt, ikm []byte, info string) {
		t.Helper()
		want, err := hkdf.Key(sha256.New, ikm, salt, info, 32)
		require.NoError(t, err)
		got := hkdfSHA256(salt, ikm, info)
		require.Equal(t, want, got[:], "salt %x ikm %x info %q", salt, ikm, info)
	}
	for _, n := range []int{0, 1, 31, 32, 33, 55, 56, 63, 64} {
		check(buf(n), buf(64), "x")
		check(buf(29), buf(n), secretInfo)
		check([]byte(secretSalt), buf(64), string(buf(min(n, 63))))
	}
	for range 5000 {
		check(buf(rng.IntN(65)), buf(rng.IntN(65)), string(buf(rng.IntN(64))))
	}
	var ikm [2 * secretSeed]byte
	copy(ikm[:], buf(len(ikm)))
	check([]byte(secretSalt), ikm[:], secretInfo)
	if !raceEnabled {
		assert.Zero(t, testing.AllocsPerRun(100, func() { _ = secretDerive(&ikm) }))
	}
	assert.Panics(t, func() { hkdfSHA256(buf(65), nil, "") })
	assert.Panics(t, func() { hkdfSHA256(nil, buf(65), "") })
	assert.Panics(t, func() { hkdfSHA256(nil, nil, string(buf(64))) })
}

// Contract points 2, 3 and 11 together: derived and raw reads from many
// goroutines never share a pool byte, and each read has one class.
func TestSecretReadsNeverReuseSpans(t *testing.T) {
	src := newScriptSource("quantropy")
	src.maxLen = 700
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(8192), WithFetchSize(700))...)
	led := newLedger(src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runReaders(6, 200, func(g, i int) bool {
		b := make([]byte, 16+i%64)
		var lb Label
		var err error
		var msg string
		if (g+i)%2 == 0 {
			lb, err = p.ReadSecret(ctx, b)
			if err == nil {
				if !lb.Derived || lb.Verifiable {
					msg = "secret read not labelled derived"
				} else {
					msg, _ = led.claimDerived(lb.Spans)
				}
			}
		} else {
			lb, err = p.ReadLabelled(ctx, b)
			if err == nil {
				if lb.Derived {
					msg = "raw read labelled derived"
				} else {
					msg = led.check(b, lb)
				}
			}
		}
		if err != nil {
			msg = err.Error()
		}
		if msg != "" {
			t.Error(msg)
			return false
		}
		return true
	})
}

// Derived reads of every size from many goroutines, with Stats read
// beside them: no two reads share output, Stats never goes back, and once
// the reads end it counts each read and byte once (the fast path counts in
// the state word, a new batch moves the counts to the totals while Stats
// may be adding them up).
func TestSecretCountsAndOutputUnderConcurrency(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1<<16))...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sizes := []int{1, 7, 32, 33, 100, 4096, secretBatch, secretBatch + 1, secretReseed + 5}
	var mu sync.Mutex
	seen := map[[16]byte]bool{}
	var reads, total uint64
	stop := make(chan struct{})
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		var last Stats
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := p.Stats()
			if st.DerivedReads < last.DerivedReads || st.DerivedBytes < last.DerivedBytes {
				t.Errorf("Stats went back: %d reads %d bytes after %d and %d", st.DerivedReads, st.DerivedBytes, last.DerivedReads, last.DerivedBytes)
				return
			}
			last = st
			runtime.Gosched()
		}
	}()
	runReaders(4, 300, func(g, i int) bool {
		n := sizes[(g*7+i)%len(sizes)]
		if n > secretBatch && i%5 != 0 {
			n = 32 // the large reads are few: they take pool bytes each
		}
		b := make([]byte, n)
		lb, err := p.ReadSecret(ctx, b)
		if err != nil || !lb.Derived {
			t.Errorf("read %d of goroutine %d: %v, derived %v", i, g, err, lb.Derived)
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		reads++
		total += uint64(n)
		for j := 0; j+16 <= n; j += 16 {
			k := [16]byte(b[j : j+16])
			if seen[k] {
				t.Errorf("read %d of goroutine %d repeats output", i, g)
				return false
			}
			seen[k] = true
		}
		return true
	})
	close(stop)
	<-statsDone
	st := p.Stats()
	assert.Equal(t, reads, st.DerivedReads)
	assert.Equal(t, total, st.DerivedBytes)
	require.NoError(t, p.Close())
	st = p.Stats()
	assert.Equal(t, reads, st.DerivedReads, "after Close")
	assert.Equal(t, total, st.DerivedBytes, "after Close")
}

// Every pool byte a source brought in is accounted for in Stats once no
// block is on its way into the pool: served raw, keyed a derivation, still pooled, or
// discarded. Derived reads serve derivations' output (DerivedBytes), so
// the pool bytes they take are DerivationBytes: 32 for each derivation,
// whose pool bytes the reads' labels name (no two derivations take the
// same pool bytes).
func TestSecretReadsAccountForThePoolBytesTheyKey(t *testing.T) {
	const capacity = 1 << 16
	p := newTestProvider(t, newScriptSource("quantropy"), fast(WithBufferSize(capacity), WithFetchSize(4096))...)
	full(t, p, capacity)
	ctx := context.Background()
	derivations := map[Span]bool{}
	var derived, raw uint64
	for i, n := range []int{32, 32, 1000, secretBatch + 1, 32, 3 * secretReseed / 2, 7, secretReseed, 32} {
		b := make([]byte, n)
		lb, err := p.ReadSecret(ctx, b)
		require.NoError(t, err, "read %d", i)
		require.True(t, lb.Derived, "read %d", i)
		require.NotEmpty(t, lb.Spans, "read %d", i)
		for _, sp := range lb.Spans {
			require.NotEqual(t, FallbackSource, sp.Source, "read %d: the pool was full", i)
			derivations[sp] = true
		}
		derived += uint64(n)
		_, err = p.Read(make([]byte, 32))
		require.NoError(t, err)
		raw += 32
	}
	balanced := func() bool {
		st := p.Stats()
		var accepted uint64
		for _, s := range st.Sources {
			accepted += s.BytesAccepted
		}
		return accepted == st.VerifiableBytes+st.DerivationBytes+uint64(st.Pooled)+st.EventBytesDiscarded+st.ProvenBytesDiscarded
	}
	require.Eventually(t, balanced, 10*time.Second, time.Millisecond, "accepted bytes unaccounted for: %+v", p.Stats())
	st := p.Stats()
	assert.Equal(t, raw, st.VerifiableBytes)
	assert.Equal(t, derived, st.DerivedBytes)
	var keyed uint64
	for sp := range derivations {
		keyed += uint64(sp.Length)
	}
	assert.Equal(t, keyed, st.DerivationBytes, "the pool bytes the labels name")
	assert.Zero(t, st.DerivationBytes%secretSeed)
	assert.GreaterOrEqual(t, st.DerivationBytes, uint64(5*secretSeed), "the reads past a batch key derivations of their own, one per 64 KiB")
}

// Stats' count of derived reads, read in a tight loop beside a reader
// whose generator moves a batch's counts to its totals every 256 reads,
// never counts a read twice nor goes back: it is at most the reads done
// (plus the one in flight), and never less than before.
func TestSecretCountsNeverCountABatchTwice(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1<<16))...)
	full(t, p, 1<<12)
	var done atomic.Uint64
	stop := make(chan struct{})
	checked := make(chan int)
	go func() {
		n, last := 0, uint64(0)
		defer func() { checked <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			reads, bytes := p.secretCounts()
			if max := done.Load() + 1; reads > max || bytes > 32*max || reads < last {
				t.Errorf("counted %d reads (%d bytes) with %d done, %d counted before", reads, bytes, max-1, last)
				return
			}
			last = reads
			n++
		}
	}()
	b := make([]byte, 32)
	ctx := context.Background()
	for range 1 << 19 {
		if _, err := p.ReadSecret(ctx, b); err != nil {
			t.Error(err)
			break
		}
		done.Add(1)
	}
	close(stop)
	t.Logf("%d counts checked", <-checked)
	reads, bytes := p.secretCounts()
	assert.Equal(t, done.Load(), reads)
	assert.Equal(t, 32*done.Load(), bytes)
}

// Close racing derived reads: every read that succeeds returns whole output
// (never a buffer Close erased under it, which would hold zero words), the
// reads after Close fail with ErrClosed, and every generator is closed with
// its key and buffer erased.
func TestSecretCloseDuringReads(t *testing.T) {
	for round := range 20 {
		src := newScriptSource("quantropy")
		p := newTestProvider(t, src, fast(WithBufferSize(1<<14))...)
		full(t, p, 1<<13)
		var served, closed atomic.Int64
		wait := goReaders(4, 0, nil, func(g, i int) bool {
			b := make([]byte, 32+8*(i%3))
			lb, err := p.ReadSecret(context.Background(), b)
			if errors.Is(err, ErrClosed) {
				closed.Add(1)
				return false
			}
			if err != nil || !lb.Derived {
				t.Errorf("round %d: %v, derived %v", round, err, lb.Derived)
				return false
			}
			for j := 0; j+8 <= len(b); j += 8 {
				if [8]byte(b[j:j+8]) == [8]byte{} {
					t.Errorf("round %d: a derived read returned a zero word", round)
					return false
				}
			}
			served.Add(1)
			return true
		})
		require.Eventually(t, func() bool { return served.Load() >= int64(50+round*20) }, 10*time.Second, 50*time.Microsecond)
		require.NoError(t, p.Close())
		require.True(t, waitWithin(wait, 10*time.Second))
		assert.Equal(t, int64(4), closed.Load(), "round %d: each reader ends on ErrClosed", round)
		for i := range p.secrets {
			if st := p.secrets[i].Load(); st != nil {
				assert.Equal(t, uint64(secretClosed|secretBusy), st.state.Load())
				assert.Equal(t, make([]byte, secretKey), st.key[:])
				assert.Equal(t, make([]byte, secretBatch), st.buf[:], "round %d: generator %d", round, i)
			}
		}
		assert.Equal(t, uint64(served.Load()), p.Stats().DerivedReads, "round %d", round)
	}
}

// A P that New did not count (GOMAXPROCS raised after it) reads from the
// last generator, which such Ps share under a mutex: its reads are served,
// counted and never share output with the first P's.
func TestSecretReadsOnAPNewDidNotCount(t *testing.T) {
	if secretCgo() {
		t.Skip("with BoringCrypto no P owns a generator: all share the last")
	}
	oneP(t)
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithPolicy(Defer))...)
	require.Len(t, p.secrets, 2)
	runtime.GOMAXPROCS(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[[16]byte]bool{}
	var reads atomic.Uint64
	stop := make(chan struct{})
	wait := goReaders(4, 0, stop, func(g, i int) bool {
		b := make([]byte, 48)
		if _, err := p.ReadSecret(ctx, b); err != nil {
			t.Error(err)
			return false
		}
		reads.Add(1)
		mu.Lock()
		defer mu.Unlock()
		for j := 0; j < len(b); j += 16 {
			k := [16]byte(b[j : j+16])
			if seen[k] {
				t.Error("output repeats")
				return false
			}
			seen[k] = true
		}
		return true
	})
	// Until a read has run on each P, and then some.
	require.Eventually(t, func() bool {
		return p.secrets[0].Load() != nil && p.secrets[1].Load() != nil && reads.Load() > 4000
	}, 20*time.Second, time.Millisecond)
	close(stop)
	wait()
	st := p.Stats()
	assert.Equal(t, reads.Load(), st.DerivedReads)
	assert.Equal(t, 48*reads.Load(), st.DerivedBytes)
}

// Under each policy with the source down, a secret read follows the policy:
// Degrade gives crypto/rand alone labelled as a fallback (never derived),
// Fail an error, Defer the context's error.
func TestSecretReadPolicies(t *testing.T) {
	for _, pol := range []Policy{Degrade, Fail, Defer} {
		t.Run(pol.String(), func(t *testing.T) {
			src := newScriptSource("quantropy")
			src.set(&step{err: &APIError{StatusCode: 503}})
			p := newTestProvider(t, src, fast(WithPolicy(pol), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
			require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			out := make([]byte, 32)
			lb, err := p.ReadSecret(ctx, out)
			switch pol {
			case Degrade:
				require.NoError(t, err)
				assert.Equal(t, ProvenanceFallback, lb.Provenance())
				assert.Equal(t, []Span{{Source: FallbackSource, Length: 32}}, lb.Spans)
				assert.ErrorIs(t, lb.Reason, httpStatus(503))
				assert.NotEqual(t, make([]byte, 32), out)
			case Fail:
				assert.ErrorIs(t, err, ErrUnavailable)
				assert.Equal(t, make([]byte, 32), out)
			case Defer:
				assert.ErrorIs(t, err, context.DeadlineExceeded)
			}
		})
	}
}

// Under Degrade with the pool empty, a stream keyed before keeps serving
// its derivation, labelled derived with the spans that keyed it; once the
// derivation is spent, the reads fall back, labelled with the reason.
func TestSecretStreamOutlivesAnEmptyPool(t *testing.T) {
	oneP(t)
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1), WithBufferSize(4096), WithFetchSize(4096), WithBreaker(gobreaker.Settings{Timeout: time.Hour}))...)
	full(t, p, 4096)
	ctx := context.Background()
	b := make([]byte, 32)
	first, err := p.ReadSecret(ctx, b)
	require.NoError(t, err)
	require.Equal(t, ProvenanceDerived, first.Provenance())
	src.set(&step{err: &APIError{StatusCode: 503}})
	for i := 0; p.Stats().Pooled > 0 && i < 1<<16; i++ {
		_, _ = p.Read(b[:1])
	}
	require.Zero(t, p.Stats().Pooled)
	require.Eventually(t, func() bool { return p.Stats().Sources[0].Breaker == "open" }, 5*time.Second, time.Millisecond)
	for i := 1; i < secretReseed/len(b); i++ {
		lb, err := p.ReadSecret(ctx, b)
		require.NoError(t, err)
		require.Equal(t, ProvenanceDerived, lb.Provenance(), "read %d of the derivation", i)
		require.Equal(t, first.Spans, lb.Spans)
	}
	lb, err := p.ReadSecret(ctx, b)
	require.NoError(t, err)
	assert.Equal(t, ProvenanceFallback, lb.Provenance())
	assert.Equal(t, []Span{{Source: FallbackSource, Length: len(b)}}, lb.Spans)
	assert.ErrorIs(t, lb.Reason, ErrUnavailable)
}

// SecretReader and WithDerivedReads make key generation secret-safe.
func TestSecretReaderForKeys(t *testing.T) {
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithPolicy(Defer))...)
	pub, priv, err := ed25519.GenerateKey(p.SecretReader())
	require.NoError(t, err)
	sig := ed25519.Sign(priv, []byte("m"))
	assert.True(t, ed25519.Verify(pub, []byte("m"), sig))
	assert.Equal(t, uint64(1), p.Stats().DerivedReads)

	q := newTestProvider(t, newScriptSource("q2"), fast(WithPolicy(Defer), WithDerivedReads())...)
	b := make([]byte, 48)
	n, err := q.Read(b)
	require.NoError(t, err)
	assert.Equal(t, 48, n)
	assert.Equal(t, uint64(1), q.Stats().DerivedReads)
	assert.Zero(t, q.Stats().VerifiableReads)
}

// A derived read's label shares its spans with the generator (every read
// of a derivation carries the same slice). Handing that label to
// ReadLabelledInto, whose contract is to reuse lb.Spans' array, must not
// write a raw read's span into it: the next derived reads would name pool
// bytes that a raw read was served, not the ones that keyed them.
func TestSecretLabelSpansSurviveReadLabelledInto(t *testing.T) {
	oneP(t)
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithShards(1))...)
	full(t, p, 1024)
	ctx := context.Background()
	lb, err := p.ReadSecret(ctx, make([]byte, 32))
	require.NoError(t, err)
	keyed := slices.Clone(lb.Spans)
	require.NoError(t, p.ReadLabelledInto(ctx, make([]byte, 16), &lb))
	require.True(t, lb.Verifiable)
	next, err := p.ReadSecret(ctx, make([]byte, 32))
	require.NoError(t, err)
	assert.Equal(t, keyed, next.Spans, "the derived read names the raw read's span %+v", lb.Spans)
}

// With Go+BoringCrypto (GOEXPERIMENT=boringcrypto), crypto/aes and
// crypto/cipher call into C: a cgo call gives up the P, and one made by a
// goroutine pinned to its P lets another goroutine run there, and throws
// ("stopm holding locks") when the call returns to no free P. No batch may
// then be made by a P's owner: derived reads use the generator shared under
// the mutex, and under load, many reads, each making a batch, end well.
// Build with GOEXPERIMENT=boringcrypto to run it.
func TestSecretBatchesUnderBoringCryptoAreNotPinned(t *testing.T) {
	blk, err := aes.NewCipher(make([]byte, secretKey))
	require.NoError(t, err)
	if reflect.TypeOf(blk).String() != "*boring.aesCipher" {
		t.Skip("crypto/aes is not BoringCrypto's: build with GOEXPERIMENT=boringcrypto")
	}
	if !inChild(t) {
		src := newScriptSource("quantropy")
		p := newTestProvider(t, src, fast(WithPolicy(Defer))...)
		_, err := p.ReadSecret(context.Background(), make([]byte, 32))
		require.NoError(t, err)
		for i := range len(p.secrets) - 1 {
			assert.Nil(t, p.secrets[i].Load(), "P %d owns a generator: its batches are made pinned", i)
		}
		out, err := runInChild(t)
		require.NoError(t, err, "derived reads under load:\n%s", out)
		return
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	src := newScriptSource("quantropy")
	p := newTestProvider(t, src, fast(WithPolicy(Defer), WithBufferSize(1<<16))...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	spin := goReaders(2, 0, stop, func(int, int) bool { return true }) // keep the P wanted
	deadline := time.Now().Add(3 * time.Second)
	runReaders(4, 0, func(g, i int) bool {
		if _, err := p.ReadSecret(ctx, make([]byte, secretBatch)); err != nil {
			t.Error(err)
			return false
		}
		return time.Now().Before(deadline)
	})
	close(stop)
	spin()
}

// oneP runs the rest of the test with GOMAXPROCS 1, so that every derived
// read of it uses one generator, the first P's.
func oneP(t *testing.T) {
	t.Cleanup(func(n int) func() { return func() { runtime.GOMAXPROCS(n) } }(runtime.GOMAXPROCS(1)))
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// cipherMemory returns the memory behind a cipher object, as wipe sees it.
func cipherMemory(t *testing.T, v any) []byte {
	t.Helper()
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Struct && rv.NumField() == 1 {
		rv = rv.Field(0)
	}
	require.Equal(t, reflect.Pointer, rv.Kind())
	require.True(t, pointerFree(rv.Type().Elem()), "%T", v)
	return unsafe.Slice((*byte)(rv.UnsafePointer()), rv.Type().Elem().Size())
}
