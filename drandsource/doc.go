// Package drandsource is an entropy.Source over the drand randomness beacon of
// the League of Entropy: public BLS12-381 threshold signatures, one per round,
// fetched from public HTTP relays and verified here before use.
//
// # Beacon randomness is public
//
// Every drand round is published to the whole world: anyone can fetch it, and
// everyone gets the same 32 bytes. That is what makes it fit for draws,
// lotteries and raffles (anyone can check afterwards that the result came from
// round R, which nobody could know in advance), and what makes it unfit for
// keys, tokens, nonces or any other secret. Never use a drand Block, or bytes a
// Provider serves from it as verifiable, as a secret: use
// entropy.Provider.ReadSecret, which mixes pool bytes with local randomness.
//
// A label span of a drand Source reads, for example, {Source:
// "drand/quicknet", JobID: "123", Offset: 0, Length: 32}: "verifiable" there
// means that anyone can check the bytes against round 123, and, for a
// beacon, that anyone can read them too.
//
// # What is checked
//
// The chain is pinned by its chain hash ([ChainInfo.ComputeHash]); each relay's
// /{chainhash}/info answer is recomputed and compared with the pin before any
// beacon of that relay is used. Every beacon is checked with [Verify] (a
// BLS12-381 pairing check through github.com/cloudflare/circl) against the
// pinned public key and the round that was asked for, and its randomness is
// recomputed as SHA-256 of the signature. A bad signature, a wrong round, a
// wrong chain or an unknown scheme is a source failure: its bytes are never
// returned.
//
// # Rounds and timing
//
// Round 1 is due at the chain's genesis time and round r at genesis +
// (r-1)·period ([ChainInfo.RoundTime], [ChainInfo.RoundAt]). A [Source] never
// returns the same round twice: each Fetch asks for a round after the last one
// it served (the current round, or the next one, waiting until it is due),
// never for "latest" again. A draw commits in advance to a round it cannot
// know yet, typically [ChainInfo.FirstRoundAfter] a published time, and reads
// it with [Source.FetchRound], which waits until the round is due.
package drandsource
