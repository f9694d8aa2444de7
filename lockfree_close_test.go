package entropy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockFreeCloseRace: Close while readers are on every path — fast
// claims on a full pool (source up), slow paths on a tiny pool, the
// fallback lanes and direct fallback reads (Degrade, source down), Defer
// waiters and ReadFor draws waiting for bytes that do not come (source
// down). No read panics or hangs, none is left running (goleak), every
// successful one is checked (labels against the jobs, unlabelled bytes
// located, nothing twice), every failed one says ErrClosed (or, a Defer
// read with a deadline, its context's error) and leaves b
// zero, the counters equal the callers' successes, and afterwards every run
// and lane seen is zero and the shards hold nothing.
func TestLockFreeCloseRace(t *testing.T) {
	for _, pol := range []Policy{Degrade, Defer, Fail} {
		for _, down := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-down%v", pol, down), func(t *testing.T) {
				for round := 0; round < 12; round++ {
					lfCloseRound(t, pol, down, round)
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

func lfCloseRound(t *testing.T, pol Policy, down bool, round int) {
	src := newScriptSource(fmt.Sprintf("close-%s-%v-%d", pol, down, round))
	src.maxLen = 200
	shards := 1 + round%4
	buffer := []int{256, 1024, 4096}[round%3]
	p, err := New(src, fast(WithPolicy(pol), WithShards(shards), WithBufferSize(buffer), WithFetchSize(200))...)
	require.NoError(t, err)
	full(t, p, buffer/2)
	if down {
		src.set(&step{err: &APIError{StatusCode: 503}})
	}
	led := newLedger(src)
	var smp lfSampler
	var unlMu sync.Mutex
	var unl [][]byte
	var okReads, okDerived atomic.Uint64
	sizes := []int{1, 7, 33, 300, 511, 512, 2000, 5000}
	wait := goReaders(8, 0, nil, func(g, i int) bool {
		n := sizes[(i*3+g)%len(sizes)]
		b := make([]byte, n)
		var err error
		switch (i + g) % 4 {
		case 0:
			_, err = p.Read(b)
			if err == nil {
				okReads.Add(1)
				unlMu.Lock()
				unl = append(unl, b)
				unlMu.Unlock()
			}
		case 1:
			// With a deadline: a Defer wait may end before Close does.
			var lb Label
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			lb, err = p.ReadLabelled(ctx, b)
			cancel()
			if err == nil {
				okReads.Add(1)
				if msg := led.check(b, lb); msg != "" {
					t.Errorf("round %d: ReadLabelled of %d: %s", round, n, msg)
					return false
				}
			}
		case 2:
			var lb Label
			lb, err = p.ReadSecret(context.Background(), b)
			if err == nil {
				if lb.Derived {
					okDerived.Add(1)
					if msg, _ := led.claimDerived(lb.Spans); msg != "" {
						t.Errorf("round %d: ReadSecret: %s", round, msg)
						return false
					}
				} else {
					okReads.Add(1)
					if msg := led.check(b, lb); msg != "" {
						t.Errorf("round %d: ReadSecret fallback: %s", round, msg)
						return false
					}
				}
			}
		case 3:
			var lb Label
			lb, err = p.ReadFor(context.Background(), fmt.Sprintf("close-%d-%d", g, i), b)
			if err == nil {
				okReads.Add(1)
				if msg := led.check(b, lb); msg != "" || !lb.Verifiable {
					t.Errorf("round %d: ReadFor: %s %+v", round, msg, lb)
					return false
				}
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrClosed):
			if !bytesZero(b) {
				t.Errorf("round %d: a read that failed with ErrClosed left bytes in b", round)
			}
			return false
		case pol == Fail && errors.Is(err, ErrUnavailable):
			if !bytesZero(b) {
				t.Errorf("round %d: a failed read left bytes in b", round)
			}
		case pol == Defer && errors.Is(err, context.DeadlineExceeded):
			if !bytesZero(b) {
				t.Errorf("round %d: a read whose context ended left bytes in b", round)
			}
		default:
			t.Errorf("round %d: unexpected error %v", round, err)
			return false
		}
		return true
	})
	for i := 0; i < round%5; i++ {
		smp.sample(p)
		time.Sleep(300 * time.Microsecond)
	}
	smp.sample(p)
	closeErr := make(chan error, 1)
	go func() { closeErr <- p.Close() }()
	for i := 0; i < 3; i++ {
		smp.sample(p) // while Close runs
	}
	select {
	case err := <-closeErr:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("round %d: Close did not return", round)
	}
	if !waitWithin(wait, 10*time.Second) {
		t.Fatalf("round %d: readers still running after Close", round)
	}
	dirty, total := smp.dirty()
	assert.Zero(t, dirty, "round %d: %d of %d runs and lanes seen hold bytes after Close", round, dirty, total)
	for i, s := range p.shards {
		s.mu.Lock()
		assert.Nil(t, s.head.Load(), "shard %d head", i)
		assert.Zero(t, s.queued, "shard %d queued", i)
		assert.Empty(t, s.runs, "shard %d runs", i)
		assert.True(t, s.closed)
		s.mu.Unlock()
		assert.Nil(t, s.fb.Load(), "shard %d lane", i)
	}
	st := p.Stats()
	assert.Zero(t, st.Pooled)
	assert.Equal(t, okReads.Load(), st.VerifiableReads+st.FallbackReads, "round %d: reads counted", round)
	assert.Equal(t, okDerived.Load(), st.DerivedReads, "round %d: derived reads counted", round)
	if pol != Degrade {
		assert.Zero(t, st.FallbackReads)
	}
	idx := newLFIndex(src)
	for _, b := range unl {
		spans, _, fb, err := idx.locate(src.name, b)
		require.NoError(t, err, "round %d", round)
		if pol != Degrade {
			assert.False(t, fb, "round %d: a %s Read served non-job bytes", round, pol)
		}
		led.mu.Lock()
		for _, sp := range spans {
			if msg := led.take(sp, nil); msg != "" {
				t.Errorf("round %d: an unlabelled read: %s", round, msg)
			}
		}
		led.mu.Unlock()
	}
	// Reads after Close: ErrClosed on every entry point.
	_, err = p.Read(make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadLabelled(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadSecret(context.Background(), make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.ReadFor(context.Background(), "after", make([]byte, 8))
	assert.ErrorIs(t, err, ErrClosed)
}
