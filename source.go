package entropy

import (
	"context"
	"time"
)

// Source is one remote service of verifiable entropy: a quantum RNG API spoken
// through package httpsource, the drand beacon through package drandsource, or
// an in-memory source in tests and benchmarks.
//
// A [Provider] calls Fetch from its refill goroutine, and from
// [Provider.ReadProven] and event draws on their callers' goroutines, possibly
// at the same time: Fetch must be safe for concurrent use, and may block on
// the network. It never runs on a read from the pool. It must honour ctx: the
// Provider cancels it when it is closed.
type Source interface {
	// Fetch returns one block of fresh entropy: at most n bytes, possibly fewer
	// (a beacon round holds 32 bytes).
	//
	// The [Provider] copies Data and never writes to it, so a source may keep the
	// block (an audit trail, a test's record of what it handed out). Every call
	// must return fresh entropy under a job ID of its own.
	//
	// A refill never asks for fewer bytes than the health tests need to
	// judge a block (28 with [health.DefaultConfig]), however small the pool
	// or fetch size, and serves what a read does not take to later reads.
	// [Provider.ReadProven] asks for the read's own size (at least 512 bytes
	// from a source of the reference protocol).
	//
	// The Provider refuses, as a source failure, a block that is empty,
	// too short for the health tests to judge (shorter than the repetition
	// count test's cutoff: 7 bytes with [health.DefaultConfig]), longer than n, not Verifiable, without a Source name or a JobID, a
	// (Source, JobID) it has taken before, or that fails the SP 800-90B
	// health tests (a run of 7 equal bytes, or a byte value far too common:
	// see [health.Config]). A test source should fill Data from a real
	// generator, not with zeros or a pattern.
	Fetch(ctx context.Context, n int) (Block, error)
}

// Block is what a [Source] returns: entropy plus what makes it verifiable.
type Block struct {
	Data       []byte    // the entropy
	Source     string    // service name, e.g. "quantropy", "drand/quicknet"
	JobID      string    // the service's job or round ID for Data
	Verifiable bool      // the source checked a proof for Data
	Proof      []byte    // signature or proof, if any
	Time       time.Time // when the service produced Data, as it says
	// Public says Data is published to everyone (a drand round): fit for
	// draws, never for keys. The spans of such bytes carry Public too.
	Public bool
	// Evidence is what lets a third party check Data offline (see [Proof]):
	// the signed request binding of a reference-protocol job, a drand
	// round's signatures. Its Data is left nil: the bytes are Data above.
	// Nil for a source that has none.
	Evidence *Proof
}

// SourceFunc adapts an ordinary function to the [Source] interface.
type SourceFunc func(ctx context.Context, n int) (Block, error)

// Fetch calls f(ctx, n).
func (f SourceFunc) Fetch(ctx context.Context, n int) (Block, error) { return f(ctx, n) }
