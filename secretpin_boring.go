//go:build boringcrypto

package entropy

import "crypto/boring"

// secretCgo reports whether making a batch calls into C: with
// Go+BoringCrypto, crypto/aes and crypto/cipher do. A cgo call gives up the
// goroutine's P, so a generator's owner may not make a batch pinned to its
// P (secretStream): another goroutine would run there, and the runtime
// throws when the call returns to no free P. New then makes no generator
// for a P; every derived read uses the one shared under Provider.secretMu.
func secretCgo() bool { return boring.Enabled() }
