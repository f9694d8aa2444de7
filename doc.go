// Package entropy serves random bytes from a remote verifiable entropy service
// (a quantum RNG API, the drand beacon) through a plain [io.Reader], keeps
// working when that service fails, and says of every byte where it came from.
//
// A [Provider] keeps a pool of checked bytes in memory and refills it in the
// background. Reads from the pool copy out of memory and never do I/O
// ([Provider.ReadProven] and event draws fetch a job of their own); each byte is handed
// out once and its pool slot zeroed. [Provider.ReadLabelled] returns, with
// the bytes, a [Label]: verifiable, with the spans of the jobs the bytes came
// from, or fallback ([crypto/rand]), with the reason. What happens when the
// pool cannot serve a read is the Provider's [Policy]: [Degrade], [Defer] or
// [Fail].
//
// Which entry point to use:
//
//   - Keys, tokens, nonces: [Provider.ReadSecret] or [Provider.SecretReader].
//     Raw verifiable bytes are known to the service that made them (and a
//     drand round to the whole world); a derived read keys a
//     fast-key-erasure generator with them and local randomness through HKDF
//     (docs/secret.md), so that nobody else can compute the output.
//   - Draws, lotteries, anything to prove afterwards: [Provider.ReadLabelled]
//     (or [Provider.ReadLabelledInto], which reuses the caller's [Label]
//     and so allocates nothing), or
//     [Provider.ReadFor] for a named event that must be drawn exactly once,
//     or package [github.com/provenrand/entropy/draw] on top of them.
//   - [Provider.Read], the [io.Reader], serves raw verifiable bytes (or
//     fallback under [Degrade]) and is as cheap as a copy. It stays raw by
//     default because its bytes are the ones the labels describe; give
//     [WithDerivedReads] to make it secret-safe when the Provider is handed
//     to key-making code.
//
// The contract the Provider keeps is written down in README.md ("The
// contract"); the tests named after each point prove it.
package entropy
