//go:build !boringcrypto

package entropy

// secretCgo reports whether making a batch calls into C (see
// secretpin_boring.go): never without BoringCrypto.
func secretCgo() bool { return false }
