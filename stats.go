package entropy

import (
	"time"
)

// Stats is a snapshot of a [Provider]'s counters.
type Stats struct {
	Policy   Policy
	Pooled   int // checked bytes in the pool now
	Capacity int // bytes the pool holds when full

	VerifiableReads, VerifiableBytes uint64 // raw verifiable reads served
	DerivedReads, DerivedBytes       uint64 // secret-safe reads served (ReadSecret)
	FallbackReads, FallbackBytes     uint64 // crypto/rand reads served
	FallbackEpisodes                 uint64 // episodes started
	InFallback                       bool   // an episode is open now

	// JournalErrors counts failed attempts to write a block or fallback
	// record to the journal. A record that failed is retried, in order,
	// with backoff until it is written; JournalLost counts the records
	// still unwritten when [Provider.Close] gave up on the journal (a few seconds
	// after it was called), each also logged. Neither is ever dropped
	// silently.
	JournalErrors uint64
	JournalLost   uint64

	// EventBytesDiscarded counts verifiable bytes that [Provider.ReadFor] took for
	// an event (from the pool, or the event's own job) and zeroed without
	// handing them out: another
	// [Provider] sharing the journal (another replica) recorded the event
	// first, and its recorded bytes were returned instead; or the journal
	// failed to record the draw, or the job fetched for the event did not
	// carry the nonce it was asked with, and ReadFor returned an error.
	EventBytesDiscarded uint64

	// ProvenBytesDiscarded counts the bytes of jobs fetched for one read
	// ([Provider.ReadProven], or the job of its own that an event draw takes
	// from a source of the reference protocol) beyond the read's length, which are never served
	// nor pooled: a job of the reference protocol has at least 512 bytes,
	// so that the health tests can judge it, and a read of 32 leaves 480.
	// They are counted in the source's BytesAccepted with the rest of the
	// job, and only the read's [Proof] carries them (it is published with
	// the draw, so they are no secret).
	ProvenBytesDiscarded uint64

	// DerivationBytes counts the pool bytes that keyed derived reads
	// ([Provider.ReadSecret], [Provider.SecretReader], and Read with
	// [WithDerivedReads]): 32 per derivation. DerivedBytes counts what
	// those reads served, which is output of the derivations, not pool
	// bytes. So, before Close (which zeroes the pool), while no block is on
	// its way into the pool and no read is in progress (a Defer read that
	// waits holds the pool bytes it has gathered until it is served or
	// gives up), every byte the sources' blocks brought
	// in (BytesAccepted) was served (VerifiableBytes), keyed a derivation
	// (DerivationBytes), is in the pool (Pooled) or was discarded
	// (EventBytesDiscarded, ProvenBytesDiscarded, AbandonedBytes).
	DerivationBytes uint64

	// AbandonedBytes counts the pool bytes that reads waiting under [Defer]
	// (a Read, a derived read or an event drawn from the pool) had gathered
	// when they gave up, before they were whole: their context ended, the
	// [Provider] closed, or (event draws) every source failed permanently.
	// The bytes were zeroed and never served.
	AbandonedBytes uint64

	// Unavailable is the error a read would carry now if the pool could not
	// serve it: it wraps [ErrUnavailable] and either [ErrPoolEmpty] (the sources
	// are healthy as far as the [Provider] knows) or the sources' last errors.
	Unavailable error

	// Permanent is set when the last refill round failed permanently on
	// every source (401, 402, 403, a signature that never verifies with the
	// configured key): a misconfiguration, not an outage, which no retry
	// will cure. It wraps [ErrUnavailable], [ErrPermanent] and the sources'
	// errors, as Unavailable (and the Reason of fallback reads) then does.
	// nil once a block or job arrives again, or a later refill round fails
	// with an error that is not permanent.
	Permanent error

	Sources []SourceStats // in priority order

	// Fleet is the state of the fleet coordination ([WithFleet]): shared or
	// local, and how many coordination operations failed. Nil without a
	// fleet.
	Fleet *FleetStatus
}

// SourceStats are the counters of one source's refill path.
type SourceStats struct {
	Name           string // from its blocks; "source N" before the first
	Breaker        string // "closed", "half-open" or "open"
	Requests       uint64 // requests sent (Fetch calls), retries included
	Failures       uint64 // requests that failed, rejected blocks included
	Retries        uint64
	BlocksAccepted uint64
	BlocksRejected uint64 // failed a check: empty, too short or too long, unverified, a bad or taken name or job ID, a job the journal refused or could not claim, health test
	BytesAccepted  uint64
	LastError      error     // the last failure; nil after a request with no failed item
	HoldUntil      time.Time // Retry-After: no request before this (zero if the source never sent one; a past time once the hold has ended)
	// BatchItemsFailed counts the failed items of batches (see [WithBatch]) that
	// served other blocks: each is also one of Failures.
	BatchItemsFailed uint64
	// Quota is what the service last said is left of its quota, for a
	// source that reads it (one with a Quota() (Quota, bool) method, as package
	// httpsource's); Quota.Known() is false
	// otherwise.
	Quota Quota
}

// Stats returns a snapshot of the [Provider]'s counters. It takes every
// shard's lock briefly; do not call it on a hot path.
func (p *Provider) Stats() Stats {
	st := Stats{
		Policy:               p.cfg.policy,
		Capacity:             p.cfg.bufferSize,
		FallbackEpisodes:     p.episodes.count.Load(),
		InFallback:           p.episodes.open.Load(),
		JournalErrors:        p.journalErrs.Load(),
		JournalLost:          p.journalLost.Load(),
		EventBytesDiscarded:  p.eventDiscarded.Load(),
		ProvenBytesDiscarded: p.provenDiscarded.Load(),
		DerivationBytes:      p.derivationBytes.Load(),
		AbandonedBytes:       p.abandoned.Load(),
		Unavailable:          p.reason.Load(),
		Fleet:                p.fleetStatus(),
	}
	if perm := p.permanent.Load(); perm != nil {
		st.Permanent = perm
	}
	st.FallbackReads, st.FallbackBytes = p.fallbackCounts()
	for _, s := range p.shards {
		s.mu.Lock()
		st.Pooled += s.avail()
		st.VerifiableReads += s.reads
		st.VerifiableBytes += s.bytes
		if r := s.head.Load(); r != nil {
			w := r.word.Load()
			st.VerifiableReads += w >> 32
			st.VerifiableBytes += w&posMask - uint64(r.start)
		}
		s.mu.Unlock()
	}
	st.VerifiableReads += p.slowReads.Load()
	st.VerifiableBytes += p.slowBytes.Load()
	for _, f := range p.feeders {
		ss := SourceStats{
			Name:           f.sourceName(),
			Breaker:        f.cb.State().String(),
			Requests:       f.requests.Load(),
			Failures:       f.failures.Load(),
			Retries:        f.retries.Load(),
			BlocksAccepted: f.accepted.Load(),
			BlocksRejected: f.rejected.Load(),
			BytesAccepted:  f.fetched.Load(),
			LastError:      f.lastError(),
			Quota:          f.quota.get(),

			BatchItemsFailed: f.batchItemsFailed.Load(),
		}
		if h := f.holdUntil.Load(); h != 0 {
			ss.HoldUntil = time.Unix(0, h)
		}
		st.Sources = append(st.Sources, ss)
	}
	st.DerivedReads, st.DerivedBytes = p.secretCounts()
	return st
}
